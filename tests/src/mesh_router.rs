//! Envoy configs whose router acts as a mesh proxy's does for retry
//! headers: it checks them strictly (`strict_check_headers`, a 400 for a
//! value it cannot read), and it counts callers as internal, so it takes
//! their `x-envoy-*` orders. Envoy 1.40 counts no address as internal by
//! default and drops those headers from external requests itself; inside a
//! mesh callers are internal, and a filter must stand in between.

use crate::bootstrap::Bootstrap;
use serde_json::{json, Value};

/// The router headers `strict_check_headers` can check.
pub const STRICT_CHECKED: [&str; 5] = [
    "x-envoy-upstream-rq-timeout-ms",
    "x-envoy-upstream-rq-per-try-timeout-ms",
    "x-envoy-max-retries",
    "x-envoy-retry-grpc-on",
    "x-envoy-retry-on",
];

/// `bootstrap` as JSON, with loopback callers internal and the router
/// checking every retry header strictly.
pub fn mesh_router(bootstrap: &Bootstrap) -> Value {
    let mut config = bootstrap.to_json();
    let hcm = &mut config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    hcm["use_remote_address"] = json!(true);
    hcm["internal_address_config"] = json!({ "cidr_ranges": [{ "address_prefix": "127.0.0.0", "prefix_len": 8 }] });
    if let Some(router) = hcm["http_filters"].as_array_mut().and_then(|f| f.iter_mut().find(|f| f["name"] == "envoy.filters.http.router")) {
        router["typed_config"]["strict_check_headers"] = json!(STRICT_CHECKED);
    }
    config
}
