//! principal-authz in a real Envoy with real mTLS: certificates with SPIFFE
//! IDs made by a test CA, a listener that requires (STRICT) or allows
//! (PERMISSIVE) client certificates and appends XFCC as Istio's sidecars do.
//! Only billing reaches payments, and no encoding, path trick, host spelling,
//! repeated header or forged XFCC gets anyone else, or anywhere denied, in.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use e2e::{wasm_module, Bootstrap, Credential, Envoy, ListenerTls, Pki, Request, Response, Script, Upstream, WasmFilter};
use serde_json::json;

struct Callers {
    billing: Credential,
    shop: Credential,
    foreign_billing: Credential,
    gateway: Credential,
}

struct Mesh {
    pki: Pki,
    callers: Callers,
    upstream: Upstream,
    envoy: Envoy,
}

fn policies() -> serde_json::Value {
    json!({
        "policies": [
            { "name": "payments-to-billing", "action": "ALLOW", "rules": [{
                "from": [{ "source": { "principals": ["cluster.local/ns/billing/sa/billing"] } }],
                "to": [{ "operation": { "methods": ["GET", "POST"], "paths": ["/api/*"] } }] }] },
            { "name": "no-admin", "action": "DENY", "rules": [
                { "to": [{ "operation": { "paths": ["/api/admin", "/api/admin/*"] } }] },
                { "to": [{ "operation": { "hosts": ["internal.payments.example"] } }] },
                { "when": [{ "key": "request.headers[x-canary]", "values": ["internal"] }] }] },
        ],
        "xfcc": { "trustedProxies": ["cluster.local/ns/istio-system/sa/ingressgateway"] },
    })
}

fn mesh(strict: bool) -> Mesh {
    let pki = Pki::new().unwrap();
    let server = pki.issue("payments", Some("spiffe://cluster.local/ns/payments/sa/payments")).unwrap();
    let callers = Callers {
        billing: pki.issue("billing", Some("spiffe://cluster.local/ns/billing/sa/billing")).unwrap(),
        shop: pki.issue("shop", Some("spiffe://cluster.local/ns/shop/sa/shop")).unwrap(),
        foreign_billing: pki.issue("foreign", Some("spiffe://other.domain/ns/billing/sa/billing")).unwrap(),
        gateway: pki.issue("gateway", Some("spiffe://cluster.local/ns/istio-system/sa/ingressgateway")).unwrap(),
    };
    let upstream = Upstream::start(Script::ok("payments")).unwrap();
    let filter = WasmFilter::new(wasm_module("principal_authz").unwrap(), "principal-authz", &policies());
    let bootstrap = Bootstrap::to_upstream(upstream.addr())
        .filter(filter)
        .forward_client_cert("APPEND_FORWARD")
        .tls(ListenerTls {
            cert: server.cert_path.clone(),
            key: server.key_path.clone(),
            ca: pki.ca_path.clone(),
            require_client_certificate: strict,
            plaintext_too: !strict,
        });
    let envoy = Envoy::start(&bootstrap).unwrap();
    Mesh { pki, callers, upstream, envoy }
}

impl Mesh {
    fn send(&self, caller: Option<&Credential>, request: &Request) -> Response {
        self.pki.send(self.envoy.listener(), caller, request).unwrap()
    }

    fn paths_received(&self) -> Vec<String> {
        self.upstream.received().iter().map(|r| r.path.clone()).collect()
    }
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
    let no_cert = m.send(None, &Request::get("/api/orders"));
    assert_eq!(no_cert.status, 403, "TLS without a client certificate");
    assert_eq!(m.send(Some(&m.callers.billing), &Request::get("/api/orders")).status, 200);
    assert_eq!(m.paths_received(), vec!["/api/orders"]);
}

/// One bypass attempt: who sends what, and the status it must get.
struct Attempt {
    what: &'static str,
    caller: fn(&Callers) -> Option<&Credential>,
    request: Request,
    want: u16,
}

fn billing(c: &Callers) -> Option<&Credential> {
    Some(&c.billing)
}

fn attempt(what: &'static str, path: &str) -> Attempt {
    Attempt { what, caller: billing, request: Request::get(path), want: 403 }
}

