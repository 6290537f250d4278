//! The compiled module in the harness: primaries pass untouched with one
//! host call, shadow copies lose their secrets (headers, cookies, path,
//! query, JSON / form / multipart bodies, split across callbacks), bodies it
//! cannot read are dropped or refused, pseudonyms are keyed from the VM
//! environment, and bad configurations stop the plugin.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use harness::{Module, Outcome, Plugin, PluginConfig, Request, SharedState, UpstreamResponse};
use serde_json::{json, Value};

fn module() -> Module {
    Module::built("mirror_sanitizer").unwrap_or_else(|e| panic!("{e}"))
}

const KEY_ENV: &str = "MIRROR_SANITIZER_HASH_KEY";
const KEY: &str = "test-key-0123456789abcdef";

fn start(config: &Value) -> Result<Plugin, harness::HarnessError> {
    Plugin::start(&module(), PluginConfig::new("mirror-sanitizer").json(config).env(KEY_ENV, KEY), SharedState::new())
}

fn plugin(config: Value) -> Plugin {
    start(&config).unwrap()
}

fn config() -> Value {
    json!({
        "rules": [
            { "name": "user-id", "fields": ["user_id", "userId"], "pathSegments": ["/users/{id}"], "cookies": ["uid"], "mode": "hash" },
            { "name": "card", "detectors": ["cardNumber"], "mode": "mask", "placeholder": "****", "keepLast": 4 },
        ],
        "hashKey": { "env": KEY_ENV },
    })
}

const SHADOW: &str = "127.0.0.1-shadow:28080";

fn order_body() -> String {
    json!({
        "userId": "u-1234",
        "email": "jane.doe@example.com",
        "password": "hunter2",
        "payment": { "card": "4111 1111 1111 1111", "iban": "DE89370400440532013000" },
        "items": [{ "sku": "A-1", "qty": 2 }],
    })
    .to_string()
}

fn order(authority: &str) -> Request {
    Request::post("/users/u-1234/orders?email=jane%40example.com&page=2", order_body())
        .header("host", authority)
        .header("content-type", "application/json")
        .header("authorization", "Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEyMzQifQ.c2ln")
        .header("cookie", "uid=u-1234; theme=dark")
        .header("x-api-key", "k-123")
        .header("user-agent", "shop/1.0")
}

fn seen_text(out: &Outcome) -> String {
    let up = out.upstream.as_ref().unwrap();
    format!("{} {} {:?} {}", up.method, up.path, up.headers, up.body_text())
}

#[test]
fn the_primary_passes_untouched_with_one_host_call() {
    let mut p = plugin(config());
    let request = order("127.0.0.1:28080");
    let out = p.send(&request, &UpstreamResponse::ok());
    let up = out.upstream.unwrap();
    assert_eq!(up.path, request.path);
    assert_eq!(up.authority, "127.0.0.1:28080");
    let mut sent: Vec<(String, String)> = request.header_map().into_iter().filter(|(k, _)| !k.starts_with(':')).map(|(k, v)| (k, String::from_utf8(v).unwrap())).collect();
    // Envoy's router adds its timeout header after the filters.
    sent.push(("x-envoy-expected-rq-timeout-ms".into(), "15000".into()));
    assert_eq!(up.headers, sent);
    assert_eq!(up.body, order_body().as_bytes());
    let calls: u64 = out.host_calls.values().sum();
    assert_eq!(calls, 1, "{:?}", out.host_calls);
    assert_eq!(out.host_calls.get("proxy_get_header_map_value"), Some(&1));
    // Never buffered or held: every callback lets the request go on.
    assert!(out.callbacks.iter().all(|c| c.action != Some(harness::abi::Action::Pause)), "{:?}", out.callbacks);
}

