//! retry-hints on HTTP/2 and gRPC in the real Envoy 1.40, with a real gRPC
//! service and client: a unary call failing UNAVAILABLE twice succeeds on
//! the third attempt; a stream is not retried once its first reply is out;
//! a call the filter holds unsafe tells the client when to come back in
//! `grpc-retry-pushback-ms`; bodies of unknown length are retried within
//! Envoy's own retry buffer and not past it.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use e2e::mesh_router::mesh_router;
use e2e::{wasm_module, Bootstrap, Call, Envoy, GrpcClient, GrpcScript, GrpcService, H2Request, Route, Script, Upstream, WasmFilter};
use serde_json::{json, Value};
use std::thread;
use std::time::Duration;
use tonic::Code;

fn filter(config: &Value) -> WasmFilter {
    WasmFilter::new(wasm_module("retry_hints").unwrap(), "retry-hints", config)
}

/// A rule for a gRPC service whose methods are idempotent (gRPC calls are
/// all POSTs, so the rule lists POST), retried on UNAVAILABLE.
fn grpc_rule(attempts: u32) -> Value {
    json!({
        "rules": [{
            "name": "cart",
            "match": [{ "headers": { "content-type": { "prefix": "application/grpc" } } }],
            "retry": { "attempts": attempts, "retryOn": "unavailable,resource-exhausted" },
            "idempotentMethods": ["POST"],
        }],
    })
}

/// The gRPC service behind one route (with the route's own retry policy,
/// if given) and the filter, in a mesh proxy's Envoy.
fn setup(script: GrpcScript, config: Option<&Value>, route: Route) -> (Envoy, GrpcService) {
    let service = GrpcService::start(script).unwrap();
    let mut bootstrap = Bootstrap::new().h2_cluster("grpc", service.addr()).route(route);
    if let Some(config) = config {
        bootstrap = bootstrap.filter(filter(config));
    }
    (Envoy::start_json(&mesh_router(&bootstrap)).unwrap(), service)
}

fn cart_call() -> Call {
    Call { name: "add-item".into(), ..Call::default() }
}

/// Log-time work (charging the budget) runs just after the client has its answer.
fn settle() {
    thread::sleep(Duration::from_millis(300));
}

#[test]
fn a_unary_call_failing_unavailable_twice_succeeds_on_the_third_attempt() {
    let (envoy, service) = setup(GrpcScript::fail_then_ok("cart", Code::Unavailable, 2), Some(&grpc_rule(3)), Route::prefix("/", "grpc"));
    let answer = GrpcClient::new(envoy.listener()).unary("/shop.Cart/Unary", cart_call()).unwrap();
    assert_eq!(answer.code, Code::Ok, "{answer:?}");
    assert_eq!(answer.replies[0].seq, 2, "answered by the third call");
    let seen = service.received();
    assert_eq!(seen.len(), 3, "three attempts upstream");
    assert!(seen.iter().all(|c| c.call.name == "add-item" && c.path == "/shop.Cart/Unary"), "each attempt carried the whole call");
    assert_eq!(seen[0].metadata("content-length"), None, "as real gRPC clients send it: no content-length");
    settle();
    assert_eq!(envoy.wasm_metric("retry_hints.hinted").unwrap(), Some(1));
    assert_eq!(envoy.wasm_metric("retry_hints.attempts_charged").unwrap(), Some(2));
}

#[test]
fn the_same_call_without_the_filter_fails_at_once() {
    // The comparison that shows the retries above are the filter's doing.
    let (envoy, service) = setup(GrpcScript::fail_then_ok("cart", Code::Unavailable, 2), None, Route::prefix("/", "grpc"));
    let answer = GrpcClient::new(envoy.listener()).unary("/shop.Cart/Unary", cart_call()).unwrap();
    assert_eq!(answer.code, Code::Unavailable);
    assert_eq!(service.received().len(), 1);
}

#[test]
fn the_routes_own_grpc_retry_policy_stands_where_the_rule_sets_no_retries() {
    // A rule that only sets a timeout leaves the route's gRPC retries alone,
    // whatever the body's length.
    let config = json!({ "rules": [{ "match": [{ "uri": { "prefix": "/shop.Cart/" } }], "timeout": "5s" }] });
    let (envoy, service) = setup(GrpcScript::fail_then_ok("cart", Code::Unavailable, 2), Some(&config), Route::prefix("/", "grpc").retries("unavailable", 2));
    let answer = GrpcClient::new(envoy.listener()).unary("/shop.Cart/Unary", cart_call()).unwrap();
    assert_eq!(answer.code, Code::Ok, "{answer:?}");
    assert_eq!(service.received().len(), 3, "the route's two retries");
}

