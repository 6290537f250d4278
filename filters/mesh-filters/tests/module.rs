//! The all-in-one module in the harness: each root id becomes its filter,
//! the four run chained as Envoy would run them, and a root id that names no
//! filter stops the plugin.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use harness::{Chain, Module, Plugin, PluginConfig, Request, SharedState, UpstreamResponse};
use serde_json::{json, Value};
use std::sync::Arc;

fn module() -> Module {
    Module::built("mesh_filters").unwrap_or_else(|e| panic!("{e}"))
}

fn plugin(root_id: &str, config: Value, shared: &Arc<SharedState>) -> Plugin {
    let config = PluginConfig::new(root_id).json(&config).env("MIRROR_SANITIZER_HASH_KEY", "mesh-test-hash-key-0123456789");
    Plugin::start(&module(), config, Arc::clone(shared)).unwrap_or_else(|e| panic!("{root_id}: {e}"))
}

#[test]
fn each_root_id_runs_its_filter_in_one_chain() {
    let shared = SharedState::new();
    let mut chain = Chain::new(vec![
        plugin("header-router", json!({ "routes": [{ "name": "mobile", "match": [{ "headers": { "user-agent": { "regex": ".*Mobile.*" } } }], "route": [{ "value": "mobile" }] }] }), &shared),
        plugin("principal-authz", json!({ "policies": [{ "name": "no-admin", "action": "DENY", "rules": [{ "to": [{ "operation": { "paths": ["/admin"] } }] }] }] }), &shared),
        plugin("retry-hints", json!({ "rules": [{ "name": "all", "retry": { "attempts": 2, "retryOn": "5xx" } }] }), &shared),
        plugin("mirror-sanitizer", json!({ "rules": [{ "name": "ids", "fields": ["userId"], "mode": "remove" }], "hashKey": { "env": "MIRROR_SANITIZER_HASH_KEY" } }), &shared),
    ]);
    let out = chain.send(&Request::get("/orders").header("user-agent", "Phone Mobile"), &UpstreamResponse::ok());
    let up = out.upstream.unwrap();
    assert_eq!(up.header("x-route-destination"), Some("mobile"), "header-router ran");
    assert_eq!(up.header("x-envoy-max-retries"), Some("2"), "retry-hints ran");

    let denied = chain.send(&Request::get("/admin"), &UpstreamResponse::ok());
    assert!(denied.upstream.is_none(), "principal-authz ran");
    assert_eq!(denied.local_response.unwrap().1.status, 403);

    let metrics = shared.metrics();
    assert_eq!(metrics.get("header_router.route.mobile.matched"), Some(&1));
    assert_eq!(metrics.get("retry_hints.hinted"), Some(&1));
}

#[test]
fn a_root_id_that_names_no_filter_stops_the_plugin() {
    let err = Plugin::start(&module(), PluginConfig::new("header-routr").json(&json!({})), SharedState::new()).err().unwrap();
    let text = err.to_string();
    assert!(text.contains("configure") || text.contains("header-routr"), "{text}");
}
