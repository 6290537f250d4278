//! The HTTP stream through compiled modules: header maps, bodies in chunks,
//! trailers, pausing and resuming, local responses, route-cache clearing,
//! and Envoy's rules for which map a callback may touch.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

mod common;

use common::{probe_plugin, stamp, to};
use harness::{Chain, Plugin, PluginConfig, Request, SharedState, UpstreamResponse};
use serde_json::json;

fn ok() -> UpstreamResponse {
    UpstreamResponse::ok().header("content-type", "text/plain").body("upstream\n")
}

#[test]
fn header_maps_are_read_and_edited_like_envoy() {
    let mut plugin = probe_plugin(json!({
        "onRequestHeaders": [
            { "getHeaders": { "map": "request", "to": to("request", "x-before") } },
            { "addHeader": { "map": "request", "name": "X-Added", "value": "1" } },
            { "addHeader": { "map": "request", "name": "x-added", "value": "2" } },
            { "replaceHeader": { "map": "request", "name": "x-multi", "value": "one" } },
            { "removeHeader": { "map": "request", "name": "x-gone" } },
            { "getHeader": { "map": "request", "name": "X-MULTI", "to": to("request", "x-read") } },
            { "getHeader": { "map": "request", "name": "x-nope", "to": to("request", "x-missing") } },
        ],
    }));
    let request = Request::get("/a?b=1").header("x-multi", "1").header("x-gone", "x").header("x-multi", "2");
    let out = plugin.send(&request, &ok());
    let up = out.upstream.unwrap();
    let names: Vec<&str> = up.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["x-forwarded-proto", "x-request-id", "x-before", "x-added", "x-added", "x-multi", "x-read", "x-missing", "x-envoy-expected-rq-timeout-ms"],
        "replace moves the header to the end; remove drops every value; the router adds its timeout last"
    );
    assert_eq!(
        up.header("x-before"),
        Some(":authority=localhost;:path=/a?b=1;:method=GET;:scheme=http;x-multi=1;x-gone=x;x-multi=2;x-forwarded-proto=http;x-request-id=00000000-0000-4000-8000-000000000001")
    );
    assert_eq!(up.header("x-read"), Some("one"), "names are case-insensitive");
    assert_eq!(up.header("x-missing"), Some("<absent>"));
    assert!(out.route_cache_cleared, "request header changes clear the route cache (ABI 0.2.1)");
}

#[test]
fn maps_outside_their_phase_answer_bad_argument() {
    let mut plugin = probe_plugin(json!({
        "onResponseHeaders": [
            { "getHeader": { "map": "request", "name": "user-agent", "to": to("response", "x-request-in-response") } },
            { "getHeader": { "map": "response", "name": "content-type", "to": to("response", "x-own") } },
        ],
        "onLog": [{ "getHeader": { "map": "request", "name": "user-agent", "to": to("response", "x-in-log") } }],
    }));
    let out = plugin.send(&Request::get("/").header("user-agent", "t"), &ok());
    let response = out.response.unwrap();
    assert_eq!(response.header("x-request-in-response"), Some("<error:BadArgument>"));
    assert_eq!(response.header("x-own"), Some("text/plain"));
}

#[test]
fn a_body_in_chunks_is_buffered_while_paused_and_seen_whole() {
    let mut plugin = probe_plugin(json!({
        "onRequestHeaders": [{ "removeHeader": { "map": "request", "name": "content-length" } }],
        "onRequestBody": [{ "pauseUntilEndOfStream": {} }],
    }));
    let out = plugin.send(&Request::new("POST", "/u").chunks(["ab", "cd", "ef"]), &ok());
    assert_eq!(out.upstream.unwrap().body, b"abcdef");
    let bodies: Vec<_> = out.callbacks.iter().filter(|c| c.callback == "proxy_on_request_body").collect();
    assert_eq!(bodies.len(), 4, "three chunks, then the end of stream");
}

#[test]
fn body_rewrites_follow_envoys_buffer_semantics() {
    let mut plugin = probe_plugin(json!({
        "onRequestHeaders": [{ "removeHeader": { "map": "request", "name": "content-length" } }],
        "onRequestBody": [
            { "pauseUntilEndOfStream": {} },
            { "setBuffer": { "buffer": "requestBody", "start": 0, "size": 5, "value": "HELLO" } },
        ],
        "onResponseHeaders": [{ "removeHeader": { "map": "response", "name": "content-length" } }],
        "onResponseBody": [{ "pauseUntilEndOfStream": {} }, { "prependBody": { "value": "> " } }],
    }));
    let out = plugin.send(&Request::post("/u", "hello world"), &ok());
    assert_eq!(out.upstream.unwrap().body_text(), "HELLO world");
    // The body callback runs twice (data, then the end of stream), so the prepend does too.
    assert_eq!(out.response.unwrap().body_text(), "> > upstream\n");
}

#[test]
fn a_grown_body_with_its_old_content_length_is_cut() {
    let mut plugin = probe_plugin(json!({ "onRequestBody": [{ "appendBody": { "value": "++" } }] }));
    let out = plugin.send(&Request::post("/u", "abc"), &ok());
    let up = out.upstream.unwrap();
    assert_eq!(up.header("content-length"), Some("3"));
    assert_eq!(up.body_text(), "abc", "the upstream reads only content-length bytes");
}

