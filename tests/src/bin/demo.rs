//! `make demo`: starts the real Envoy with the project's modules loaded and
//! upstream servers on loopback, sends a scripted tour of requests, prints
//! what happened, and stops everything.

use e2e::tls::DemoCerts;
use e2e::{tour, wasm_module, workspace_root, Bootstrap, Envoy, KitError, ListenerTls, Request, Route, Script, Upstream, WasmFilter};
use serde_json::json;
use std::process::ExitCode;

fn main() -> ExitCode {
    println!("Demo: a real Envoy 1.40 with this project's Wasm modules, upstreams on loopback.");
    let tours: [fn() -> Result<(), KitError>; 4] =
        [header_router_tour, principal_authz_tour, e2e::retry_hints_tour::tour, e2e::mirror_demo::mirror_sanitizer_tour];
    match tours.iter().try_for_each(|tour| tour()) {
        Ok(()) => {
            println!("\nDemo finished: Envoy and the upstreams are stopped.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\ndemo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// header-router: the filter sets `x-route-destination`; Envoy's routes send
/// each value to its own upstream, which says who it is.
fn header_router_tour() -> Result<(), KitError> {
    tour::section(
        "header-router",
        "picks a destination VirtualService-style and sets x-route-destination; Envoy routes on it",
    );
    let config = json!({
        "routes": [
            { "name": "mobile", "match": [{ "headers": { "user-agent": { "regex": ".*Mobile.*" } } }], "route": [{ "value": "mobile" }] },
            { "name": "desktop", "match": [{ "headers": { "user-agent": { "regex": ".*Desktop.*" } } }], "route": [{ "value": "desktop" }] },
            { "name": "api", "match": [{ "uri": { "prefix": "/api" } }], "route": [{ "value": "api" }] },
            { "name": "payments", "match": [{ "uri": { "prefix": "/pay" } }],
              "route": [{ "value": "payments-v1", "weight": 90 }, { "value": "payments-v2", "weight": 10 }] },
        ],
        "default": "frontend",
        "sticky": { "cookie": "session" },
    });
    tour::note(&format!("pluginConfig: {config}"));
    let names = ["mobile", "desktop", "api", "payments-v1", "payments-v2", "frontend"];
    let mut bootstrap = Bootstrap::new();
    let mut upstreams = Vec::new();
    for name in names {
        let upstream = Upstream::start(Script::ok(name))?;
        bootstrap = bootstrap.cluster(name, upstream.addr()).route(Route::prefix("/", name).when_header("x-route-destination", name));
        upstreams.push(upstream);
    }
    let filter = WasmFilter::new(wasm_module("header_router")?, "header-router", &config);
    let envoy = Envoy::start(&bootstrap.filter(filter))?;
    let requests = [
        ("a phone", Request::get("/").header("user-agent", "Mozilla/5.0 (iPhone) Mobile/15E148")),
        ("a desktop browser", Request::get("/").header("user-agent", "Mozilla/5.0 (X11) Desktop")),
        ("the API", Request::get("/api/orders?id=7").header("user-agent", "curl/8.5")),
        ("a client that tries to pick its own route", Request::get("/").header("user-agent", "curl/8.5").header("x-route-destination", "payments-v2")),
        ("canary user-7 (sticky by its session cookie)", Request::get("/pay").header("cookie", "session=user-7")),
        ("canary user-7 again", Request::get("/pay").header("cookie", "session=user-7")),
    ];
    for (label, request) in &requests {
        tour::request(label, request);
        let response = envoy.send(request)?;
        let answered = response.header("x-upstream-identity").unwrap_or("?").to_string();
        let upstream = names.iter().position(|n| *n == answered).and_then(|i| upstreams.get(i));
        tour::upstream(&answered, upstream.and_then(|u| u.received().last().cloned()).as_ref());
        tour::response(&response);
    }
    let mut v2 = 0;
    for user in 0..1000 {
        let response = envoy.send(&Request::get("/pay").header("cookie", &format!("session=user-{user}")))?;
        v2 += usize::from(response.header("x-upstream-identity") == Some("payments-v2"));
    }
    println!();
    tour::note(&format!("1,000 canary users: {v2} on payments-v2, {} on payments-v1 (weights 10 / 90)", 1000 - v2));
    let default = envoy.wasm_metric("header_router.default")?.unwrap_or(0);
    tour::note(&format!("metric header_router.default (Prometheus: header_router_default) = {default}"));
    Ok(())
}

/// principal-authz: payments takes only billing's SPIFFE ID over mTLS; the
/// path is normalized before the rules see it and the upstream gets it so.
fn principal_authz_tour() -> Result<(), KitError> {
    tour::section(
        "principal-authz",
        "AuthorizationPolicy semantics on the caller's mTLS identity: only billing may call payments, nobody /api/admin",
    );
    let config = json!({ "policies": [
        { "name": "payments-to-billing", "action": "ALLOW", "rules": [{
            "from": [{ "source": { "principals": ["cluster.local/ns/billing/sa/billing"] } }],
            "to": [{ "operation": { "methods": ["GET", "POST"], "paths": ["/api/*"] } }] }] },
        { "name": "no-admin", "action": "DENY", "rules": [{ "to": [{ "operation": { "paths": ["/api/admin", "/api/admin/*"] } }] }] },
    ] });
    tour::note(&format!("pluginConfig: {config}"));
    let certs = DemoCerts::write(&workspace_root())?;
    tour::note("certificates from a CA made just now (target/demo-certs/): billing and shop carry SPIFFE IDs");
    let upstream = Upstream::start(Script::ok("payments"))?;
    let bootstrap = Bootstrap::to_upstream(upstream.addr())
        .filter(WasmFilter::new(wasm_module("principal_authz")?, "principal-authz", &config))
        .forward_client_cert("APPEND_FORWARD")
        .tls(ListenerTls {
            cert: certs.payments.cert_path.clone(),
            key: certs.payments.key_path.clone(),
            ca: certs.pki.ca_path.clone(),
            require_client_certificate: false,
            plaintext_too: true,
        });
    let envoy = Envoy::start(&bootstrap)?;
    let requests = [
        ("billing (spiffe://cluster.local/ns/billing/sa/billing)", Some(&certs.billing), Request::get("/api/orders")),
        ("shop (spiffe://cluster.local/ns/shop/sa/shop)", Some(&certs.shop), Request::get("/api/orders")),
        ("a plaintext caller", None, Request::get("/api/orders")),
        ("billing, to /api/admin through an encoded dot segment", Some(&certs.billing), Request::get("/api/orders/%2e%2e/admin")),
        ("billing, with a messy path", Some(&certs.billing), Request::get("/api//payments/./7")),
    ];
    for (label, caller, request) in &requests {
        tour::request(label, request);
        let seen_before = upstream.received().len();
        let response = match caller {
            Some(c) => certs.pki.send(envoy.listener(), Some(c), request)?,
            None => envoy.send(request)?,
        };
        let received = upstream.received();
        tour::upstream("payments", received.get(seen_before..).and_then(|new| new.last()));
        tour::response(&response);
    }
    println!();
    for name in ["allowed", "denied", "path_normalized"] {
        let value = envoy.wasm_metric(&format!("principal_authz.{name}"))?.unwrap_or(0);
        tour::note(&format!("metric principal_authz.{name} = {value}"));
    }
    Ok(())
}