#[test]
fn a_shadow_copy_loses_its_secrets_and_keeps_its_shape() {
    let mut p = plugin(config());
    let out = p.send(&order(SHADOW), &UpstreamResponse::ok());
    let up = out.upstream.clone().unwrap();
    let text = seen_text(&out);
    for secret in ["u-1234", "jane", "hunter2", "4111 1111 1111 1111", "DE89370400440532013000", "eyJhbGci", "k-123"] {
        assert!(!text.contains(secret), "{secret} reached the shadow: {text}");
    }
    assert!(up.path.starts_with("/users/hmac-") && up.path.ends_with("/orders?email=REDACTED&page=2"), "{}", up.path);
    assert_eq!(up.header("authorization"), None);
    assert_eq!(up.header("x-api-key"), None);
    assert_eq!(up.header("content-length"), None, "the body changed size");
    assert_eq!(up.header("user-agent"), Some("shop/1.0"));
    let cookie = up.header("cookie").unwrap();
    assert!(cookie.starts_with("uid=hmac-") && !cookie.contains("theme"), "{cookie}");
    let body: Value = serde_json::from_slice(&up.body).unwrap();
    assert_eq!(body["payment"]["card"], "****1111");
    assert_eq!(body["email"], "REDACTED");
    assert!(body.get("password").is_none());
    assert_eq!(body["items"], json!([{ "sku": "A-1", "qty": 2 }]));
    // One user, one pseudonym: path, cookie and body agree.
    let pseudonym = body["userId"].as_str().unwrap();
    assert!(pseudonym.starts_with("hmac-"));
    assert!(up.path.contains(pseudonym) && cookie.contains(pseudonym));
    // No connection properties: in an upstream filter Envoy 1.40 crashes on source.address.
    assert_eq!(out.host_calls.get("proxy_get_property"), None);
    let m = p.shared.metrics();
    assert_eq!(m.get("mirror_sanitizer.shadow.sanitized"), Some(&1));
    assert_eq!(m.get("mirror_sanitizer.rule.user-id.redactions"), Some(&3));
    assert_eq!(m.get("mirror_sanitizer.rule.card.redactions"), Some(&1));
    assert_eq!(m.get("mirror_sanitizer.rule.builtin-headers.redactions"), Some(&2));
}

#[test]
fn pseudonyms_are_stable_across_requests_and_vms_and_keyed() {
    let hash = |p: &mut Plugin| {
        let out = p.send(&order(SHADOW), &UpstreamResponse::ok());
        let body: Value = serde_json::from_slice(&out.upstream.unwrap().body).unwrap();
        body["userId"].as_str().unwrap().to_string()
    };
    let mut a = plugin(config());
    let mut b = plugin(config());
    let first = hash(&mut a);
    assert_eq!(first, hash(&mut a));
    assert_eq!(first, hash(&mut b));
    let other_key = PluginConfig::new("mirror-sanitizer").json(&config()).env(KEY_ENV, "another-key-0123456789");
    let mut c = Plugin::start(&module(), other_key, SharedState::new()).unwrap();
    assert_ne!(first, hash(&mut c));
    let logs: String = a.logs().iter().chain(c.logs()).map(|l| l.message.clone()).collect();
    assert!(!logs.contains(KEY), "the key was logged");
}

#[test]
fn a_body_split_across_callbacks_is_collected_whole() {
    let mut p = plugin(config());
    let body = order_body();
    let (a, b) = body.split_at(body.find("4111").unwrap() + 7);
    let request = Request::post("/orders", "").header("host", SHADOW).header("content-type", "application/json").chunks([a, b]);
    let out = p.send(&request, &UpstreamResponse::ok());
    let up = out.upstream.clone().unwrap();
    assert!(!up.body_text().contains("4111") && !up.body_text().contains("hunter2"), "{}", up.body_text());
    // The filter takes each chunk out (Envoy's buffer limit never trips on a
    // copy), passes the emptied chunk on, and hands the whole sanitized body
    // to the last callback; it holds the emptied chunks only when the request
    // announced trailers.
    let body_actions = |out: &harness::Outcome| -> Vec<_> { out.callbacks.iter().filter(|c| c.callback == "proxy_on_request_body").map(|c| c.action).collect() };
    assert_eq!(body_actions(&out), [Some(harness::abi::Action::Continue); 3]);
    let v: Value = serde_json::from_slice(&up.body).unwrap();
    assert_eq!(v["items"], json!([{ "sku": "A-1", "qty": 2 }]));
    assert_eq!(v["payment"]["card"], "****1111");
    let announced = p.send(&request.clone().header("trailer", "x-checksum"), &UpstreamResponse::ok());
    assert_eq!(body_actions(&announced), [Some(harness::abi::Action::Pause), Some(harness::abi::Action::Pause), Some(harness::abi::Action::Continue)]);
    assert_eq!(announced.upstream.unwrap().body, up.body);
}

