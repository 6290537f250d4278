//! mirror-sanitizer on HTTP/2 and gRPC in the real Envoy 1.40, as an
//! upstream filter seeing the primary and the shadow copy apart: an h2 JSON
//! body in many DATA frames is sanitized in the copy as over HTTP/1.1 and
//! reaches the primary byte for byte, and one that ends in trailers it
//! announced is sanitized with its trailers kept (their values sanitized by the header
//! rules); a gRPC copy keeps its framing, each message dropped (passed on
//! empty), so the shadow gRPC service gets a call it can handle and none of
//! the data. Given the service's `FileDescriptorSet` (`protoDescriptorBin`),
//! the copy's protobuf messages are sanitized field by field instead: the
//! real tonic service decodes a call whose secret fields are redacted and
//! whose other fields are intact.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use e2e::{wasm_module, Bootstrap, Call, Customer, Envoy, GrpcClient, GrpcScript, GrpcService, H2Request, H2Upstream, Route, Script, WasmFilter};
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet, MessageOptions, MethodDescriptorProto, ServiceDescriptorProto};
use serde_json::{json, Value};
use std::time::Duration;
use tonic::Code;

const WAIT: Duration = Duration::from_secs(10);

fn config() -> Value {
    json!({
        "rules": [
            { "name": "secrets", "fields": ["password", "ssn"], "mode": "mask" },
            { "name": "cards", "detectors": ["cardNumber"], "mode": "mask", "placeholder": "****", "keepLast": 4 },
        ],
    })
}

fn mirrored_with(config: &Value, primary: std::net::SocketAddr, shadow: std::net::SocketAddr) -> Envoy {
    let sanitizer = WasmFilter::new(wasm_module("mirror_sanitizer").unwrap(), "mirror-sanitizer", config);
    let bootstrap = Bootstrap::new()
        .h2_cluster("primary", primary)
        .h2_cluster("shadow", shadow)
        .route(Route::prefix("/", "primary").mirror_to("shadow"))
        .upstream_filter(sanitizer);
    Envoy::start(&bootstrap).unwrap()
}

/// HTTP/2 primary and shadow upstreams, and an Envoy mirroring to the shadow.
fn h2_mirror(config: &Value) -> (H2Upstream, H2Upstream, Envoy) {
    let primary = H2Upstream::start(Script::ok("primary")).unwrap();
    let shadow = H2Upstream::start(Script::ok("shadow")).unwrap();
    let envoy = mirrored_with(config, primary.addr(), shadow.addr());
    (primary, shadow, envoy)
}

/// The real gRPC service as the primary and as the shadow, and the Envoy.
fn grpc_mirror(config: &Value) -> (GrpcService, GrpcService, Envoy) {
    let primary = GrpcService::start(GrpcScript::ok("primary")).unwrap();
    let shadow = GrpcService::start(GrpcScript::ok("shadow")).unwrap();
    let envoy = mirrored_with(config, primary.addr(), shadow.addr());
    (primary, shadow, envoy)
}

fn order() -> Value {
    json!({
        "customer": { "name": "Ada", "ssn": "078-05-1120", "password": "hunter2" },
        "card": "4111 1111 1111 1111",
        "items": (0..200).map(|i| json!({ "sku": format!("S-{i}"), "qty": i })).collect::<Vec<_>>(),
    })
}

/// The copy of [`order`] arrived whole, without its secrets.
fn assert_order_sanitized(copy: &e2e::H2Received) {
    let text = copy.body_text();
    for secret in ["078-05-1120", "hunter2", "4111 1111 1111 1111"] {
        assert!(!text.contains(secret), "{secret} reached the shadow: {text}");
    }
    let copy_json: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(copy_json["customer"]["name"], "Ada");
    assert_eq!(copy_json["items"].as_array().unwrap().len(), 200, "the whole body");
}

#[test]
fn an_h2_json_copy_in_many_data_frames_is_sanitized_and_the_primary_is_exact() {
    let (primary, shadow, envoy) = h2_mirror(&config());
    let body = order().to_string().into_bytes();
    let frames: Vec<Vec<u8>> = body.chunks(97).map(<[u8]>::to_vec).collect();
    assert!(frames.len() > 50);
    let response = H2Request::new("POST", "/orders").header("content-type", "application/json").frames(frames).send(envoy.listener()).unwrap();
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(primary.received()[0].body, body, "the primary, byte for byte");
    let copy = &shadow.wait_for(1, WAIT).unwrap()[0];
    assert_order_sanitized(copy);
    assert!(copy.authority.starts_with("localhost-shadow"), "{}", copy.authority);
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.sanitized").unwrap(), Some(1));
}

