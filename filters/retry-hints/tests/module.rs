//! The compiled module in the harness: the user's scenario becomes Envoy's
//! retry headers, unsafe requests and client orders get none, the budget is
//! shared by two VMs and slides with time, clients are told when to come
//! back, bad configurations stop the plugin, and the common path stays cheap.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use harness::{Module, Outcome, Plugin, PluginConfig, Request, SharedState, UpstreamResponse};
use serde_json::{json, Value};
use std::sync::Arc;

fn module() -> Module {
    Module::built("retry_hints").unwrap_or_else(|e| panic!("{e}"))
}

const T0: u64 = 1_700_000_000_000_000_000;

fn plugin_at(config: &Value, shared: Arc<SharedState>, clock: u64) -> Plugin {
    Plugin::start(&module(), PluginConfig::new("retry-hints").json(config).clock(clock), shared).unwrap()
}

fn plugin(config: &Value) -> Plugin {
    plugin_at(config, SharedState::new(), T0)
}

fn users() -> Value {
    json!({
        "rules": [{
            "name": "my-service",
            "match": [{ "authority": { "prefix": "my-service" } }],
            "retry": { "attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,connect-failure,refused-stream,unavailable" },
            "timeout": "10s",
        }],
    })
}

fn to_service(request: Request) -> Request {
    request.header("host", "my-service:8080")
}

fn sent(out: &Outcome, name: &str) -> Option<String> {
    out.upstream.as_ref().unwrap().header(name).map(str::to_string)
}

#[test]
fn a_get_gets_the_rules_retries_and_timeouts() {
    let mut p = plugin(&users());
    let out = p.send(&to_service(Request::get("/orders")), &UpstreamResponse::ok());
    assert_eq!(sent(&out, "x-envoy-retry-on").as_deref(), Some("5xx,connect-failure,refused-stream"));
    assert_eq!(sent(&out, "x-envoy-max-retries").as_deref(), Some("3"));
    assert_eq!(sent(&out, "x-envoy-upstream-rq-per-try-timeout-ms").as_deref(), Some("2000"));
    assert_eq!(sent(&out, "x-envoy-upstream-rq-timeout-ms").as_deref(), Some("10000"));
    assert_eq!(sent(&out, "x-envoy-retry-grpc-on"), None, "not a gRPC request");
    assert_eq!(p.shared.metrics().get("retry_hints.hinted"), Some(&1));

    let grpc = p.send(&to_service(Request::post("/pkg.Orders/Get", "x").header("content-type", "application/grpc").header("idempotency-key", "k1")), &UpstreamResponse::ok());
    assert_eq!(sent(&grpc, "x-envoy-retry-grpc-on").as_deref(), Some("unavailable"));

    let elsewhere = p.send(&Request::get("/").header("host", "billing"), &UpstreamResponse::ok());
    assert_eq!(sent(&elsewhere, "x-envoy-max-retries"), None, "no rule matches: nothing added");
    assert_eq!(elsewhere.host_calls.get("proxy_get_shared_data"), None, "and no budget is touched");
}

#[test]
fn a_post_without_idempotency_key_gets_no_retries_and_a_retry_after() {
    let mut p = plugin(&users());
    let out = p.send(&to_service(Request::post("/orders", "{}")), &UpstreamResponse::status(503));
    assert_eq!(sent(&out, "x-envoy-max-retries").as_deref(), Some("0"), "turns off the route's own retries too");
    assert_eq!(sent(&out, "x-envoy-retry-on"), None);
    assert_eq!(sent(&out, "x-envoy-upstream-rq-timeout-ms").as_deref(), Some("10000"), "timeouts are safe for any request");
    assert_eq!(out.response.as_ref().unwrap().header("retry-after"), Some("1"));
    let metrics = p.shared.metrics();
    assert_eq!((metrics.get("retry_hints.skipped_unsafe"), metrics.get("retry_hints.retry_after_added")), (Some(&1), Some(&1)));

    let own = p.send(&to_service(Request::post("/orders", "{}")), &UpstreamResponse::status(429).header("retry-after", "30"));
    let response = own.response.unwrap();
    assert_eq!(response.headers.iter().filter(|(k, _)| k == "retry-after").count(), 1);
    assert_eq!(response.header("retry-after"), Some("30"), "the upstream's own value stays");

    let keyed = p.send(&to_service(Request::post("/orders", "{}").header("idempotency-key", "order-7")), &UpstreamResponse::status(503));
    assert_eq!(sent(&keyed, "x-envoy-max-retries").as_deref(), Some("3"));
    assert_eq!(keyed.response.unwrap().header("retry-after"), None, "retries were allowed: Envoy's answer stands");
    assert_eq!(p.send(&to_service(Request::get("/")), &UpstreamResponse::status(500)).response.unwrap().header("retry-after"), None);
}

