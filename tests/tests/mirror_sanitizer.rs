//! mirror-sanitizer in the real Envoy 1.40, in both deployments:
//! (1) standalone, the sanitizer in the router's `upstream_http_filters`,
//! where it sees the primary and the shadow copy separately; (2) the Istio
//! shape, a sidecar mirroring to an egress-gateway Envoy whose ordinary HTTP
//! filter chain sanitizes the `-shadow` requests before they leave.
//! The primary upstream must receive exactly what the client sent; the
//! shadow upstream must receive none of the planted secrets, in any of the
//! encodings they were sent in.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

#[path = "mirror_sanitizer/corpus.rs"]
mod corpus;

use e2e::{wasm_module, Bootstrap, Envoy, Received, Request, Route, Script, Upstream, WasmFilter};
use serde_json::{json, Value};
use std::time::Duration;

const KEY_ENV: &str = "MIRROR_SANITIZER_HASH_KEY";
const KEY: &str = "e2e-hash-key-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(10);

/// Headers Envoy adds to every proxied request.
const ENVOY_ADDED: [&str; 3] = ["x-forwarded-proto", "x-request-id", "x-envoy-expected-rq-timeout-ms"];

fn config() -> Value {
    json!({
        "rules": [
            { "name": "user-id", "fields": ["user_id", "userId"], "pathSegments": ["/users/{id}"], "cookies": ["uid"], "mode": "hash" },
            { "name": "ssn", "jsonPointers": ["/customer/ssn"], "mode": "mask", "placeholder": "***-**-", "keepLast": 0 },
            { "name": "internal-headers", "headerPatterns": ["^x-internal-"], "mode": "remove" },
            { "name": "employee-ids", "patterns": ["EMP-[0-9]{6}"], "mode": "mask" },
            { "name": "cards", "detectors": ["cardNumber"], "mode": "mask", "placeholder": "****", "keepLast": 4 },
        ],
        "hashKey": { "env": KEY_ENV },
    })
}

/// The sanitizer, with its hash key in the VM's environment.
fn sanitizer(config: &Value) -> WasmFilter {
    WasmFilter::new(wasm_module("mirror_sanitizer").unwrap(), "mirror-sanitizer", config)
}