#[test]
fn an_h2_copy_that_ends_in_trailers_is_sanitized_and_keeps_its_trailers() {
    let (primary, shadow, envoy) = h2_mirror(&config());
    let body = order().to_string().into_bytes();
    let frames: Vec<Vec<u8>> = body.chunks(97).map(<[u8]>::to_vec).collect();
    let request = H2Request::new("POST", "/orders")
        .header("content-type", "application/json")
        .header("trailer", "x-checksum, x-auth-token, x-note")
        .frames(frames)
        .trailer("x-checksum", "sha256-abc")
        .trailer("x-auth-token", "trailer-token-secret")
        .trailer("x-note", "paid with 4111 1111 1111 1111");
    let response = request.send(envoy.listener()).unwrap();
    assert_eq!(response.status, 200, "{}", response.body_text());
    let sent = &primary.received()[0];
    assert_eq!(sent.body, body, "the primary, byte for byte");
    assert_eq!(sent.trailer("x-auth-token"), Some("trailer-token-secret"), "the primary's trailers untouched");
    let copy = &shadow.wait_for(1, WAIT).unwrap()[0];
    assert_order_sanitized(copy);
    assert_eq!(copy.trailer("x-checksum"), Some("sha256-abc"), "{:?}", copy.trailers);
    assert_eq!(copy.trailer("x-auth-token"), None, "removed as the header would be: {:?}", copy.trailers);
    assert_eq!(copy.trailer("x-note"), Some("paid with ****1111"), "{:?}", copy.trailers);
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.sanitized").unwrap(), Some(1));
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.rule.cards.redactions").unwrap(), Some(2), "the body's card and the trailer's");
}

#[test]
fn an_h2_copy_with_trailers_that_cannot_be_sanitized_loses_its_body_and_keeps_its_trailers() {
    let (primary, shadow, envoy) = h2_mirror(&config());
    let broken = br#"{"password":"hunter2","card":"4111 1111 1111 1111""#.to_vec();
    let request = H2Request::new("POST", "/orders")
        .header("content-type", "application/json")
        .header("trailer", "x-checksum")
        .frames(broken.chunks(9).map(<[u8]>::to_vec).collect())
        .trailer("x-checksum", "sha256-abc");
    assert_eq!(request.send(envoy.listener()).unwrap().status, 200);
    assert_eq!(primary.received()[0].body, broken);
    let copy = &shadow.wait_for(1, WAIT).unwrap()[0];
    assert!(copy.body.is_empty(), "{}", copy.body_text());
    assert_eq!(copy.trailer("x-checksum"), Some("sha256-abc"));
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.dropped_unreadable").unwrap(), Some(1));
}

#[test]
fn an_h2_copy_with_trailers_it_did_not_announce_loses_its_body_and_keeps_its_trailers() {
    // Without a `trailer` header the filter passes each emptied chunk on
    // (Envoy holds none of the copy), so at the trailers the body has gone.
    let (primary, shadow, envoy) = h2_mirror(&config());
    let body = order().to_string().into_bytes();
    let request = H2Request::new("POST", "/orders")
        .header("content-type", "application/json")
        .frames(body.chunks(97).map(<[u8]>::to_vec).collect())
        .trailer("x-checksum", "sha256-abc")
        .trailer("x-auth-token", "trailer-token-secret");
    assert_eq!(request.send(envoy.listener()).unwrap().status, 200);
    assert_eq!(primary.wait_for(1, WAIT).unwrap()[0].body, body, "the primary, byte for byte");
    let copy = &shadow.wait_for(1, WAIT).unwrap()[0];
    assert!(copy.body.is_empty(), "{}", copy.body_text());
    assert_eq!(copy.trailer("x-checksum"), Some("sha256-abc"));
    assert_eq!(copy.trailer("x-auth-token"), None, "{:?}", copy.trailers);
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.dropped_unreadable").unwrap(), Some(1));
}

