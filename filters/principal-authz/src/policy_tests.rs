//! Table-driven from the examples in Istio's AuthorizationPolicy reference
//! and security guides, written as this filter's JSON.

use super::*;
use crate::config::Config;
use serde_json::{json, Value};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn config(policies: Value) -> Config {
    let config = json!({ "policies": policies, "jwt": { "payloadInMetadata": ["https://issuer.example"] } });
    Config::parse(Some(config.to_string().as_bytes())).unwrap()
}

/// A request as a test writes it; `from` is a SPIFFE ID or "" for plaintext.
struct Req {
    from: &'static str,
    method: &'static str,
    host: &'static str,
    path: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    ip: &'static str,
    port: u16,
    token: Option<crate::jwt::Token>,
}

fn req(from: &'static str, method: &'static str, path: &'static str) -> Req {
    Req { from, method, host: "payments.example", path, headers: Vec::new(), ip: "10.0.0.7", port: 8080, token: None }
}

impl Req {
    fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// A verified token with these string claims and an `aud` list.
    fn jwt(mut self, claims: &[(&str, &str)], aud: &[&str]) -> Self {
        use filter_common::codec::encode_pairs;
        let mut pairs: Vec<(Vec<u8>, Vec<u8>)> = claims.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect();
        let list: Vec<(&str, &str)> = aud.iter().map(|a| (*a, "")).collect();
        pairs.push((b"aud".to_vec(), encode_pairs(&list)));
        self.token = crate::jwt::Token::from_property(&encode_pairs(&pairs));
        self
    }
}

fn decide_on(c: &Config, r: &Req) -> Decision {
    let identity = crate::identity::Identity::from_uri(r.from);
    let request_principal = r.token.as_ref().and_then(crate::jwt::Token::principal);
    let headers: Vec<Header<'_>> = r.headers.iter().map(|(k, v)| (*k, v.as_bytes())).collect();
    let view = RequestView {
        identity: identity.as_ref(),
        host: Some(r.host),
        method: Some(r.method),
        path: r.path,
        headers: &headers,
        source_ip: r.ip.parse().ok(),
        destination_ip: "10.0.0.1".parse().ok(),
        destination_port: Some(r.port),
        sni: None,
        token: r.token.as_ref(),
        request_principal: request_principal.as_deref(),
        readings: None,
    };
    decide(&c.policies, &view)
}

/// A match under the canonical reading.
fn canonical(policy: usize, rule: usize) -> Matched {
    Matched { policy, rule, reading: Reading::CANONICAL }
}

fn allowed(c: &Config, r: &Req) -> bool {
    decide_on(c, r).verdict.allows()
}

const BILLING: &str = "spiffe://cluster.local/ns/billing/sa/billing";
const SHOP: &str = "spiffe://cluster.local/ns/shop/sa/shop";
const FOREIGN_BILLING: &str = "spiffe://other.domain/ns/billing/sa/billing";
const PLAINTEXT: &str = "";

#[test]
fn payments_to_billing_allows_only_billing() {
    let c = config(json!([{ "name": "payments-to-billing", "action": "ALLOW",
        "rules": [{ "from": [{ "source": { "principals": ["cluster.local/ns/billing/sa/billing"] } }] }] }]));
    assert_eq!(decide_on(&c, &req(BILLING, "GET", "/pay")).verdict, Verdict::AllowedBy(canonical(0, 0)));
    for caller in [SHOP, FOREIGN_BILLING, PLAINTEXT] {
        assert_eq!(decide_on(&c, &req(caller, "GET", "/pay")).verdict, Verdict::NoAllowMatched, "{caller:?}");
    }
}