#[test]
fn one_read_larger_than_envoys_buffer_limit_leaves_the_copy_empty_not_lost() {
    // A fast HTTP/1 upload can reach the filter as one chunk over Envoy's
    // 1 MiB buffer limit. Passed on emptied, the chunks never count against
    // it; held (trailers announced), Envoy adds the next chunk to what it
    // holds before the filter sees it, and answers 413: the copy is lost.
    let mut p = plugin(config());
    let big = format!("{{\"pad\":\"{}\"}}", "y".repeat(2 * 1024 * 1024));
    // Chunked, as such an upload comes: no content-length to go by.
    let request = Request::post("/big", "").header("host", SHADOW).header("content-type", "application/json").header("transfer-encoding", "chunked").chunks(["{\"a\":1,", &big[1..]]);
    let out = p.send(&request, &UpstreamResponse::ok());
    assert_eq!(out.status(), 200);
    assert!(out.upstream.unwrap().body.is_empty(), "dropped as oversize, sent on empty");
    assert_eq!(p.shared.metrics().get("mirror_sanitizer.shadow.dropped_oversize"), Some(&1));
    let held = p.send(&request.clone().header("trailer", "x-checksum").trailer("x-checksum", "abc"), &UpstreamResponse::ok());
    assert_eq!(held.status(), 413, "{:?}", held.local_response);
    assert!(held.upstream.is_none());
}

#[test]
fn form_and_multipart_bodies() {
    let mut p = plugin(config());
    let form = Request::post("/login", "user=jane&password=hunter2&user_id=u-1234&note=call+%2B1+(555)+123-4567")
        .header("host", SHADOW)
        .header("content-type", "application/x-www-form-urlencoded");
    let up = p.send(&form, &UpstreamResponse::ok()).upstream.unwrap();
    let text = up.body_text();
    assert!(text.starts_with("user=jane&user_id=hmac-") && text.ends_with("&note=call%20REDACTED"), "{text}");
    let multipart = "--b1\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2\r\n--b1\r\nContent-Disposition: form-data; name=\"bio\"\r\n\r\nmail me: jane@example.com\r\n--b1--\r\n";
    let request = Request::post("/profile", multipart).header("host", SHADOW).header("content-type", "multipart/form-data; boundary=b1");
    let up = p.send(&request, &UpstreamResponse::ok()).upstream.unwrap();
    assert_eq!(up.body_text(), "--b1\r\nContent-Disposition: form-data; name=\"bio\"\r\n\r\nmail me: REDACTED\r\n--b1--\r\n");
}