#[test]
fn a_grpc_copy_keeps_its_framing_with_each_message_dropped() {
    let (primary, shadow, envoy) = grpc_mirror(&config());
    let call = Call { name: "card 4111 1111 1111 1111".into(), count: 3, payload: b"ssn=078-05-1120".to_vec(), ..Call::default() };
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
    let (primary, shadow, envoy) = h2_mirror(&config());
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

#[test]
fn a_copy_twice_envoys_buffer_limit_is_sanitized_whole_with_or_without_trailers() {
    // Envoy buffers 1 MiB by default. The filter empties each chunk (and
    // holds it, when trailers are announced, so the trailers callback may
    // write the body) and writes the sanitized body only at the end: the
    // limit never trips on the copy.
    let mut raised = config();
    raised["maxBodyBytes"] = json!(4 * 1024 * 1024);
    let (primary, shadow, envoy) = h2_mirror(&raised);
    let pad = "y".repeat(2 * 1024 * 1024);
    let big = json!({ "password": "huge-secret-pw", "pad": pad }).to_string().into_bytes();
    for (n, trailers) in [(1, false), (2, true)] {
        let mut request = H2Request::new("POST", "/big").header("content-type", "application/json").frames(big.chunks(16_384).map(<[u8]>::to_vec).collect());
        if trailers {
            request = request.header("trailer", "x-checksum").trailer("x-checksum", "sha256-abc");
        }
        assert_eq!(request.send(envoy.listener()).unwrap().status, 200);
        assert_eq!(primary.wait_for(n, WAIT).unwrap()[n - 1].body, big);
        let copy = &shadow.wait_for(n, WAIT).unwrap()[n - 1];
        let copy_json: Value = serde_json::from_slice(&copy.body).unwrap_or_else(|e| panic!("trailers {trailers}: {e}, {} bytes", copy.body.len()));
        assert_eq!(copy_json, json!({ "password": "REDACTED", "pad": pad }), "trailers {trailers}");
        assert_eq!(copy.trailer("x-checksum"), trailers.then_some("sha256-abc"));
    }
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.sanitized").unwrap(), Some(2));
}

fn field(name: &str, number: i32, kind: Type, type_name: Option<&str>, repeated: bool) -> FieldDescriptorProto {
    FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        label: Some(if repeated { Label::Repeated } else { Label::Optional } as i32),
        r#type: Some(kind as i32),
        type_name: type_name.map(Into::into),
        ..FieldDescriptorProto::default()
    }
}

fn message(name: &str, fields: Vec<FieldDescriptorProto>) -> DescriptorProto {
    DescriptorProto { name: Some(name.into()), field: fields, ..DescriptorProto::default() }
}

/// The FileDescriptorSet of the kit's gRPC service (`Call`, `Customer`,
/// `Reply`; services `shop.Cart` and `shop.Feed`), as protoc would write it,
/// in base64.
fn shop_descriptor_set() -> String {
    use base64::Engine as _;
    let entry = DescriptorProto {
        options: Some(MessageOptions { map_entry: Some(true), ..MessageOptions::default() }),
        ..message("AttributesEntry", vec![field("key", 1, Type::String, None, false), field("value", 2, Type::String, None, false)])
    };
    let call = DescriptorProto {
        nested_type: vec![entry],
        ..message(
            "Call",
            vec![
                field("name", 1, Type::String, None, false),
                field("count", 2, Type::Uint32, None, false),
                field("payload", 3, Type::Bytes, None, false),
                field("customer", 4, Type::Message, Some(".shop.Customer"), false),
                field("attributes", 5, Type::Message, Some(".shop.Call.AttributesEntry"), true),
                field("notes", 6, Type::String, None, true),
            ],
        )
    };
    let customer = message(
        "Customer",
        vec![
            field("email", 1, Type::String, None, false),
            field("password", 2, Type::String, None, false),
            field("display_name", 3, Type::String, None, false),
            field("customer_id", 4, Type::Int64, None, false),
        ],
    );
    let reply = message("Reply", vec![field("identity", 1, Type::String, None, false), field("name", 2, Type::String, None, false), field("seq", 3, Type::Uint32, None, false)]);
    let method = |name: &str, streaming: bool| MethodDescriptorProto {
        name: Some(name.into()),
        input_type: Some(".shop.Call".into()),
        output_type: Some(".shop.Reply".into()),
        server_streaming: Some(streaming),
        ..MethodDescriptorProto::default()
    };
    let service = |name: &str, methods| ServiceDescriptorProto { name: Some(name.into()), method: methods, ..ServiceDescriptorProto::default() };
    let file = FileDescriptorProto {
        name: Some("shop.proto".into()),
        package: Some("shop".into()),
        message_type: vec![call, customer, reply],
        service: vec![service("Cart", vec![method("Unary", false)]), service("Feed", vec![method("Stream", true)])],
        syntax: Some("proto3".into()),
        ..FileDescriptorProto::default()
    };
    base64::engine::general_purpose::STANDARD.encode(prost::Message::encode_to_vec(&FileDescriptorSet { file: vec![file] }))
}

