//! The compiled module in the harness: callers are allowed or denied by their
//! SPIFFE ID, the upstream receives the normalized path, denials answer as
//! Envoy's RBAC does and are counted, dry runs let everything through, bad
//! configurations stop the plugin, and the allow path stays cheap.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use harness::{Module, Outcome, Plugin, PluginConfig, Request, SharedState, UpstreamResponse};
use serde_json::{json, Value};

const BILLING: &str = "spiffe://cluster.local/ns/billing/sa/billing";
const SHOP: &str = "spiffe://cluster.local/ns/shop/sa/shop";
const GATEWAY: &str = "spiffe://cluster.local/ns/istio-system/sa/gateway";
const PEER: &str = "connection.uri_san_peer_certificate";

fn module() -> Module {
    Module::built("principal_authz").unwrap_or_else(|e| panic!("{e}"))
}

fn plugin(config: Value) -> Plugin {
    Plugin::start(&module(), PluginConfig::new("principal-authz").json(&config), SharedState::new()).unwrap()
}

fn payments() -> Value {
    json!({ "policies": [
        { "name": "payments-to-billing", "action": "ALLOW",
          "rules": [{ "from": [{ "source": { "principals": ["cluster.local/ns/billing/sa/billing"] } }] }] },
        { "name": "no-admin", "action": "DENY",
          "rules": [{ "to": [{ "operation": { "paths": ["/admin", "/admin/*"] } }] }] },
    ] })
}

fn from(caller: &str, path: &str) -> Request {
    let r = Request::get(path).header("x-request-id", "req-1");
    if caller.is_empty() {
        r
    } else {
        r.property(PEER, caller)
    }
}

fn send(p: &mut Plugin, r: &Request) -> Outcome {
    p.send(r, &UpstreamResponse::ok())
}

fn assert_denied(out: &Outcome) {
    assert!(out.upstream.is_none(), "the upstream must not see a denied request");
    let resp = out.response.as_ref().unwrap();
    assert_eq!(resp.status, 403);
    assert_eq!(resp.body_text(), "RBAC: access denied");
    assert_eq!(resp.header("content-type"), Some("text/plain"));
}

#[test]
fn only_billing_reaches_payments() {
    let mut p = plugin(payments());
    let out = send(&mut p, &from(BILLING, "/pay"));
    assert_eq!(out.status(), 200);
    assert_eq!(out.upstream.as_ref().unwrap().path, "/pay");
    for caller in [SHOP, "spiffe://other.domain/ns/billing/sa/billing", ""] {
        let out = send(&mut p, &from(caller, "/pay"));
        assert_denied(&out);
        assert!(out.logged("request req-1 from"), "{:?}", out.logs);
        assert!(out.logged("denied: no ALLOW policy matched"));
    }
    let m = p.shared.metrics();
    assert_eq!(m.get("principal_authz.allowed"), Some(&1));
    assert_eq!(m.get("principal_authz.denied"), Some(&3));
    assert_eq!(m.get("principal_authz.policy.payments-to-billing.allowed"), Some(&1));
}

#[test]
fn the_upstream_gets_the_path_the_rules_saw() {
    let mut p = plugin(payments());
    let out = send(&mut p, &from(BILLING, "/pay//a/%2e%2e/b/./c%2Fd?x=1#frag"));
    assert_eq!(out.upstream.as_ref().unwrap().path, "/pay/b/c/d?x=1");
    assert!(out.route_cache_cleared, "routing must see the normalized path too");
    assert_eq!(p.shared.metrics().get("principal_authz.path_normalized"), Some(&1));
    // A clean path is left alone: no rewrite, no route recomputation.
    let out = send(&mut p, &from(BILLING, "/pay/b?x=1"));
    assert_eq!(out.upstream.as_ref().unwrap().path, "/pay/b?x=1");
    assert!(!out.route_cache_cleared);
}

#[test]
fn encodings_cannot_reach_a_denied_path() {
    let mut p = plugin(payments());
    for path in ["/admin", "/pay/../admin", "/pay/%2e%2e/admin/x", "//admin", "/%61dmin", "/pay%2f..%2fadmin", "/pay\\..\\admin"] {
        let out = send(&mut p, &from(BILLING, path));
        assert_denied(&out);
        assert!(out.logged("denied by policy \"no-admin\" rule 0"), "{path}: {:?}", out.logs);
    }
    for path in ["/pay/..;/admin", "/admin%00", "/pay/%zz", "/a b"] {
        let out = send(&mut p, &from(BILLING, path));
        assert_denied(&out);
    }
    assert_eq!(p.shared.metrics().get("principal_authz.path_rejected"), Some(&4));
    assert_eq!(p.shared.metrics().get("principal_authz.policy.no-admin.denied"), Some(&7));
}

