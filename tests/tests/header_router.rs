//! header-router in the real Envoy 1.40: the header it sets makes Envoy pick
//! another route (each upstream says who it is), for the user's scenarios, a
//! sticky 90/10 canary, and a route that takes its cluster from the header.

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use e2e::{wasm_module, Bootstrap, Envoy, Request, Route, Script, Upstream, WasmFilter};
use serde_json::{json, Value};
use std::collections::HashMap;

const HEADER: &str = "x-route-destination";

/// One upstream per destination value, each a cluster of the same name; a
/// route per value on the routing header; a last route to `unrouted`, which
/// a request reaches only if routing did not change.
struct Mesh {
    envoy: Envoy,
    upstreams: Vec<(String, Upstream)>,
}

fn mesh(config: &Value, destinations: &[&str]) -> Mesh {
    let mut bootstrap = Bootstrap::new();
    let mut upstreams = Vec::new();
    for name in destinations.iter().chain(["unrouted"].iter()) {
        let upstream = Upstream::start(Script::ok(name)).unwrap();
        bootstrap = bootstrap.cluster(name, upstream.addr());
        if *name != "unrouted" {
            bootstrap = bootstrap.route(Route::prefix("/", name).when_header(HEADER, name));
        }
        upstreams.push((name.to_string(), upstream));
    }
    let filter = WasmFilter::new(wasm_module("header_router").unwrap(), "header-router", config);
    let envoy = Envoy::start(&bootstrap.route(Route::prefix("/", "unrouted")).filter(filter)).unwrap();
    Mesh { envoy, upstreams }
}

impl Mesh {
    /// Which upstream answered.
    fn send(&self, request: &Request) -> String {
        let response = self.envoy.send(request).unwrap();
        assert_eq!(response.status, 200, "{}", response.body_text());
        response.header("x-upstream-identity").unwrap().to_string()
    }

    fn upstream(&self, name: &str) -> &Upstream {
        &self.upstreams.iter().find(|(n, _)| n == name).unwrap().1
    }
}

fn scenarios() -> Value {
    json!({
        "routes": [
            { "name": "mobile", "match": [{ "headers": { "user-agent": { "regex": ".*Mobile.*" } } }], "route": [{ "value": "my-service-mobile" }] },
            { "name": "desktop", "match": [{ "headers": { "user-agent": { "regex": ".*Desktop.*" } } }], "route": [{ "value": "my-service-desktop" }] },
            { "name": "api", "match": [{ "uri": { "prefix": "/api" } }], "route": [{ "value": "api-service" }] },
        ],
        "default": "frontend",
    })
}

const SCENARIO_CLUSTERS: [&str; 4] = ["my-service-mobile", "my-service-desktop", "api-service", "frontend"];

#[test]
fn the_route_envoy_picks_follows_the_header_the_filter_sets() {
    let mesh = mesh(&scenarios(), &SCENARIO_CLUSTERS);
    let ua = |ua: &str, path: &str| mesh.send(&Request::get(path).header("user-agent", ua));
    assert_eq!(ua("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) Mobile/15E148", "/"), "my-service-mobile");
    assert_eq!(ua("Mozilla/5.0 (X11; Linux x86_64) Desktop", "/"), "my-service-desktop");
    assert_eq!(ua("curl/8.5", "/api/orders?id=7"), "api-service");
    assert_eq!(ua("curl/8.5", "/"), "frontend");
    assert!(mesh.upstream("unrouted").received().is_empty(), "every request was routed again");
    assert_eq!(mesh.envoy.wasm_metric("header_router.route.mobile.matched").unwrap(), Some(1));
    assert_eq!(mesh.envoy.wasm_metric("header_router.default").unwrap(), Some(1));
}

#[test]
fn a_routing_header_the_client_sends_is_ignored() {
    let mesh = mesh(&scenarios(), &SCENARIO_CLUSTERS);
    let request = Request::get("/").header("user-agent", "iPhone Mobile").header(HEADER, "my-service-desktop");
    assert_eq!(mesh.send(&request), "my-service-mobile");
    let seen = mesh.upstream("my-service-mobile").received();
    let values: Vec<&str> = seen[0].headers.iter().filter(|(k, _)| k == HEADER).map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, ["my-service-mobile"]);
    assert_eq!(mesh.envoy.wasm_metric("header_router.client_header_removed").unwrap(), Some(1));
}