#[test]
fn a_call_held_unsafe_is_sent_once_and_told_when_to_come_back() {
    // No idempotentMethods: a gRPC call is a POST without an idempotency
    // key, so the rule's retries, and the route's, are withheld (the README
    // says so); the client reads the wait in grpc-retry-pushback-ms.
    let config = json!({ "rules": [{ "retry": { "attempts": 3, "retryOn": "unavailable" } }], "retryAfter": "1500ms" });
    let (envoy, service) = setup(GrpcScript::fail_then_ok("cart", Code::Unavailable, 5), Some(&config), Route::prefix("/", "grpc").retries("unavailable", 3));
    let client = GrpcClient::new(envoy.listener());
    let answer = client.unary("/shop.Cart/Unary", cart_call()).unwrap();
    assert_eq!(answer.code, Code::Unavailable);
    assert_eq!(service.received().len(), 1, "sent once");
    assert_eq!(answer.metadata("grpc-retry-pushback-ms"), Some("1500"), "{:?}", answer.metadata);
    assert_eq!(answer.metadata("retry-after"), None, "gRPC clients do not read retry-after");
    // With an idempotency key the same call is retried as the rule says.
    let keyed = GrpcClient::new(envoy.listener()).metadata("idempotency-key", "cart-7").unary("/shop.Cart/Unary", cart_call()).unwrap();
    assert_eq!(keyed.code, Code::Unavailable);
    assert_eq!(service.received().len(), 1 + 4, "the rule's three retries");
    assert_eq!(keyed.metadata("grpc-retry-pushback-ms"), None, "retries were made: nothing to add");
    settle();
    assert_eq!(envoy.wasm_metric("retry_hints.skipped_unsafe").unwrap(), Some(1));
    assert_eq!(envoy.wasm_metric("retry_hints.retry_after_added").unwrap(), Some(1));
}

#[test]
fn an_upstreams_own_pushback_stays() {
    let config = json!({ "rules": [{ "retry": { "attempts": 3, "retryOn": "unavailable" } }] });
    let script = GrpcScript::fail_then_ok("cart", Code::ResourceExhausted, 5).with_metadata("grpc-retry-pushback-ms", "250");
    let (envoy, _service) = setup(script, Some(&config), Route::prefix("/", "grpc"));
    let answer = GrpcClient::new(envoy.listener()).unary("/shop.Cart/Unary", cart_call()).unwrap();
    assert_eq!(answer.code, Code::ResourceExhausted);
    let pushback: Vec<&str> = answer.metadata.iter().filter(|(k, _)| k == "grpc-retry-pushback-ms").map(|(_, v)| v.as_str()).collect();
    assert_eq!(pushback, ["250"], "the upstream's, once");
}

#[test]
fn a_stream_is_not_retried_once_its_first_reply_is_out() {
    let script = GrpcScript::ok("feed").stream_end(Code::Unavailable);
    let (envoy, service) = setup(script, Some(&grpc_rule(3)), Route::prefix("/", "grpc"));
    let client = GrpcClient::new(envoy.listener());
    let answer = client.server_stream("/shop.Feed/Stream", Call { count: 2, ..cart_call() }).unwrap();
    assert_eq!((answer.code, answer.replies.len()), (Code::Unavailable, 2), "{answer:?}");
    assert_eq!(service.received().len(), 1, "replies were out: no retry");
    // The same failure before any reply comes as a status alone
    // (trailers-only), and Envoy retries it.
    let answer = client.server_stream("/shop.Feed/Stream", Call { count: 0, ..cart_call() }).unwrap();
    assert_eq!(answer.code, Code::Unavailable);
    assert_eq!(service.received().len(), 1 + 4, "the rule's three retries");
}

/// An HTTP/1.1 upstream failing once behind a route whose retry buffer is
/// `limit` bytes, a rule retrying PUTs on 5xx.
fn buffered(limit: u32) -> (Envoy, Upstream) {
    let upstream = Upstream::start(Script::fail_then_ok("store", 503, 1)).unwrap();
    let mut route = Route::prefix("/", "upstream");
    route.0["per_request_buffer_limit_bytes"] = json!(limit);
    let config = json!({ "rules": [{ "retry": { "attempts": 2, "retryOn": "5xx" } }] });
    let bootstrap = Bootstrap::new().cluster("upstream", upstream.addr()).route(route).filter(filter(&config));
    (Envoy::start_json(&mesh_router(&bootstrap)).unwrap(), upstream)
}

#[test]
fn a_body_of_unknown_length_is_retried_within_envoys_retry_buffer() {
    let (envoy, upstream) = buffered(16 * 1024);
    let frames: Vec<Vec<u8>> = (0..8).map(|i| vec![b'a' + i; 1024]).collect();
    let response = H2Request::new("PUT", "/files/1").frames(frames.clone()).send(envoy.listener()).unwrap();
    assert_eq!(response.status, 200, "{}", response.body_text());
    let seen = upstream.received();
    assert_eq!(seen.len(), 2, "the failed attempt and its retry");
    assert!(seen.iter().all(|r| r.body == frames.concat()), "each attempt carried the whole body");
    assert_eq!(seen[0].header("content-length"), None, "the length was unknown");
}

#[test]
fn a_body_of_unknown_length_past_envoys_retry_buffer_is_not_retried() {
    let (envoy, upstream) = buffered(16 * 1024);
    let frames: Vec<Vec<u8>> = (0..64).map(|i| vec![b'a' + (i % 26); 1024]).collect();
    let response = H2Request::new("PUT", "/files/1").frames(frames).send(envoy.listener()).unwrap();
    assert_eq!(response.status, 503, "{}", response.body_text());
    assert_eq!(upstream.received().len(), 1, "Envoy stopped buffering, and so retrying");
    assert_eq!(envoy.stat("cluster.upstream.retry_or_shadow_abandoned").unwrap(), Some(1));
}
