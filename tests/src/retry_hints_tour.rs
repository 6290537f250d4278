//! The `make demo` tour of retry-hints: a real Envoy whose router takes
//! retry orders from internal callers, with the filter in front of it; a
//! flaky backend, an unsafe POST, a client ordering ten retries, and a
//! burst against a backend failing every other request to show the budget.

use crate::client::Request;
use crate::envoy::{wasm_module, Envoy};
use crate::error::KitError;
use crate::mesh_router::mesh_router;
use crate::upstream::{Script, Upstream};
use crate::{tour, Bootstrap, Route, WasmFilter};
use serde_json::json;

/// Starts Envoy with one upstream and the filter.
fn start(script: Script, config: &serde_json::Value) -> Result<(Envoy, Upstream), KitError> {
    let upstream = Upstream::start(script)?;
    let filter = WasmFilter::new(wasm_module("retry_hints")?, "retry-hints", config);
    let bootstrap = Bootstrap::new().cluster("my-service", upstream.addr()).route(Route::prefix("/", "my-service")).filter(filter);
    Ok((Envoy::start_json(&mesh_router(&bootstrap))?, upstream))
}

fn show(envoy: &Envoy, upstream: &Upstream, label: &str, request: &Request) -> Result<(), KitError> {
    let before = upstream.received().len();
    tour::request(label, request);
    let response = envoy.send(request)?;
    let seen = upstream.received();
    tour::note(&format!("my-service was tried {} time(s)", seen.len() - before));
    tour::upstream("my-service (first attempt)", seen.get(before));
    tour::response(&response);
    Ok(())
}

pub fn tour() -> Result<(), KitError> {
    tour::section(
        "retry-hints",
        "adds Envoy's retry and timeout headers where a retry is safe, within a budget shared by the proxy's workers",
    );
    let config = json!({
        "rules": [{
            "name": "my-service",
            "retry": { "attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,connect-failure,refused-stream" },
            "timeout": "10s",
        }],
    });
    tour::note(&format!("pluginConfig: {config}"));
    let (envoy, upstream) = start(Script::fail_then_ok("my-service", 503, 2), &config)?;
    show(&envoy, &upstream, "a GET while my-service fails twice with 503", &Request::get("/orders"))?;
    let (envoy, upstream) = start(Script::fail_then_ok("my-service", 503, 1), &config)?;
    show(&envoy, &upstream, "a POST without an idempotency key, my-service answering 503", &Request::post("/orders", "{\"item\":7}"))?;
    let (envoy, upstream) = start(Script::fail_then_ok("my-service", 503, 100), &config)?;
    let ordering = Request::get("/orders").header("x-envoy-max-retries", "10").header("x-envoy-retry-on", "5xx");
    show(&envoy, &upstream, "a client ordering ten retries of a failing service", &ordering)?;

    let (envoy, upstream) = start(Script::cycle("my-service", &[503, 200]), &config)?;
    let requests = 1000;
    let mut ok = 0;
    for _ in 0..requests {
        ok += usize::from(envoy.send(&Request::get("/orders"))?.status == 200);
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let attempts = upstream.received().len();
    let exhausted = envoy.wasm_metric("retry_hints.budget_exhausted")?.unwrap_or(0);
    println!();
    tour::note(&format!(
        "{requests} GETs against my-service failing every other attempt: {attempts} attempts ({} retries; the budget \
         allows 20% of requests + 10/s over 10 s = {}), {ok} answered 200, {exhausted} sent with x-envoy-max-retries: 0",
        attempts - requests,
        requests / 5 + 100,
    ));
    Ok(())
}
