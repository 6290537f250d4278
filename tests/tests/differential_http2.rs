//! Fidelity of the harness over HTTP/2 and gRPC, measured: each case runs
//! the probe module through the harness and through the real Envoy with an
//! h2c client and an HTTP/2 cluster, and the upstream must see the same
//! request (trailers included) and the client get the same response. The
//! cases are where HTTP/2 differs from HTTP/1.1: the last DATA frame ends
//! the stream, no framing header is added either way, trailers end a body,
//! and a local reply to a gRPC call is gRPC's trailers-only answer.

#![allow(clippy::unwrap_used, clippy::panic)] // test helpers, like the tests, fail by panicking

use e2e::differential::Case;
use serde_json::json;

fn same(case: Case) -> harness::Outcome {
    case.compare().unwrap_or_else(|e| panic!("{e}"))
}

fn body_callbacks(outcome: &harness::Outcome, callback: &str) -> usize {
    outcome.callbacks.iter().filter(|c| c.callback == callback).count()
}

/// Counts body callbacks and rewrites both bodies at their end.
fn rewriting_probe() -> Case {
    Case::probe(json!({
        "onRequestBody": [
            { "metric": { "type": "counter", "name": "probe.request_body_calls", "increment": 1 } },
            { "pauseUntilEndOfStream": {} },
            { "appendBody": { "value": " world" } },
        ],
        "onResponseHeaders": [{ "removeHeader": { "map": "response", "name": "content-length" } }],
        "onResponseBody": [{ "pauseUntilEndOfStream": {} }, { "appendBody": { "value": " (rewritten)" } }],
    }))
    .request("POST", "/upload", b"hello")
}

#[test]
fn over_h2_the_last_data_frame_ends_the_stream_and_no_framing_header_is_added_alike() {
    let mut case = rewriting_probe().http2();
    case.metrics = vec!["probe.request_body_calls"];
    let outcome = same(case);
    // One DATA frame with END_STREAM: one body callback, which ends the
    // stream; over HTTP/1.1 the end comes as a second, empty callback.
    assert_eq!(body_callbacks(&outcome, "proxy_on_request_body"), 1);
    let up = outcome.upstream.as_ref().unwrap();
    assert!(!up.headers.iter().any(|(k, _)| k == "transfer-encoding" || k == "content-length"), "{:?}", up.headers);
    let response = outcome.response.unwrap();
    assert!(!response.headers.iter().any(|(k, _)| k == "transfer-encoding"), "{:?}", response.headers);
    let mut h1 = rewriting_probe();
    h1.metrics = vec!["probe.request_body_calls"];
    assert_eq!(body_callbacks(&same(h1), "proxy_on_request_body"), 2, "the HTTP/1.1 counterpart");
}

#[test]
fn over_h2_trailers_end_the_body_and_reach_the_upstream_alike() {
    let mut case = Case::probe(json!({
        "onRequestBody": [{ "metric": { "type": "counter", "name": "probe.request_body_calls", "increment": 1 } }],
        "onRequestTrailers": [
            { "metric": { "type": "counter", "name": "probe.request_trailer_calls", "increment": 1 } },
            { "addHeader": { "map": "requestTrailers", "name": "x-added-trailer", "value": "1" } },
            { "replaceHeader": { "map": "requestTrailers", "name": "x-checksum", "value": "replaced" } },
        ],
    }))
    .request("POST", "/upload", b"hello")
    .trailer("x-checksum", "abc")
    .trailer("x-other", "kept")
    .http2();
    case.metrics = vec!["probe.request_body_calls", "probe.request_trailer_calls"];
    let outcome = same(case);
    let up = outcome.upstream.unwrap();
    assert_eq!(up.trailers.len(), 3, "{:?}", up.trailers);
    assert_eq!(up.body, b"hello");
}

fn denying_probe(body: &str) -> Case {
    Case::probe(json!({
        "onRequestHeaders": [{ "localResponse": { "status": 403, "headers": [["x-why", "probe"]], "body": body } }],
        "onResponseHeaders": [{ "addHeader": { "map": "response", "name": "x-own-response-path", "value": "ran" } }],
    }))
    .request("POST", "/shop.Cart/Unary", &[0, 0, 0, 0, 0])
    .header("content-type", "application/grpc")
    .header("te", "trailers")
}

#[test]
fn a_local_reply_to_a_grpc_call_is_trailers_only_alike() {
    // Envoy answers 200 with `grpc-status` mapped from the HTTP status (403:
    // PERMISSION_DENIED, 7) and the body as a percent-encoded `grpc-message`.
    let outcome = same(denying_probe("denied: 100% é\n").http2());
    let response = outcome.response.unwrap();
    assert_eq!(response.status, 200);
    let header = |name: &str| response.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(header("grpc-status"), Some("7"));
    assert_eq!(header("grpc-message"), Some("denied: 100%25 %C3%A9%0A"), "the body's newline included");
    assert_eq!(header("content-type"), Some("application/grpc"));
    assert!(response.body.is_empty());
    // Without a body, and over HTTP/1.1 (a gRPC call through an h1 listener), alike too.
    same(denying_probe("").http2());
    same(denying_probe("denied\n"));
}

#[test]
fn a_local_reply_from_the_response_path_of_a_grpc_call_is_trailers_only_alike() {
    // The upstream answered; the filter replaces the answer (502: UNAVAILABLE, 14).
    let case = Case::probe(json!({
        "onResponseHeaders": [{ "localResponse": { "status": 502, "body": "replaced\n" } }],
    }))
    .request("POST", "/shop.Cart/Unary", &[0, 0, 0, 0, 0])
    .header("content-type", "application/grpc+proto")
    .http2();
    let response = same(case).response.unwrap();
    assert_eq!((response.status, response.header("grpc-status")), (200, Some("14")));
}
