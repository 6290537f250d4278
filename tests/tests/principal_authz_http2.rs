//! principal-authz on HTTP/2 and gRPC in the real Envoy 1.40: the caller's
//! identity over h2 with mTLS (ALPN), `:path` and `:authority` read the way
//! a backend reads them, denials as HTTP/2 local replies, and gRPC calls
//! denied with `grpc-status: 7` (PERMISSION_DENIED), the status Envoy makes
//! of the filter's 403 for a gRPC request.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use e2e::grpc::grpc_request;
use e2e::{
    wasm_module, Bootstrap, Call, Credential, Envoy, GrpcClient, GrpcScript, GrpcService, H2Request, H2Response, H2Upstream,
    ListenerTls, Pki, Route, Script, WasmFilter,
};
use serde_json::json;
use tonic::Code;

struct Mesh {
    pki: Pki,
    billing: Credential,
    shop: Credential,
    upstream: H2Upstream,
    ledger: GrpcService,
    envoy: Envoy,
}

fn policies() -> serde_json::Value {
    json!({
        "policies": [
            { "name": "payments-to-billing", "action": "ALLOW", "rules": [
                { "from": [{ "source": { "principals": ["cluster.local/ns/billing/sa/billing"] } }],
                  "to": [{ "operation": { "methods": ["GET", "POST"], "paths": ["/api/*"] } }] },
                { "from": [{ "source": { "principals": ["cluster.local/ns/billing/sa/billing"] } }],
                  "to": [{ "operation": { "methods": ["POST"], "paths": ["/payments.Ledger/*"] } }] }] },
            { "name": "no-admin", "action": "DENY", "rules": [
                { "to": [{ "operation": { "paths": ["/api/admin", "/api/admin/*"] } }] },
                { "to": [{ "operation": { "hosts": ["internal.payments.example"] } }] }] },
        ],
    })
}

/// PERMISSIVE (mTLS or plaintext) as an Istio sidecar's inbound listener;
/// h2 upstreams: a recording one, and the gRPC service under `/payments.Ledger/`.
fn mesh() -> Mesh {
    let pki = Pki::new().unwrap();
    let server = pki.issue("payments", Some("spiffe://cluster.local/ns/payments/sa/payments")).unwrap();
    let billing = pki.issue("billing", Some("spiffe://cluster.local/ns/billing/sa/billing")).unwrap();
    let shop = pki.issue("shop", Some("spiffe://cluster.local/ns/shop/sa/shop")).unwrap();
    let upstream = H2Upstream::start(Script::ok("payments")).unwrap();
    let ledger = GrpcService::start(GrpcScript::ok("ledger")).unwrap();
    let filter = WasmFilter::new(wasm_module("principal_authz").unwrap(), "principal-authz", &policies());
    let bootstrap = Bootstrap::new()
        .h2_cluster("payments", upstream.addr())
        .h2_cluster("ledger", ledger.addr())
        .route(Route::prefix("/payments.Ledger/", "ledger"))
        .route(Route::prefix("/", "payments"))
        .filter(filter)
        .tls(ListenerTls {
            cert: server.cert_path.clone(),
            key: server.key_path.clone(),
            ca: pki.ca_path.clone(),
            require_client_certificate: false,
            plaintext_too: true,
        });
    let envoy = Envoy::start(&bootstrap).unwrap();
    Mesh { pki, billing, shop, upstream, ledger, envoy }
}

impl Mesh {
    fn send(&self, caller: Option<&Credential>, request: &H2Request) -> H2Response {
        request.send_tls(self.envoy.listener(), &self.pki, caller).unwrap()
    }

    fn paths_received(&self) -> Vec<String> {
        self.upstream.received().iter().map(|r| r.path.clone()).collect()
    }
}

#[test]
fn over_h2_with_mtls_only_billing_gets_through() {
    let m = mesh();
    let ok = m.send(Some(&m.billing), &H2Request::get("/api/orders"));
    assert_eq!(ok.status, 200, "{}", ok.body_text());
    let denied = m.send(Some(&m.shop), &H2Request::get("/api/orders"));
    assert_eq!((denied.status, denied.body_text().as_str()), (403, "RBAC: access denied"), "a local reply over HTTP/2");
    let no_cert = m.send(None, &H2Request::get("/api/orders"));
    assert_eq!(no_cert.status, 403, "TLS without a client certificate is no one");
    let plaintext = H2Request::get("/api/orders").send(m.envoy.listener()).unwrap();
    assert_eq!(plaintext.status, 403, "h2c is no one");
    assert_eq!(m.paths_received(), ["/api/orders"]);
    assert_eq!(m.envoy.wasm_metric("principal_authz.denied").unwrap(), Some(3));
}