#[test]
fn a_dry_run_counts_and_logs_but_lets_everything_through() {
    let mut config = payments();
    config["dryRun"] = json!(true);
    let mut p = plugin(config);
    let out = send(&mut p, &from(SHOP, "/pay"));
    assert_eq!(out.status(), 200);
    assert!(out.logged("(dry run: let through)"));
    let out = send(&mut p, &from(BILLING, "/admin"));
    assert_eq!(out.status(), 200);
    let m = p.shared.metrics();
    assert_eq!(m.get("principal_authz.dry_run_denied"), Some(&2));
    assert_eq!(m.get("principal_authz.denied").copied().unwrap_or(0), 0);
    assert_eq!(m.get("principal_authz.policy.no-admin.dry_run_denied"), Some(&1));
}

#[test]
fn audit_policies_log_and_count_only() {
    let mut config = payments();
    config["policies"].as_array_mut().unwrap().push(json!({ "name": "audit-all", "action": "AUDIT", "rules": [{}] }));
    let mut p = plugin(config);
    let out = send(&mut p, &from(BILLING, "/pay"));
    assert_eq!(out.status(), 200);
    assert!(out.logged("audited by policy \"audit-all\" rule 0"));
    assert_eq!(p.shared.metrics().get("principal_authz.policy.audit-all.audited"), Some(&1));
}

#[test]
fn the_deny_answer_is_configurable() {
    let mut config = payments();
    config["denyStatus"] = json!(401);
    config["denyBody"] = json!("not for you");
    let mut p = plugin(config);
    let resp = send(&mut p, &from(SHOP, "/pay")).response.unwrap();
    assert_eq!((resp.status, resp.body_text().as_str()), (401, "not for you"));
}

#[test]
fn a_forwarded_identity_counts_only_from_a_trusted_proxy() {
    let mut config = payments();
    config["xfcc"] = json!({ "trustedProxies": ["cluster.local/ns/istio-system/sa/gateway"] });
    let mut p = plugin(config);
    let element = format!("By={GATEWAY};Hash=00;URI={BILLING}");
    let out = send(&mut p, &from(GATEWAY, "/pay").header("x-forwarded-client-cert", &element));
    assert_eq!(out.status(), 200, "{:?}", out.logs);
    // The same header from anyone else, or an element the gateway did not add.
    assert_denied(&send(&mut p, &from(SHOP, "/pay").header("x-forwarded-client-cert", &element)));
    assert_denied(&send(&mut p, &from("", "/pay").header("x-forwarded-client-cert", &element)));
    let forged = format!("By={SHOP};URI={BILLING}");
    assert_denied(&send(&mut p, &from(GATEWAY, "/pay").header("x-forwarded-client-cert", &forged)));
    // Off by default: billing's element from the gateway means nothing.
    let mut p = plugin(payments());
    assert_denied(&send(&mut p, &from(GATEWAY, "/pay").header("x-forwarded-client-cert", &element)));
}

#[test]
fn addresses_and_ports_are_read_only_when_a_policy_needs_them() {
    let mut p = plugin(payments());
    let out = send(&mut p, &from(BILLING, "/pay"));
    assert_eq!(out.host_calls.get("proxy_get_header_map_pairs"), Some(&1));
    assert_eq!(out.host_calls.get("proxy_get_property"), Some(&1), "only the peer identity: {:?}", out.host_calls);
    let mut p = plugin(json!({ "policies": [{ "name": "local", "rules": [{
        "from": [{ "source": { "ipBlocks": ["127.0.0.0/8"] } }],
        "to": [{ "operation": { "ports": ["10000"] } }] }] }] }));
    let out = send(&mut p, &from("", "/"));
    assert_eq!(out.status(), 200, "{:?}", out.logs);
    assert_eq!(out.host_calls.get("proxy_get_property"), Some(&3));
}

#[test]
fn a_bad_configuration_stops_the_plugin_naming_the_field() {
    let config = json!({ "policies": [{ "name": "p", "rules": [{ "to": [{ "operation": { "paths": ["/foo/{*}.txt"] } }] }] }] });
    let err = Plugin::start(&module(), PluginConfig::new("principal-authz").json(&config), SharedState::new()).err().unwrap();
    assert!(err.to_string().contains("policies[0].rules[0].to[0].operation.paths[0]: `{*}.txt`"), "{err}");
}

/// A request carrying a payload Envoy's JWT filter verified, stored (as
/// Envoy does) under the dynamic metadata key `issuer`.
fn with_token(r: Request, claims: &[(&str, &str)]) -> Request {
    let mut r = r;
    let path = ["metadata", "filter_metadata", "envoy.filters.http.jwt_authn", "issuer"].map(String::from).to_vec();
    let pairs = claims.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    r.properties.insert(path, harness::properties::PropertyValue::Map(pairs));
    r
}

