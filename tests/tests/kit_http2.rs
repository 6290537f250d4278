//! The kit's HTTP/2 and gRPC parts, against a real Envoy: an h2c client
//! with prior knowledge and an h2 client over TLS (ALPN, client
//! certificate), a recording HTTP/2 upstream (pseudo-headers, headers, a
//! body in many DATA frames, trailers), and a real gRPC service (scripted
//! statuses, server streaming, metadata echo) called by a real gRPC client.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)] // tests fail by panicking

use e2e::{
    Bootstrap, Call, Envoy, GrpcClient, GrpcScript, GrpcService, H2Request, H2Upstream, ListenerTls, Pki, Route, Script,
    Upstream,
};
use tonic::Code;

fn to_h2_upstream(upstream: &H2Upstream) -> Bootstrap {
    Bootstrap::new().h2_cluster("upstream", upstream.addr()).route(Route::prefix("/", "upstream"))
}

#[test]
fn an_h2c_request_reaches_an_h2_upstream_with_its_frames_and_trailers() {
    let upstream = H2Upstream::start(Script::ok("h2-backend")).unwrap();
    let envoy = Envoy::start(&to_h2_upstream(&upstream)).unwrap();
    let frames: Vec<Vec<u8>> = (0..20u8).map(|i| vec![b'a' + i; 1000]).collect();
    let response = H2Request::new("POST", "/upload?x=1")
        .authority("files.example:8080")
        .header("x-client", "a")
        .header("x-client", "b")
        .frames(frames.clone())
        .trailer("x-checksum", "c0ffee")
        .send(envoy.listener())
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(response.header("x-upstream-identity"), Some("h2-backend"));
    assert_eq!(response.body_text(), "hello from h2-backend\n");
    let seen = upstream.received();
    assert_eq!(seen.len(), 1);
    let r = &seen[0];
    assert_eq!((r.method.as_str(), r.scheme.as_str(), r.authority.as_str(), r.path.as_str()), ("POST", "http", "files.example:8080", "/upload?x=1"));
    let client: Vec<&str> = r.headers.iter().filter(|(k, _)| k == "x-client").map(|(_, v)| v.as_str()).collect();
    assert_eq!(client, ["a", "b"], "repeated headers arrive in order");
    assert_eq!(r.body, frames.concat(), "the body, byte for byte");
    assert!(r.data_frames > 1, "the body came in several DATA frames: {}", r.data_frames);
    assert_eq!(r.header("content-length"), None, "no length was sent, none was made up");
    assert_eq!(r.trailer("x-checksum"), Some("c0ffee"), "trailers crossed Envoy: {:?}", r.trailers);
}

#[test]
fn an_h2c_request_reaches_an_http1_upstream_chunked_and_without_trailers() {
    // Envoy downgrades: the HTTP/1.1 upstream gets a chunked body.
    let upstream = Upstream::start(Script::ok("h1-backend")).unwrap();
    let envoy = Envoy::start(&Bootstrap::to_upstream(upstream.addr())).unwrap();
    let response = H2Request::post("/a", "one").frames(vec![b"one".to_vec(), b"two".to_vec()]).send(envoy.listener()).unwrap();
    assert_eq!(response.status, 200);
    let seen = upstream.received();
    assert_eq!((seen[0].body_text().as_str(), seen[0].header("transfer-encoding")), ("onetwo", Some("chunked")));
    assert_eq!(seen[0].header("host"), Some("localhost"), ":authority becomes host");
}

