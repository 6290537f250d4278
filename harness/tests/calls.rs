//! The module's own calls: HTTP calls and unary gRPC calls answered from the
//! plugin's scripted clusters, delivered through the call callbacks, and the
//! request resumed afterwards.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

mod common;

use common::{probe_with, to};
use harness::{CallReply, PluginConfig, Request, SharedState, UpstreamResponse};
use serde_json::{json, Value};

fn call_script(cluster: &str) -> Value {
    json!({
        "onRequestHeaders": [
            { "httpCall": { "cluster": cluster, "headers": [[":method", "POST"], [":path", "/check"], [":authority", "authz"], ["x-q", "1"]], "body": "question", "timeoutMs": 250 } },
            { "returnAction": "pause" },
        ],
        "onHttpCallResponse": [
            { "getHeader": { "map": "httpCallResponse", "name": ":status", "to": to("request", "x-call-status") } },
            { "getHeader": { "map": "httpCallResponse", "name": "x-verdict", "to": to("request", "x-call-verdict") } },
            { "readBuffer": { "buffer": "httpCallResponseBody", "to": to("request", "x-call-body") } },
        ],
    })
}

#[test]
fn an_http_call_is_answered_and_the_request_resumes() {
    let reply = CallReply::http(200, "allowed").header("x-verdict", "yes");
    let config = PluginConfig::new("probe").json(&call_script("authz")).cluster("authz", reply);
    let mut plugin = probe_with(config, SharedState::new());
    let out = plugin.send(&Request::get("/"), &UpstreamResponse::ok());
    let call = &out.http_calls[0];
    assert_eq!(call.cluster, "authz");
    assert_eq!(call.timeout_ms, 250);
    assert_eq!(call.body, b"question");
    assert!(call.headers.contains(&("x-q".to_string(), "1".to_string())));
    let up = out.upstream.expect("resumed after the call");
    assert_eq!(up.header("x-call-status"), Some("200"));
    assert_eq!(up.header("x-call-verdict"), Some("yes"));
    assert_eq!(up.header("x-call-body"), Some("allowed"));
}

#[test]
fn a_failed_http_call_reaches_the_module_without_headers() {
    let config = PluginConfig::new("probe").json(&call_script("authz")).cluster("authz", CallReply::failure());
    let mut plugin = probe_with(config, SharedState::new());
    let up = plugin.send(&Request::get("/"), &UpstreamResponse::ok()).upstream.unwrap();
    assert_eq!(up.header("x-call-status"), Some("<absent>"));
}

#[test]
fn a_call_to_an_unknown_cluster_is_refused_at_dispatch() {
    let mut plugin = probe_with(PluginConfig::new("probe").json(&call_script("nowhere")), SharedState::new());
    let out = plugin.send(&Request::get("/"), &UpstreamResponse::ok());
    assert!(out.http_calls.is_empty());
    // The probe paused waiting for a call that never left: the stream stalls.
    assert!(out.stalled.is_some());
    assert!(out.logged("httpCall"), "{:?}", out.logs);
}

fn grpc_script() -> Value {
    json!({
        "onRequestHeaders": [
            { "grpcCall": { "cluster": "ext-authz", "service": "envoy.service.auth.v3.Authorization", "method": "Check", "message": "req", "timeoutMs": 100 } },
            { "returnAction": "pause" },
        ],
        "onGrpcResponse": [
            { "grpcStatus": { "to": to("request", "x-grpc-status") } },
            { "readBuffer": { "buffer": "grpcReceiveBuffer", "to": to("request", "x-grpc-message") } },
            { "getStatus": { "to": to("request", "x-get-status") } },
        ],
    })
}

#[test]
fn a_unary_grpc_call_delivers_its_message() {
    let config = PluginConfig::new("probe").json(&grpc_script()).cluster("ext-authz", CallReply::grpc("ok-bytes"));
    let mut plugin = probe_with(config, SharedState::new());
    let out = plugin.send(&Request::get("/"), &UpstreamResponse::ok());
    let call = &out.grpc_calls[0];
    assert_eq!((call.service.as_str(), call.method.as_str()), ("envoy.service.auth.v3.Authorization", "Check"));
    assert_eq!(call.messages, vec![b"req".to_vec()]);
    let up = out.upstream.unwrap();
    assert_eq!(up.header("x-grpc-status"), Some("0"));
    assert_eq!(up.header("x-grpc-message"), Some("ok-bytes"));
}

#[test]
fn a_failed_grpc_call_closes_with_its_status() {
    let config = PluginConfig::new("probe").json(&grpc_script()).cluster("ext-authz", CallReply::grpc_error(7, "permission denied"));
    let mut plugin = probe_with(config, SharedState::new());
    let up = plugin.send(&Request::get("/"), &UpstreamResponse::ok()).upstream.unwrap();
    assert_eq!(up.header("x-grpc-status"), Some("7"));
    assert_eq!(up.header("x-get-status"), Some("7:permission denied"));
}