#[test]
fn allow_nothing_deny_all_allow_all() {
    // `spec: {}`: an ALLOW policy without rules matches nothing, so it denies all.
    let nothing = config(json!([{ "name": "allow-nothing" }]));
    assert!(!allowed(&nothing, &req(BILLING, "GET", "/")));
    let deny_all = config(json!([{ "name": "deny-all", "action": "DENY", "rules": [{}] }]));
    assert!(!allowed(&deny_all, &req(BILLING, "GET", "/")));
    let allow_all = config(json!([{ "name": "allow-all", "action": "ALLOW", "rules": [{}] }]));
    assert!(allowed(&allow_all, &req(PLAINTEXT, "DELETE", "/x")));
    // A DENY policy without rules matches nothing: no ALLOW policy, so allowed.
    let empty_deny = config(json!([{ "name": "d", "action": "DENY" }]));
    assert_eq!(decide_on(&empty_deny, &req(PLAINTEXT, "GET", "/")).verdict, Verdict::NoAllowPolicy);
    assert_eq!(decide_on(&config(json!([])), &req(PLAINTEXT, "GET", "/")).verdict, Verdict::NoAllowPolicy);
}

// The reference's first example: allow `cluster.local/ns/default/sa/sleep`
// or namespace `dev` to GET, and `test` namespace's anyone to any method on
// /info*, /data*.
#[test]
fn rules_or_sources_and_fields() {
    let c = config(json!([{ "name": "httpbin", "action": "ALLOW", "rules": [
        { "from": [{ "source": { "principals": ["cluster.local/ns/default/sa/sleep"] } }, { "source": { "namespaces": ["dev"] } }],
          "to": [{ "operation": { "methods": ["GET"] } }] },
        { "from": [{ "source": { "namespaces": ["test"], "notPrincipals": ["cluster.local/ns/test/sa/robot"] } }],
          "to": [{ "operation": { "paths": ["/info*", "/data*"] } }] }
    ] }]));
    let cases = [
        ("spiffe://cluster.local/ns/default/sa/sleep", "GET", "/anything", true),
        ("spiffe://cluster.local/ns/default/sa/sleep", "POST", "/anything", false),
        ("spiffe://cluster.local/ns/dev/sa/whoever", "GET", "/x", true),
        ("spiffe://cluster.local/ns/test/sa/app", "DELETE", "/info/1", true),
        ("spiffe://cluster.local/ns/test/sa/app", "DELETE", "/other", false),
        ("spiffe://cluster.local/ns/test/sa/robot", "GET", "/info", false),
        (PLAINTEXT, "GET", "/info", false),
    ];
    for (from, method, path, want) in cases {
        assert_eq!(allowed(&c, &req(from, method, path)), want, "{from} {method} {path}");
    }
}

#[test]
fn deny_wins_over_allow_and_audit_changes_nothing() {
    let c = config(json!([
        { "name": "allow-billing", "action": "ALLOW", "rules": [{ "from": [{ "source": { "principals": ["cluster.local/ns/billing/*"] } }] }] },
        { "name": "no-admin", "action": "DENY", "rules": [{ "to": [{ "operation": { "paths": ["/admin", "/admin/*"] } }] }] },
        { "name": "audit-writes", "action": "AUDIT", "rules": [{ "to": [{ "operation": { "methods": ["POST", "PUT"] } }] }] }
    ]));
    assert_eq!(decide_on(&c, &req(BILLING, "GET", "/admin/x")).verdict, Verdict::DeniedBy(canonical(1, 0)));
    let post = decide_on(&c, &req(BILLING, "POST", "/pay"));
    assert_eq!(post.verdict, Verdict::AllowedBy(canonical(0, 0)));
    assert_eq!(post.audits, vec![canonical(2, 0)]);
    let denied_post = decide_on(&c, &req(SHOP, "POST", "/pay"));
    assert_eq!(denied_post.verdict, Verdict::NoAllowMatched);
    assert_eq!(denied_post.audits.len(), 1, "audit is reported whatever the verdict");
}

