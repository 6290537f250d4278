//! What Envoy does around a module, as the harness reproduces it: the
//! router's and codec's headers, HEAD, per-request call answers with delays
//! and timeouts in virtual time, several VMs with their own start and ticks,
//! and the shape of log lines. (Each is compared with the real Envoy in
//! `tests/tests/differential_layers.rs`.)

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

mod common;

use common::{probe_plugin, probe_with, to};
use harness::{CallReply, PluginConfig, Request, SharedState, UpstreamResponse};
use serde_json::json;
use std::time::{Duration, Instant};

fn call_then(cluster: &str, timeout_ms: u32) -> serde_json::Value {
    json!({
        "onRequestHeaders": [
            { "httpCall": { "cluster": cluster, "headers": [[":method", "GET"], [":path", "/"], [":authority", "a"]], "timeoutMs": timeout_ms } },
            { "returnAction": "pause" },
        ],
        "onHttpCallResponse": [
            { "getHeader": { "map": "httpCallResponse", "name": ":status", "to": to("request", "x-status") } },
            { "currentTime": { "to": to("request", "x-now") } },
        ],
    })
}

#[test]
fn a_head_local_reply_keeps_its_length_and_drops_its_body() {
    let mut plugin = probe_plugin(json!({ "onRequestHeaders": [{ "localResponse": { "status": 403, "body": "denied\n" } }] }));
    let out = plugin.send(&Request::new("HEAD", "/"), &UpstreamResponse::ok());
    let response = out.response.unwrap();
    assert_eq!(response.header("content-length"), Some("7"));
    assert!(response.body.is_empty());
    assert!(!out.callbacks.iter().any(|c| c.callback == "proxy_on_response_body"));
}

#[test]
fn the_router_and_codec_add_their_headers() {
    let mut plugin = probe_plugin(json!({ "onResponseHeaders": [{ "removeHeader": { "map": "response", "name": "content-length" } }] }));
    let out = plugin.send(&Request::get("/").header("connection", "close"), &UpstreamResponse::ok().body("hi"));
    assert_eq!(out.upstream.unwrap().header("x-envoy-expected-rq-timeout-ms"), Some("15000"));
    let response = out.response.unwrap();
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.header("connection"), Some("close"));
    let out = plugin.send(&Request::get("/"), &UpstreamResponse::ok().route_timeout_ms(0));
    assert_eq!(out.upstream.unwrap().header("x-envoy-expected-rq-timeout-ms"), None);
}

#[test]
fn calls_answer_per_request_in_order_after_their_delay_in_virtual_time() {
    let config = PluginConfig::new("probe").json(&call_then("authz", 1000)).cluster("authz", CallReply::http(200, "")).clock(1_000_000_000);
    let shared = SharedState::new();
    let mut plugin = probe_with(config, shared.clone());
    let started = Instant::now();
    let request = Request::get("/").call("authz", CallReply::http(503, "").after(Duration::from_millis(800)));
    let out = plugin.send(&request, &UpstreamResponse::ok());
    let up = out.upstream.unwrap();
    assert_eq!(up.header("x-status"), Some("503"));
    assert_eq!(up.header("x-now"), Some("1800000000"), "the clock moved by the delay");
    assert!(started.elapsed() < Duration::from_millis(700), "no real waiting");
    // The script is used up: the plugin's cluster answers the next request.
    let out = plugin.send(&Request::get("/"), &UpstreamResponse::ok());
    assert_eq!(out.upstream.unwrap().header("x-status"), Some("200"));
}

#[test]
fn a_call_answered_after_its_timeout_times_out() {
    let config = PluginConfig::new("probe").json(&call_then("authz", 100)).cluster("authz", CallReply::http(200, "").after(Duration::from_secs(3))).clock(0);
    let mut plugin = probe_with(config, SharedState::new());
    let out = plugin.send(&Request::get("/"), &UpstreamResponse::ok());
    let up = out.upstream.unwrap();
    assert_eq!(up.header("x-status"), Some("504"), "Envoy's own answer to a call that timed out");
    assert_eq!(up.header("x-now"), Some("100000000"), "delivered when the timeout expired");
}

#[test]
fn every_vm_starts_and_ticks_on_its_own() {
    let script = json!({
        "onConfigure": [
            { "metric": { "type": "counter", "name": "configures", "increment": 1 } },
            { "tickPeriod": { "ms": 100 } },
            { "log": { "level": "info", "message": "configured" } },
        ],
        "onTick": [{ "metric": { "type": "counter", "name": "ticks", "increment": 1 } }],
    });
    let shared = SharedState::new();
    let mut plugin = probe_with(PluginConfig::new("probe").json(&script).workers(2), shared.clone());
    // The main thread's check and its own VM, then two workers.
    assert_eq!(shared.metrics()["configures"], 4);
    assert_eq!(plugin.start_logs.iter().filter(|l| l.message == "configured").count(), 4);
    plugin.advance(Duration::from_millis(250)).unwrap();
    // Two ticks in 250 ms for the main thread's VM and each worker's; the
    // checking VM is gone.
    assert_eq!(shared.metrics()["ticks"], 6);
    assert_eq!(shared.elapsed(), Duration::from_millis(250));
}

#[test]
fn log_lines_say_which_context_logged_them() {
    let mut plugin = probe_plugin(json!({
        "onConfigure": [{ "log": { "level": "warn", "message": "root line" } }],
        "onRequestHeaders": [{ "log": { "level": "info", "message": "stream line" } }],
    }));
    let root = plugin.start_logs.iter().find(|l| l.message == "root line").unwrap();
    assert_eq!(harness::report::envoy_log_line(plugin.info(), root), "[warning][wasm] wasm log probe: root line");
    let out = plugin.send(&Request::get("/"), &UpstreamResponse::ok());
    let (_, stream) = out.logs.iter().find(|(_, l)| l.message == "stream line").unwrap();
    assert_eq!(harness::report::envoy_log_line(plugin.info(), stream), "[info][wasm] wasm log probe probe: stream line");
}