#[test]
fn a_client_cannot_order_retries_unless_trusted() {
    let mut config = users();
    config["trustedPrincipals"] = json!(["cluster.local/ns/edge/sa/gateway"]);
    let mut p = plugin(&config);
    let ordering = to_service(Request::get("/"))
        .header("x-envoy-max-retries", "10")
        .header("x-envoy-retry-on", "5xx,reset")
        .header("x-envoy-retriable-status-codes", "500")
        .header("x-envoy-upstream-rq-per-try-timeout-ms", "1");
    let out = p.send(&ordering, &UpstreamResponse::ok());
    let up = out.upstream.as_ref().unwrap();
    assert_eq!(up.headers.iter().filter(|(k, _)| k == "x-envoy-max-retries").map(|(_, v)| v.as_str()).collect::<Vec<_>>(), ["3"]);
    assert_eq!(up.header("x-envoy-retry-on"), Some("5xx,connect-failure,refused-stream"));
    assert_eq!(up.header("x-envoy-retriable-status-codes"), None);
    assert_eq!(up.header("x-envoy-upstream-rq-per-try-timeout-ms"), Some("2000"));
    assert_eq!(p.shared.metrics().get("retry_hints.client_headers_removed"), Some(&1));

    let trusted = p.send(&ordering.clone().property("connection.uri_san_peer_certificate", "spiffe://cluster.local/ns/edge/sa/gateway"), &UpstreamResponse::ok());
    assert_eq!(sent(&trusted, "x-envoy-max-retries").as_deref(), Some("10"), "a trusted caller's value stands");
    assert_eq!(sent(&trusted, "x-envoy-upstream-rq-timeout-ms").as_deref(), Some("10000"), "what it did not send is filled in");

    let unrelated = p.send(&Request::get("/").header("host", "billing").header("x-envoy-max-retries", "10"), &UpstreamResponse::ok());
    assert_eq!(sent(&unrelated, "x-envoy-max-retries"), None, "removed even where no rule applies");
}

/// 20% of requests plus 1 per second over 10 s: 10 retries to start with.
fn budgeted() -> Value {
    let mut config = users();
    config["budget"] = json!({ "retryRatio": 0.2, "minRetriesPerSecond": 1, "window": "10s" });
    config
}

#[test]
fn two_vms_spend_one_budget_and_it_refills_as_the_window_slides() {
    let shared = SharedState::new();
    let mut a = plugin_at(&budgeted(), shared.clone(), T0);
    let mut b = plugin_at(&budgeted(), shared.clone(), T0);
    // Every request takes one retry (two attempts), as Envoy reports it.
    let answer = UpstreamResponse::status(503).attempts(2);
    let mut grants = Vec::new();
    let mut hints = Vec::new();
    for i in 0..14 {
        let vm = if i % 2 == 0 { &mut a } else { &mut b };
        let out = vm.send(&to_service(Request::get("/")), &answer);
        grants.push(sent(&out, "x-envoy-max-retries").unwrap().parse::<u32>().unwrap());
        hints.push(out.response.unwrap().header("retry-after").is_some());
    }
    // Request k finds 10 + k/5 allowed and k-1 already made: the grant shrinks
    // to the retries left, then to 0. One budget for both VMs; two would
    // still grant 3 each. Each VM gives its unused reservation back with its
    // own next request, so the other VM's last one (2 retries) still counts
    // as spent: the grant shrinks a little sooner than the retries made alone
    // would make it.
    assert_eq!(grants, [3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 1, 1, 0, 0]);
    assert_eq!(hints, [vec![false; 12], vec![true; 2]].concat(), "clients are told to come back once the budget is spent");
    let metrics = shared.metrics();
    assert_eq!(metrics.get("retry_hints.budget_exhausted"), Some(&2));
    assert_eq!(metrics.get("retry_hints.attempts_charged"), Some(&14), "Envoy's retries are charged even when none were granted");
    assert_eq!(metrics.get("retry_hints.hinted"), Some(&12));

    // Eleven seconds later the window holds none of it: a new VM (same
    // proxy) gets the full grant again.
    let mut later = plugin_at(&budgeted(), shared.clone(), T0 + 11_000_000_000);
    let out = later.send(&to_service(Request::get("/")), &UpstreamResponse::ok());
    assert_eq!(sent(&out, "x-envoy-max-retries").as_deref(), Some("3"));
}