// ISTIO-SECURITY-2021-004: a plaintext caller is no one, so neither
// `principals` nor `notPrincipals` (nor the namespace twins) match it.
#[test]
fn negative_identity_fields_never_match_plaintext() {
    let allow_not_shop = config(json!([{ "name": "not-shop", "action": "ALLOW", "rules": [
        { "from": [{ "source": { "notPrincipals": ["cluster.local/ns/shop/sa/shop"] } }] }] }]));
    assert!(allowed(&allow_not_shop, &req(BILLING, "GET", "/")));
    assert!(!allowed(&allow_not_shop, &req(SHOP, "GET", "/")));
    assert!(!allowed(&allow_not_shop, &req(PLAINTEXT, "GET", "/")), "plaintext is not 'not shop'");
    let allow_not_ns = config(json!([{ "name": "not-ns", "action": "ALLOW", "rules": [
        { "from": [{ "source": { "notNamespaces": ["shop"] } }] }] }]));
    assert!(allowed(&allow_not_ns, &req(BILLING, "GET", "/")));
    assert!(!allowed(&allow_not_ns, &req(PLAINTEXT, "GET", "/")));
    let when_not = config(json!([{ "name": "w", "action": "ALLOW", "rules": [
        { "when": [{ "key": "source.principal", "notValues": ["cluster.local/ns/shop/sa/shop"] }] }] }]));
    assert!(!allowed(&when_not, &req(PLAINTEXT, "GET", "/")));
    // Any authenticated caller: `principals: ["*"]`.
    let any_mtls = config(json!([{ "name": "mtls", "action": "ALLOW", "rules": [{ "from": [{ "source": { "principals": ["*"] } }] }] }]));
    assert!(allowed(&any_mtls, &req(FOREIGN_BILLING, "GET", "/")));
    assert!(!allowed(&any_mtls, &req(PLAINTEXT, "GET", "/")));
}

#[test]
fn namespaces_come_from_the_spiffe_id_of_any_trust_domain() {
    let c = config(json!([{ "name": "ns", "action": "ALLOW", "rules": [{ "from": [{ "source": { "namespaces": ["billing"] } }] }] }]));
    assert!(allowed(&c, &req(BILLING, "GET", "/")));
    assert!(allowed(&c, &req(FOREIGN_BILLING, "GET", "/")), "Istio's namespaces ignore the trust domain");
    assert!(!allowed(&c, &req("spiffe://cluster.local/ns/billing-x/sa/a", "GET", "/")));
    assert!(!allowed(&c, &req("spiffe://cluster.local/sa/billing/ns/x", "GET", "/")));
}

#[test]
fn hosts_ignore_case_methods_do_not() {
    let c = config(json!([{ "name": "h", "action": "ALLOW", "rules": [{ "to": [{ "operation": {
        "hosts": ["Payments.Example", "*.internal"], "methods": ["GET"] } }] }] }]));
    let mut r = req(BILLING, "GET", "/");
    assert!(allowed(&c, &r));
    r.host = "api.internal";
    assert!(allowed(&c, &r));
    r.host = "payments.example.evil";
    assert!(!allowed(&c, &r));
    assert!(!allowed(&c, &req(BILLING, "get", "/")), "methods are case-sensitive");
}

#[test]
fn ports_and_ip_blocks() {
    let c = config(json!([{ "name": "p", "action": "ALLOW", "rules": [{
        "from": [{ "source": { "ipBlocks": ["10.0.0.0/24"], "notIpBlocks": ["10.0.0.99"] } }],
        "to": [{ "operation": { "ports": ["8080"] } }] }] }]));
    let mut r = req(PLAINTEXT, "GET", "/");
    assert!(allowed(&c, &r));
    r.ip = "10.0.0.99";
    assert!(!allowed(&c, &r));
    r.ip = "10.0.1.1";
    assert!(!allowed(&c, &r));
    r.ip = "10.0.0.7";
    r.port = 9090;
    assert!(!allowed(&c, &r));
}

#[test]
fn path_templates_and_not_paths() {
    let c = config(json!([{ "name": "t", "action": "ALLOW", "rules": [{ "to": [{ "operation": {
        "paths": ["/users/{*}/orders", "/static/{**}"], "notPaths": ["/static/secret/*"] } }] }] }]));
    assert!(allowed(&c, &req(BILLING, "GET", "/users/7/orders")));
    assert!(!allowed(&c, &req(BILLING, "GET", "/users/7/8/orders")));
    assert!(allowed(&c, &req(BILLING, "GET", "/static/css/a.css")));
    assert!(!allowed(&c, &req(BILLING, "GET", "/static/secret/key")));
}

