//! The mirror-sanitizer part of `make demo`: a real Envoy sends each request
//! to productpage and a copy to an analysis service; the sanitizer, in the
//! router's upstream filter chain, cleans the copy only. The tour prints what
//! each side received.

use crate::bootstrap::{Bootstrap, Route, WasmFilter};
use crate::client::Request;
use crate::envoy::{wasm_module, Envoy};
use crate::error::KitError;
use crate::tour;
use crate::upstream::{Script, Upstream};
use serde_json::{json, Value};
use std::time::Duration;

const KEY_ENV: &str = "MIRROR_SANITIZER_HASH_KEY";

/// Gives every Wasm VM in the bootstrap the hash key (an operator sets it
/// from a secret; the demo makes one up).
pub fn with_key(mut config: Value, key: &str) -> Value {
    fn walk(v: &mut Value, key: &str) {
        match v {
            Value::Object(map) => {
                if let Some(vm) = map.get_mut("vm_config") {
                    vm["environment_variables"] = json!({ "key_values": { KEY_ENV: key } });
                }
                map.values_mut().for_each(|v| walk(v, key));
            }
            Value::Array(items) => items.iter_mut().for_each(|v| walk(v, key)),
            _ => {}
        }
    }
    walk(&mut config, key);
    config
}

pub fn mirror_sanitizer_tour() -> Result<(), KitError> {
    tour::section(
        "mirror-sanitizer",
        "productpage gets every request untouched; the mirrored copy for the analysis service loses its secrets",
    );
    let config = json!({
        "rules": [
            { "name": "user-id", "fields": ["user_id", "userId"], "pathSegments": ["/users/{id}"], "cookies": ["uid"], "mode": "hash" },
            { "name": "cards", "detectors": ["cardNumber"], "mode": "mask", "placeholder": "****", "keepLast": 4 },
        ],
        "hashKey": { "env": KEY_ENV },
        "maxBodyBytes": 65536,
    });
    tour::note(&format!("pluginConfig: {config}"));
    let productpage = Upstream::start(Script::ok("productpage"))?;
    let analysis = Upstream::start(Script::ok("analysis"))?;
    let filter = WasmFilter::new(wasm_module("mirror_sanitizer")?, "mirror-sanitizer", &config);
    let bootstrap = Bootstrap::new()
        .cluster("productpage", productpage.addr())
        .cluster("analysis", analysis.addr())
        .route(Route::prefix("/", "productpage").mirror_to("analysis"))
        .upstream_filter(filter);
    let envoy = Envoy::start_json(&with_key(bootstrap.to_json(), "demo-hash-key-0123456789abcdef"))?;
    let requests = [
        (
            "a login (password in the JSON body, credentials in headers)",
            Request::post("/login", r#"{"user":"jane","password":"hunter2","email":"jane.doe@example.com"}"#)
                .header("content-type", "application/json")
                .header("authorization", "Basic amFuZTpodW50ZXIy")
                .header("cookie", "uid=u-1001; session=s-8f7e6d"),
        ),
        (
            "an order (user id in the path and body, a card number, a phone number)",
            Request::post("/users/u-1001/orders?email=jane%40example.com", r#"{"userId":"u-1001","card":"4111 1111 1111 1111","phone":"+44 20 7946 0958","items":[{"sku":"A-1","qty":2}]}"#)
                .header("content-type", "application/json")
                .header("cookie", "uid=u-1001"),
        ),
        (
            "a form post",
            Request::post("/profile", "user_id=u-1001&password=hunter2&bio=call+me+at+%2B1+555-123-4567").header("content-type", "application/x-www-form-urlencoded"),
        ),
        (
            "a gzip body the sanitizer cannot read: the copy goes without it",
            Request::post("/upload", b"\x1f\x8b\x08\x00 compressed secrets".to_vec()).header("content-type", "application/json").header("content-encoding", "gzip"),
        ),
    ];
    for (i, (label, request)) in requests.iter().enumerate() {
        tour::request(label, request);
        let response = envoy.send(request)?;
        let primary = productpage.wait_for(i + 1, Duration::from_secs(10))?;
        let shadow = analysis.wait_for(i + 1, Duration::from_secs(10))?;
        tour::upstream("productpage", primary.last());
        tour::upstream("analysis (the mirrored copy)", shadow.last());
        tour::response(&response);
    }
    println!();
    for name in ["shadow.sanitized", "shadow.dropped_unreadable", "rule.user-id.redactions", "rule.builtin-headers.redactions"] {
        let value = envoy.wasm_metric(&format!("mirror_sanitizer.{name}"))?.unwrap_or(0);
        tour::note(&format!("metric mirror_sanitizer.{name} = {value}"));
    }
    Ok(())
}
