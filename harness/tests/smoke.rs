#![allow(clippy::unwrap_used)]
use harness::{Module, Plugin, PluginConfig, Request, SharedState, UpstreamResponse};
use serde_json::json;

fn stamp() -> Module {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/wasm32-wasip1/release/stamp_fixture.wasm");
    Module::load(path).unwrap()
}

#[test]
fn stamp_adds_headers() {
    let module = stamp();
    let config = PluginConfig::new("stamp").json(&json!({"requestHeaders": {"x-stamp": "v"}, "responseHeaders": {"x-r": "1"}}));
    let mut plugin = Plugin::start(&module, config, SharedState::new()).unwrap();
    let out = plugin.send(&Request::get("/a").header("x-in", "1"), &UpstreamResponse::ok().body("hi"));
    println!("{out:#?}");
    let up = out.upstream.as_ref().unwrap();
    assert_eq!(up.header("x-stamp"), Some("v"));
    assert_eq!(out.response.as_ref().unwrap().header("x-r"), Some("1"));
    assert!(out.route_cache_cleared);
    assert_eq!(plugin.shared.metrics().get("stamp.requests"), Some(&1));
}

#[test]
fn stamp_refuses_bad_config() {
    let module = stamp();
    let config = PluginConfig::new("stamp").configuration(r#"{"requestHeaders":{"X":"v"}}"#);
    let err = Plugin::start(&module, config, SharedState::new()).err().unwrap();
    println!("{err}");
    assert!(err.to_string().contains("requestHeaders.X"));
}
