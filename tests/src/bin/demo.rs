//! `make demo`: starts the real Envoy with the project's modules loaded and
//! upstream servers on loopback, sends a scripted tour of requests, prints
//! what happened, and stops everything.

use e2e::{tour, wasm_module, Bootstrap, Envoy, KitError, Request, Script, Upstream, WasmFilter};
use serde_json::json;
use std::process::ExitCode;

fn main() -> ExitCode {
    println!("Demo: a real Envoy 1.40 with this project's Wasm modules, upstreams on loopback.");
    match stamp_tour() {
        Ok(()) => {
            println!("\nDemo finished: Envoy and the upstreams are stopped.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("\ndemo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The kit's fixture module; each filter adds its own tour beside this one.
fn stamp_tour() -> Result<(), KitError> {
    tour::section(
        "stamp (test fixture)",
        "sets the headers its configuration names on each request and response",
    );
    let backend = Upstream::start(Script::ok("backend"))?;
    let config = json!({ "requestHeaders": { "x-stamp": "hello" }, "responseHeaders": { "x-stamped": "yes" } });
    tour::note(&format!("pluginConfig: {config}"));
    let filter = WasmFilter::new(wasm_module("stamp_fixture")?, "stamp", &config);
    let envoy = Envoy::start(&Bootstrap::to_upstream(backend.addr()).filter(filter))?;

    let requests = [
        ("a plain GET", Request::get("/hello").header("user-agent", "demo/1.0")),
        ("a POST with a body", Request::post("/orders", r#"{"item":"book"}"#).header("content-type", "application/json")),
    ];
    for (i, (label, request)) in requests.iter().enumerate() {
        tour::request(label, request);
        let response = envoy.send(request)?;
        tour::upstream("backend", backend.received().get(i));
        tour::response(&response);
    }
    let count = envoy.wasm_metric("stamp.requests")?.unwrap_or(0);
    println!();
    tour::note(&format!("metric stamp.requests (Prometheus: stamp_requests) = {count}"));
    Ok(())
}