#[test]
fn a_canary_splits_90_10_and_keeps_each_user_on_one_side() {
    let config = json!({
        "routes": [{ "name": "payments", "match": [{ "uri": { "prefix": "/pay" } }],
                     "route": [{ "value": "payments-v1", "weight": 90 }, { "value": "payments-v2", "weight": 10 }] }],
        "sticky": { "cookie": "session" },
    });
    let mesh = mesh(&config, &["payments-v1", "payments-v2"]);
    let mut sides: HashMap<String, usize> = HashMap::new();
    let mut user_side: HashMap<u32, String> = HashMap::new();
    // 2,000 requests: 400 users, 5 requests each.
    for round in 0..5 {
        for user in 0..400u32 {
            let side = mesh.send(&Request::get("/pay").header("cookie", &format!("theme=dark; session=user-{user}")));
            if round == 0 {
                user_side.insert(user, side.clone());
            } else {
                assert_eq!(user_side[&user], side, "user-{user} switched sides in round {round}");
            }
            *sides.entry(side).or_default() += 1;
        }
    }
    let v2 = sides.get("payments-v2").copied().unwrap_or(0);
    // 10% of 400 users is 40 (standard deviation 6): every user sends 5
    // requests, so v2's share of 2,000 requests is 5 × that.
    assert!((5 * 22..=5 * 58).contains(&v2), "payments-v2 got {v2} of 2000: {sides:?}");
    assert!(mesh.upstream("unrouted").received().is_empty());
    let v1_metric = mesh.envoy.wasm_metric("header_router.route.payments.value.payments-v1").unwrap().unwrap();
    assert_eq!(v1_metric as usize + v2, 2000);
}

#[test]
fn unkeyed_requests_split_by_request_id() {
    let config = json!({
        "routes": [{ "match": [{ "uri": { "prefix": "/" } }],
                     "route": [{ "value": "blue", "weight": 50 }, { "value": "green", "weight": 50 }] }],
    });
    let mesh = mesh(&config, &["blue", "green"]);
    let green = (0..400).filter(|_| mesh.send(&Request::get("/")) == "green").count();
    // 50% of 400 is 200, standard deviation 10.
    assert!((150..=250).contains(&green), "green got {green} of 400");
}

#[test]
fn in_cluster_header_mode_the_value_names_the_cluster() {
    let config = json!({ "mode": "clusterHeader", "routes": [{ "match": [{ "method": { "exact": "POST" } }], "route": [{ "value": "writer" }] }], "default": "reader" });
    let writer = Upstream::start(Script::ok("writer")).unwrap();
    let reader = Upstream::start(Script::ok("reader")).unwrap();
    let bootstrap = Bootstrap::new()
        .cluster("writer", writer.addr())
        .cluster("reader", reader.addr())
        .route(Route::cluster_from_header("/", HEADER))
        .filter(WasmFilter::new(wasm_module("header_router").unwrap(), "header-router", &config));
    let envoy = Envoy::start(&bootstrap).unwrap();
    assert_eq!(envoy.send(&Request::post("/orders", "{}")).unwrap().header("x-upstream-identity"), Some("writer"));
    assert_eq!(envoy.send(&Request::get("/orders")).unwrap().header("x-upstream-identity"), Some("reader"));
}

#[test]
fn envoy_refuses_a_bad_configuration_with_the_field_named() {
    let upstream = Upstream::start(Script::ok("x")).unwrap();
    let config = json!({ "routes": [{ "match": [{ "uri": { "prefix": "/" } }], "route": [{ "value": "a", "weight": 70 }, { "value": "b", "weight": 20 }] }] });
    let filter = WasmFilter::new(wasm_module("header_router").unwrap(), "header-router", &config);
    let err = Envoy::start(&Bootstrap::to_upstream(upstream.addr()).filter(filter)).err().unwrap();
    assert!(err.to_string().contains("routes[0].route: weights sum to 90, not 100"), "{err}");
}
