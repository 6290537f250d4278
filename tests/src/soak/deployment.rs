//! The four filters deployed together as a user would: an mTLS listener
//! (client certificates required, as under PeerAuthentication STRICT),
//! principal-authz, header-router with a sticky 90/10 canary, retry-hints,
//! and a mirrored route whose copy is cleaned by mirror-sanitizer in the
//! router's upstream filter chain. The router checks retry headers strictly
//! and counts loopback callers as internal, as a mesh proxy does.

use crate::bootstrap::{Bootstrap, ListenerTls, Route, WasmFilter};
use crate::envoy::{wasm_module, Envoy};
use crate::error::KitError;
use crate::mesh_router::mesh_router;
use crate::mirror_demo::with_key;
use crate::tls::{Credential, Pki};
use serde_json::{json, Value};
use std::net::SocketAddr;

/// The routing header header-router sets and Envoy's routes match.
pub const ROUTE_HEADER: &str = "x-route-destination";
/// Where header-router names its choice on the response.
pub const CHOSEN_HEADER: &str = "x-route-chosen";
/// The largest shadow body mirror-sanitizer cleans.
pub const SANITIZER_MAX_BODY: usize = 65536;
/// The largest body retry-hints lets be retried.
pub const RETRY_MAX_BODY: usize = 65536;

/// The budget retry-hints keeps: Linkerd's defaults.
pub const BUDGET_RATIO_PERCENT: u64 = 20;
pub const BUDGET_MIN_PER_SECOND: u64 = 10;
pub const BUDGET_WINDOW_S: u64 = 10;
/// Retries retry-hints offers each safe request.
pub const RETRY_ATTEMPTS: u32 = 2;

/// A caller with its certificate, and whether the policy lets it in.
pub struct Caller {
    pub name: &'static str,
    pub credential: Credential,
    pub allowed: bool,
}

/// The upstreams the deployment sends to.
#[derive(Debug, Clone, Copy)]
pub struct Upstreams {
    pub stable: SocketAddr,
    pub canary: SocketAddr,
    pub shadow: SocketAddr,
}

/// The running deployment.
pub struct Deployment {
    pub pki: Pki,
    pub callers: Vec<Caller>,
    pub envoy: Envoy,
}

/// What may differ between uses of the deployment.
#[derive(Default)]
pub struct Options {
    /// Envoy worker threads (0: two).
    pub workers: usize,
    /// A filter placed after the four (e.g. a probe that traps).
    pub extra_filter: Option<WasmFilter>,
    /// Mirror-sanitizer's failure policy (default FAIL_RELOAD, as the README deploys it standalone).
    pub sanitizer_failure_policy: Option<String>,
    /// More Envoy command-line options.
    pub envoy_args: Vec<String>,
}

pub fn authz_config() -> Value {
    json!({
        "policies": [
            { "name": "shop-callers", "action": "ALLOW", "rules": [{
                "from": [{ "source": { "principals": ["cluster.local/ns/shop/sa/web", "cluster.local/ns/billing/sa/billing"] } }],
                "to": [{ "operation": { "methods": ["GET", "POST", "PUT"], "paths": ["/orders", "/orders/*", "/catalog/*", "/admin/*"] } }] }] },
            { "name": "no-admin", "action": "DENY", "rules": [{ "to": [{ "operation": { "paths": ["/admin/*"] } }] }] },
        ],
    })
}

pub fn router_config() -> Value {
    json!({
        "routes": [
            { "name": "mobile", "match": [{ "headers": { "user-agent": { "regex": ".*Mobile.*" } } }], "route": [{ "value": "stable" }] },
            { "name": "canary", "match": [{ "uri": { "prefix": "/" } }],
              "route": [{ "value": "stable", "weight": 90 }, { "value": "canary", "weight": 10 }] },
        ],
        "sticky": { "cookie": "session" },
        "responseHeader": CHOSEN_HEADER,
    })
}

