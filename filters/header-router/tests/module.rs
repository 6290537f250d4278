//! The compiled module in the harness: routing decisions become the routing
//! header, client-sent values are dropped, splits stick, bad configurations
//! stop the plugin, and the common path stays cheap.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use harness::{Module, Outcome, Plugin, PluginConfig, Request, SharedState, UpstreamResponse};
use serde_json::{json, Value};

fn module() -> Module {
    Module::built("header_router").unwrap_or_else(|e| panic!("{e}"))
}

fn plugin(config: Value) -> Plugin {
    Plugin::start(&module(), PluginConfig::new("header-router").json(&config), SharedState::new()).unwrap()
}

fn scenarios() -> Value {
    json!({
        "routes": [
            { "name": "mobile", "match": [{ "headers": { "user-agent": { "regex": ".*Mobile.*" } } }], "route": [{ "value": "my-service-mobile" }] },
            { "name": "desktop", "match": [{ "headers": { "user-agent": { "regex": ".*Desktop.*" } } }], "route": [{ "value": "my-service-desktop" }] },
            { "name": "api", "match": [{ "uri": { "prefix": "/api" } }], "route": [{ "value": "api-service" }] },
        ],
        "default": "frontend",
        "responseHeader": "x-routed-to",
    })
}

fn routed(out: &Outcome) -> Option<String> {
    out.upstream.as_ref().unwrap().header("x-route-destination").map(str::to_string)
}

#[test]
fn each_scenario_sets_its_destination_and_clears_the_route_cache() {
    let mut p = plugin(scenarios());
    let cases = [
        ("/", "Mozilla/5.0 (iPhone) Mobile/15E148", "my-service-mobile"),
        ("/", "Mozilla/5.0 Desktop", "my-service-desktop"),
        ("/api/orders", "curl/8", "api-service"),
        ("/index.html", "curl/8", "frontend"),
    ];
    for (path, ua, want) in cases {
        let out = p.send(&Request::get(path).header("user-agent", ua), &UpstreamResponse::ok());
        assert_eq!(routed(&out).as_deref(), Some(want), "{path} {ua}");
        assert!(out.route_cache_cleared);
        assert_eq!(out.response.unwrap().header("x-routed-to"), Some(want));
    }
    let metrics = p.shared.metrics();
    assert_eq!(metrics.get("header_router.route.mobile.matched"), Some(&1));
    assert_eq!(metrics.get("header_router.route.api.matched"), Some(&1));
    assert_eq!(metrics.get("header_router.route.api.value.api-service"), None, "a single value is counted by its route");
    assert_eq!(metrics.get("header_router.default"), Some(&1));
}

#[test]
fn a_client_cannot_pick_its_own_destination() {
    let mut p = plugin(scenarios());
    let out = p.send(
        &Request::get("/").header("user-agent", "Mobile").header("x-route-destination", "my-service-desktop").header("x-route-destination", "x"),
        &UpstreamResponse::ok(),
    );
    let up = out.upstream.unwrap();
    assert_eq!(up.headers.iter().filter(|(k, _)| k == "x-route-destination").count(), 1);
    assert_eq!(up.header("x-route-destination"), Some("my-service-mobile"));
    assert_eq!(p.shared.metrics().get("header_router.client_header_removed"), Some(&1));

    // With no default and no match, the client's value is dropped all the same.
    let mut bare = plugin(json!({ "routes": [{ "match": [{ "uri": { "exact": "/only" } }], "route": [{ "value": "x" }] }] }));
    let out = bare.send(&Request::get("/").header("x-route-destination", "mine"), &UpstreamResponse::ok());
    assert_eq!(out.upstream.unwrap().header("x-route-destination"), None);
    assert!(out.route_cache_cleared);
}

#[test]
fn a_trusted_caller_keeps_its_routing_header() {
    let mut p = plugin(json!({ "default": "frontend", "trustedPrincipals": ["cluster.local/ns/edge/sa/gateway"] }));
    let request = Request::get("/").header("x-route-destination", "v2");
    let trusted = p.send(&request.clone().property("connection.uri_san_peer_certificate", "spiffe://cluster.local/ns/edge/sa/gateway"), &UpstreamResponse::ok());
    assert_eq!(routed(&trusted).as_deref(), Some("v2"));
    assert!(!trusted.route_cache_cleared, "nothing changed");
    let other = p.send(&request.property("connection.uri_san_peer_certificate", "spiffe://cluster.local/ns/x/sa/y"), &UpstreamResponse::ok());
    assert_eq!(routed(&other).as_deref(), Some("frontend"));
}

#[test]
fn a_sticky_split_keeps_each_user_on_one_side() {
    let mut p = plugin(json!({
        "routes": [{ "name": "payments", "match": [{ "authority": { "exact": "payments" } }],
                     "route": [{ "value": "v1", "weight": 90 }, { "value": "v2", "weight": 10 }] }],
        "sticky": { "header": "x-user-id" },
    }));
    let mut v2 = 0;
    for user in 0..1000 {
        let user = format!("u{user}");
        let mut sides = (0..3).map(|i| {
            let request = Request::get("/pay").header("host", "payments").header("x-user-id", &user);
            let request = harness::Request { request_id: format!("00000000-0000-4000-8000-{i:012}"), ..request };
            routed(&p.send(&request, &UpstreamResponse::ok())).unwrap()
        });
        let first = sides.next().unwrap();
        assert!(sides.all(|s| s == first), "{user} switched sides");
        v2 += usize::from(first == "v2");
    }
    // 10% of 1,000 users: 100, standard deviation about 9.5.
    assert!((62..=138).contains(&v2), "{v2} users on v2");
    let metrics = p.shared.metrics();
    assert_eq!(metrics["header_router.route.payments.value.v1"] + metrics["header_router.route.payments.value.v2"], 3000);
}

#[test]
fn a_bad_configuration_stops_the_plugin_naming_the_field() {
    let config = json!({ "routes": [{ "match": [{ "uri": { "regex": "([" } }], "route": [{ "value": "x" }] }] });
    let err = Plugin::start(&module(), PluginConfig::new("header-router").json(&config), SharedState::new()).err().unwrap();
    assert!(err.to_string().contains("routes[0].match[0].uri.regex: invalid regex"), "{err}");
}

#[test]
fn the_common_path_reads_the_request_once() {
    let mut p = plugin(scenarios());
    let out = p.send(&Request::get("/").header("user-agent", "Mobile"), &UpstreamResponse::ok());
    assert_eq!(out.host_calls.get("proxy_get_header_map_pairs"), Some(&1));
    assert_eq!(out.host_calls.get("proxy_get_property"), None, "no route needs the identity or port");
    assert_eq!(out.host_calls.get("proxy_get_header_map_value"), None);
}
