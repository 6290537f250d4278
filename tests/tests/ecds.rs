//! Each `examples/istio/` WasmPlugin delivered to a real Envoy the way
//! Istio delivers it: an ECDS entry in the filter chain, the
//! `TypedExtensionConfig` from a file-based ECDS source (istiod's config as
//! the node agent rewrites it). Then what Istio users meet: a live config
//! update under steady load, a broken update that Envoy refuses while the
//! old config serves, and a module that cannot be fetched (fail closed:
//! deny-all RBAC; fail open: traffic passes).

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use e2e::ecds::{ecds_counter, ecds_names, wait_for_counter, with_node, EcdsSource};
use e2e::istio_translate::{http_filters, wasm_plugins, PhaseMarkers, ResourceNaming, WasmPlugin, RBAC_TYPE_URL};
use e2e::mesh_router::mesh_router;
use e2e::{wasm_module, workspace_root, Bootstrap, Envoy, ListenerTls, Pki, Request, Script, Upstream};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

const NAMING: ResourceNaming = ResourceNaming::Extenstions;
const WAIT: Duration = Duration::from_secs(20);

/// The WasmPlugin of `examples/istio/<file>.yaml`.
fn example(file: &str) -> WasmPlugin {
    let path = workspace_root().join(format!("examples/istio/{file}.yaml"));
    let mut plugins = wasm_plugins(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(plugins.len(), 1, "{}", path.display());
    plugins.remove(0)
}

/// The module the agent would have fetched for `plugin`: the one `make build` wrote.
fn module(plugin: &WasmPlugin) -> PathBuf {
    wasm_module(&plugin.plugin_name.replace('-', "_")).unwrap()
}

/// Istio's authorization filter, where istiod puts one: RBAC, here with no
/// policy (allows all), marking where AUTHZ plugins go.
fn authz_marker() -> Value {
    json!({
        "name": "envoy.filters.http.rbac",
        "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC", "rules_stat_prefix": "istio-authz" },
    })
}

/// A bootstrap whose HTTP filters are `plugin`'s ECDS entry among the
/// phase markers, with the resource published before Envoy starts.
fn ecds_bootstrap(base: Bootstrap, plugin: &WasmPlugin, ecds: &EcdsSource, fetched: Result<PathBuf, &str>) -> Bootstrap {
    let markers = PhaseMarkers { authn: vec![], authz: vec![authz_marker()] };
    ecds.publish(&[plugin.delivered(NAMING, fetched.as_deref().map_err(|e| *e))]).unwrap();
    let mut bootstrap = base;
    bootstrap.native_filters = http_filters(std::slice::from_ref(plugin), &markers, NAMING, &ecds.config_source());
    bootstrap
}

/// Starts Envoy on `bootstrap` with the node identity xDS needs.
fn start_ecds(bootstrap: &Bootstrap) -> Result<Envoy, e2e::KitError> {
    Envoy::start_json(&with_node(bootstrap.to_json()))
}

/// Checks that Envoy got the filter over ECDS and not from its bootstrap.
fn assert_delivered_by_ecds(envoy: &Envoy, plugin: &WasmPlugin) {
    let name = plugin.resource_name(NAMING);
    assert_eq!(ecds_names(envoy).unwrap(), vec![name.clone()]);
    assert_eq!(ecds_counter(envoy, &name, "update_success").unwrap(), 1);
}

#[test]
fn header_router_example_routes_over_ecds() {
    let plugin = example("header-router");
    let upstream = Upstream::start(Script::ok("web")).unwrap();
    let ecds = EcdsSource::new().unwrap();
    let envoy = start_ecds(&ecds_bootstrap(Bootstrap::to_upstream(upstream.addr()), &plugin, &ecds, Ok(module(&plugin)))).unwrap();
    assert_delivered_by_ecds(&envoy, &plugin);
    for (request, want) in [
        (Request::get("/").header("user-agent", "Foo Mobile Safari"), "my-service-mobile"),
        (Request::get("/api/orders"), "api-service"),
        (Request::get("/"), "frontend"),
    ] {
        assert_eq!(envoy.send(&request).unwrap().status, 200);
        let seen = upstream.received();
        assert_eq!(seen.last().unwrap().header("x-route-destination"), Some(want), "{request:?}");
    }
}

