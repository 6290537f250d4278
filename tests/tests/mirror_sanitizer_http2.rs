//! mirror-sanitizer on HTTP/2 and gRPC in the real Envoy 1.40, as an
//! upstream filter seeing the primary and the shadow copy apart: an h2 JSON
//! body in many DATA frames is sanitized in the copy as over HTTP/1.1 and
//! reaches the primary byte for byte; a gRPC copy keeps its framing, each
//! message dropped (passed on empty), so the shadow gRPC service gets a
//! call it can handle and none of the data.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use e2e::{wasm_module, Bootstrap, Call, Envoy, GrpcClient, GrpcScript, GrpcService, H2Request, H2Upstream, Route, Script, WasmFilter};
use serde_json::{json, Value};
use std::time::Duration;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(10);

fn sanitizer() -> WasmFilter {
    let config = json!({
        "rules": [
            { "name": "secrets", "fields": ["password", "ssn"], "mode": "mask" },
            { "name": "cards", "detectors": ["cardNumber"], "mode": "mask", "placeholder": "****", "keepLast": 4 },
        ],
    });
    WasmFilter::new(wasm_module("mirror_sanitizer").unwrap(), "mirror-sanitizer", &config)
}

fn mirrored(primary: std::net::SocketAddr, shadow: std::net::SocketAddr) -> Envoy {
    let bootstrap = Bootstrap::new()
        .h2_cluster("primary", primary)
        .h2_cluster("shadow", shadow)
        .route(Route::prefix("/", "primary").mirror_to("shadow"))
        .upstream_filter(sanitizer());
    Envoy::start(&bootstrap).unwrap()
}

fn order() -> Value {
    json!({
        "customer": { "name": "Ada", "ssn": "078-05-1120", "password": "hunter2" },
        "card": "4111 1111 1111 1111",
        "items": (0..200).map(|i| json!({ "sku": format!("S-{i}"), "qty": i })).collect::<Vec<_>>(),
    })
}

#[test]
fn an_h2_json_copy_in_many_data_frames_is_sanitized_and_the_primary_is_exact() {
    let primary = H2Upstream::start(Script::ok("primary")).unwrap();
    let shadow = H2Upstream::start(Script::ok("shadow")).unwrap();
    let envoy = mirrored(primary.addr(), shadow.addr());
    let body = order().to_string().into_bytes();
    let frames: Vec<Vec<u8>> = body.chunks(97).map(<[u8]>::to_vec).collect();
    assert!(frames.len() > 50);
    let response = H2Request::new("POST", "/orders").header("content-type", "application/json").frames(frames).send(envoy.listener()).unwrap();
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(primary.received()[0].body, body, "the primary, byte for byte");
    let copy = &shadow.wait_for(1, WAIT).unwrap()[0];
    let text = copy.body_text();
    for secret in ["078-05-1120", "hunter2", "4111 1111 1111 1111"] {
        assert!(!text.contains(secret), "{secret} reached the shadow: {text}");
    }
    let copy_json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(copy_json["customer"]["name"], "Ada");
    assert_eq!(copy_json["items"].as_array().unwrap().len(), 200, "the whole body");
    assert!(copy.authority.starts_with("localhost-shadow"), "{}", copy.authority);
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.sanitized").unwrap(), Some(1));
}

#[test]
fn a_grpc_copy_keeps_its_framing_with_each_message_dropped() {
    let primary = GrpcService::start(GrpcScript::ok("primary")).unwrap();
    let shadow = GrpcService::start(GrpcScript::ok("shadow")).unwrap();
    let envoy = mirrored(primary.addr(), shadow.addr());
    let call = Call { name: "card 4111 1111 1111 1111".into(), count: 3, payload: b"ssn=078-05-1120".to_vec() };
    let client = GrpcClient::new(envoy.listener()).metadata("x-tenant", "acme");
    let answer = client.unary("/shop.Cart/Unary", call.clone()).unwrap();
    assert_eq!((answer.code, answer.replies[0].identity.as_str()), (Code::Ok, "primary"), "{answer:?}");
    assert_eq!(primary.received()[0].call, call, "the primary, whole");
    let copy = &shadow.wait_for(1, WAIT).unwrap()[0];
    assert_eq!(copy.path, "/shop.Cart/Unary", "a call the shadow service could handle");
    assert_eq!(copy.call, Call::default(), "its message passed on empty");
    assert_eq!(copy.metadata("x-tenant"), Some("acme"));
    // A server-streaming call's copy too: the one request message, emptied.
    let streamed = client.server_stream("/shop.Feed/Stream", call.clone()).unwrap();
    assert_eq!((streamed.code, streamed.replies.len()), (Code::Ok, 3));
    let copies = shadow.wait_for(2, WAIT).unwrap();
    assert_eq!((copies[1].path.as_str(), &copies[1].call), ("/shop.Feed/Stream", &Call::default()));
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.grpc_messages_dropped").unwrap(), Some(2));
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.sanitized").unwrap(), Some(2));
}

#[test]
fn a_grpc_copy_of_several_messages_in_cut_frames_keeps_them_all() {
    // Raw HTTP/2: three messages, the frames cut across message boundaries.
    let primary = H2Upstream::start(Script::ok("primary")).unwrap();
    let shadow = H2Upstream::start(Script::ok("shadow")).unwrap();
    let envoy = mirrored(primary.addr(), shadow.addr());
    let messages: Vec<u8> = (0..3)
        .flat_map(|i| e2e::grpc::length_prefixed(&Call { name: format!("secret-{i}-4111111111111111"), count: i, ..Call::default() }))
        .collect();
    let frames: Vec<Vec<u8>> = messages.chunks(7).map(<[u8]>::to_vec).collect();
    let request = H2Request::new("POST", "/shop.Cart/Upload")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .frames(frames)
        .trailer("x-client-trailer", "kept");
    assert_eq!(request.send(envoy.listener()).unwrap().status, 200);
    assert_eq!(primary.received()[0].body, messages);
    let copy = &shadow.wait_for(1, WAIT).unwrap()[0];
    assert_eq!(copy.body, [0u8; 15], "three empty messages, framing intact");
    assert_eq!(copy.trailer("x-client-trailer"), Some("kept"), "trailers go on");
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.grpc_messages_dropped").unwrap(), Some(3));
}
