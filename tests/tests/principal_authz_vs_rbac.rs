//! principal-authz side by side with Envoy's native RBAC configured as
//! Istio 1.30 renders the same AuthorizationPolicies: the project's whole
//! bypass list runs through each, both tallies are printed, and the filter
//! must keep from the upstream everything RBAC keeps from it, and more.
//! Then the method case over HTTP/2, where Envoy's codec passes a
//! lower-case `:method` on: a real h2 client (Python's `h2`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

#[path = "principal_authz_mesh/mod.rs"]
mod principal_authz_mesh;
#[path = "principal_authz_mesh/istio_rbac.rs"]
mod istio_rbac;

use e2e::{wasm_module, Bootstrap, Envoy, H2Request, Request, Script, Upstream, WasmFilter};
use principal_authz_mesh::{bypass_attempts, mesh, policies, set_on_connection_managers, Mesh};
use serde_json::{json, Value};

/// Istio's connection manager settings on every listener.
fn as_istio_renders(config: &mut Value) {
    for (key, value) in istio_rbac::connection_manager_settings() {
        set_on_connection_managers(config, key, value);
    }
}

fn with_filter() -> Mesh {
    let filter = WasmFilter::new(wasm_module("principal_authz").unwrap(), "principal-authz", &policies());
    mesh(false, |b| b.filter(filter), as_istio_renders)
}

fn with_rbac() -> Mesh {
    let rbac = istio_rbac::filters(&policies(), "payments");
    mesh(false, |b| rbac.into_iter().fold(b, Bootstrap::native_filter), as_istio_renders)
}

/// For each attempt, whether the upstream saw it.
fn reached(m: &Mesh, attempts: &[principal_authz_mesh::Attempt]) -> Vec<bool> {
    attempts
        .iter()
        .map(|a| {
            let before = m.upstream.received().len();
            let r = m.send((a.caller)(&m.callers), &a.request);
            let after = m.upstream.received().len();
            assert!(r.status != 200 || after > before, "{}: 200 without reaching the upstream", a.what);
            after > before
        })
        .collect()
}

#[test]
fn the_filter_denies_everything_istios_rbac_denies_and_more() {
    let attempts = bypass_attempts();
    let filter = reached(&with_filter(), &attempts);
    let rbac = reached(&with_rbac(), &attempts);
    println!("{:<58} {:>10} {:>10}", "bypass attempt", "filter", "RBAC");
    for ((a, f), r) in attempts.iter().zip(&filter).zip(&rbac) {
        let word = |through: bool| if through { "THROUGH" } else { "denied" };
        println!("{:<58} {:>10} {:>10}", a.what, word(*f), word(*r));
    }
    let denied = |v: &[bool]| v.iter().filter(|through| !**through).count();
    println!("denied of {}: principal-authz {}, Istio-rendered RBAC {}", attempts.len(), denied(&filter), denied(&rbac));
    let missed: Vec<&str> = attempts.iter().zip(filter.iter().zip(&rbac)).filter(|(_, (f, r))| **f && !**r).map(|(a, _)| a.what).collect();
    assert!(missed.is_empty(), "RBAC denies what the filter lets through: {missed:?}");
    assert!(denied(&filter) > denied(&rbac), "the filter should deny more than RBAC");
    assert_eq!(denied(&filter), attempts.len(), "the filter lets some through: {filter:?}");
}

#[test]
fn legitimate_requests_pass_both() {
    let requests = ["/api/orders", "/api/orders/../payments/7?expand=1", "/api/Orders", "/api/orders.json", "/api/administrators", "/api/a%3Ab"];
    for m in [with_filter(), with_rbac()] {
        for path in requests {
            let r = m.send(Some(&m.callers.billing), &Request::get(path));
            assert_eq!(r.status, 200, "{path}: {}", r.body_text());
        }
    }
}

/// One HTTP/2 request (cleartext, prior knowledge) with the method exactly
/// as given; the response's status.
fn h2_send(to: std::net::SocketAddr, method: &str, path: &str) -> String {
    H2Request::new(method, path).send(to).unwrap().status.to_string()
}

#[test]
fn over_http2_a_lower_case_method_meets_the_deny() {
    let no_delete = json!({ "policies": [{ "name": "no-delete", "action": "DENY",
        "rules": [{ "to": [{ "operation": { "methods": ["DELETE"] } }] }] }] });
    let guarded = |guard: &dyn Fn(Bootstrap) -> Bootstrap| {
        let upstream = Upstream::start(Script::ok("payments")).unwrap();
        let envoy = Envoy::start(&guard(Bootstrap::to_upstream(upstream.addr()))).unwrap();
        (upstream, envoy)
    };
    let module = wasm_module("principal_authz").unwrap();
    let (upstream, envoy) = guarded(&|b| b.filter(WasmFilter::new(&module, "principal-authz", &no_delete)));
    for method in ["DELETE", "delete", "Delete"] {
        assert_eq!(h2_send(envoy.listener(), method, "/api/orders/7"), "403", "{method} through principal-authz");
    }
    assert_eq!(h2_send(envoy.listener(), "get", "/api/orders/7"), "200");
    // Envoy's HTTP/2 codec does pass the lower-case method on.
    let methods: Vec<String> = upstream.received().iter().map(|r| r.method.clone()).collect();
    assert_eq!(methods, vec!["get"]);
    assert!(envoy.log().contains("(reading: method case-folded)"));

    let (rbac_upstream, rbac) = guarded(&|b| istio_rbac::filters(&no_delete, "payments").into_iter().fold(b, Bootstrap::native_filter));
    assert_eq!(h2_send(rbac.listener(), "DELETE", "/api/orders/7"), "403");
    let lower = h2_send(rbac.listener(), "delete", "/api/orders/7");
    println!("HTTP/2 `delete` against a DENY on DELETE: principal-authz 403, Istio-rendered RBAC {lower}");
    assert_eq!(lower, "200", "Istio's RBAC compares the method case-sensitively");
    assert_eq!(rbac_upstream.received().len(), 1);
}