#[test]
fn header_conditions_and_repeated_headers() {
    let allow = config(json!([{ "name": "a", "action": "ALLOW", "rules": [{ "when": [
        { "key": "request.headers[X-Tenant]", "values": ["acme", "corp-*"] }] }] }]));
    assert!(allowed(&allow, &req(BILLING, "GET", "/").header("x-tenant", "corp-1")));
    assert!(!allowed(&allow, &req(BILLING, "GET", "/")), "absent header: values do not match");
    assert!(
        !allowed(&allow, &req(BILLING, "GET", "/").header("x-tenant", "acme").header("x-tenant", "evil")),
        "an ALLOW needs every value of a repeated header to match"
    );
    let deny = config(json!([{ "name": "d", "action": "DENY", "rules": [{ "when": [
        { "key": "request.headers[x-debug]", "values": ["*"] },
        { "key": "request.headers[x-env]", "notValues": ["prod"] }] }] }]));
    assert!(!allowed(&deny, &req(BILLING, "GET", "/").header("x-debug", "1")), "absent x-env satisfies notValues");
    assert!(allowed(&deny, &req(BILLING, "GET", "/").header("x-debug", "1").header("x-env", "prod")));
    assert!(
        !allowed(&deny, &req(BILLING, "GET", "/").header("x-debug", "1").header("x-env", "prod").header("x-env", "dev")),
        "a DENY matches when any value of a repeated header matches"
    );
    assert!(allowed(&deny, &req(BILLING, "GET", "/").header("x-debug", "")), "`*` needs a non-empty value");
}

// The reference's JWT examples: requestPrincipals `iss/sub`, `*` for any
// verified token, and `when` on audiences, presenter and (nested) claims.
#[test]
fn request_principals_and_claims() {
    let c = config(json!([{ "name": "jwt", "action": "ALLOW", "rules": [
        { "from": [{ "source": { "requestPrincipals": ["https://issuer.example/alice"] } }] },
        { "from": [{ "source": { "requestPrincipals": ["*"] } }],
          "when": [{ "key": "request.auth.claims[groups]", "values": ["admins"] },
                   { "key": "request.auth.audiences", "values": ["payments"] }] },
        { "when": [{ "key": "request.auth.presenter", "values": ["billing-ui"] }] },
    ] }]));
    let issuer = "https://issuer.example";
    let alice = req(PLAINTEXT, "GET", "/").jwt(&[("iss", issuer), ("sub", "alice")], &[]);
    assert_eq!(decide_on(&c, &alice).verdict, Verdict::AllowedBy(canonical(0, 0)));
    let bob = |groups: &str, aud: &[&str]| req(PLAINTEXT, "GET", "/").jwt(&[("iss", issuer), ("sub", "bob"), ("groups", groups)], aud);
    assert!(!allowed(&c, &bob("admins", &["orders"])), "wrong audience");
    assert_eq!(decide_on(&c, &bob("admins", &["orders", "payments"])).verdict, Verdict::AllowedBy(canonical(0, 1)));
    assert!(!allowed(&c, &bob("users", &["payments"])));
    let ui = req(PLAINTEXT, "GET", "/").jwt(&[("iss", issuer), ("sub", "carol"), ("azp", "billing-ui")], &[]);
    assert_eq!(decide_on(&c, &ui).verdict, Verdict::AllowedBy(canonical(0, 2)));
    assert!(!allowed(&c, &req(BILLING, "GET", "/")), "no token: no request principal");
}

#[test]
fn not_request_principals_never_match_a_request_without_a_token() {
    let c = config(json!([{ "name": "not-mallory", "action": "ALLOW", "rules": [
        { "from": [{ "source": { "notRequestPrincipals": ["https://issuer.example/mallory"] } }] }] }]));
    let issuer = "https://issuer.example";
    assert!(allowed(&c, &req(PLAINTEXT, "GET", "/").jwt(&[("iss", issuer), ("sub", "alice")], &[])));
    assert!(!allowed(&c, &req(PLAINTEXT, "GET", "/").jwt(&[("iss", issuer), ("sub", "mallory")], &[])));
    assert!(!allowed(&c, &req(BILLING, "GET", "/")), "a request without a token is no one");
}

