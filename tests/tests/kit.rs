//! The end-to-end kit itself, against a real Envoy: loading a compiled module
//! of this workspace, recording upstreams, scripted failures, mirroring, and
//! clear errors when Envoy cannot start.

#![allow(clippy::unwrap_used)] // test helpers, like the tests, fail by panicking

use e2e::{wasm_module, Bootstrap, Envoy, KitError, Request, Route, Script, Upstream, WasmFilter};
use serde_json::json;
use std::net::TcpListener;
use std::time::Duration;

fn stamp(config: serde_json::Value) -> WasmFilter {
    WasmFilter::new(wasm_module("stamp_fixture").unwrap(), "stamp", &config)
}

#[test]
fn module_stamps_headers_the_upstream_and_client_see() {
    let upstream = Upstream::start(Script::ok("backend")).unwrap();
    let config = json!({ "requestHeaders": { "x-stamp": "from-wasm" }, "responseHeaders": { "x-stamped": "yes" } });
    let envoy = Envoy::start(&Bootstrap::to_upstream(upstream.addr()).filter(stamp(config))).unwrap();

    let response = envoy
        .send(&Request::get("/orders?id=7").header("x-client", "a").header("x-client", "b"))
        .unwrap();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-stamped"), Some("yes"));
    assert_eq!(response.header("x-upstream-identity"), Some("backend"));
    assert_eq!(response.body_text(), "hello from backend\n");

    let seen = upstream.received();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/orders?id=7");
    assert_eq!(seen[0].header("x-stamp"), Some("from-wasm"));
    let client: Vec<&str> = seen[0].headers.iter().filter(|(k, _)| k == "x-client").map(|(_, v)| v.as_str()).collect();
    assert_eq!(client, ["a", "b"], "repeated headers arrive in order");
    assert_eq!(envoy.wasm_metric("stamp.requests").unwrap(), Some(1));
    assert!(envoy.prometheus().unwrap().lines().any(|l| l == "stamp_requests{} 1"), "Prometheus-visible");
}

#[test]
fn bodies_arrive_byte_for_byte() {
    let upstream = Upstream::start(Script::ok("backend")).unwrap();
    let envoy = Envoy::start(&Bootstrap::to_upstream(upstream.addr()).filter(stamp(json!({})))).unwrap();
    let body: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
    let response = envoy.send(&Request::post("/upload", body.clone())).unwrap();
    assert_eq!(response.status, 200);
    let seen = upstream.received();
    assert_eq!(seen[0].body, body);
}

#[test]
fn scripted_failures_drive_envoy_retries() {
    let upstream = Upstream::start(Script::fail_then_ok("flaky", 503, 2)).unwrap();
    let bootstrap = Bootstrap::new()
        .cluster("flaky", upstream.addr())
        .route(Route::prefix("/", "flaky").retries("5xx", 3))
        .filter(stamp(json!({})));
    let envoy = Envoy::start(&bootstrap).unwrap();
    let response = envoy.send(&Request::get("/")).unwrap();
    assert_eq!(response.status, 200);
    let seen = upstream.received();
    assert_eq!(seen.len(), 3, "two failures, then success");
    assert_eq!(seen[1].header("x-envoy-attempt-count"), None, "not asked for, not sent");
}

#[test]
fn slow_upstream_delays_the_answer() {
    let upstream = Upstream::start(Script::ok("slow").with_delay(Duration::from_millis(300))).unwrap();
    let envoy = Envoy::start(&Bootstrap::to_upstream(upstream.addr())).unwrap();
    let started = std::time::Instant::now();
    assert_eq!(envoy.send(&Request::get("/")).unwrap().status, 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[test]
fn mirrored_copies_reach_the_shadow_with_its_host_suffix() {
    let primary = Upstream::start(Script::ok("primary")).unwrap();
    let shadow = Upstream::start(Script::ok("shadow")).unwrap();
    let bootstrap = Bootstrap::new()
        .cluster("primary", primary.addr())
        .cluster("shadow", shadow.addr())
        .route(Route::prefix("/", "primary").mirror_to("shadow"))
        .filter(stamp(json!({ "requestHeaders": { "x-stamp": "both" } })));
    let envoy = Envoy::start(&bootstrap).unwrap();
    let response = envoy.send(&Request::post("/pay", "card=4111").header("host", "shop.local:8080")).unwrap();
    assert_eq!(response.header("x-upstream-identity"), Some("primary"));
    let copy = shadow.wait_for(1, Duration::from_secs(10)).unwrap();
    assert_eq!(copy[0].header("host"), Some("shop.local-shadow:8080"));
    assert_eq!(copy[0].body_text(), "card=4111");
    assert_eq!(copy[0].header("x-stamp"), Some("both"), "a downstream filter changes both copies");
    assert_eq!(primary.received()[0].header("host"), Some("shop.local:8080"));
}

#[test]
fn bad_envoy_config_fails_fast_with_envoys_own_message() {
    let mut config = Bootstrap::new().to_json();
    config["static_resources"]["clusters"] = json!([{ "name": "c", "type": "NOT_A_TYPE" }]);
    match Envoy::start_json(&config) {
        Err(KitError::EnvoyExited { log, .. }) => assert!(log.contains("NOT_A_TYPE"), "{log}"),
        Err(other) => panic!("expected EnvoyExited, got {other}"),
        Ok(_) => panic!("envoy started on a bad config"),
    }
}

#[test]
fn taken_port_fails_fast_with_envoys_own_message() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let upstream = Upstream::start(Script::ok("backend")).unwrap();
    let err = Envoy::start(&Bootstrap::to_upstream(upstream.addr()).listener_port(port)).err();
    let Some(KitError::EnvoyExited { log, .. }) = err else { panic!("expected EnvoyExited, got {err:?}") };
    assert!(log.contains("Address already in use"), "{log}");
}

#[test]
fn plugin_that_refuses_its_config_stops_envoy_with_the_field_named() {
    let upstream = Upstream::start(Script::ok("backend")).unwrap();
    let bad = stamp(json!({})).raw_configuration(r#"{"requestHeaders":{"X-Upper":"v"}}"#);
    let err = Envoy::start(&Bootstrap::to_upstream(upstream.addr()).filter(bad)).err();
    let Some(KitError::EnvoyExited { log, .. }) = err else { panic!("expected EnvoyExited, got {err:?}") };
    assert!(log.contains("requestHeaders.X-Upper: header names must be non-empty lower-case tokens"), "{log}");
}

#[test]
fn missing_module_is_a_clear_error() {
    let err = wasm_module("no_such_module").unwrap_err();
    assert!(err.to_string().contains("run `make build`"), "{err}");
}