#[test]
fn bypass_attempts_are_denied() {
    let m = mesh(false);
    let billing_uri = "spiffe://cluster.local/ns/billing/sa/billing";
    let gateway_uri = "spiffe://cluster.local/ns/istio-system/sa/ingressgateway";
    let forged = format!("By={gateway_uri};URI={billing_uri}");
    let attempts = vec![
        attempt("the denied path itself", "/api/admin"),
        attempt("encoded unreserved letter", "/api/%61dmin"),
        attempt("dot segment", "/api/./admin"),
        attempt("dot-dot segment", "/api/orders/../admin"),
        attempt("encoded dot-dot", "/api/orders/%2e%2e/admin"),
        attempt("upper-case encoded dot-dot", "/api/orders/%2E%2E/admin/keys"),
        attempt("mixed dot-dot", "/api/orders/.%2e/admin"),
        attempt("double slashes", "//api//admin"),
        attempt("trailing slash", "/api/admin/"),
        attempt("encoded slash", "/api%2Fadmin"),
        attempt("encoded lower-case slash", "/api%2fadmin%2fkeys"),
        attempt("encoded backslash", "/api%5Cadmin"),
        attempt("path parameter", "/api/admin;jsessionid=1"),
        attempt("dot-dot with a path parameter (Tomcat)", "/api/orders/..;/admin"),
        attempt("encoded NUL", "/api/admin%00.json"),
        attempt("bad escape", "/api/%zzadmin"),
        // Envoy 1.40's HTTP/1 codec answers 400 itself: the filter never sees it.
        Attempt { want: 400, ..attempt("fragment", "/api/admin#/api/orders") },
        attempt("query that looks like a path", "/api/admin?/api/orders"),
        attempt("case of the path", "/API/orders"),
        // Refused by Envoy's codec (400) before any filter runs.
        Attempt { what: "lower-case method", caller: billing, request: Request::new("get", "/api/orders"), want: 400 },
        Attempt { what: "method not allowed", caller: billing, request: Request::new("DELETE", "/api/orders"), want: 403 },
        Attempt {
            what: "denied host in another case, with a trailing dot and a port",
            caller: billing,
            request: Request::get("/api/orders").header("host", "INTERNAL.payments.example.:8443"),
            want: 403,
        },
        Attempt {
            what: "denied header value hidden behind a second line",
            caller: billing,
            request: Request::get("/api/orders").header("x-canary", "public").header("x-canary", "internal"),
            want: 403,
        },
        Attempt {
            what: "shop forging billing's XFCC element",
            caller: |c| Some(&c.shop),
            request: Request::get("/api/orders").header("x-forwarded-client-cert", &forged),
            want: 403,
        },
        Attempt {
            what: "plaintext forging billing's XFCC element",
            caller: |_| None,
            request: Request::get("/api/orders").header("x-forwarded-client-cert", &forged),
            want: 403,
        },
        Attempt {
            what: "the trusted gateway relaying an element it did not write",
            caller: |c| Some(&c.gateway),
            request: Request::get("/api/orders")
                .header("x-forwarded-client-cert", &format!("By=spiffe://cluster.local/ns/x/sa/x;URI={billing_uri}")),
            want: 403,
        },
        Attempt { what: "the trusted gateway itself", caller: |c| Some(&c.gateway), request: Request::get("/api/orders"), want: 403 },
        Attempt {
            what: "billing of another trust domain",
            caller: |c| Some(&c.foreign_billing),
            request: Request::get("/api/orders"),
            want: 403,
        },
        Attempt { what: "shop", caller: |c| Some(&c.shop), request: Request::get("/api/orders"), want: 403 },
        Attempt { what: "plaintext", caller: |_| None, request: Request::get("/api/orders"), want: 403 },
    ];
    assert!(attempts.len() >= 20);
    let mut failures = Vec::new();
    for a in &attempts {
        let caller = (a.caller)(&m.callers);
        let r = match caller {
            None => a.request.send(m.envoy.listener()).unwrap(),
            Some(_) => m.send(caller, &a.request),
        };
        if r.status != a.want {
            failures.push(format!("{}: {} {} got {} {}", a.what, a.request.method, a.request.path, r.status, r.body_text()));
        }
    }
    assert!(failures.is_empty(), "attempts that got through:\n  {}", failures.join("\n  "));
    assert!(m.paths_received().is_empty(), "the upstream saw {:?}", m.paths_received());
}

#[test]
fn what_is_allowed_reaches_the_upstream_normalized() {
    let m = mesh(false);
    let c = &m.callers;
    let gateway_uri = "spiffe://cluster.local/ns/istio-system/sa/ingressgateway";
    let billing_uri = "spiffe://cluster.local/ns/billing/sa/billing";
    let cases = [
        (Some(&c.billing), Request::get("/api/orders/../payments//7?expand=1"), "/api/payments/7?expand=1"),
        (Some(&c.billing), Request::get("/api/%6Frders"), "/api/orders"),
        (Some(&c.billing), Request::get("/api/%2561dmin"), "/api/%2561dmin"),
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
