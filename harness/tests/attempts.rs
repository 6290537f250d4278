//! `upstream.request_attempt_count` as Envoy 1.40 answers it (checked with
//! the probe in the real Envoy by `tests/tests/retry_hints.rs`): 0 while the
//! request is on its way, then the router's attempts, retries included, in
//! the response callbacks and at log time; 0 for a local reply.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

mod common;

use common::{probe_plugin, shared_text, to, to_shared};
use harness::{Request, UpstreamResponse};
use serde_json::json;

fn attempts_to(to: serde_json::Value) -> serde_json::Value {
    json!({ "getProperty": { "path": ["upstream", "request_attempt_count"], "as": "int64", "to": to } })
}

#[test]
fn attempts_are_zero_until_forwarded_then_the_routers_count() {
    let mut plugin = probe_plugin(json!({
        "onRequestHeaders": [attempts_to(to("request", "x-attempts"))],
        "onResponseHeaders": [attempts_to(to("response", "x-attempts"))],
        "onLog": [attempts_to(to_shared("log-attempts"))],
    }));
    let out = plugin.send(&Request::get("/"), &UpstreamResponse::status(503).attempts(3));
    assert_eq!(out.upstream.unwrap().header("x-attempts"), Some("0"));
    assert_eq!(out.response.unwrap().header("x-attempts"), Some("3"));
    assert_eq!(shared_text(&plugin.shared, "log-attempts").as_deref(), Some("3"));

    let out = plugin.send(&Request::get("/"), &UpstreamResponse::ok());
    assert_eq!(out.response.unwrap().header("x-attempts"), Some("1"), "one attempt without retries");
}

#[test]
fn a_local_reply_made_no_attempt() {
    let mut plugin = probe_plugin(json!({
        "onRequestHeaders": [{ "localResponse": { "status": 429 } }],
        "onResponseHeaders": [attempts_to(to("response", "x-attempts"))],
        "onLog": [attempts_to(to_shared("log-attempts"))],
    }));
    let out = plugin.send(&Request::get("/"), &UpstreamResponse::ok().attempts(2));
    assert!(out.upstream.is_none());
    assert_eq!(out.response.unwrap().header("x-attempts"), Some("0"));
    assert_eq!(shared_text(&plugin.shared, "log-attempts").as_deref(), Some("0"));
}