#[test]
fn unsanitizable_bodies_are_dropped_and_counted() {
    let mut p = plugin(json!({ "maxBodyBytes": 64 }));
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(100));
    let cases = [
        ("oversize by content-length", Request::post("/", big.clone()).header("content-type", "application/json"), "body larger than 64 bytes"),
        ("oversize as it arrives", Request::post("/", "").header("content-type", "application/json").chunks([&big[..40], &big[40..80], &big[80..]]), "body larger than 64 bytes"),
        ("gzip", Request::post("/", "\u{1f}\u{8b}secret").header("content-type", "application/json").header("content-encoding", "gzip"), "content-encoding \"gzip\""),
        ("broken JSON", Request::post("/", "{\"password\":\"hunter2\"").header("content-type", "application/json"), "JSON does not parse"),
        ("unknown type", Request::post("/", "password=hunter2").header("content-type", "text/plain"), "content-type \"text/plain\""),
        ("no type", Request::post("/", "password=hunter2"), "without a content-type"),
    ];
    for (what, request, logged) in cases {
        let out = p.send(&request.header("host", SHADOW), &UpstreamResponse::ok());
        assert_eq!(out.status(), 200, "{what}");
        let up = out.upstream.as_ref().unwrap();
        assert!(up.body.is_empty(), "{what}: {:?}", up.body_text());
        assert!(out.logged(logged), "{what}: {:?}", out.logs);
        assert!(!out.logs.iter().any(|(_, l)| l.message.contains("hunter2") || l.message.contains("xxxx")), "{what}: data logged");
    }
    let m = p.shared.metrics();
    assert_eq!(m.get("mirror_sanitizer.shadow.dropped_oversize"), Some(&2));
    assert_eq!(m.get("mirror_sanitizer.shadow.dropped_unreadable"), Some(&4));
    assert_eq!(m.get("mirror_sanitizer.shadow.sanitized"), Some(&0));
    let gz = p.send(&Request::post("/", "x").header("host", SHADOW).header("content-type", "application/json").header("content-encoding", "gzip"), &UpstreamResponse::ok());
    assert_eq!(gz.upstream.unwrap().header("content-encoding"), None, "an empty body is not gzip");
    // The primary with the same bodies passes whole.
    let out = p.send(&Request::post("/", big.clone()).header("content-type", "application/json").header("content-encoding", "gzip"), &UpstreamResponse::ok());
    assert_eq!(out.upstream.unwrap().body, big.as_bytes());
}

#[test]
fn in_reject_mode_the_shadow_request_never_reaches_its_upstream() {
    let mut p = plugin(json!({ "onUnsanitizable": "reject" }));
    let gz = Request::post("/", "x").header("host", SHADOW).header("content-type", "application/json").header("content-encoding", "gzip");
    let out = p.send(&gz, &UpstreamResponse::ok());
    assert!(out.upstream.is_none());
    assert_eq!(out.status(), 403);
    let broken = Request::post("/", "{").header("host", SHADOW).header("content-type", "application/json");
    let out = p.send(&broken, &UpstreamResponse::ok());
    let leaked = out.upstream.as_ref().is_some_and(|u| !u.body.is_empty());
    assert!(!leaked, "{:?}", out.upstream);
    assert_eq!(out.status(), 403);
    assert_eq!(p.shared.metrics().get("mirror_sanitizer.shadow.rejected"), Some(&2));
}

#[test]
fn a_marker_header_or_every_request() {
    let mut p = plugin(json!({ "shadow": { "match": "header", "header": "x-shadow-copy" } }));
    let marked = Request::get("/?token=abc&q=1").header("x-shadow-copy", "1").header("authorization", "Basic eA==");
    let up = p.send(&marked, &UpstreamResponse::ok()).upstream.unwrap();
    assert_eq!(up.path, "/?q=1");
    assert_eq!(up.header("x-shadow-copy"), None, "the marker does not leave");
    assert_eq!(up.header("authorization"), None);
    let plain = p.send(&Request::get("/?token=abc").header("authorization", "Basic eA=="), &UpstreamResponse::ok()).upstream.unwrap();
    assert_eq!(plain.path, "/?token=abc");

    let mut all = plugin(json!({ "shadow": { "match": "all" } }));
    let out = all.send(&Request::get("/?token=abc"), &UpstreamResponse::ok());
    assert_eq!(out.upstream.unwrap().path, "/");
}

#[test]
fn a_bad_configuration_stops_the_plugin_naming_the_field() {
    let err = start(&json!({ "rules": [{ "pathSegments": ["/users/{id}"], "mode": "remove" }] })).err().unwrap();
    assert!(err.to_string().contains("rules[0].pathSegments[0]: a path segment cannot be removed"), "{err}");
    let no_env = PluginConfig::new("mirror-sanitizer").json(&json!({ "hashKey": { "env": "NOT_SET_ANYWHERE" } }));
    let err = Plugin::start(&module(), no_env, SharedState::new()).err().unwrap();
    assert!(err.to_string().contains("hashKey.env: the VM environment variable \"NOT_SET_ANYWHERE\" is not set"), "{err}");
}

