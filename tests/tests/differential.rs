//! Fidelity of the harness, measured: each case runs the probe module with
//! the same script through the harness and through the real Envoy, and the
//! upstream must see the same request and the client get the same response.

#![allow(clippy::unwrap_used, clippy::panic)] // test helpers, like the tests, fail by panicking

use e2e::differential::{to, Case};
use serde_json::json;

fn same(case: Case) -> harness::Outcome {
    case.compare().unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn request_header_edits_reach_the_upstream_alike() {
    let case = Case::probe(json!({
        "onRequestHeaders": [
            { "addHeader": { "map": "request", "name": "x-added", "value": "1" } },
            { "addHeader": { "map": "request", "name": "X-Added", "value": "2" } },
            { "replaceHeader": { "map": "request", "name": "x-multi", "value": "replaced" } },
            { "replaceHeader": { "map": "request", "name": "user-agent", "value": "changed" } },
            { "removeHeader": { "map": "request", "name": "x-remove" } },
            { "getHeader": { "map": "request", "name": "x-multi", "to": to("request", "x-multi-after") } },
            { "getHeader": { "map": "request", "name": "x-absent", "to": to("request", "x-absent-read") } },
            { "getHeaders": { "map": "request", "to": to("request", "x-seen") } },
        ],
    }))
    .header("x-multi", "a")
    .header("x-remove", "gone")
    .header("x-multi", "b");
    let outcome = same(case);
    assert!(outcome.route_cache_cleared);
}

#[test]
fn repeated_header_reads_give_the_first_value_alike() {
    same(
        Case::probe(json!({
            "onRequestHeaders": [{ "getHeader": { "map": "request", "name": "x-multi", "to": to("request", "x-first") } }],
        }))
        .header("x-multi", "a")
        .header("x-multi", "b"),
    );
}

/// Seen in Envoy 1.40: after a filter replaces the request header map whole,
/// Envoy finds no route (404), even when the pseudo-headers are unchanged.
#[test]
fn whole_map_replacement_leaves_envoy_without_a_route_alike() {
    let outcome = same(Case::probe(json!({
        "onRequestHeaders": [{ "setHeaders": { "map": "request", "pairs": [
            [":authority", "localhost"], [":path", "/probe"], [":method", "GET"], [":scheme", "http"], ["x-only", "1"]
        ] } }],
    })));
    assert!(outcome.route_not_found);
}

#[test]
fn response_header_edits_reach_the_client_alike() {
    same(Case::probe(json!({
        "onResponseHeaders": [
            { "replaceHeader": { "map": "response", "name": "content-type", "value": "application/x-probe" } },
            { "addHeader": { "map": "response", "name": "x-resp", "value": "1" } },
            { "getHeader": { "map": "request", "name": "user-agent", "to": to("response", "x-request-header-in-response") } },
            { "getHeaders": { "map": "response", "to": to("response", "x-resp-seen") } },
        ],
    })));
}

#[test]
fn request_body_rewrite_without_content_length_arrives_whole() {
    same(
        Case::probe(json!({
            "onRequestHeaders": [{ "removeHeader": { "map": "request", "name": "content-length" } }],
            "onRequestBody": [{ "pauseUntilEndOfStream": {} }, { "appendBody": { "value": " world" } }],
        }))
        .request("POST", "/upload", b"hello"),
    );
}

#[test]
fn request_body_rewrite_that_keeps_content_length_is_cut_alike() {
    same(
        Case::probe(json!({
            "onRequestBody": [{ "pauseUntilEndOfStream": {} }, { "prependBody": { "value": ">>" } }],
        }))
        .request("POST", "/upload", b"hello"),
    );
}

#[test]
fn a_paused_request_body_over_envoys_buffer_limit_is_answered_413_alike() {
    // Envoy holds what a paused filter has not let go of, up to 1 MiB.
    let body = vec![b'x'; 2 * 1024 * 1024];
    let outcome = same(Case::probe(json!({ "onRequestBody": [{ "pauseUntilEndOfStream": {} }] })).request("POST", "/upload", &body));
    assert_eq!(outcome.status(), 413);
    // Under the limit, the same filter's body arrives.
    let outcome = same(Case::probe(json!({ "onRequestBody": [{ "pauseUntilEndOfStream": {} }] })).request("POST", "/upload", &body[..512 * 1024]));
    assert_eq!(outcome.status(), 200);
}

#[test]
fn response_body_rewrite_reaches_the_client_alike() {
    same(Case::probe(json!({
        "onResponseHeaders": [{ "removeHeader": { "map": "response", "name": "content-length" } }],
        "onResponseBody": [
            { "pauseUntilEndOfStream": {} },
            { "setBuffer": { "buffer": "responseBody", "start": 0, "value": "replaced body" } },
        ],
    })));
}

#[test]
fn local_response_from_request_headers_skips_the_upstream_alike() {
    let outcome = same(Case::probe(json!({
        "onRequestHeaders": [{ "localResponse": { "status": 403, "headers": [["x-deny", "1"]], "body": "denied\n" } }],
        "onResponseHeaders": [{ "addHeader": { "map": "response", "name": "x-own-response-path", "value": "ran" } }],
    })));
    assert!(outcome.local_response.is_some());
}

#[test]
fn local_response_without_body_alike() {
    same(Case::probe(json!({
        "onRequestHeaders": [{ "localResponse": { "status": 429, "headers": [["retry-after", "3"]] } }],
    })));
}

#[test]
fn local_response_from_response_headers_replaces_the_answer_alike() {
    same(Case::probe(json!({
        "onResponseHeaders": [{ "localResponse": { "status": 502, "body": "replaced\n" } }],
    })));
}

#[test]
fn pause_resumed_by_a_call_response_alike() {
    let mut case = Case::probe(json!({
        "onRequestHeaders": [
            { "httpCall": { "cluster": "callout", "headers": [[":method", "GET"], [":path", "/check"], [":authority", "callout"]] } },
            { "returnAction": "pause" },
        ],
        // Envoy keeps the headers of a stream that paused on them readable later.
        "onResponseHeaders": [
            { "getHeader": { "map": "request", "name": "user-agent", "to": to("response", "x-request-header-after-pause") } },
        ],
        "onHttpCallResponse": [
            { "getHeader": { "map": "httpCallResponse", "name": ":status", "to": to("request", "x-callout-status") } },
            { "getHeader": { "map": "httpCallResponse", "name": "x-callout", "to": to("request", "x-callout-header") } },
            { "readBuffer": { "buffer": "httpCallResponseBody", "to": to("request", "x-callout-body") } },
        ],
    }));
    case.callout = Some(b"allowed".to_vec());
    same(case);
}

#[test]
fn properties_read_alike() {
    let read = |path: &[&str], kind: &str, header: &str| json!({ "getProperty": { "path": path, "as": kind, "to": to("request", header) } });
    same(
        Case::probe(json!({
            "onRequestHeaders": [
                read(&["request", "path"], "string", "x-p-path"),
                read(&["request", "url_path"], "string", "x-p-url-path"),
                read(&["request", "query"], "string", "x-p-query"),
                read(&["request", "host"], "string", "x-p-host"),
                read(&["request", "method"], "string", "x-p-method"),
                read(&["request", "scheme"], "string", "x-p-scheme"),
                read(&["request", "protocol"], "string", "x-p-protocol"),
                read(&["request", "headers", "user-agent"], "string", "x-p-ua"),
                read(&["plugin_name"], "string", "x-p-plugin-name"),
                read(&["plugin_root_id"], "string", "x-p-root-id"),
                read(&["connection", "mtls"], "bool", "x-p-mtls"),
                read(&["no_such_property"], "string", "x-p-missing"),
            ],
        }))
        .request("GET", "/orders/7?expand=items&x=1", b""),
    );
}

#[test]
fn metrics_count_alike() {
    let outcome = same(Case::probe(json!({
        "onRequestHeaders": [
            { "metric": { "type": "counter", "name": "probe.hits", "increment": 3 } },
            { "metric": { "type": "gauge", "name": "probe.level", "record": 42 } },
            { "getMetric": { "name": "probe.hits", "to": to("request", "x-hits") } },
            { "getMetric": { "name": "probe.level", "to": to("request", "x-level") } },
        ],
    })));
    assert_eq!(outcome.host_calls.get("proxy_get_metric"), Some(&2));
}

#[test]
fn a_trapping_module_fails_closed_alike() {
    let outcome = same(Case::probe(json!({ "onRequestHeaders": [{ "trap": "unreachable" }] })));
    assert!(outcome.trap.is_some());
}

#[test]
fn a_panic_fails_the_stream_alike() {
    same(Case::probe(json!({ "onRequestHeaders": [{ "trap": "panic" }] })));
}

/// A request that traps, then the compared one that does not.
fn after_a_trap(policy: &'static str) -> harness::Outcome {
    let mut case = Case::probe(json!({
        "onRequestHeaders": [
            { "trapIfHeader": { "name": "x-trap" } },
            { "addHeader": { "map": "request", "name": "x-probed", "value": "yes" } },
        ],
    }));
    case.failure_policy = policy;
    case.before = 1;
    case.before_headers = vec![("x-trap", "1")];
    same(case)
}

#[test]
fn after_a_trap_fail_closed_answers_503_alike() {
    assert_eq!(after_a_trap("FAIL_CLOSED").status(), 503);
}

#[test]
fn after_a_trap_fail_open_skips_the_filter_alike() {
    let outcome = after_a_trap("FAIL_OPEN");
    assert_eq!(outcome.status(), 200);
    assert_eq!(outcome.upstream.unwrap().header("x-probed"), None);
}

#[test]
fn after_a_trap_fail_reload_runs_a_fresh_vm_alike() {
    let outcome = after_a_trap("FAIL_RELOAD");
    assert_eq!(outcome.upstream.unwrap().header("x-probed"), Some("yes"));
}

#[test]
fn response_body_callbacks_alike() {
    same(Case::probe(json!({
        "onResponseHeaders": [{ "removeHeader": { "map": "response", "name": "content-length" } }],
        "onResponseBody": [{ "pauseUntilEndOfStream": {} }, { "appendBody": { "value": "+" } }],
    })));
}

#[test]
fn a_trap_in_the_response_path_alike() {
    same(Case::probe(json!({ "onResponseHeaders": [{ "trap": "unreachable" }] })));
}
