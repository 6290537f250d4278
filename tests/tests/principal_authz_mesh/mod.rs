//! What the principal-authz end-to-end tests share: the payments policies,
//! the callers (SPIFFE certificates from a test CA), an Envoy with an mTLS
//! listener in front of a recording upstream, whatever HTTP filters guard
//! it, and the project's list of bypass attempts.

#![allow(dead_code)] // each test file uses its own part

use e2e::{Bootstrap, Credential, Envoy, ListenerTls, Pki, Request, Response, Script, Upstream};
use serde_json::{json, Value};

pub const BILLING_URI: &str = "spiffe://cluster.local/ns/billing/sa/billing";
pub const GATEWAY_URI: &str = "spiffe://cluster.local/ns/istio-system/sa/ingressgateway";

pub struct Callers {
    pub billing: Credential,
    pub shop: Credential,
    pub foreign_billing: Credential,
    pub gateway: Credential,
}

pub struct Mesh {
    pub pki: Pki,
    pub callers: Callers,
    pub upstream: Upstream,
    pub envoy: Envoy,
}

/// The AuthorizationPolicies of payments, as this filter's configuration.
pub fn policies() -> Value {
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

/// A listener that requires client certificates (`strict`) or also takes
/// plaintext and certificateless TLS (PERMISSIVE), appending XFCC as
/// Istio's sidecars do; `guard` adds the HTTP filters, `edit` may change
/// the finished Envoy configuration.
pub fn mesh(strict: bool, guard: impl FnOnce(Bootstrap) -> Bootstrap, edit: impl FnOnce(&mut Value)) -> Mesh {
    let pki = Pki::new().unwrap();
    let server = pki.issue("payments", Some("spiffe://cluster.local/ns/payments/sa/payments")).unwrap();
    let callers = Callers {
        billing: pki.issue("billing", Some(BILLING_URI)).unwrap(),
        shop: pki.issue("shop", Some("spiffe://cluster.local/ns/shop/sa/shop")).unwrap(),
        foreign_billing: pki.issue("foreign", Some("spiffe://other.domain/ns/billing/sa/billing")).unwrap(),
        gateway: pki.issue("gateway", Some(GATEWAY_URI)).unwrap(),
    };
    let upstream = Upstream::start(Script::ok("payments")).unwrap();
    let bootstrap = guard(Bootstrap::to_upstream(upstream.addr())).forward_client_cert("APPEND_FORWARD").tls(ListenerTls {
        cert: server.cert_path.clone(),
        key: server.key_path.clone(),
        ca: pki.ca_path.clone(),
        require_client_certificate: strict,
        plaintext_too: !strict,
    });
    let mut config = bootstrap.to_json();
    edit(&mut config);
    let envoy = Envoy::start_json(&config).unwrap();
    Mesh { pki, callers, upstream, envoy }
}

/// Sets `key` on every HTTP connection manager of the configuration.
pub fn set_on_connection_managers(config: &mut Value, key: &str, value: Value) {
    for listener in config["static_resources"]["listeners"].as_array_mut().into_iter().flatten() {
        for chain in listener["filter_chains"].as_array_mut().into_iter().flatten() {
            for filter in chain["filters"].as_array_mut().into_iter().flatten() {
                if filter["name"] == "envoy.filters.network.http_connection_manager" {
                    filter["typed_config"][key] = value.clone();
                }
            }
        }
    }
}

impl Mesh {
    pub fn send(&self, caller: Option<&Credential>, request: &Request) -> Response {
        match caller {
            None => request.send(self.envoy.listener()).unwrap(),
            Some(_) => self.pki.send(self.envoy.listener(), caller, request).unwrap(),
        }
    }

    pub fn paths_received(&self) -> Vec<String> {
        self.upstream.received().iter().map(|r| r.path.clone()).collect()
    }
}

/// One bypass attempt: who sends what, and the status the filter must give.
pub struct Attempt {
    pub what: &'static str,
    pub caller: fn(&Callers) -> Option<&Credential>,
    pub request: Request,
    pub want: u16,
}

fn billing(c: &Callers) -> Option<&Credential> {
    Some(&c.billing)
}

fn attempt(what: &'static str, path: &str) -> Attempt {
    Attempt { what, caller: billing, request: Request::get(path), want: 403 }
}

/// The project's bypass list against [`policies`]: everything here must be
/// kept from the upstream.
pub fn bypass_attempts() -> Vec<Attempt> {
    let forged = format!("By={GATEWAY_URI};URI={BILLING_URI}");
    vec![
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
        attempt("encoded path parameter", "/api/admin%3Bjsessionid=1"),
        attempt("encoded dot-dot path parameter", "/api/orders/..%3B/admin"),
        attempt("encoded NUL", "/api/admin%00.json"),
        attempt("bad escape", "/api/%zzadmin"),
        attempt("double-encoded dot-dot", "/api/orders/%252e%252e/admin"),
        attempt("double-encoded letter", "/api/%2561dmin"),
        attempt("double-encoded slash", "/api%252Fadmin"),
        attempt("overlong UTF-8 dot-dot", "/api/orders/%c0%ae%c0%ae/admin"),
        attempt("overlong UTF-8 slash", "/api%c0%afadmin"),
        attempt("three-byte overlong dot-dot", "/api/orders/%e0%80%ae%e0%80%ae/admin"),
        attempt("case variant of the denied segment", "/api/Admin"),
        attempt("upper-case denied segment", "/api/ADMIN/keys"),
        attempt("trailing dot (IIS)", "/api/admin."),
        attempt("trailing encoded space (IIS)", "/api/admin%20"),
        attempt("trailing dots and spaces under the denied segment", "/api/admin.%20./keys"),
        // Envoy 1.40's HTTP/1 codec answers 400 itself: the filter never sees it.
        Attempt { want: 400, ..attempt("fragment", "/api/admin#/api/orders") },
        attempt("query that looks like a path", "/api/admin?/api/orders"),
        attempt("case of the path", "/API/orders"),
        // Refused by Envoy's HTTP/1 codec (400) before any filter runs.
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
                .header("x-forwarded-client-cert", &format!("By=spiffe://cluster.local/ns/x/sa/x;URI={BILLING_URI}")),
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
    ]
}