#[test]
fn reserved_retries_not_made_are_given_back() {
    let shared = SharedState::new();
    let mut p = plugin_at(&budgeted(), shared.clone(), T0);
    // 100 requests that needed no retry: each reserved 3 and gave them back,
    // so the budget is the floor plus a fifth of them.
    for _ in 0..100 {
        p.send(&to_service(Request::get("/")), &UpstreamResponse::ok());
    }
    let mut grants = Vec::new();
    for _ in 0..12 {
        let out = p.send(&to_service(Request::get("/")), &UpstreamResponse::status(503).attempts(4));
        grants.push(sent(&out, "x-envoy-max-retries").unwrap().parse::<u32>().unwrap());
    }
    // 10 + 20 allowed (and a fifth of the new requests): 3 retries each for
    // ten requests, then what is left.
    assert_eq!(grants, [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 2, 0]);
    assert_eq!(shared.metrics().get("retry_hints.attempts_charged"), Some(&36));
}

#[test]
fn decisions_are_logged_at_debug_with_the_request_id() {
    let config = PluginConfig::new("retry-hints").json(&users()).clock(T0).log_level(harness::abi::LogLevel::Debug);
    let mut p = Plugin::start(&module(), config, SharedState::new()).unwrap();
    let out = p.send(&to_service(Request::post("/orders", "{}")), &UpstreamResponse::ok());
    assert!(out.logged("retry-hints: request 00000000-0000-4000-8000-000000000001: rule my-service, safety Err(Method)"), "{:?}", out.logs);
    let mut quiet = plugin(&users());
    assert!(quiet.send(&to_service(Request::get("/")), &UpstreamResponse::ok()).logs.is_empty(), "nothing at Envoy's default level");
}

#[test]
fn a_bad_configuration_stops_the_plugin_naming_the_field() {
    let cases = [
        (json!({ "rules": [{ "retry": { "attempts": 3, "perTryTimeout": "2 seconds" } }] }), "rules[0].retry.perTryTimeout"),
        (json!({ "rules": [{ "retry": { "attempts": 3, "retryOn": "5xx,often" } }] }), "rules[0].retry.retryOn: unknown retry condition \"often\""),
        (json!({ "rules": [{ "retry": { "attempts": 50 } }] }), "rules[0].retry.attempts: 50 is out of range"),
        (json!({ "rules": [{ "timeout": "1s", "retryBudget": {} }] }), "rules[0].retryBudget: unknown field"),
    ];
    for (config, want) in cases {
        let err = Plugin::start(&module(), PluginConfig::new("retry-hints").json(&config), SharedState::new()).err().unwrap();
        assert!(err.to_string().contains(want), "{err}");
    }
}

#[test]
fn the_common_path_makes_few_host_calls() {
    let mut p = plugin(&users());
    let out = p.send(&to_service(Request::get("/")), &UpstreamResponse::ok());
    let calls = |name: &str| out.host_calls.get(name).copied().unwrap_or(0);
    assert_eq!(calls("proxy_get_header_map_pairs"), 1, "the request is read once");
    assert_eq!(calls("proxy_get_property"), 1, "the attempt count, at log time");
    assert_eq!((calls("proxy_get_shared_data"), calls("proxy_set_shared_data")), (1, 1), "the first request takes a lease on the budget");
    let next = p.send(&to_service(Request::get("/")), &UpstreamResponse::ok());
    let shared = |name: &str| next.host_calls.get(name).copied().unwrap_or(0);
    assert_eq!((shared("proxy_get_shared_data"), shared("proxy_set_shared_data")), (0, 0), "the next is granted from it in the same second");
    assert_eq!(sent(&next, "x-envoy-max-retries").as_deref(), Some("3"));
    assert_eq!(calls("proxy_replace_header_map_value"), 4);
    assert_eq!(calls("proxy_get_header_map_value"), 0, "no response header is read when retries were allowed");
}