pub fn retry_config() -> Value {
    json!({
        "rules": [{ "name": "shop", "retry": { "attempts": RETRY_ATTEMPTS, "retryOn": "5xx" }, "timeout": "5s" }],
        "maxRetryBodyBytes": RETRY_MAX_BODY,
        "budget": {
            "retryRatio": BUDGET_RATIO_PERCENT as f64 / 100.0,
            "minRetriesPerSecond": BUDGET_MIN_PER_SECOND,
            "window": format!("{BUDGET_WINDOW_S}s"),
        },
    })
}

pub fn sanitizer_config() -> Value {
    json!({
        "rules": [
            { "name": "user-id", "fields": ["user_id"], "pathSegments": ["/orders/{id}"], "mode": "hash" },
            { "name": "cards", "detectors": ["cardNumber"], "mode": "mask", "placeholder": "****", "keepLast": 4 },
        ],
        "hashKey": { "env": "MIRROR_SANITIZER_HASH_KEY" },
        "maxBodyBytes": SANITIZER_MAX_BODY,
    })
}

fn module(name: &str, root_id: &str, config: &Value, policy: &str) -> Result<WasmFilter, KitError> {
    Ok(WasmFilter::new(wasm_module(name)?, root_id, config).failure_policy(policy))
}

/// The bootstrap of the deployment, as JSON.
pub fn bootstrap(pki: &Pki, server: &Credential, upstreams: Upstreams, options: &Options) -> Result<Value, KitError> {
    let sanitizer_policy = options.sanitizer_failure_policy.as_deref().unwrap_or("FAIL_RELOAD");
    let mut bootstrap = Bootstrap::new()
        .cluster("stable", upstreams.stable)
        .cluster("canary", upstreams.canary)
        .cluster("shadow", upstreams.shadow)
        .filter(module("principal_authz", "principal-authz", &authz_config(), "FAIL_CLOSED")?)
        .filter(module("header_router", "header-router", &router_config(), "FAIL_OPEN")?)
        .filter(module("retry_hints", "retry-hints", &retry_config(), "FAIL_OPEN")?)
        .upstream_filter(module("mirror_sanitizer", "mirror-sanitizer", &sanitizer_config(), sanitizer_policy)?.reload_backoff_ms(50))
        .tls(ListenerTls {
            cert: server.cert_path.clone(),
            key: server.key_path.clone(),
            ca: pki.ca_path.clone(),
            require_client_certificate: true,
            plaintext_too: false,
        });
    if let Some(extra) = &options.extra_filter {
        bootstrap = bootstrap.filter(extra.clone());
    }
    // Orders are mirrored; the catalog is not. No route without the header:
    // a request header-router did not route would show as a 404.
    for side in ["stable", "canary"] {
        bootstrap = bootstrap
            .route(Route::prefix("/orders", side).when_header(ROUTE_HEADER, side).mirror_to("shadow"))
            .route(Route::prefix("/", side).when_header(ROUTE_HEADER, side));
    }
    Ok(with_key(mesh_router(&bootstrap), "soak-hash-key-0123456789abcdef"))
}

impl Deployment {
    pub fn start(upstreams: Upstreams, options: &Options) -> Result<Self, KitError> {
        let pki = Pki::new()?;
        let server = pki.issue("shop-frontend", Some("spiffe://cluster.local/ns/shop/sa/frontend"))?;
        let callers = vec![
            Caller { name: "web", credential: pki.issue("web", Some("spiffe://cluster.local/ns/shop/sa/web"))?, allowed: true },
            Caller { name: "billing", credential: pki.issue("billing", Some("spiffe://cluster.local/ns/billing/sa/billing"))?, allowed: true },
            Caller { name: "guest", credential: pki.issue("guest", Some("spiffe://cluster.local/ns/guest/sa/guest"))?, allowed: false },
        ];
        let config = bootstrap(&pki, &server, upstreams, options)?;
        let workers = if options.workers == 0 { 2 } else { options.workers };
        let args: Vec<&str> = options.envoy_args.iter().map(String::as_str).collect();
        let envoy = Envoy::start_json_with_args(&config, workers, &args)?;
        Ok(Self { pki, callers, envoy })
    }

    /// A caller by name.
    pub fn caller(&self, name: &str) -> Option<&Caller> {
        self.callers.iter().find(|c| c.name == name)
    }
}
