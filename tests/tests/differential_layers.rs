//! Fidelity of the harness where Envoy's own layers act around a module:
//! what the router and the HTTP/1 codec add, `HEAD`, connection handling,
//! binary bodies, chunked upstreams, raw configurations, properties whose
//! names contain dots, calls that are late, several VMs, ticks and log
//! lines. Each case runs the probe through the harness and the real Envoy
//! and requires both to show the same thing.

#![allow(clippy::unwrap_used, clippy::panic)] // test helpers, like the tests, fail by panicking

use e2e::differential::{to, Case};
use e2e::Framing;
use serde_json::json;
use std::time::Duration;

fn same(case: Case) -> harness::Outcome {
    case.compare().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn a_local_reply_to_head_has_no_body_and_keeps_its_length_alike() {
    let outcome = same(
        Case::probe(json!({
            "onRequestHeaders": [{ "localResponse": { "status": 403, "body": "denied\n" } }],
            "onResponseBody": [{ "log": { "level": "info", "message": "a body callback ran" } }],
        }))
        .request("HEAD", "/probe", b""),
    );
    assert!(!outcome.logged("a body callback ran"));
    assert_eq!(outcome.response.unwrap().header("content-length"), Some("7"));
}

#[test]
fn the_upstream_request_carries_the_route_timeout_alike() {
    let mut case = Case::probe(json!({}));
    case.route_timeout_ms = Some(2500);
    let outcome = same(case);
    assert_eq!(outcome.upstream.unwrap().header("x-envoy-expected-rq-timeout-ms"), Some("2500"));
    // And the default, 15 s.
    let outcome = same(Case::probe(json!({})));
    assert_eq!(outcome.upstream.unwrap().header("x-envoy-expected-rq-timeout-ms"), Some("15000"));
}

#[test]
fn a_call_the_module_makes_is_marked_internal_with_its_timeout_alike() {
    let mut case = Case::probe(json!({
        "onRequestHeaders": [
            { "httpCall": { "cluster": "callout", "timeoutMs": 700, "body": "ping",
                "headers": [[":method", "POST"], [":path", "/check"], [":authority", "callout"], ["x-asked", "1"]] } },
            { "returnAction": "pause" },
        ],
    }));
    case.callout = Some(b"pong".to_vec());
    let outcome = same(case);
    let call = outcome.http_calls.first().unwrap();
    assert!(call.received_headers.iter().any(|(k, v)| k == "x-envoy-internal" && v == "true"));
}

#[test]
fn a_response_whose_length_a_filter_removed_goes_chunked_alike() {
    same(Case::probe(json!({
        "onResponseHeaders": [{ "removeHeader": { "map": "response", "name": "content-length" } }],
    })));
}

#[test]
fn a_head_response_whose_length_a_filter_removed_says_chunked_alike() {
    same(
        Case::probe(json!({
            "onResponseHeaders": [{ "removeHeader": { "map": "response", "name": "content-length" } }],
        }))
        .request("HEAD", "/probe", b""),
    );
}

#[test]
fn a_local_reply_before_the_body_was_read_closes_the_connection_alike() {
    let mut case = Case::probe(json!({
        "onRequestHeaders": [{ "localResponse": { "status": 401, "body": "who are you\n" } }],
    }))
    .request("POST", "/upload", b"hello");
    case.keep_alive = true;
    let outcome = same(case);
    assert_eq!(outcome.response.unwrap().header("connection"), Some("close"));
}

#[test]
fn a_proxied_answer_on_a_kept_alive_connection_stays_open_alike() {
    let mut case = Case::probe(json!({})).request("POST", "/upload", b"hello");
    case.keep_alive = true;
    let outcome = same(case);
    assert_eq!(outcome.response.unwrap().header("connection"), None);
}

#[test]
fn a_property_whose_segment_has_dots_reads_alike() {
    let lua = json!({
        "name": "envoy.filters.http.lua",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": { "inline_string":
                "function envoy_on_request(h) h:streamInfo():dynamicMetadata():set('envoy.filters.http.lua', 'tier', 'gold') end" },
        },
    });
    let mut case = Case::probe(json!({
        "onRequestHeaders": [{ "getProperty": {
            "path": ["metadata", "filter_metadata", "envoy.filters.http.lua", "tier"], "to": to("request", "x-tier") } }],
    }));
    case.native_filters = vec![lua];
    case.harness_properties = vec![(r#"metadata.filter_metadata["envoy.filters.http.lua"].tier"#, "gold".into())];
    let outcome = same(case);
    assert_eq!(outcome.upstream.unwrap().header("x-tier"), Some("gold"));
}

#[test]
fn a_raw_configuration_arrives_byte_for_byte_alike() {
    let mut case = Case::probe(json!({}));
    case.raw_config = Some(
        r#"{ "onConfigure": [ { "readBuffer": { "buffer": "pluginConfiguration", "max": 16, "as": "hex", "to": { "sharedData": "cfg" } } } ],
             "onRequestHeaders": [ { "getSharedData": { "key": "cfg", "to": { "map": "request", "name": "x-config" } } } ] }"#,
    );
    let outcome = same(case);
    // `{ "onConfigure":` as it was written, spaces included, in the third
    // VM configured (shared data version 3: the main thread's check, its
    // own VM, the worker's).
    assert_eq!(outcome.upstream.unwrap().header("x-config"), Some("7b20226f6e436f6e666967757265223a@3"));
}

