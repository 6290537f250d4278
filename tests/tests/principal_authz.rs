//! principal-authz in a real Envoy with real mTLS: certificates with SPIFFE
//! IDs made by a test CA, a listener that requires (STRICT) or allows
//! (PERMISSIVE) client certificates and appends XFCC as Istio's sidecars do.
//! Only billing reaches payments, and no encoding, path trick, host spelling,
//! repeated header or forged XFCC gets anyone else, or anywhere denied, in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

#[path = "principal_authz_mesh/mod.rs"]
mod principal_authz_mesh;

use e2e::{wasm_module, Bootstrap, Envoy, Request, Script, Upstream, WasmFilter};
use principal_authz_mesh::{bypass_attempts, policies, BILLING_URI, GATEWAY_URI};
use serde_json::json;

/// The payments Envoy guarded by principal-authz with [`policies`].
fn mesh(strict: bool) -> principal_authz_mesh::Mesh {
    mesh_with(strict, &policies())
}

fn mesh_with(strict: bool, config: &serde_json::Value) -> principal_authz_mesh::Mesh {
    let filter = WasmFilter::new(wasm_module("principal_authz").unwrap(), "principal-authz", config);
    principal_authz_mesh::mesh(strict, |b| b.filter(filter), |_| {})
}

#[test]
fn strict_mtls_only_billing_reaches_payments() {
    let m = mesh(true);
    let c = &m.callers;
    let ok = m.send(Some(&c.billing), &Request::get("/api/orders"));
    assert_eq!(ok.status, 200, "{}", ok.body_text());
    for (who, caller) in [("shop", &c.shop), ("billing of another trust domain", &c.foreign_billing), ("gateway", &c.gateway)] {
        let r = m.send(Some(caller), &Request::get("/api/orders"));
        assert_eq!(r.status, 403, "{who}");
        assert_eq!(r.body_text(), "RBAC: access denied", "{who}");
    }
    // STRICT: without a client certificate there is no connection at all.
    assert!(m.pki.send(m.envoy.listener(), None, &Request::get("/api/orders")).is_err());
    assert_eq!(m.paths_received(), vec!["/api/orders"]);
    assert_eq!(m.envoy.wasm_metric("principal_authz.allowed").unwrap(), Some(1));
    assert_eq!(m.envoy.wasm_metric("principal_authz.denied").unwrap(), Some(3));
    assert_eq!(m.envoy.wasm_metric("principal_authz.policy.payments-to-billing.allowed").unwrap(), Some(1));
}