/// Puts the hash key into every Wasm VM's environment, as an operator
/// would (`vm_config.environment_variables`, Istio `vmConfig.env`).
fn with_key(mut bootstrap: Value) -> Value {
    fn walk(v: &mut Value) {
        match v {
            Value::Object(map) => {
                if let Some(vm) = map.get_mut("vm_config") {
                    vm["environment_variables"] = json!({ "key_values": { KEY_ENV: KEY } });
                }
                map.values_mut().for_each(walk);
            }
            Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut bootstrap);
    bootstrap
}

/// One request of the corpus: what to send and the secrets it carries, in
/// every form they appear on the wire (raw, percent-, JSON-, form-encoded).
struct Case {
    request: Request,
    secrets: Vec<String>,
}

fn case(id: usize, request: Request, secrets: &[&str]) -> Case {
    Case { request: request.header("x-case", &id.to_string()), secrets: secrets.iter().map(|s| s.to_string()).collect() }
}

fn json_post(path: &str, body: &Value) -> Request {
    Request::post(path, body.to_string()).header("content-type", "application/json")
}

fn json_raw(path: &str, body: &str) -> Request {
    Request::post(path, body.to_string()).header("content-type", "application/json")
}

fn form(path: &str, body: &str) -> Request {
    Request::post(path, body.to_string()).header("content-type", "application/x-www-form-urlencoded")
}

fn multipart(parts: &[(&str, Option<&str>, &str)]) -> Request {
    let mut body = String::new();
    for (name, content_type, content) in parts {
        body.push_str(&format!("--sEp\r\nContent-Disposition: form-data; name=\"{name}\"\r\n"));
        if let Some(t) = content_type {
            body.push_str(&format!("Content-Type: {t}\r\n"));
        }
        body.push_str(&format!("\r\n{content}\r\n"));
    }
    body.push_str("--sEp--\r\n");
    Request::post("/upload", body).header("content-type", "multipart/form-data; boundary=sEp")
}

const JWT: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ1LTk4NzYiLCJuYW1lIjoiSmFuZSJ9.dGhpcy1pcy1hLXNpZ25hdHVyZQ";

/// At least 30 requests, secrets in every place the sanitizer covers.
fn corpus() -> Vec<Case> {
    let mut c = Vec::new();
    let mut add = |request: Request, secrets: &[&str]| {
        let id = c.len();
        c.push(case(id, request, secrets));
    };
    // Headers by name (built-in list) and by pattern.
    add(Request::get("/a").header("authorization", "Basic amFuZTpodW50ZXIy"), &["amFuZTpodW50ZXIy"]);
    add(Request::get("/a").header("authorization", &format!("Bearer {JWT}")), &[JWT, "dGhpcy1pcy1hLXNpZ25hdHVyZQ"]);
    add(Request::get("/a").header("proxy-authorization", "Basic cHJveHk6c2VjcmV0UHc="), &["cHJveHk6c2VjcmV0UHc="]);
    add(Request::get("/a").header("x-api-key", "sk_live_51Habc123XYZ"), &["sk_live_51Habc123XYZ"]);
    add(Request::get("/a").header("x-internal-session", "int-sess-777"), &["int-sess-777"]);
    add(Request::get("/a").header("x-auth-token", "tok-aaa-bbb-ccc"), &["tok-aaa-bbb-ccc"]);
    // Detectors in other headers, repeated ones included.
    add(Request::get("/a").header("x-note", "hello").header("x-note", "mail bob.smith@example.org"), &["bob.smith@example.org"]);
    add(Request::get("/a").header("x-id-token", JWT).header("x-card", "5500 0000 0000 0004"), &[JWT, "5500 0000 0000 0004"]);
    // Cookies: all of them by default, single ones hashed.
    add(Request::get("/a").header("cookie", "uid=u-55501; session=sess-0f9e8d7c; theme=dark"), &["u-55501", "sess-0f9e8d7c"]);
    add(Request::get("/a").header("cookie", "csrftoken=csrf-4a4a4a"), &["csrf-4a4a4a"]);
    // Query parameters, names percent-encoded, values in several encodings.
    add(Request::get("/search?user_id=u-77123&q=shoes"), &["u-77123"]);
    add(Request::get("/search?user%5Fid=u-77124&q=shoes"), &["u-77124"]);
    add(Request::get("/cb?access_token=at-19f2e8&x=1"), &["at-19f2e8"]);
    add(Request::get("/cb?pass%77ord=qwerty-pw-1"), &["qwerty-pw-1"]);
    add(Request::get("/notify?email=jane.doe%40example.com"), &["jane.doe%40example.com", "jane.doe@example.com"]);
    add(Request::get("/unsubscribe?jane.roe%40example.com"), &["jane.roe%40example.com", "jane.roe@example.com"]);
    add(Request::get("/pay?card=4111+1111+1111+1111"), &["4111+1111+1111+1111", "4111 1111 1111 1111"]);
    add(Request::get("/pay?card=5500-0000-0000-0004&phone=%2B44%2020%207946%200958"), &["5500-0000-0000-0004", "%2B44%2020%207946%200958", "+44 20 7946 0958"]);
    // Path segments by template, and detectors in segments.
    add(Request::get("/users/u-31337/orders"), &["u-31337"]);
    add(Request::get("/people/jane%40example.org/profile"), &["jane%40example.org", "jane@example.org"]);
    // JSON: keys at any depth, any case, escaped; pointers; detectors.
    add(json_post("/login", &json!({ "username": "jane", "password": "hunter2-pw" })), &["hunter2-pw"]);
    add(json_post("/a", &json!({ "a": { "b": [{ "Password": "deep-pw-42" }] } })), &["deep-pw-42"]);
    add(json_raw("/a", r#"{"pass\u0077ord":"escaped-pw-9","ok":1}"#), &["escaped-pw-9"]);
    add(json_raw("/a", r#"{"token":"t-first-111","token":"t-second-222"}"#), &["t-first-111", "t-second-222"]);
    add(json_post("/a", &json!({ "customer": { "ssn": "123-45-6789", "name": "x" } })), &["123-45-6789"]);
    add(json_post("/a", &json!({ "userId": "u-42424", "items": [1, 2] })), &["u-42424"]);
    add(json_post("/pay", &json!({ "card": "4012 8888 8888 1881", "amount": 10 })), &["4012 8888 8888 1881"]);
    add(json_raw("/pay", r#"{"card":4012888888881881}"#), &["4012888888881881"]);
    add(json_raw("/a", r#"{"note":"write to jane\u0040example.net"}"#), &["jane\\u0040example.net", "jane@example.net"]);
    add(json_post("/a", &json!({ "jwt": JWT, "aws": "AKIAIOSFODNN7EXAMPLE" })), &[JWT, "AKIAIOSFODNN7EXAMPLE"]);
    add(json_post("/a", &json!({ "iban": "GB82 WEST 1234 5698 7654 32", "phone": "+1 (555) 123-4567" })), &["GB82 WEST 1234 5698 7654 32", "+1 (555) 123-4567"]);
    add(json_post("/a", &json!({ "auth": "Bearer opaque-bearer-abc123", "emp": "EMP-004217" })), &["opaque-bearer-abc123", "EMP-004217"]);
    add(json_post("/a", &json!({ "alice@example.com": { "plan": "pro" } })), &["alice@example.com"]);
    // Forms.
    add(form("/login", "user=jane&password=form-pw-5&remember=1"), &["form-pw-5"]);
    add(form("/login", "user_id=u-60606&note=call+%2B1+555-123-4567"), &["u-60606", "%2B1+555-123-4567", "+1 555-123-4567"]);
    add(form("/login", "email=bob%40example.com&card=4111111111111111"), &["bob%40example.com", "bob@example.com", "4111111111111111"]);
    // Multipart.
    add(multipart(&[("user", None, "jane"), ("password", None, "mp-pw-77")]), &["mp-pw-77"]);
    add(multipart(&[("bio", None, "reach me at carol@example.com"), ("meta", Some("application/json"), r#"{"token":"mp-json-tok"}"#)]), &["carol@example.com", "mp-json-tok"]);
    add(multipart(&[("card", Some("text/plain"), "4111-1111-1111-1111"), ("x", Some("application/x-www-form-urlencoded"), "secret=mp-form-sec")]), &["4111-1111-1111-1111", "mp-form-sec"]);
    c
}

/// Everything a recorded request carries, as text, for searching.
fn wire_text(r: &Received) -> String {
    let mut text = format!("{} {}\n", r.method, r.path);
    for (k, v) in &r.headers {
        text.push_str(&format!("{k}: {v}\n"));
    }
    text.push_str(&String::from_utf8_lossy(&r.body));
    text
}

fn by_case(received: &[Received], id: usize) -> &Received {
    received.iter().find(|r| r.header("x-case") == Some(&id.to_string())).unwrap_or_else(|| panic!("case {id} not received"))
}

/// The primary saw what the client sent: method, path, every header in
/// order (plus only what Envoy adds, minus the hop-by-hop `connection`), body.
fn assert_primary_exact(sent: &Request, seen: &Received) {
    assert_eq!(seen.method, sent.method);
    assert_eq!(seen.path, sent.path);
    let kept: Vec<(String, String)> = seen.headers.iter().filter(|(k, _)| !ENVOY_ADDED.contains(&k.as_str())).cloned().collect();
    let mut expected = vec![("host".to_string(), "localhost".to_string())];
    expected.extend(sent.headers.iter().cloned());
    if !sent.body.is_empty() || sent.method == "POST" {
        expected.push(("content-length".into(), sent.body.len().to_string()));
    }
    assert_eq!(kept, expected, "primary headers for {}", sent.path);
    assert_eq!(seen.body, sent.body, "primary body for {}", sent.path);
}

/// Runs the corpus; checks the primary exactly and the shadow for secrets.
fn run_corpus(envoy: &Envoy, primary: &Upstream, shadow: &Upstream) {
    let corpus = corpus();
    assert!(corpus.len() >= 30);
    for c in &corpus {
        let response = envoy.send(&c.request).unwrap();
        assert_eq!(response.status, 200, "{}", response.body_text());
    }
    let primaries = primary.wait_for(corpus.len(), WAIT).unwrap();
    let shadows = shadow.wait_for(corpus.len(), WAIT).unwrap();
    let mut leaks = Vec::new();
    for (id, c) in corpus.iter().enumerate() {
        assert_primary_exact(&c.request, by_case(&primaries, id));
        let text = wire_text(by_case(&shadows, id));
        for secret in &c.secrets {
            if text.contains(secret.as_str()) || text.to_lowercase().contains(&secret.to_lowercase()) {
                leaks.push(format!("case {id}: {secret:?} in\n{text}"));
            }
        }
    }
    assert!(leaks.is_empty(), "secrets reached the shadow:\n{}", leaks.join("\n"));
}

fn standalone(config: &Value) -> (Envoy, Upstream, Upstream) {
    let primary = Upstream::start(Script::ok("primary")).unwrap();
    let shadow = Upstream::start(Script::ok("shadow")).unwrap();
    let bootstrap = Bootstrap::new()
        .cluster("primary", primary.addr())
        .cluster("shadow", shadow.addr())
        .route(Route::prefix("/", "primary").mirror_to("shadow"))
        .upstream_filter(sanitizer(config));
    let envoy = Envoy::start_json(&with_key(bootstrap.to_json())).unwrap();
    (envoy, primary, shadow)
}

#[test]
fn standalone_upstream_filter_the_primary_is_exact_and_the_shadow_has_no_secrets() {
    let (envoy, primary, shadow) = standalone(&config());
    run_corpus(&envoy, &primary, &shadow);
    let shadows = shadow.received();
    // Envoy's shadow authority carries the suffix before the port.
    assert!(shadows.iter().all(|r| r.header("host").is_some_and(|h| h.starts_with("localhost-shadow"))));
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.sanitized").unwrap(), Some(corpus().len() as u64));
    assert!(envoy.wasm_metric("mirror_sanitizer.rule.user-id.redactions").unwrap().unwrap() >= 6);
    assert!(envoy.prometheus().unwrap().contains("mirror_sanitizer_shadow_sanitized"));
}

#[test]
fn the_sanitized_shadow_body_is_complete_and_a_pseudonym_joins_across_places() {
    let (envoy, primary, shadow) = standalone(&config());
    let body = json!({ "userId": "u-2001", "password": "pw", "items": (0..2000).map(|i| json!({ "sku": format!("S-{i}"), "email": format!("user{i}@example.com") })).collect::<Vec<_>>() });
    let request = json_post("/users/u-2001/orders?user_id=u-2001", &body).header("cookie", "uid=u-2001").header("host", "127.0.0.1:8080");
    assert_eq!(envoy.send(&request).unwrap().status, 200);
    let seen = &shadow.wait_for(1, WAIT).unwrap()[0];
    assert_eq!(seen.header("host"), Some("127.0.0.1-shadow:8080"));
    assert_eq!(seen.header("content-length"), None);
    // The body parses whole: not cut off at the original length.
    let v: Value = serde_json::from_slice(&seen.body).unwrap();
    assert_eq!(v["items"].as_array().unwrap().len(), 2000);
    assert_eq!(v["items"][1999]["email"], "REDACTED");
    let pseudonym = v["userId"].as_str().unwrap();
    assert!(pseudonym.starts_with("hmac-"));
    assert_eq!(seen.path, format!("/users/{pseudonym}/orders?user_id={pseudonym}"));
    assert_eq!(seen.header("cookie"), Some(format!("uid={pseudonym}").as_str()));
    let p = &primary.wait_for(1, WAIT).unwrap()[0];
    assert_eq!(p.body, request.body);
    assert_eq!(p.header("host"), Some("127.0.0.1:8080"));
}

#[test]
fn oversize_gzip_and_broken_bodies_are_dropped_from_the_shadow_only() {
    let (envoy, primary, shadow) = standalone(&json!({ "maxBodyBytes": 65536 }));
    let big = json!({ "password": "big-secret-pw", "pad": "x".repeat(200_000) }).to_string();
    let cases = [
        ("oversize", Request::post("/", big.clone()).header("content-type", "application/json")),
        ("oversize-chunked", Request::post("/", big.clone()).header("content-type", "application/json").header("transfer-encoding", "chunked")),
        ("gzip", Request::post("/", b"\x1f\x8b\x08\x00password=gz-secret".to_vec()).header("content-type", "application/json").header("content-encoding", "gzip")),
        ("broken", Request::post("/", r#"{"password":"broken-secret""#).header("content-type", "application/json")),
        ("unknown", Request::post("/", "password=text-secret").header("content-type", "text/plain")),
    ];
    for (i, (what, request)) in cases.iter().enumerate() {
        let request = chunk_if_asked(request.clone()).header("x-case", &i.to_string());
        let response = envoy.send(&request).unwrap();
        assert_eq!(response.status, 200, "{what}");
    }
    let primaries = primary.wait_for(cases.len(), WAIT).unwrap();
    let shadows = shadow.wait_for(cases.len(), WAIT).unwrap();
    for (i, (what, request)) in cases.iter().enumerate() {
        let p = by_case(&primaries, i);
        assert_eq!(p.body, request.body, "{what}: the primary got its whole body");
        let s = by_case(&shadows, i);
        assert!(s.body.is_empty(), "{what}: shadow body {} bytes", s.body.len());
        for secret in ["big-secret-pw", "gz-secret", "broken-secret", "text-secret"] {
            assert!(!wire_text(s).contains(secret), "{what}");
        }
    }
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.dropped_oversize").unwrap(), Some(2));
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.dropped_unreadable").unwrap(), Some(3));
    let log = envoy.log();
    assert!(log.contains("body dropped: body larger than 65536 bytes"), "{log}");
    assert!(!log.contains("big-secret-pw") && !log.contains("broken-secret"));
}

/// A request marked `transfer-encoding: chunked` is sent in chunks.
fn chunk_if_asked(request: Request) -> Request {
    if !request.headers.iter().any(|(k, _)| k == "transfer-encoding") {
        return request;
    }
    let mut body = Vec::new();
    for piece in request.body.chunks(16 * 1024) {
        body.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        body.extend_from_slice(piece);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    Request { body, ..request }
}

#[test]
fn in_reject_mode_an_unreadable_shadow_never_arrives() {
    let (envoy, primary, shadow) = standalone(&json!({ "onUnsanitizable": "reject" }));
    let gz = Request::post("/", b"\x1f\x8bsecret".to_vec()).header("content-type", "application/json").header("content-encoding", "gzip");
    let broken = Request::post("/", r#"{"password":"broken-secret""#).header("content-type", "application/json");
    let fine = json_post("/", &json!({ "a": 1 }));
    for r in [&gz, &broken, &fine] {
        assert_eq!(envoy.send(r).unwrap().status, 200);
    }
    assert_eq!(primary.wait_for(3, WAIT).unwrap().len(), 3);
    // The fine one arrives; give the refused ones time to show up if they could.
    shadow.wait_for(1, WAIT).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let shadows = shadow.received();
    assert!(shadows.iter().all(|s| !wire_text(s).contains("secret")), "{shadows:?}");
    assert_eq!(shadows.iter().filter(|s| !s.body.is_empty()).count(), 1, "{shadows:?}");
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.rejected").unwrap(), Some(2));
}

#[test]
fn a_marker_header_from_the_mirror_policy_when_the_suffix_is_off() {
    let primary = Upstream::start(Script::ok("primary")).unwrap();
    let shadow = Upstream::start(Script::ok("shadow")).unwrap();
    let config = json!({ "shadow": { "match": "header", "header": "x-mirror-shadow" } });
    let mut route = Route::prefix("/", "primary");
    route.0["route"]["request_mirror_policies"] = json!([{
        "cluster": "shadow",
        "disable_shadow_host_suffix_append": true,
        "request_headers_mutations": [{ "append": { "header": { "key": "x-mirror-shadow", "value": "1" } } }],
    }]);
    let bootstrap = Bootstrap::new().cluster("primary", primary.addr()).cluster("shadow", shadow.addr()).route(route).upstream_filter(sanitizer(&config));
    let envoy = Envoy::start(&bootstrap).unwrap();
    let request = json_post("/login?token=q-tok-1", &json!({ "password": "marker-pw" })).header("authorization", "Basic bWFya2VyOnB3");
    assert_eq!(envoy.send(&request).unwrap().status, 200);
    let p = &primary.wait_for(1, WAIT).unwrap()[0];
    let s = &shadow.wait_for(1, WAIT).unwrap()[0];
    assert_primary_exact(&request, p);
    assert_eq!(s.header("host"), Some("localhost"), "no suffix");
    assert_eq!(s.header("x-mirror-shadow"), None, "the marker is removed before the copy leaves");
    let text = wire_text(s);
    for secret in ["q-tok-1", "marker-pw", "bWFya2VyOnB3"] {
        assert!(!text.contains(secret), "{secret}: {text}");
    }
}

/// The Istio shape: a sidecar Envoy sends the primary to productpage and a
/// copy to an egress-gateway Envoy, where the WasmPlugin of the Istio example
/// puts the sanitizer, with its pluginConfig, in the gateway's ordinary HTTP
/// filter chain; the gateway forwards to the external service.
/// Returns (gateway, sidecar, productpage, external service).
fn istio_shape() -> (Envoy, Envoy, Upstream, Upstream) {
    let primary = Upstream::start(Script::ok("productpage")).unwrap();
    let external = Upstream::start(Script::ok("analysis.example.com")).unwrap();
    let gateway = Bootstrap::new().cluster("external", external.addr()).route(Route::prefix("/", "external")).filter(sanitizer(&istio_example_config()));
    let gateway = Envoy::start_json(&with_key(gateway.to_json())).unwrap();
    let sidecar = Bootstrap::new()
        .cluster("productpage", primary.addr())
        .cluster("egress-gateway", gateway.listener())
        .route(Route::prefix("/", "productpage").mirror_to("egress-gateway"));
    let sidecar = Envoy::start(&sidecar).unwrap();
    (gateway, sidecar, primary, external)
}

#[test]
fn istio_shape_the_egress_gateway_sanitizes_what_the_sidecar_mirrors() {
    let (gateway, sidecar, primary, external) = istio_shape();
    run_corpus(&sidecar, &primary, &external);
    assert_eq!(gateway.wasm_metric("mirror_sanitizer.shadow.sanitized").unwrap(), Some(corpus().len() as u64));
    // Traffic to the gateway that is not a mirror copy passes untouched.
    let direct = Request::get("/a?token=direct-tok").header("authorization", "Basic ZGlyZWN0").header("x-case", "direct");
    assert_eq!(gateway.send(&direct).unwrap().status, 200);
    let seen = external.wait_for(corpus().len() + 1, WAIT).unwrap();
    let d = by_case_name(&seen, "direct");
    assert_eq!(d.path, "/a?token=direct-tok");
    assert_eq!(d.header("authorization"), Some("Basic ZGlyZWN0"));
}

#[test]
fn a_listener_for_mirrored_traffic_only_sanitizes_everything_with_match_all() {
    let primary = Upstream::start(Script::ok("productpage")).unwrap();
    let external = Upstream::start(Script::ok("analysis")).unwrap();
    let gateway = Bootstrap::new().cluster("external", external.addr()).route(Route::prefix("/", "external")).filter(sanitizer(&json!({ "shadow": { "match": "all" } })));
    let gateway = Envoy::start(&gateway).unwrap();
    // The sidecar's copies carry no suffix: only `all` (or a marker) can tell.
    let mut route = Route::prefix("/", "productpage");
    route.0["route"]["request_mirror_policies"] = json!([{ "cluster": "egress-gateway", "disable_shadow_host_suffix_append": true }]);
    let sidecar = Envoy::start(&Bootstrap::new().cluster("productpage", primary.addr()).cluster("egress-gateway", gateway.listener()).route(route)).unwrap();
    let request = json_post("/login?access_token=all-tok-1", &json!({ "password": "all-pw-1", "note": "jane@example.com" })).header("cookie", "sid=all-sid-1");
    assert_eq!(sidecar.send(&request).unwrap().status, 200);
    assert_primary_exact(&request, &primary.wait_for(1, WAIT).unwrap()[0]);
    let s = &external.wait_for(1, WAIT).unwrap()[0];
    assert_eq!(s.header("host"), Some("localhost"));
    let text = wire_text(s);
    for secret in ["all-tok-1", "all-pw-1", "jane@example.com", "all-sid-1"] {
        assert!(!text.contains(secret), "{secret}: {text}");
    }
}

/// The `pluginConfig` of the WasmPlugin in `examples/istio/mirror-sanitizer.yaml`.
fn istio_example_config() -> Value {
    let path = e2e::workspace_root().join("examples/istio/mirror-sanitizer.yaml");
    let docs = e2e::crd::yaml_documents(&std::fs::read_to_string(path).unwrap()).unwrap();
    let plugin = docs.iter().find(|d| d["kind"] == "WasmPlugin").unwrap();
    assert_eq!(plugin["spec"]["vmConfig"]["env"][0]["name"], KEY_ENV);
    plugin["spec"]["pluginConfig"].clone()
}

#[test]
fn bodies_the_size_of_envoys_buffers_are_sanitized_or_dropped_never_stuck() {
    // Envoy's buffers hold 1 MiB by default, as does maxBodyBytes. The filter
    // takes each chunk of the copy out as it arrives, so Envoy's own limit
    // never trips on it (a filter that paused would see the copy answered 413
    // by Envoy, and lost).
    let (envoy, primary, shadow) = standalone(&config());
    let chunked = |body: &str| chunk_if_asked(Request::post("/big", body.to_string()).header("content-type", "application/json").header("transfer-encoding", "chunked"));
    // Just under the limit: the copy arrives whole, sanitized.
    let near = json!({ "password": "near-secret-pw", "pad": "y".repeat(1_000_000) }).to_string();
    assert_eq!(envoy.send(&chunked(&near)).unwrap().status, 200);
    assert_eq!(primary.wait_for(1, WAIT).unwrap()[0].body, near.as_bytes());
    let copy: Value = serde_json::from_slice(&shadow.wait_for(1, WAIT).unwrap()[0].body).unwrap();
    assert_eq!(copy, json!({ "pad": "y".repeat(1_000_000) }));
    // Three times the limit: the primary is whole, the copy goes on empty.
    let big = json!({ "password": "huge-secret-pw", "pad": "y".repeat(3 * 1024 * 1024) }).to_string();
    assert_eq!(envoy.send(&chunked(&big)).unwrap().status, 200);
    assert_eq!(primary.wait_for(2, WAIT).unwrap()[1].body, big.as_bytes());
    // Should the copy not come, what Envoy's shadow cluster and the filter
    // counted says where it stopped.
    let received = shadow.wait_for(2, WAIT).unwrap_or_else(|e| {
        let stats = envoy.admin_json("/stats?format=json").map(|v| v["stats"].as_array().cloned().unwrap_or_default());
        let named = |s: &Value| s["name"].as_str().is_some_and(|n| n.starts_with("cluster.shadow.upstream_") || n.contains("mirror_sanitizer"));
        let counted: Vec<Value> = stats.unwrap_or_default().into_iter().filter(|s| named(s) && s["value"].as_u64() != Some(0)).collect();
        panic!("{e}; stats: {counted:?}")
    });
    let s = &received[1];
    assert!(s.body.is_empty() && !wire_text(s).contains("huge-secret-pw"), "{} bytes", s.body.len());
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.dropped_oversize").unwrap(), Some(1));
    assert_eq!(envoy.wasm_metric("mirror_sanitizer.shadow.sanitized").unwrap(), Some(1));
}

fn by_case_name<'a>(received: &'a [Received], name: &str) -> &'a Received {
    received.iter().find(|r| r.header("x-case") == Some(name)).unwrap()
}

/// The plugin configuration of `examples/envoy/mirror-sanitizer.yaml`.
fn envoy_example_config() -> Value {
    fn find(v: &Value) -> Option<Value> {
        match v {
            Value::Object(map) => {
                if let Some(text) = map.get("configuration").and_then(|c| c.get("value")).and_then(Value::as_str) {
                    return serde_json::from_str(text).ok();
                }
                map.values().find_map(find)
            }
            Value::Array(items) => items.iter().find_map(find),
            _ => None,
        }
    }
    let path = e2e::workspace_root().join("examples/envoy/mirror-sanitizer.yaml");
    let docs = e2e::crd::yaml_documents(&std::fs::read_to_string(path).unwrap()).unwrap();
    docs.iter().find_map(find).unwrap()
}

/// What the corpus left in the shadow: secrets found there, strings that
/// should have survived and did not.
struct Tally {
    requests: usize,
    secrets: usize,
    survivors: usize,
    leaks: Vec<String>,
    missing: Vec<String>,
}

/// Sends the whole corpus byte for byte; the primary must get each request
/// as sent; the shadow is searched in every reading.
fn run_whole_corpus(label: &str, envoy: &Envoy, primary: &Upstream, shadow: &Upstream) -> Tally {
    let cases = corpus::load();
    assert!(cases.len() >= 300, "{} requests", cases.len());
    let requests: Vec<Request> = cases.iter().enumerate().map(|(id, (_, c))| c.request(id)).collect();
    for (r, (place, c)) in requests.iter().zip(&cases) {
        let response = envoy.send(r).unwrap();
        assert_eq!(response.status, 200, "{place}/{}: {}", c.name, response.body_text());
    }
    let primaries = primary.wait_for(cases.len(), Duration::from_secs(60)).unwrap();
    let shadows = shadow.wait_for(cases.len(), Duration::from_secs(60)).unwrap();
    let mut tally = Tally { requests: cases.len(), secrets: 0, survivors: 0, leaks: Vec::new(), missing: Vec::new() };
    for (id, ((place, c), sent)) in cases.iter().zip(&requests).enumerate() {
        let p = by_case(&primaries, id);
        assert_eq!((&p.path, &p.body), (&sent.path, &sent.body), "{place}/{}: the primary changed", c.name);
        let readings = corpus::readings(by_case(&shadows, id));
        for secret in c.secrets() {
            tally.secrets += 1;
            if corpus::found(&readings, &secret) {
                tally.leaks.push(format!("{place}/{}: {secret:?}", c.name));
            }
        }
        for keep in &c.survive {
            tally.survivors += 1;
            if !corpus::found(&readings, keep) {
                tally.missing.push(format!("{place}/{}: {keep:?}", c.name));
            }
        }
    }
    println!(
        "{label}: {} requests, {} secrets, {} strings to keep: {} leaked, {} over-redacted",
        tally.requests,
        tally.secrets,
        tally.survivors,
        tally.leaks.len(),
        tally.missing.len()
    );
    tally
}

fn assert_clean(t: &Tally) {
    assert!(t.leaks.is_empty() && t.missing.is_empty(), "leaked:\n{}\nover-redacted:\n{}", t.leaks.join("\n"), t.missing.join("\n"));
}

#[test]
fn corpus_standalone_with_the_shipped_example_nothing_secret_reaches_the_shadow() {
    let (envoy, primary, shadow) = standalone(&envoy_example_config());
    assert_clean(&run_whole_corpus("corpus, standalone upstream filter", &envoy, &primary, &shadow));
}

#[test]
fn corpus_istio_shape_with_the_shipped_example_nothing_secret_reaches_the_external_service() {
    let (_gateway, sidecar, primary, external) = istio_shape();
    assert_clean(&run_whole_corpus("corpus, Istio egress gateway", &sidecar, &primary, &external));
}

#[test]
fn corpus_control_without_the_filter_every_secret_is_found() {
    // Proves the search: with no sanitizer, each secret and each string to
    // keep is found in the shadow.
    let primary = Upstream::start(Script::ok("primary")).unwrap();
    let shadow = Upstream::start(Script::ok("shadow")).unwrap();
    let bootstrap = Bootstrap::new().cluster("primary", primary.addr()).cluster("shadow", shadow.addr()).route(Route::prefix("/", "primary").mirror_to("shadow"));
    let envoy = Envoy::start(&bootstrap).unwrap();
    let t = run_whole_corpus("corpus, control run without the filter", &envoy, &primary, &shadow);
    assert_eq!(t.leaks.len(), t.secrets, "secrets the search did not find unsanitized");
    assert!(t.missing.is_empty(), "{}", t.missing.join("\n"));
}

/// The allowlist posture, for mirrors to external services: the shipped
/// example's rules (the path segments an id sits in are named only by their
/// templates) with an allowlist on top: only `page`, `sort`, `lang` and
/// `quantity` keep their values, and of the headers beyond the default
/// ones only `x-case`, which names the corpus request.
fn allowlist_config() -> Value {
    let mut config = envoy_example_config();
    config["allowlist"] = json!({ "names": ["page", "sort", "lang", "quantity"], "headers": ["x-case"] });
    config
}

/// A JSON document's shape: keys, array lengths and the type of each value.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(shape).collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => Value::Null,
    }
}

/// Whether shape `got` is `sent` but for what rules do: a rule in `remove`
/// mode takes its key out, a masked or hashed scalar becomes the rule's
/// placeholder or pseudonym, a string. What the allowlist itself masks keeps
/// its type.
fn fits(got: &Value, sent: &Value) -> bool {
    match (got, sent) {
        (Value::Object(g), Value::Object(s)) => g.iter().all(|(k, v)| s.get(k).is_some_and(|w| fits(v, w))),
        (Value::Array(g), Value::Array(s)) => g.len() == s.len() && g.iter().zip(s).all(|(v, w)| fits(v, w)),
        (g, s) => g == s || (*g == json!("string") && !s.is_object() && !s.is_array()),
    }
}

#[test]
fn corpus_standalone_allowlist_posture_no_secret_and_every_json_body_keeps_its_structure() {
    let (envoy, primary, shadow) = standalone(&allowlist_config());
    let t = run_whole_corpus("corpus, standalone, allowlist posture", &envoy, &primary, &shadow);
    assert!(t.leaks.is_empty(), "leaked:\n{}", t.leaks.join("\n"));
    // Failing closed masks most strings the corpus keeps (that is the
    // posture), but the shadow service can still parse every JSON body: its
    // keys, array lengths and value types stay, but for what rules change.
    let cases = corpus::load();
    let shadows = shadow.received();
    let mut json_bodies = 0;
    for (id, (place, c)) in cases.iter().enumerate() {
        let Some(sent) = c.body.as_deref().and_then(|b| serde_json::from_str::<Value>(b).ok()) else { continue };
        let json = c.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("content-type") && v.contains("json"));
        if !json {
            continue;
        }
        json_bodies += 1;
        let seen = by_case(&shadows, id);
        let got: Value = serde_json::from_slice(&seen.body).unwrap_or_else(|e| panic!("{place}/{}: the shadow body is not JSON: {e}", c.name));
        assert!(fits(&shape(&got), &shape(&sent)), "{place}/{}: the shadow body's shape changed:\n{}\nsent:\n{}", c.name, shape(&got), shape(&sent));
    }
    assert!(json_bodies >= 100, "{json_bodies} JSON bodies");
    println!("allowlist posture: {json_bodies} JSON bodies kept their shape; {} of {} strings to keep were masked", t.missing.len(), t.survivors);
}