#[test]
fn binary_bodies_pass_byte_for_byte_alike() {
    let mut case = Case::probe(json!({
        "onRequestBody": [{ "readBuffer": { "buffer": "requestBody", "as": "hex", "to": to("request", "x-body-seen") } }],
        "onResponseBody": [{ "readBuffer": { "buffer": "responseBody", "as": "hex", "to": to("response", "x-body-seen") } }],
        "onRequestHeaders": [
            { "httpCall": { "cluster": "callout", "headers": [[":method", "GET"], [":path", "/bin"], [":authority", "callout"]] } },
            { "returnAction": "pause" },
        ],
        "onHttpCallResponse": [{ "readBuffer": { "buffer": "httpCallResponseBody", "as": "hex", "to": to("request", "x-call-body") } }],
    }))
    .request("POST", "/upload", &[0xfe, 0x00, 0xff, b'a']);
    case.upstream_body = vec![0xfe, 0xc3, 0x28, 0x00];
    case.callout = Some(vec![0xfe]);
    let outcome = same(case);
    assert_eq!(outcome.upstream.unwrap().header("x-call-body"), Some("fe"));
}

#[test]
fn a_chunked_upstream_response_alike() {
    let mut case = Case::probe(json!({
        "onResponseHeaders": [{ "getHeaders": { "map": "response", "to": to("response", "x-resp-seen") } }],
    }));
    case.upstream_framing = Framing::Chunked(64);
    same(case);
}

#[test]
fn an_upstream_response_without_length_alike() {
    let mut case = Case::probe(json!({
        "onResponseHeaders": [{ "getHeaders": { "map": "response", "to": to("response", "x-resp-seen") } }],
    }));
    case.upstream_framing = Framing::Close;
    same(case);
}

#[test]
fn a_call_answered_after_its_timeout_fails_alike() {
    let mut case = Case::probe(json!({
        "onRequestHeaders": [
            { "httpCall": { "cluster": "callout", "timeoutMs": 100, "headers": [[":method", "GET"], [":path", "/slow"], [":authority", "callout"]] } },
            { "returnAction": "pause" },
        ],
        "onHttpCallResponse": [
            { "getHeader": { "map": "httpCallResponse", "name": ":status", "to": to("request", "x-callout-status") } },
            { "getHeaders": { "map": "httpCallResponse", "to": to("request", "x-callout-headers") } },
            { "readBuffer": { "buffer": "httpCallResponseBody", "to": to("request", "x-callout-body") } },
        ],
    }));
    case.callout = Some(b"late".to_vec());
    case.callout_delay = Duration::from_millis(400);
    let outcome = same(case);
    // Envoy's async client answers a call that timed out itself: 504.
    assert_eq!(outcome.upstream.unwrap().header("x-callout-status"), Some("504"));
}

#[test]
fn every_vm_starts_on_its_own_alike() {
    // The probe's onVmStart never runs: the plugin configuration that holds
    // its script is not readable before on_configure, in either.
    let mut case = Case::probe(json!({
        "onVmStart": [{ "metric": { "type": "counter", "name": "probe.vm_starts", "increment": 1 } }],
        "onConfigure": [{ "metric": { "type": "counter", "name": "probe.configures", "increment": 1 } }],
    }));
    case.workers = 2;
    case.metrics = vec!["probe.vm_starts", "probe.configures"];
    same(case);
}

#[test]
fn every_vm_ticks_on_its_own_alike() {
    let mut case = Case::probe(json!({
        "onConfigure": [{ "tickPeriod": { "ms": 100 } }],
        // One tick per VM: the first one stops the timer.
        "onTick": [{ "metric": { "type": "counter", "name": "probe.ticks", "increment": 1 } }, { "tickPeriod": { "ms": 0 } }],
    }));
    case.workers = 2;
    case.wait = Duration::from_millis(600);
    case.metrics = vec!["probe.ticks"];
    same(case);
}

#[test]
fn log_lines_have_envoys_shape_alike() {
    let mut case = Case::probe(json!({
        "onConfigure": [{ "log": { "level": "warn", "message": "MARK root context" } }],
        "onRequestHeaders": [
            { "log": { "level": "info", "message": "MARK stream context" } },
            { "log": { "level": "error", "message": "MARK stream error" } },
        ],
    }));
    case.log_marker = Some("MARK");
    same(case);
}