fn secret_call() -> Call {
    Call {
        name: "card 4111 1111 1111 1111".into(),
        count: 2,
        payload: b"ssn=078-05-1120".to_vec(),
        customer: Some(Customer { email: "ada@example.com".into(), password: "hunter2".into(), display_name: "Ada".into(), customer_id: 4242 }),
        attributes: [("session_token".to_string(), "tok-8c1f2b9e".to_string()), ("colour".to_string(), "blue".to_string())].into_iter().collect(),
        notes: vec!["call +1 (555) 123-4567".into(), "fragile".into()],
    }
}

#[test]
fn with_the_descriptor_set_a_grpc_copy_is_sanitized_field_by_field() {
    let mut with_set = config();
    with_set["protoDescriptorBin"] = json!(shop_descriptor_set());
    with_set["hashKey"] = json!({ "value": "a-test-key-0123456789" });
    let (primary, shadow, envoy) = grpc_mirror(&with_set);
    let client = GrpcClient::new(envoy.listener());
    let call = secret_call();
    let answer = client.unary("/shop.Cart/Unary", call.clone()).unwrap();
    assert_eq!(answer.code, Code::Ok, "{answer:?}");
    assert_eq!(primary.received()[0].call, call, "the primary, whole");
    let copy = shadow.wait_for(1, WAIT).unwrap()[0].call.clone();
    // Redacted: by the detectors, the built-in rules and the map's keys.
    assert_eq!(copy.name, "card ****1111");
    assert!(!String::from_utf8_lossy(&copy.payload).contains("078-05-1120"), "{:?}", String::from_utf8_lossy(&copy.payload));
    let customer = copy.customer.clone().unwrap();
    assert_eq!(customer.password, "REDACTED", "masked by the rule that names it");
    assert_eq!(customer.email, "REDACTED", "masked (builtin-personal)");
    let pseudonym = customer.customer_id;
    assert!(pseudonym != 4242 && pseudonym > 0, "an identifier number, pseudonymized: {pseudonym}");
    assert_eq!(copy.attributes.get("session_token").map(String::as_str), Some(""), "the value its key names is removed");
    assert!(!copy.notes[0].contains("555") && copy.notes[0].starts_with("call "), "{:?}", copy.notes);
    // Intact: everything no rule selects.
    assert_eq!((customer.display_name.as_str(), copy.count), ("Ada", 2));
    assert_eq!(copy.attributes.get("colour").map(String::as_str), Some("blue"));
    assert_eq!(copy.notes[1], "fragile");
    // A streaming call's message too; the same customer id, the same pseudonym.
    let streamed = client.server_stream("/shop.Feed/Stream", call.clone()).unwrap();
    assert_eq!((streamed.code, streamed.replies.len()), (Code::Ok, 2));
    let copies = shadow.wait_for(2, WAIT).unwrap();
    assert_eq!(copies[1].call, copy, "sanitized alike, pseudonyms joinable");
    assert_eq!(pseudonym, copies[1].call.customer.as_ref().unwrap().customer_id);
    // A method the set does not declare: its message is dropped, as without a set.
    assert_eq!(client.unary("/shop.Unknown/Unary", call.clone()).unwrap().code, Code::Ok);
    assert_eq!(shadow.wait_for(3, WAIT).unwrap()[2].call, Call::default());
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.grpc_messages_sanitized").unwrap(), Some(2));
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.grpc_messages_dropped").unwrap(), Some(1));
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.rule.cards.redactions").unwrap(), Some(2), "one card per sanitized message");
}

#[test]
fn without_the_descriptor_set_the_same_grpc_copy_is_dropped() {
    let (primary, shadow, envoy) = grpc_mirror(&config());
    let call = secret_call();
    assert_eq!(GrpcClient::new(envoy.listener()).unary("/shop.Cart/Unary", call.clone()).unwrap().code, Code::Ok);
    assert_eq!(primary.received()[0].call, call);
    assert_eq!(shadow.wait_for(1, WAIT).unwrap()[0].call, Call::default(), "no field of it reaches the shadow");
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.grpc_messages_dropped").unwrap(), Some(1));
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.grpc_messages_sanitized").unwrap(), Some(0));
}