#[test]
fn retry_hints_example_retries_over_ecds() {
    let plugin = example("retry-hints");
    let upstream = Upstream::start(Script::fail_then_ok("my-service", 503, 2)).unwrap();
    let ecds = EcdsSource::new().unwrap();
    let bootstrap = ecds_bootstrap(Bootstrap::to_upstream(upstream.addr()), &plugin, &ecds, Ok(module(&plugin)));
    let envoy = Envoy::start_json(&with_node(mesh_router(&bootstrap))).unwrap();
    assert_delivered_by_ecds(&envoy, &plugin);
    // No rule for this host and no route retries: the first 503 comes back.
    assert_eq!(envoy.send(&Request::get("/").header("host", "other.shop")).unwrap().status, 503);
    // The rule for my-service orders retries: the second 503 is retried.
    let ok = envoy.send(&Request::get("/").header("host", "my-service.shop.svc.cluster.local")).unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(upstream.received().len(), 3);
}

#[test]
fn principal_authz_example_admits_only_billing_over_ecds() {
    let plugin = example("principal-authz");
    let pki = Pki::new().unwrap();
    let server = pki.issue("payments", Some("spiffe://cluster.local/ns/payments/sa/payments")).unwrap();
    let billing = pki.issue("billing", Some("spiffe://cluster.local/ns/billing/sa/billing")).unwrap();
    let shop = pki.issue("shop", Some("spiffe://cluster.local/ns/shop/sa/shop")).unwrap();
    let upstream = Upstream::start(Script::ok("payments")).unwrap();
    let tls = ListenerTls {
        cert: server.cert_path.clone(),
        key: server.key_path.clone(),
        ca: pki.ca_path.clone(),
        require_client_certificate: true,
        plaintext_too: false,
    };
    let ecds = EcdsSource::new().unwrap();
    let base = Bootstrap::to_upstream(upstream.addr()).tls(tls);
    let envoy = start_ecds(&ecds_bootstrap(base, &plugin, &ecds, Ok(module(&plugin)))).unwrap();
    assert_delivered_by_ecds(&envoy, &plugin);
    let send = |who, path| pki.send(envoy.listener(), Some(who), &Request::get(path)).unwrap().status;
    assert_eq!(send(&billing, "/api/orders"), 200);
    assert_eq!(send(&shop, "/api/orders"), 403);
    assert_eq!(send(&billing, "/api/admin"), 403, "no-admin denies even billing");
    assert_eq!(upstream.received().len(), 1);
}

#[test]
fn mirror_sanitizer_example_cleans_shadow_copies_over_ecds() {
    let plugin = example("mirror-sanitizer");
    let upstream = Upstream::start(Script::ok("analysis")).unwrap();
    let ecds = EcdsSource::new().unwrap();
    let bootstrap = ecds_bootstrap(Bootstrap::to_upstream(upstream.addr()), &plugin, &ecds, Ok(module(&plugin)));
    // vmConfig.env takes the key from the gateway's environment (HOST).
    let key = [("MIRROR_SANITIZER_HASH_KEY", "ecds-hash-key-0123456789abcdef")];
    let envoy = Envoy::start_json_with_env(&with_node(bootstrap.to_json()), 1, &key).unwrap();
    assert_delivered_by_ecds(&envoy, &plugin);
    let body = json!({ "user_id": "alice-4711", "customer": { "ssn": "123-45-6789" } }).to_string();
    let shadow = Request::post("/users/alice-4711", body).header("host", "productpage-shadow:9080").header("content-type", "application/json");
    assert_eq!(envoy.send(&shadow).unwrap().status, 200);
    let seen = &upstream.received()[0];
    assert!(!seen.path.contains("alice-4711") && !seen.body_text().contains("alice-4711"), "{seen:?}");
    assert!(!seen.body_text().contains("123-45-6789"), "{}", seen.body_text());
}