#[test]
fn hostile_bodies_never_trap() {
    let mut p = plugin(config());
    let deep = "[".repeat(100_000);
    let bodies: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", deep.into_bytes()),
        ("application/json", vec![0xff; 1000]),
        ("application/json", b"\"\\ud800\\u0041\"".to_vec()),
        ("multipart/form-data; boundary=z", b"--z\r\n\r\n--z".to_vec()),
        ("application/x-www-form-urlencoded", b"%%%&&==%ff%fe".to_vec()),
    ];
    for (ct, body) in bodies {
        let out = p.send(&Request::post("/", body).header("host", SHADOW).header("content-type", ct), &UpstreamResponse::ok());
        assert!(out.trap.is_none(), "{ct}: {:?}", out.trap);
        assert_eq!(out.status(), 200);
    }
}

#[test]
fn a_shadow_body_that_ends_in_trailers_is_sanitized_and_its_trailers_too() {
    let mut p = plugin(config());
    let request = Request::post("/", "")
        .chunks([r#"{"password":"#, r#""trailer-secret","note":"kept"}"#])
        .header("host", SHADOW)
        .header("content-type", "application/json")
        .header("trailer", "x-checksum, x-auth-token, x-note")
        .trailer("x-checksum", "abc")
        .trailer("x-auth-token", "trailer-token")
        .trailer("x-note", "card 4111 1111 1111 1111");
    let out = p.send(&request, &UpstreamResponse::ok());
    assert_eq!(out.status(), 200);
    let up = out.upstream.unwrap();
    assert_eq!(up.body_text(), r#"{"note":"kept"}"#, "the body, sanitized, ahead of the trailers");
    let trailer = |name: &str| up.trailers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    assert_eq!(trailer("x-checksum"), Some("abc"));
    assert_eq!(trailer("x-auth-token"), None, "removed by the built-in header rule");
    assert!(!trailer("x-note").unwrap().contains("4111 1111"), "{up:?}");
    assert_eq!(p.shared.metrics().get("mirror_sanitizer.shadow.sanitized"), Some(&1));
    // A body it cannot read is dropped ahead of the trailers, as at an end of stream.
    let broken = Request::post("/", "").chunks([r#"{"password":"#, r#""trailer-secret""#]).header("host", SHADOW).header("content-type", "application/json").header("trailer", "x-checksum").trailer("x-checksum", "abc");
    let out = p.send(&broken, &UpstreamResponse::ok());
    let up = out.upstream.unwrap();
    assert!(up.body.is_empty(), "{up:?}");
    assert_eq!(up.trailers, [("x-checksum".to_string(), "abc".to_string())]);
    assert_eq!(p.shared.metrics().get("mirror_sanitizer.shadow.dropped_unreadable"), Some(&1));
    // Trailers nobody announced: the chunks went on emptied, so the body is gone, the trailers stay sanitized.
    let unannounced = Request::post("/", "").chunks([r#"{"note":"#, r#""kept"}"#]).header("host", SHADOW).header("content-type", "application/json").trailer("x-checksum", "abc").trailer("x-auth-token", "t");
    let out = p.send(&unannounced, &UpstreamResponse::ok());
    let up = out.upstream.unwrap();
    assert!(up.body.is_empty(), "{up:?}");
    assert_eq!(up.trailers, [("x-checksum".to_string(), "abc".to_string())]);
    assert_eq!(p.shared.metrics().get("mirror_sanitizer.shadow.dropped_unreadable"), Some(&2));
    // The primary with trailers passes whole.
    let primary = Request::post("/", "").chunks([r#"{"password":"#, r#""x"}"#]).header("content-type", "application/json").trailer("x-auth-token", "t");
    let out = p.send(&primary, &UpstreamResponse::ok());
    let up = out.upstream.unwrap();
    assert_eq!((up.body_text().as_str(), up.trailers.len()), (r#"{"password":"x"}"#, 1));
}
