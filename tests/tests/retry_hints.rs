//! retry-hints in the real Envoy 1.40: what Envoy reports of its attempts
//! and accepts under `strict_check_headers`; retries that turn failures into
//! 200s, none for an unsafe POST, a retry on a per-try timeout, the budget
//! holding under a steady load against a backend failing half the time
//! (two workers, one budget), and a client that cannot order retries.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use e2e::differential::Case;
use e2e::mesh_router::mesh_router;
use e2e::{wasm_module, Bootstrap, Envoy, Request, Route, Script, Upstream, WasmFilter};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Envoy as a mesh proxy runs it: callers internal (their `x-envoy-*`
/// orders would stand) and the router checking retry headers strictly.
fn strict_envoy(bootstrap: &Bootstrap) -> Envoy {
    Envoy::start_json(&mesh_router(bootstrap)).unwrap()
}

fn filter(config: &Value) -> WasmFilter {
    WasmFilter::new(wasm_module("retry_hints").unwrap(), "retry-hints", config)
}

fn users() -> Value {
    json!({
        "rules": [{
            "name": "my-service",
            "retry": { "attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,connect-failure,refused-stream" },
            "timeout": "10s",
        }],
    })
}

/// One upstream behind one route (with the route's own retry policy, if
/// given, as a VirtualService would set it) and the filter.
fn setup(script: Script, config: &Value, route_retries: Option<(&str, u32)>) -> (Envoy, Upstream) {
    let upstream = Upstream::start(script).unwrap();
    let mut route = Route::prefix("/", "upstream");
    if let Some((on, n)) = route_retries {
        route = route.retries(on, n);
    }
    let bootstrap = Bootstrap::new().cluster("upstream", upstream.addr()).route(route).filter(filter(config));
    (strict_envoy(&bootstrap), upstream)
}

/// Log-time work (charging the budget) runs just after the client has its answer.
fn settle() {
    thread::sleep(Duration::from_millis(300));
}

#[test]
fn envoy_reports_the_attempts_it_made_at_response_and_log_time() {
    // The probe copies the attempt count at each stage where a filter can
    // read it; the log-time value reaches the next response via shared data.
    let read = |to: Value| json!({ "getProperty": { "path": ["upstream", "request_attempt_count"], "as": "int64", "to": to } });
    let probe = json!({
        "onRequestHeaders": [read(json!({ "map": "request", "name": "x-attempts-at-request" }))],
        "onResponseHeaders": [
            read(json!({ "map": "response", "name": "x-attempts" })),
            { "getSharedData": { "key": "logged", "to": { "map": "response", "name": "x-attempts-logged-before" } } },
        ],
        "onLog": [read(json!({ "sharedData": "logged" }))],
    });
    let upstream = Upstream::start(Script::fail_then_ok("u", 503, 2)).unwrap();
    let bootstrap = Bootstrap::new()
        .cluster("upstream", upstream.addr())
        .route(Route::prefix("/app", "upstream").retries("5xx", 3))
        .filter(WasmFilter::new(wasm_module("probe_fixture").unwrap(), "probe", &probe));
    let envoy = Envoy::start(&bootstrap).unwrap();
    let first = envoy.send(&Request::get("/app")).unwrap();
    assert_eq!((first.status, first.header("x-attempts")), (200, Some("3")), "two 503s retried");
    assert_eq!(upstream.received()[0].header("x-attempts-at-request"), Some("0"));
    let second = envoy.send(&Request::get("/app")).unwrap();
    assert_eq!(second.header("x-attempts"), Some("1"));
    assert_eq!(second.header("x-attempts-logged-before").map(|v| v.split('@').next().unwrap()), Some("3"), "at log time too");
    let unrouted = envoy.send(&Request::get("/nowhere")).unwrap();
    assert_eq!((unrouted.status, unrouted.header("x-attempts")), (404, Some("0")), "no route, no upstream attempt");
}

#[test]
fn the_harness_reports_attempts_as_envoy_does() {
    // Without retries both say 0 on the way in and 1 on the way back, and a
    // local reply made no attempt.
    let read = |to: Value| json!({ "getProperty": { "path": ["upstream", "request_attempt_count"], "as": "int64", "to": to } });
    for reply in [false, true] {
        let mut on_request = vec![read(json!({ "map": "request", "name": "x-attempts" }))];
        if reply {
            on_request.push(json!({ "localResponse": { "status": 429, "body": "slow down" } }));
        }
        let case = Case::probe(json!({
            "onRequestHeaders": on_request,
            "onResponseHeaders": [read(json!({ "map": "response", "name": "x-attempts" }))],
        }));
        let (envoy, log) = case.in_envoy().unwrap();
        let (harness, _) = case.in_harness().unwrap();
        assert_eq!(envoy, harness, "envoy log:\n{log}");
        let attempts = envoy.response_headers.iter().find(|(k, _)| k == "x-attempts").map(|(_, v)| v.as_str());
        assert_eq!(attempts, Some(if reply { "0" } else { "1" }));
    }
}

#[test]
fn every_header_the_filter_sends_passes_envoys_strict_check() {
    let config = json!({
        "rules": [{
            "retry": {
                "attempts": 2, "perTryTimeout": "1500ms", "retryOn": "5xx,gateway-error,reset,connect-failure,refused-stream,retriable-4xx,unavailable,cancelled,deadline-exceeded,429",
                "retriableStatusCodes": [503], "retriableHeaders": ["x-retry-me"], "hedgeOnPerTryTimeout": true,
            },
            "timeout": "0s",
        }],
    });
    let (envoy, upstream) = setup(Script::ok("u"), &config, None);
    let grpc = Request::post("/pkg.Svc/Call", "x").header("content-type", "application/grpc").header("idempotency-key", "k");
    for request in [Request::get("/"), grpc] {
        let response = envoy.send(&request).unwrap();
        assert_eq!(response.status, 200, "{}", response.body_text());
    }
    let seen = upstream.received();
    assert_eq!(seen[0].header("x-envoy-retry-on"), None, "Envoy's router consumes its headers");
    // The check is real: the same router refuses a status code in x-envoy-retry-on.
    let probe = json!({ "onRequestHeaders": [{ "replaceHeader": { "map": "request", "name": "x-envoy-retry-on", "value": "5xx,503" } }] });
    let bootstrap = Bootstrap::to_upstream(upstream.addr()).filter(WasmFilter::new(wasm_module("probe_fixture").unwrap(), "probe", &probe));
    let refused = strict_envoy(&bootstrap).send(&Request::get("/")).unwrap();
    assert_eq!(refused.status, 400, "{}", refused.body_text());
}

#[test]
fn a_get_that_fails_twice_succeeds_on_the_third_attempt() {
    let (envoy, upstream) = setup(Script::fail_then_ok("flaky", 503, 2), &users(), None);
    let response = envoy.send(&Request::get("/orders")).unwrap();
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(upstream.received().len(), 3, "N failures + 1");
    settle();
    assert_eq!(envoy.wasm_metric("retry_hints.hinted").unwrap(), Some(1));
    assert_eq!(envoy.wasm_metric("retry_hints.attempts_charged").unwrap(), Some(2), "the two retries Envoy made");
}

#[test]
fn a_bare_status_code_in_retry_on_retries_that_status() {
    // Istio's `retryOn: "connect-failure,429"` becomes retriable-status-codes
    // plus x-envoy-retriable-status-codes: 429.
    let config = json!({ "rules": [{ "retry": { "attempts": 2, "retryOn": "connect-failure,429" } }] });
    let (envoy, upstream) = setup(Script::fail_then_ok("busy", 429, 1), &config, None);
    let response = envoy.send(&Request::get("/")).unwrap();
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(upstream.received().len(), 2);
}

#[test]
fn a_post_without_idempotency_key_is_not_retried_even_by_the_routes_policy() {
    let (envoy, upstream) = setup(Script::fail_then_ok("flaky", 503, 1), &users(), Some(("5xx", 3)));
    let response = envoy.send(&Request::post("/orders", "{\"item\":7}")).unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(upstream.received().len(), 1, "sent once");
    assert_eq!(response.header("retry-after"), Some("1"), "the client is told when to come back");
    let keyed = envoy.send(&Request::post("/orders", "{\"item\":8}").header("idempotency-key", "order-8")).unwrap();
    assert_eq!(keyed.status, 200);
    settle();
    assert_eq!(envoy.wasm_metric("retry_hints.skipped_unsafe").unwrap(), Some(1));
    assert!(envoy.prometheus().unwrap().lines().any(|l| l == "retry_hints_skipped_unsafe{} 1"), "Prometheus-visible");
}

#[test]
fn a_slow_attempt_is_cut_by_the_per_try_timeout_and_retried() {
    let config = json!({ "rules": [{ "retry": { "attempts": 2, "perTryTimeout": "250ms", "retryOn": "5xx" }, "timeout": "5s" }] });
    let (envoy, upstream) = setup(Script::ok("slow-once").slow_first(1, Duration::from_secs(2)), &config, None);
    let started = Instant::now();
    let response = envoy.send(&Request::get("/report")).unwrap();
    let took = started.elapsed();
    assert_eq!(response.status, 200, "{}", response.body_text());
    assert_eq!(upstream.wait_for(2, Duration::from_secs(5)).unwrap().len(), 2, "the slow attempt and its retry");
    assert!(took < Duration::from_millis(1900), "answered by the retry, not the slow attempt: {took:?}");
}

#[test]
fn a_client_sent_max_retries_is_ignored() {
    let ordering = Request::get("/").header("x-envoy-max-retries", "10").header("x-envoy-retry-on", "5xx,reset");
    // Without the filter, Envoy obeys the client: eleven attempts.
    let upstream = Upstream::start(Script::fail_then_ok("down", 503, 100)).unwrap();
    let bare = strict_envoy(&Bootstrap::new().cluster("upstream", upstream.addr()).route(Route::prefix("/", "upstream").retries("5xx", 1)));
    assert_eq!(bare.send(&ordering).unwrap().status, 503);
    assert_eq!(upstream.received().len(), 11, "Envoy takes the order of an internal client");

    let config = json!({ "rules": [{ "retry": { "attempts": 1, "retryOn": "5xx" } }] });
    let (envoy, upstream) = setup(Script::fail_then_ok("down", 503, 100), &config, Some(("5xx", 1)));
    let response = envoy.send(&ordering).unwrap();
    assert_eq!(response.status, 503);
    assert_eq!(upstream.received().len(), 2, "one retry, as the rule says, not ten");
    settle();
    assert_eq!(envoy.wasm_metric("retry_hints.client_headers_removed").unwrap(), Some(1));
}

#[test]
fn envoy_refuses_a_bad_configuration_with_the_field_named() {
    let upstream = Upstream::start(Script::ok("x")).unwrap();
    let config = json!({ "rules": [{ "retry": { "attempts": 3, "retryOn": "5xx,retry-please" } }] });
    let err = Envoy::start(&Bootstrap::to_upstream(upstream.addr()).filter(filter(&config))).err().unwrap();
    assert!(err.to_string().contains("rules[0].retry.retryOn: unknown retry condition"), "{err}");
    assert!(err.to_string().contains("retry-please"), "{err}");
}

#[test]
fn retries_stay_within_the_budget_against_a_backend_failing_half_the_time() {
    // Linkerd's defaults: 20% of recent requests plus 10 per second, over 10 s.
    let (ratio_percent, min_per_second, window_s) = (20, 10, 10);
    let config = json!({ "rules": [{ "name": "flaky", "retry": { "attempts": 3, "retryOn": "5xx" } }] });
    // Two workers, each with its own VM: only a budget they share keeps the
    // floor to one 100 (two budgets would allow 100 each).
    let upstream = Upstream::start(Script::cycle("flaky", &[503, 200])).unwrap();
    let bootstrap = Bootstrap::new().cluster("upstream", upstream.addr()).route(Route::prefix("/", "upstream")).filter(filter(&config));
    let mut config = mesh_router(&bootstrap);
    // Envoy's own guard, at most 3 retries in flight per cluster, would cut
    // retries before the budget does: lift it so the budget is what is measured.
    config["static_resources"]["clusters"][0]["circuit_breakers"] = json!({ "thresholds": [{ "max_retries": 10_000 }] });
    let envoy = Envoy::start_json_with_workers(&config, 2).unwrap();
    let (clients, per_client) = (4, 500);
    let ok = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    thread::scope(|scope| {
        for _ in 0..clients {
            let (envoy, ok) = (&envoy, Arc::clone(&ok));
            scope.spawn(move || {
                for _ in 0..per_client {
                    if envoy.send(&Request::get("/")).unwrap().status == 200 {
                        ok.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    let took = started.elapsed();
    let elapsed = took.as_secs();
    settle();
    let requests = clients * per_client;
    let attempts = upstream.received().len();
    let charged = envoy.wasm_metric("retry_hints.attempts_charged").unwrap().unwrap_or(0) as usize;
    let exhausted = envoy.wasm_metric("retry_hints.budget_exhausted").unwrap().unwrap_or(0);
    let overflow = envoy.stat("cluster.upstream.upstream_rq_retry_overflow").unwrap().unwrap_or(0);
    // Each window of 10 one-second buckets allows 20% of its requests plus
    // 100; a run longer than one window gets the floor once per window.
    let windows = (elapsed + 1).div_ceil(window_s) as usize;
    let allowed = requests + requests * ratio_percent / 100 + min_per_second * window_s as usize * windows;
    println!(
        "budget: {requests} requests in {:.1} s ({windows} window(s)), {attempts} upstream attempts, {} retries \
         (charged {charged}), allowed at most {allowed} attempts; {} answered 200; budget exhausted for {exhausted} requests; \
         {overflow} retries refused by Envoy's circuit breaker; \
         without a budget every other attempt would be retried: {} attempts",
        took.as_secs_f64(),
        attempts - requests,
        ok.load(Ordering::Relaxed),
        2 * requests,
    );
    assert!(attempts <= allowed, "{attempts} attempts > {allowed}");
    assert!(attempts > requests + 300, "the budget allowed retries: {attempts}");
    assert!(exhausted > 0, "and ran out");
    assert_eq!(charged, attempts - requests, "the budget was charged exactly the retries Envoy made");
}

/// Over mTLS, as in a mesh: the orders of a caller named in
/// `trustedPrincipals` stand; the same orders from anyone else are dropped.
#[test]
fn a_trusted_callers_own_orders_stand_over_mtls() {
    let pki = e2e::Pki::new().unwrap();
    let server = pki.issue("my-service", Some("spiffe://cluster.local/ns/shop/sa/my-service")).unwrap();
    let operator = pki.issue("operator", Some("spiffe://cluster.local/ns/ops/sa/retry-admin")).unwrap();
    let shop = pki.issue("shop", Some("spiffe://cluster.local/ns/shop/sa/web")).unwrap();
    let config = json!({
        "trustedPrincipals": ["cluster.local/ns/ops/sa/retry-admin"],
        "rules": [{ "retry": { "attempts": 1, "retryOn": "5xx" } }],
    });
    let upstream = Upstream::start(Script::fail_then_ok("down", 503, 100)).unwrap();
    let bootstrap = Bootstrap::new()
        .cluster("upstream", upstream.addr())
        .route(Route::prefix("/", "upstream"))
        .filter(filter(&config))
        .tls(e2e::ListenerTls {
            cert: server.cert_path.clone(),
            key: server.key_path.clone(),
            ca: pki.ca_path.clone(),
            require_client_certificate: true,
            plaintext_too: false,
        });
    let envoy = strict_envoy(&bootstrap);
    let ordering = Request::get("/").header("x-envoy-max-retries", "4").header("x-envoy-retry-on", "5xx");
    assert_eq!(pki.send(envoy.listener(), Some(&operator), &ordering).unwrap().status, 503);
    assert_eq!(upstream.received().len(), 5, "the operator's four retries stand");
    assert_eq!(pki.send(envoy.listener(), Some(&shop), &ordering).unwrap().status, 503);
    assert_eq!(upstream.received().len(), 5 + 2, "shop gets the rule's one retry");
}
