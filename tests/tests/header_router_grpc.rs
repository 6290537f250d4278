//! header-router on HTTP/2 and gRPC in the real Envoy 1.40: routing on the
//! gRPC service and method (`:path` `/pkg.Service/Method`) and on request
//! metadata, with real gRPC services as the destinations; a routing header
//! the client forges is dropped; a sticky canary holds over h2, with the
//! cookie in crumbs as HTTP/2 clients may send it.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use e2e::{wasm_module, Bootstrap, Call, Envoy, GrpcClient, GrpcScript, GrpcService, H2Request, H2Upstream, Route, Script, WasmFilter};
use serde_json::{json, Value};
use std::collections::HashMap;
use tonic::Code;

const HEADER: &str = "x-route-destination";

/// A route per destination on the routing header, a last one to `unrouted`.
fn routes(mut bootstrap: Bootstrap, destinations: &[&str], config: &Value) -> Envoy {
    for name in destinations {
        bootstrap = bootstrap.route(Route::prefix("/", name).when_header(HEADER, name));
    }
    let filter = WasmFilter::new(wasm_module("header_router").unwrap(), "header-router", config);
    Envoy::start(&bootstrap.route(Route::prefix("/", "unrouted")).filter(filter)).unwrap()
}

struct GrpcMesh {
    envoy: Envoy,
    services: Vec<(String, GrpcService)>,
}

fn grpc_mesh(config: &Value, destinations: &[&str]) -> GrpcMesh {
    let mut bootstrap = Bootstrap::new();
    let mut services = Vec::new();
    for name in destinations.iter().chain(["unrouted"].iter()) {
        let service = GrpcService::start(GrpcScript::ok(name)).unwrap();
        bootstrap = bootstrap.h2_cluster(name, service.addr());
        services.push((name.to_string(), service));
    }
    GrpcMesh { envoy: routes(bootstrap, destinations, config), services }
}

impl GrpcMesh {
    /// Which service answered the unary call to `path`.
    fn call(&self, client: GrpcClient, path: &str) -> String {
        let answer = client.unary(path, Call { name: "c".into(), ..Call::default() }).unwrap();
        assert_eq!(answer.code, Code::Ok, "{answer:?}");
        answer.replies[0].identity.clone()
    }

    fn client(&self) -> GrpcClient {
        GrpcClient::new(self.envoy.listener())
    }

    fn service(&self, name: &str) -> &GrpcService {
        &self.services.iter().find(|(n, _)| n == name).unwrap().1
    }
}

fn grpc_routes() -> Value {
    json!({
        "routes": [
            { "name": "beta-tenant", "match": [{ "headers": { "x-tenant": { "exact": "beta" } } }], "route": [{ "value": "cart-beta" }] },
            { "name": "cart-stream", "match": [{ "uri": { "exact": "/shop.Cart/Stream" } }], "route": [{ "value": "cart-streams" }] },
            { "name": "cart", "match": [{ "uri": { "prefix": "/shop.Cart/" } }], "route": [{ "value": "cart" }] },
        ],
        "default": "catalog",
    })
}

#[test]
fn grpc_calls_are_routed_on_service_method_and_metadata() {
    let mesh = grpc_mesh(&grpc_routes(), &["cart-beta", "cart-streams", "cart", "catalog"]);
    assert_eq!(mesh.call(mesh.client(), "/shop.Cart/Unary"), "cart", "by service");
    assert_eq!(mesh.call(mesh.client().metadata("x-tenant", "beta"), "/shop.Cart/Unary"), "cart-beta", "by metadata");
    assert_eq!(mesh.call(mesh.client().metadata("x-tenant", "other"), "/shop.Catalog/Unary"), "catalog", "the default");
    let stream = mesh.client().server_stream("/shop.Cart/Stream", Call { count: 2, ..Call::default() }).unwrap();
    assert_eq!((stream.code, stream.replies.len()), (Code::Ok, 2), "{stream:?}");
    assert_eq!(stream.replies[0].identity, "cart-streams", "by method");
    assert!(mesh.service("unrouted").received().is_empty(), "every call was routed again");
    assert_eq!(mesh.envoy.wasm_metric("header_router.route.cart.matched").unwrap(), Some(1));
}

#[test]
fn a_routing_header_forged_in_grpc_metadata_is_dropped() {
    let mesh = grpc_mesh(&grpc_routes(), &["cart-beta", "cart-streams", "cart", "catalog"]);
    let forged = mesh.client().metadata(HEADER, "cart-beta");
    assert_eq!(mesh.call(forged, "/shop.Cart/Unary"), "cart");
    let seen = mesh.service("cart").received();
    let values: Vec<&str> = seen[0].metadata.iter().filter(|(k, _)| k == HEADER).map(|(_, v)| v.as_str()).collect();
    assert_eq!(values, ["cart"], "only the filter's value reached the service");
    assert_eq!(mesh.envoy.wasm_metric("header_router.client_header_removed").unwrap(), Some(1));
}

#[test]
fn a_sticky_canary_holds_over_h2_with_the_cookie_in_crumbs() {
    let config = json!({
        "routes": [{ "name": "payments", "match": [{ "uri": { "prefix": "/pay" } }],
                     "route": [{ "value": "payments-v1", "weight": 90 }, { "value": "payments-v2", "weight": 10 }] }],
        "sticky": { "cookie": "session" },
    });
    let mut bootstrap = Bootstrap::new();
    let mut upstreams = Vec::new();
    for name in ["payments-v1", "payments-v2", "unrouted"] {
        let upstream = H2Upstream::start(Script::ok(name)).unwrap();
        bootstrap = bootstrap.h2_cluster(name, upstream.addr());
        upstreams.push(upstream);
    }
    let envoy = routes(bootstrap, &["payments-v1", "payments-v2"], &config);
    let mut sides: HashMap<String, usize> = HashMap::new();
    let mut user_side: HashMap<u32, String> = HashMap::new();
    for round in 0..3 {
        for user in 0..200u32 {
            // HTTP/2 lets a client split the cookie header into crumbs.
            let request = H2Request::get("/pay").header("cookie", "theme=dark").header("cookie", &format!("session=user-{user}"));
            let response = request.send(envoy.listener()).unwrap();
            assert_eq!(response.status, 200, "{}", response.body_text());
            let side = response.header("x-upstream-identity").unwrap().to_string();
            if round == 0 {
                user_side.insert(user, side.clone());
            } else {
                assert_eq!(user_side[&user], side, "user-{user} switched sides in round {round}");
            }
            *sides.entry(side).or_default() += 1;
        }
    }
    let v2 = sides.get("payments-v2").copied().unwrap_or(0);
    // 10% of 200 users is 20 (standard deviation 4.2), 3 requests each.
    assert!((3 * 8..=3 * 32).contains(&v2), "payments-v2 got {v2} of 600: {sides:?}");
    assert!(upstreams[2].received().is_empty(), "every request was routed");
}