/// The header-router example with another default destination.
fn with_default(plugin: &WasmPlugin, default: &str) -> WasmPlugin {
    let mut changed = plugin.clone();
    changed.plugin_config.as_mut().unwrap()["default"] = json!(default);
    changed
}

/// Steady traffic from `clients` threads until stopped: every status or
/// error it met, and which destinations the upstream was told.
struct Load {
    stop: Arc<AtomicBool>,
    failures: Arc<Mutex<Vec<String>>>,
    sent: Arc<AtomicUsize>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl Load {
    fn start(envoy: &Envoy, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let sent = Arc::new(AtomicUsize::new(0));
        let listener = envoy.listener();
        let threads = (0..clients)
            .map(|_| {
                let (stop, failures, sent) = (stop.clone(), failures.clone(), sent.clone());
                thread::spawn(move || {
                    // Bounded: at most a minute, whatever happens.
                    let deadline = Instant::now() + Duration::from_secs(60);
                    while !stop.load(Ordering::SeqCst) && Instant::now() < deadline {
                        match Request::get("/").send(listener) {
                            Ok(r) if r.status == 200 => {}
                            Ok(r) => failures.lock().unwrap().push(format!("status {}: {}", r.status, r.body_text())),
                            Err(e) => failures.lock().unwrap().push(e.to_string()),
                        }
                        sent.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        Self { stop, failures, sent, threads }
    }

    fn wait_sent(&self, n: usize) {
        let deadline = Instant::now() + WAIT;
        while self.sent.load(Ordering::SeqCst) < n && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads {
            t.join().unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        (self.sent.load(Ordering::SeqCst), failures)
    }
}

/// The header-router example over ECDS, in front of one upstream.
struct Routed {
    plugin: WasmPlugin,
    upstream: Upstream,
    ecds: EcdsSource,
    envoy: Envoy,
}

fn header_router_over_ecds() -> Routed {
    let plugin = example("header-router");
    let upstream = Upstream::start(Script::ok("web")).unwrap();
    let ecds = EcdsSource::new().unwrap();
    let envoy = start_ecds(&ecds_bootstrap(Bootstrap::to_upstream(upstream.addr()), &plugin, &ecds, Ok(module(&plugin)))).unwrap();
    Routed { plugin, upstream, ecds, envoy }
}

fn destinations(upstream: &Upstream) -> Vec<String> {
    upstream.received().iter().map(|r| r.header("x-route-destination").unwrap_or("-").to_string()).collect()
}

#[test]
fn a_live_update_takes_effect_with_no_request_failing() {
    let Routed { plugin, upstream, ecds, envoy } = header_router_over_ecds();
    let name = plugin.resource_name(NAMING);

    let load = Load::start(&envoy, 4);
    load.wait_sent(100);
    ecds.publish(&[with_default(&plugin, "frontend-v2").delivered(NAMING, Ok(&module(&plugin)))]).unwrap();
    wait_for_counter(&envoy, &name, "update_success", 2, WAIT).unwrap();
    let after_update = load.sent.load(Ordering::SeqCst);
    load.wait_sent(after_update + 100);
    let (sent, failures) = load.finish();

    assert!(failures.is_empty(), "{} of {sent} requests failed across the swap: {:?}", failures.len(), &failures[..failures.len().min(5)]);
    let seen = destinations(&upstream);
    assert!(seen.iter().take(50).all(|d| d == "frontend"), "before: {:?}", &seen[..50]);
    assert!(seen.iter().rev().take(50).all(|d| d == "frontend-v2"), "after: {:?}", &seen[seen.len() - 50..]);
    assert_eq!(ecds_counter(&envoy, &name, "update_rejected").unwrap(), 0);
    println!("live update: {sent} requests, none failed; {after_update} sent when Envoy reported the new config");
}

#[test]
fn a_broken_update_is_refused_and_the_old_config_keeps_serving() {
    let Routed { plugin, upstream, ecds, envoy } = header_router_over_ecds();
    let name = plugin.resource_name(NAMING);

    // Weights that do not add up to 100: the filter refuses the config.
    let mut broken = plugin.clone();
    broken.plugin_config.as_mut().unwrap()["routes"][3]["route"][0]["weight"] = json!(80);
    ecds.publish(&[broken.delivered(NAMING, Ok(&module(&plugin)))]).unwrap();
    wait_for_counter(&envoy, &name, "update_rejected", 1, WAIT).unwrap();
    assert!(envoy.log().contains("weights sum to 90, not 100"), "the refusal names the field");

    assert_eq!(envoy.send(&Request::get("/api/x")).unwrap().status, 200);
    assert_eq!(destinations(&upstream), vec!["api-service"], "the first config still routes");
    assert_eq!(ecds_counter(&envoy, &name, "update_success").unwrap(), 1);

    // A good update after the broken one is taken.
    ecds.publish(&[with_default(&plugin, "frontend-v2").delivered(NAMING, Ok(&module(&plugin)))]).unwrap();
    wait_for_counter(&envoy, &name, "update_success", 2, WAIT).unwrap();
    envoy.send(&Request::get("/")).unwrap();
    assert_eq!(destinations(&upstream).last().map(String::as_str), Some("frontend-v2"));
}

#[test]
fn a_module_that_cannot_be_fetched_denies_under_fail_close() {
    let plugin = example("principal-authz");
    assert_eq!(plugin.fail_strategy, e2e::istio_translate::FailStrategy::Close);
    let upstream = Upstream::start(Script::ok("payments")).unwrap();
    let ecds = EcdsSource::new().unwrap();
    let bootstrap = ecds_bootstrap(Bootstrap::to_upstream(upstream.addr()), &plugin, &ecds, Err("manifest unknown"));
    let envoy = Envoy::start_json(&with_node(bootstrap.to_json())).unwrap();
    let refused = envoy.send(&Request::get("/api/orders")).unwrap();
    assert_eq!((refused.status, refused.body_text().as_str()), (403, "RBAC: access denied"));
    assert!(upstream.received().is_empty());
    assert_eq!(rbac_stat(&envoy, "wasm-default-deny", "denied"), 1, "Istio's deny-all stand-in answered");
    assert_eq!(ecds_type(&envoy), RBAC_TYPE_URL);
}

/// The type of the one filter config Envoy holds from ECDS.
fn ecds_type(envoy: &Envoy) -> String {
    let dump = envoy.admin_json("/config_dump").unwrap();
    let configs = dump["configs"].as_array().unwrap();
    let ecds = configs.iter().find_map(|c| c["ecds_filters"].as_array()).unwrap();
    ecds[0]["ecds_filter"]["typed_config"]["@type"].as_str().unwrap().to_string()
}

/// The RBAC counter `what` of the filter with `rules_stat_prefix` `prefix`.
fn rbac_stat(envoy: &Envoy, prefix: &str, what: &str) -> u64 {
    let stats = envoy.admin_json("/stats?format=json").unwrap();
    stats["stats"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"].as_str().is_some_and(|n| n.contains(prefix) && n.ends_with(what)))
        .filter_map(|s| s["value"].as_u64())
        .sum()
}

#[test]
fn a_module_that_cannot_be_fetched_lets_traffic_through_under_fail_open() {
    let plugin = example("header-router");
    assert_eq!(plugin.fail_strategy, e2e::istio_translate::FailStrategy::Open);
    let upstream = Upstream::start(Script::ok("web")).unwrap();
    let ecds = EcdsSource::new().unwrap();
    let envoy = start_ecds(&ecds_bootstrap(Bootstrap::to_upstream(upstream.addr()), &plugin, &ecds, Err("manifest unknown"))).unwrap();
    assert_eq!(envoy.send(&Request::get("/").header("user-agent", "Mobile")).unwrap().status, 200);
    assert_eq!(destinations(&upstream), vec!["-"], "passed untouched");
    assert_eq!(ecds_type(&envoy), RBAC_TYPE_URL, "Istio's allow-all RBAC stands in for the plugin");
}