#[test]
fn permissive_plaintext_and_certificateless_callers_are_no_one() {
    let m = mesh(false);
    let plain = Request::get("/api/orders").send(m.envoy.listener()).unwrap();
    assert_eq!(plain.status, 403, "plaintext");
    let no_cert = m.pki.send(m.envoy.listener(), None, &Request::get("/api/orders").header("x-request-id", "tls-no-cert")).unwrap();
    assert_eq!(no_cert.status, 403, "TLS without a client certificate");
    assert_eq!(no_cert.body_text(), "RBAC: access denied");
    // Over TLS but with no certificate, the caller has no identity at all.
    assert!(m.envoy.log().contains(r#"request tls-no-cert from "-" denied: no ALLOW policy matched"#), "{}", m.envoy.log());
    assert_eq!(m.send(Some(&m.callers.billing), &Request::get("/api/orders")).status, 200);
    assert_eq!(m.paths_received(), vec!["/api/orders"]);
}

#[test]
fn bypass_attempts_are_denied() {
    let m = mesh(false);
    let attempts = bypass_attempts();
    assert!(attempts.len() >= 40);
    let mut failures = Vec::new();
    for a in &attempts {
        let r = m.send((a.caller)(&m.callers), &a.request);
        if r.status != a.want {
            failures.push(format!("{}: {} {} got {} {}", a.what, a.request.method, a.request.path, r.status, r.body_text()));
        }
    }
    assert!(failures.is_empty(), "attempts that got through:\n  {}", failures.join("\n  "));
    assert!(m.paths_received().is_empty(), "the upstream saw {:?}", m.paths_received());
    // Each class is counted under its own reason.
    assert!(m.envoy.wasm_metric("principal_authz.path_invalid_utf8").unwrap() >= Some(3));
    let log = m.envoy.log();
    for reading in ["(reading: case-folded)", "(reading: parameters removed)", "(reading: decoded again + parameters removed)"] {
        assert!(log.contains(reading), "no denial logged {reading}");
    }
}

#[test]
fn what_is_allowed_reaches_the_upstream_normalized() {
    let m = mesh(false);
    let c = &m.callers;
    let (gateway_uri, billing_uri) = (GATEWAY_URI, BILLING_URI);
    let cases = [
        (Some(&c.billing), Request::get("/api/orders/../payments//7?expand=1"), "/api/payments/7?expand=1"),
        (Some(&c.billing), Request::get("/api/%6Frders"), "/api/orders"),
        // Readings a DENY considers do not refuse what no reading puts under it.
        (Some(&c.billing), Request::get("/api/Orders"), "/api/Orders"),
        (Some(&c.billing), Request::get("/api/orders.json"), "/api/orders.json"),
        (Some(&c.billing), Request::get("/api/administrators"), "/api/administrators"),
        (Some(&c.billing), Request::get("/api/caf%C3%A9/a%3Ab"), "/api/caf%C3%A9/a%3Ab"),
        (Some(&c.billing), Request::get("/api/orders").header("host", "payments.example:8443"), "/api/orders"),
        // The gateway relays billing's identity in the element it appended.
        (
            Some(&c.gateway),
            Request::get("/api/orders").header("x-forwarded-client-cert", &format!("By={gateway_uri};URI={billing_uri}")),
            "/api/orders",
        ),
    ];
    for (caller, request, _) in &cases {
        let r = m.send(*caller, request);
        assert_eq!(r.status, 200, "{} {}: {}", request.method, request.path, r.body_text());
    }
    let want: Vec<&str> = cases.iter().map(|(_, _, p)| *p).collect();
    assert_eq!(m.paths_received(), want);
    assert_eq!(m.envoy.wasm_metric("principal_authz.path_normalized").unwrap(), Some(2));
}

/// Requests authenticated by a JWT that Envoy's own JWT filter verified
/// (Istio's RequestAuthentication): `requestPrincipals` and
/// `request.auth.*` read the payload it leaves in the dynamic metadata.
#[test]
fn jwt_request_principals_and_claims_from_envoys_jwt_filter() {
    let issuer = e2e::jwt::JwtIssuer::new("https://issuer.example").unwrap();
    let impostor = e2e::jwt::JwtIssuer::new("https://issuer.example").unwrap();
    let upstream = Upstream::start(Script::ok("payments")).unwrap();
    let config = json!({
        "jwt": { "payloadInMetadata": ["https://issuer.example"] },
        "policies": [{ "name": "jwt-callers", "action": "ALLOW", "rules": [
            { "from": [{ "source": { "requestPrincipals": ["https://issuer.example/alice"] } }] },
            { "from": [{ "source": { "requestPrincipals": ["*"] } }],
              "when": [{ "key": "request.auth.claims[realm][roles]", "values": ["payments-admin"] },
                       { "key": "request.auth.audiences", "values": ["payments"] }] },
        ] }],
    });
    let filter = WasmFilter::new(wasm_module("principal_authz").unwrap(), "principal-authz", &config);
    let envoy = Envoy::start(&Bootstrap::to_upstream(upstream.addr()).native_filter(issuer.envoy_filter()).filter(filter)).unwrap();
    let bearer = |token: String| Request::get("/api/orders").header("authorization", &format!("Bearer {token}"));
    let cases = [
        ("alice", bearer(issuer.token(&json!({ "sub": "alice" })).unwrap()), 200),
        ("bob without the role", bearer(issuer.token(&json!({ "sub": "bob", "aud": "payments" })).unwrap()), 403),
        (
            "bob with the role and the audience among others",
            bearer(issuer.token(&json!({ "sub": "bob", "aud": ["orders", "payments"], "realm": { "roles": ["viewer", "payments-admin"] } })).unwrap()),
            200,
        ),
        (
            "bob with the role for another audience",
            bearer(issuer.token(&json!({ "sub": "bob", "aud": "orders", "realm": { "roles": ["payments-admin"] } })).unwrap()),
            403,
        ),
        ("no token", Request::get("/api/orders"), 403),
        // Refused by Envoy's JWT filter before principal-authz runs.
        ("alice's token signed by another key", bearer(impostor.token(&json!({ "sub": "alice" })).unwrap()), 401),
    ];
    for (what, request, want) in &cases {
        let r = envoy.send(request).unwrap();
        assert_eq!(r.status, *want, "{what}: {}", r.body_text());
    }
    assert_eq!(upstream.received().len(), 2);
}

/// A policy in dry run is counted, never enforced; a principal written for
/// cluster.local matches the same workload under an alias trust domain only;
/// with double encoding accepted, the path passes as it came and the DENY
/// still holds through the decoded-again reading.
#[test]
fn dry_run_policies_trust_domain_aliases_and_the_double_encoding_opt_out() {
    let mut config = policies();
    config["trustDomainAliases"] = json!(["old.domain"]);
    config["allowDoubleEncoding"] = json!(true);
    config["policies"].as_array_mut().unwrap().push(json!({ "name": "no-orders", "action": "DENY", "dryRun": true,
        "rules": [{ "to": [{ "operation": { "paths": ["/api/orders/*"] } }] }] }));
    let m = mesh_with(false, &config);
    let old_billing = m.pki.issue("old-billing", Some("spiffe://old.domain/ns/billing/sa/billing")).unwrap();
    let old_shop = m.pki.issue("old-shop", Some("spiffe://old.domain/ns/shop/sa/shop")).unwrap();
    let c = &m.callers;
    assert_eq!(m.send(Some(&old_billing), &Request::get("/api/orders")).status, 200, "billing under the alias");
    assert_eq!(m.send(Some(&old_shop), &Request::get("/api/orders")).status, 403, "another workload under the alias");
    assert_eq!(m.send(Some(&c.foreign_billing), &Request::get("/api/orders")).status, 403, "billing under a foreign domain");
    assert_eq!(m.send(Some(&c.billing), &Request::get("/api/orders/7")).status, 200, "the dry-run DENY does not enforce");
    assert_eq!(m.send(Some(&c.billing), &Request::get("/api/100%2541")).status, 200);
    let r = m.send(Some(&c.billing), &Request::get("/api/orders/%252e%252e/admin"));
    assert_eq!(r.status, 403, "decoded again, it is /api/admin");
    assert_eq!(m.paths_received(), vec!["/api/orders", "/api/orders/7", "/api/100%2541"]);
    let metric = |name: &str| m.envoy.wasm_metric(name).unwrap();
    assert_eq!(metric("principal_authz.policy.no-orders.dry_run_denied"), Some(2), "/api/orders/7 and the %252e one");
    assert_eq!(metric("principal_authz.policy.no-orders.dry_run_allowed"), Some(4));
    assert!(m.envoy.log().contains(r#"policy "no-orders" in dry run would deny: rule 0 (reading: canonical)"#), "{}", m.envoy.log());
    assert!(m.envoy.log().contains("(reading: decoded again)"));
}