#[test]
fn h2_over_tls_is_chosen_by_alpn_and_carries_the_client_certificate() {
    let pki = Pki::new().unwrap();
    let server = pki.issue("server", Some("spiffe://cluster.local/ns/payments/sa/payments")).unwrap();
    let billing = pki.issue("billing", Some("spiffe://cluster.local/ns/billing/sa/billing")).unwrap();
    let upstream = H2Upstream::start(Script::ok("h2-backend")).unwrap();
    let bootstrap = to_h2_upstream(&upstream).forward_client_cert("SANITIZE_SET").tls(ListenerTls {
        cert: server.cert_path.clone(),
        key: server.key_path.clone(),
        ca: pki.ca_path.clone(),
        require_client_certificate: true,
        plaintext_too: false,
    });
    let envoy = Envoy::start(&bootstrap).unwrap();
    let response = H2Request::get("/api").send_tls(envoy.listener(), &pki, Some(&billing)).unwrap();
    assert_eq!(response.status, 200, "{}", response.body_text());
    let xfcc = upstream.received()[0].header("x-forwarded-client-cert").unwrap_or_default().to_string();
    assert!(xfcc.contains("URI=spiffe://cluster.local/ns/billing/sa/billing"), "{xfcc}");
    assert_eq!(upstream.received()[0].scheme, "https");
    // The same listener still takes HTTP/1.1 over TLS (no ALPN offered).
    let h1 = pki.send(envoy.listener(), Some(&billing), &e2e::Request::get("/api")).unwrap();
    assert_eq!(h1.status, 200);
    // Without a certificate the handshake or the stream fails.
    assert!(H2Request::get("/api").send_tls(envoy.listener(), &pki, None).is_err());
}

#[test]
fn a_grpc_service_answers_its_scripted_statuses_through_envoy() {
    let service = GrpcService::start(GrpcScript::fail_then_ok("grpc-a", Code::ResourceExhausted, 1)).unwrap();
    let bootstrap = Bootstrap::new().h2_cluster("grpc", service.addr()).route(Route::prefix("/", "grpc"));
    let envoy = Envoy::start(&bootstrap).unwrap();
    let client = GrpcClient::new(envoy.listener()).metadata("x-tenant", "acme");
    let call = Call { name: "first".into(), ..Call::default() };
    let failed = client.unary("/shop.Cart/Unary", call.clone()).unwrap();
    assert_eq!(failed.code, Code::ResourceExhausted, "{failed:?}");
    let ok = client.unary("/shop.Cart/Unary", Call { name: "second".into(), ..call }).unwrap();
    assert_eq!(ok.code, Code::Ok, "{ok:?}");
    assert_eq!((ok.replies[0].identity.as_str(), ok.replies[0].name.as_str(), ok.replies[0].seq), ("grpc-a", "second", 1));
    assert_eq!(ok.metadata("echo-x-tenant"), Some("acme"), "metadata echoed: {:?}", ok.metadata);
    assert_eq!(ok.metadata("x-upstream-identity"), Some("grpc-a"));
    let seen = service.received();
    assert_eq!(seen.len(), 2);
    assert_eq!((seen[1].path.as_str(), seen[1].call.name.as_str()), ("/shop.Cart/Unary", "second"));
    assert_eq!(seen[1].metadata("x-tenant"), Some("acme"));
    assert_eq!(seen[1].metadata("content-length"), None, "gRPC clients send no content-length");
}

#[test]
fn a_grpc_server_stream_arrives_whole_and_ends_with_its_status() {
    let service = GrpcService::start(GrpcScript::ok("grpc-a").stream_end(Code::Unavailable)).unwrap();
    let bootstrap = Bootstrap::new().h2_cluster("grpc", service.addr()).route(Route::prefix("/", "grpc"));
    let envoy = Envoy::start(&bootstrap).unwrap();
    let answer = GrpcClient::new(envoy.listener()).server_stream("/shop.Feed/Stream", Call { name: "feed".into(), count: 3, ..Call::default() }).unwrap();
    assert_eq!(answer.code, Code::Unavailable, "{answer:?}");
    assert_eq!(answer.replies.iter().map(|r| r.seq).collect::<Vec<_>>(), [0, 1, 2]);
    let ok_service = GrpcService::start(GrpcScript::ok("grpc-b")).unwrap();
    let bootstrap = Bootstrap::new().h2_cluster("grpc", ok_service.addr()).route(Route::prefix("/", "grpc"));
    let envoy = Envoy::start(&bootstrap).unwrap();
    let answer = GrpcClient::new(envoy.listener()).server_stream("/shop.Feed/Stream", Call { count: 2, ..Call::default() }).unwrap();
    assert_eq!((answer.code, answer.replies.len()), (Code::Ok, 2));
    let unknown = GrpcClient::new(envoy.listener()).unary("/shop.Feed/Nothing", Call::default()).unwrap();
    assert_eq!(unknown.code, Code::Unimplemented);
}