#[test]
fn path_and_authority_tricks_over_h2_are_denied() {
    let m = mesh();
    let paths = [
        "/api/admin",
        "/api/%61dmin",
        "/api/./admin",
        "/api/orders/../admin",
        "/api/orders/%2e%2e/admin",
        "/api/orders/.%2E/admin/keys",
        "//api//admin",
        "/api/admin/",
        "/api%2Fadmin",
        "/api%5Cadmin",
        "/api/admin;jsessionid=1",
        "/api/orders/..;/admin",
        "/api/admin%00.json",
        "/api/%zzadmin",
        "/API/orders",
    ];
    let mut failures = Vec::new();
    for path in paths {
        let r = m.send(Some(&m.billing), &H2Request::get(path));
        if r.status != 403 {
            failures.push(format!("{path}: {} {}", r.status, r.body_text()));
        }
    }
    for authority in ["internal.payments.example", "INTERNAL.payments.example.:8443", "Internal.Payments.Example:443"] {
        let r = m.send(Some(&m.billing), &H2Request::get("/api/orders").authority(authority));
        if r.status != 403 {
            failures.push(format!(":authority {authority}: {} {}", r.status, r.body_text()));
        }
    }
    let delete = m.send(Some(&m.billing), &H2Request::new("DELETE", "/api/orders"));
    if delete.status != 403 {
        failures.push(format!("DELETE: {}", delete.status));
    }
    assert!(failures.is_empty(), "over h2, got through:\n  {}", failures.join("\n  "));
    assert!(m.paths_received().is_empty(), "the upstream saw {:?}", m.paths_received());
}

#[test]
fn what_is_allowed_over_h2_reaches_the_upstream_normalized() {
    let m = mesh();
    let cases = [
        ("/api/orders/../payments//7?expand=1", "/api/payments/7?expand=1"),
        ("/api/%6Frders", "/api/orders"),
    ];
    for (sent, _) in cases {
        let r = m.send(Some(&m.billing), &H2Request::get(sent).authority("payments.example:8443"));
        assert_eq!(r.status, 200, "{sent}: {}", r.body_text());
    }
    // A double-encoded escape is refused as an unsafe path, whatever it hides.
    let double = m.send(Some(&m.billing), &H2Request::get("/api/%2561dmin").authority("payments.example:8443"));
    assert_eq!(double.status, 403, "/api/%2561dmin: {}", double.body_text());
    let want: Vec<&str> = cases.iter().map(|(_, p)| *p).collect();
    assert_eq!(m.paths_received(), want);
    assert_eq!(m.upstream.received()[0].authority, "payments.example:8443");
}

#[test]
fn a_denied_grpc_call_gets_permission_denied() {
    let m = mesh();
    // A real gRPC client over h2c: no identity, denied.
    let answer = GrpcClient::new(m.envoy.listener()).unary("/payments.Ledger/Unary", Call::default()).unwrap();
    assert_eq!(answer.code, Code::PermissionDenied, "{answer:?}");
    assert_eq!(answer.message, "RBAC: access denied");
    // On the wire: HTTP 200 with grpc-status 7 in the headers (trailers-only).
    let call = Call { name: "post".into(), ..Call::default() };
    let shop = m.send(Some(&m.shop), &grpc_request("/payments.Ledger/Unary", &call));
    assert_eq!(shop.status, 200);
    assert_eq!(shop.header("grpc-status"), Some("7"), "{:?}", shop.headers);
    assert_eq!(shop.header("content-type"), Some("application/grpc"));
    assert!(m.ledger.received().is_empty(), "the service saw no denied call");
    // Billing's call, over h2 with its certificate, reaches the service.
    let billing = m.send(Some(&m.billing), &grpc_request("/payments.Ledger/Unary", &call));
    assert_eq!((billing.status, billing.trailer("grpc-status")), (200, Some("0")), "{:?} {:?}", billing.headers, billing.trailers);
    assert_eq!(m.ledger.received()[0].call.name, "post");
    // gRPC calls are POSTs: a rule for another method does not let them in.
    let get = m.send(Some(&m.billing), &H2Request { method: "GET".into(), ..grpc_request("/payments.Ledger/Unary", &call) });
    assert_eq!(get.header("grpc-status"), Some("7"));
}