#[test]
fn a_policy_in_dry_run_is_reported_never_enforced() {
    let c = config(json!([
        { "name": "allow-billing", "action": "ALLOW", "rules": [{ "from": [{ "source": { "principals": ["cluster.local/ns/billing/sa/billing"] } }] }] },
        { "name": "new-deny", "action": "DENY", "dryRun": true, "rules": [{ "to": [{ "operation": { "paths": ["/pay"] } }] }] },
        { "name": "new-allow", "action": "ALLOW", "dryRun": true, "rules": [{ "to": [{ "operation": { "methods": ["GET"] } }] }] },
    ]));
    let d = decide_on(&c, &req(BILLING, "POST", "/pay"));
    assert_eq!(d.verdict, Verdict::AllowedBy(canonical(0, 0)), "the dry-run DENY does not deny");
    assert_eq!(
        d.dry_runs,
        vec![
            DryRun { policy: 1, matched: Some(canonical(1, 0)), would_deny: true },
            DryRun { policy: 2, matched: None, would_deny: true },
        ]
    );
    let get = decide_on(&c, &req(SHOP, "GET", "/other"));
    assert_eq!(get.verdict, Verdict::NoAllowMatched, "the dry-run ALLOW does not allow");
    assert_eq!(
        get.dry_runs,
        vec![
            DryRun { policy: 1, matched: None, would_deny: false },
            DryRun { policy: 2, matched: Some(canonical(2, 0)), would_deny: false },
        ]
    );
    // Only dry-run ALLOW policies: as if there were no ALLOW policy.
    let only_dry = config(json!([{ "name": "dry-allow", "dryRun": true, "rules": [] }]));
    assert_eq!(decide_on(&only_dry, &req(SHOP, "GET", "/")).verdict, Verdict::NoAllowPolicy);
}

#[test]
fn trust_domain_aliases_widen_a_principal_to_the_same_workload_only() {
    let with_aliases = |policies: Value| {
        let c = json!({ "policies": policies, "trustDomainAliases": ["old.domain", "td2"] });
        Config::parse(Some(c.to_string().as_bytes())).unwrap()
    };
    let c = with_aliases(json!([{ "name": "billing", "rules": [
        { "from": [{ "source": { "principals": ["cluster.local/ns/billing/sa/billing"] } }] },
        { "from": [{ "source": { "principals": ["td2/ns/ops/*"], "notPrincipals": ["cluster.local/ns/ops/sa/robot"] } }] },
        { "when": [{ "key": "source.principal", "values": ["old.domain/ns/audit/sa/auditor"] }] }] }]));
    for (caller, want) in [
        ("spiffe://cluster.local/ns/billing/sa/billing", true),
        ("spiffe://old.domain/ns/billing/sa/billing", true),
        ("spiffe://td2/ns/billing/sa/billing", true),
        ("spiffe://other.domain/ns/billing/sa/billing", false),
        ("spiffe://old.domain/ns/billing/sa/billing-x", false),
        ("spiffe://old.domainx/ns/billing/sa/billing", false),
        ("spiffe://cluster.local/ns/ops/sa/deployer", true),
        ("spiffe://old.domain/ns/ops/sa/robot", false),
        ("spiffe://td2/ns/ops/sa/robot", false),
        ("spiffe://cluster.local/ns/audit/sa/auditor", true),
        ("spiffe://evil/ns/audit/sa/auditor", false),
    ] {
        assert_eq!(allowed(&c, &req(caller, "GET", "/")), want, "{caller}");
    }
    // Without aliases, a trust domain is only itself.
    let plain = config(json!([{ "name": "billing", "rules": [{ "from": [{ "source": { "principals": ["cluster.local/ns/billing/sa/billing"] } }] }] }]));
    assert!(!allowed(&plain, &req("spiffe://old.domain/ns/billing/sa/billing", "GET", "/")));
}