#[test]
fn request_principals_come_from_the_verified_jwt_payload() {
    let mut p = plugin(json!({
        "jwt": { "payloadInMetadata": ["other", "issuer"] },
        "policies": [{ "name": "alice", "rules": [{ "from": [{ "source": { "requestPrincipals": ["https://issuer.example/alice"] } }] }] }],
    }));
    let alice = with_token(from("", "/"), &[("iss", "https://issuer.example"), ("sub", "alice")]);
    let out = send(&mut p, &alice);
    assert_eq!(out.status(), 200, "{:?}", out.logs);
    // Peer identity, then one read per payload key until one is found.
    assert_eq!(out.host_calls.get("proxy_get_property"), Some(&3));
    assert_denied(&send(&mut p, &with_token(from("", "/"), &[("iss", "https://issuer.example"), ("sub", "bob")])));
    assert_denied(&send(&mut p, &from(BILLING, "/")));
}

#[test]
fn a_deny_holds_under_every_reading_and_the_log_names_it() {
    let mut config = payments();
    config["policies"][1]["rules"].as_array_mut().unwrap().push(json!({ "to": [{ "operation": { "methods": ["DELETE"] } }] }));
    let mut p = plugin(config);
    let cases = [
        ("GET", "/Admin", "(reading: case-folded)"),
        ("GET", "/admin.", "(reading: parameters removed)"),
        ("GET", "/admin%3Bx=1", "(reading: decoded again + parameters removed)"),
        ("delete", "/pay", "(reading: method case-folded)"),
        ("GET", "/admin", "(reading: canonical)"),
    ];
    for (method, path, reading) in cases {
        let out = send(&mut p, &Request::new(method, path).header("x-request-id", "req-1").property(PEER, BILLING));
        assert_denied(&out);
        assert!(out.logged("denied by policy \"no-admin\"") && out.logged(reading), "{method} {path}: {:?}", out.logs);
    }
    assert_eq!(p.shared.metrics().get("principal_authz.policy.no-admin.denied"), Some(&5));
    // Not a token: refused before any policy.
    let out = send(&mut p, &Request::new("GET /x", "/pay").property(PEER, BILLING));
    assert_denied(&out);
    assert!(out.logged("the method is not an HTTP token"), "{:?}", out.logs);
    assert_eq!(p.shared.metrics().get("principal_authz.method_rejected"), Some(&1));
}

#[test]
fn double_encoding_and_invalid_utf8_are_refused_and_counted() {
    let mut p = plugin(payments());
    for path in ["/pay/%252e%252e/admin", "/%2561dmin"] {
        let out = send(&mut p, &from(BILLING, path));
        assert_denied(&out);
        assert!(out.logged("double-encoded"), "{path}: {:?}", out.logs);
    }
    for path in ["/pay/%c0%ae%c0%ae/admin", "/pay%c0%afadmin", "/pay/%ed%a0%80"] {
        let out = send(&mut p, &from(BILLING, path));
        assert_denied(&out);
        assert!(out.logged("invalid UTF-8"), "{path}: {:?}", out.logs);
    }
    let m = p.shared.metrics();
    assert_eq!(m.get("principal_authz.path_rejected"), Some(&5));
    assert_eq!(m.get("principal_authz.path_invalid_utf8"), Some(&3));
    // Opted out: the path passes as it came, and its decoded-again reading
    // still meets the DENY.
    let mut config = payments();
    config["allowDoubleEncoding"] = json!(true);
    let mut p = plugin(config);
    let out = send(&mut p, &from(BILLING, "/pay/100%2541"));
    assert_eq!(out.upstream.as_ref().unwrap().path, "/pay/100%2541");
    let out = send(&mut p, &from(BILLING, "/pay/%252e%252e/admin"));
    assert_denied(&out);
    assert!(out.logged("(reading: decoded again)"), "{:?}", out.logs);
}

#[test]
fn a_policy_in_dry_run_counts_what_it_would_decide() {
    let mut config = payments();
    config["policies"].as_array_mut().unwrap().push(json!({ "name": "no-pay", "action": "DENY", "dryRun": true,
        "rules": [{ "to": [{ "operation": { "paths": ["/pay"] } }] }] }));
    let mut p = plugin(config);
    let out = send(&mut p, &from(BILLING, "/pay"));
    assert_eq!(out.status(), 200);
    assert!(out.logged("policy \"no-pay\" in dry run would deny: rule 0 (reading: canonical)"), "{:?}", out.logs);
    assert_eq!(send(&mut p, &from(BILLING, "/other")).status(), 200);
    // Enforcement ignores it, the others still enforce.
    assert_denied(&send(&mut p, &from(BILLING, "/admin")));
    let m = p.shared.metrics();
    assert_eq!(m.get("principal_authz.policy.no-pay.dry_run_denied"), Some(&1));
    assert_eq!(m.get("principal_authz.policy.no-pay.dry_run_allowed"), Some(&2));
    assert_eq!(m.get("principal_authz.allowed"), Some(&2));
    assert_eq!(m.get("principal_authz.dry_run_denied").copied().unwrap_or(0), 0, "that counter is the whole-filter dry run's");
}