#[test]
fn trailers_pass_both_ways_and_are_editable() {
    let mut plugin = probe_plugin(json!({
        "onRequestTrailers": [{ "addHeader": { "map": "requestTrailers", "name": "x-t", "value": "added" } }],
        "onResponseTrailers": [{ "getHeader": { "map": "responseTrailers", "name": "grpc-status", "to": to("responseTrailers", "x-seen") } }],
    }));
    let request = Request::post("/u", "body").trailer("x-req-trailer", "1");
    let upstream = ok().trailer("grpc-status", "0");
    let out = plugin.send(&request, &upstream);
    let up = out.upstream.unwrap();
    assert_eq!(up.trailers, vec![("x-req-trailer".to_string(), "1".to_string()), ("x-t".to_string(), "added".to_string())]);
    assert!(out.response.unwrap().trailers.contains(&("x-seen".to_string(), "0".to_string())));
}

#[test]
fn a_local_response_skips_the_upstream_and_runs_the_response_path() {
    let mut plugin = probe_plugin(json!({
        "onRequestHeaders": [{ "localResponse": { "status": 403, "headers": [["x-why", "policy"]], "body": "denied\n", "details": "probe_denied" } }],
        "onResponseHeaders": [{ "addHeader": { "map": "response", "name": "x-response-path", "value": "ran" } }],
    }));
    let out = plugin.send(&Request::get("/"), &ok());
    assert!(out.upstream.is_none());
    let (filter, reply) = out.local_response.clone().unwrap();
    assert_eq!((filter, reply.status, reply.details.as_str()), (0, 403, "probe_denied"));
    let response = out.response.unwrap();
    assert_eq!(response.status, 403);
    assert_eq!(
        response.headers,
        [("x-why", "policy"), ("content-length", "7"), ("content-type", "text/plain"), ("x-response-path", "ran")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    assert_eq!(response.body_text(), "denied\n");
}

#[test]
fn a_pause_never_resumed_stalls_the_stream() {
    let mut plugin = probe_plugin(json!({ "onRequestHeaders": [{ "returnAction": "pause" }] }));
    let out = plugin.send(&Request::get("/"), &ok());
    assert!(out.response.is_none());
    assert!(out.stalled.unwrap().contains("paused in proxy_on_request_headers"));
    assert!(out.upstream.is_none());
}

#[test]
fn clear_route_cache_is_recorded_from_the_foreign_function() {
    let mut plugin = probe_plugin(json!({ "onRequestHeaders": [{ "clearRouteCache": {} }] }));
    let out = plugin.send(&Request::get("/"), &ok());
    assert!(out.route_cache_cleared);
    assert_eq!(out.host_calls.get("proxy_call_foreign_function"), Some(&1));
    let mut untouched = probe_plugin(json!({}));
    assert!(!untouched.send(&Request::get("/"), &ok()).route_cache_cleared);
}

#[test]
fn replacing_the_request_map_whole_leaves_no_route() {
    let mut plugin = probe_plugin(json!({
        "onRequestHeaders": [{ "setHeaders": { "map": "request", "pairs": [[":authority", "a"], [":path", "/"], [":method", "GET"], [":scheme", "http"]] } }],
    }));
    let out = plugin.send(&Request::get("/"), &ok());
    assert!(out.route_not_found);
    assert_eq!(out.status(), 404);
    assert!(out.upstream.is_none());
}

#[test]
fn a_chain_runs_requests_first_to_last_and_responses_last_to_first() {
    let first = Plugin::start(&stamp(), PluginConfig::new("first").json(&json!({ "requestHeaders": { "x-order": "first" }, "responseHeaders": { "x-order": "first" } })), SharedState::new()).unwrap();
    let second = Plugin::start(&stamp(), PluginConfig::new("second").json(&json!({ "requestHeaders": { "x-order": "second" }, "responseHeaders": { "x-order": "second" } })), SharedState::new()).unwrap();
    let mut chain = Chain::new(vec![first, second]);
    let out = chain.send(&Request::get("/"), &ok());
    assert_eq!(out.upstream.unwrap().header("x-order"), Some("second"), "the later filter writes last on the way in");
    assert_eq!(out.response.unwrap().header("x-order"), Some("first"), "the earlier filter writes last on the way out");
}

#[test]
fn a_local_response_in_a_chain_skips_the_later_filters() {
    let deny = Plugin::start(&common::probe(), PluginConfig::new("deny").json(&json!({ "onRequestHeaders": [{ "localResponse": { "status": 401 } }] })), SharedState::new()).unwrap();
    let later = Plugin::start(&stamp(), PluginConfig::new("later").json(&json!({ "requestHeaders": { "x-later": "1" } })), SharedState::new()).unwrap();
    let mut chain = Chain::new(vec![deny, later]);
    let out = chain.send(&Request::get("/"), &ok());
    assert_eq!(out.status(), 401);
    assert!(!out.callbacks.iter().any(|c| c.filter == 1), "the second filter never saw the request");
}
