//! Builds Envoy bootstrap configs for tests: one HTTP listener on a free
//! port, routes, clusters, and Wasm filters loaded the way Istio loads them
//! (plugin config as JSON in a StringValue). Written as JSON, which Envoy
//! reads as YAML.

use serde_json::{json, Value};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// A Wasm HTTP filter: a module, its root id, and its plugin configuration.
#[derive(Debug, Clone)]
pub struct WasmFilter {
    pub module: PathBuf,
    pub root_id: String,
    pub configuration: String,
    /// `FAIL_CLOSED` (Istio's default), `FAIL_OPEN` or `FAIL_RELOAD`.
    pub failure_policy: String,
    /// Under FAIL_RELOAD, the reload backoff's base interval (Envoy: 1 s).
    pub reload_backoff_ms: Option<u64>,
}

impl WasmFilter {
    pub fn new(module: impl AsRef<Path>, root_id: &str, configuration: &Value) -> Self {
        Self {
            module: module.as_ref().to_path_buf(),
            root_id: root_id.to_string(),
            configuration: configuration.to_string(),
            failure_policy: "FAIL_CLOSED".to_string(),
            reload_backoff_ms: None,
        }
    }

    /// The configuration as raw text, for tests of malformed configs.
    pub fn raw_configuration(mut self, text: &str) -> Self {
        self.configuration = text.to_string();
        self
    }

    pub fn failure_policy(mut self, policy: &str) -> Self {
        self.failure_policy = policy.to_string();
        self
    }

    pub fn reload_backoff_ms(mut self, ms: u64) -> Self {
        self.reload_backoff_ms = Some(ms);
        self
    }

    pub fn to_json(&self) -> Value {
        let mut filter = json!({
            "name": "envoy.filters.http.wasm",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                "config": {
                    "name": self.root_id,
                    "root_id": self.root_id,
                    "configuration": {
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": self.configuration,
                    },
                    "failure_policy": self.failure_policy,
                    "vm_config": {
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": { "local": { "filename": self.module } },
                    },
                },
            },
        });
        if let Some(ms) = self.reload_backoff_ms {
            let interval = format!("{}s", ms as f64 / 1000.0);
            filter["typed_config"]["config"]["reload_config"] = json!({ "backoff": { "base_interval": interval, "max_interval": interval } });
        }
        filter
    }
}

/// A route entry; starts as a prefix match to a cluster.
#[derive(Debug, Clone)]
pub struct Route(pub Value);

impl Route {
    pub fn prefix(prefix: &str, cluster: &str) -> Self {
        Self(json!({ "match": { "prefix": prefix }, "route": { "cluster": cluster } }))
    }

    /// A route that sends to the cluster a request header names.
    pub fn cluster_from_header(prefix: &str, header: &str) -> Self {
        Self(json!({ "match": { "prefix": prefix }, "route": { "cluster_header": header } }))
    }

    /// Only requests whose header `name` is exactly `value` take this route.
    pub fn when_header(mut self, name: &str, value: &str) -> Self {
        self.0["match"]["headers"] = json!([{ "name": name, "string_match": { "exact": value } }]);
        self
    }

    /// Also sends a fire-and-forget copy of each request to `cluster`.
    pub fn mirror_to(mut self, cluster: &str) -> Self {
        self.0["route"]["request_mirror_policies"] = json!([{ "cluster": cluster }]);
        self
    }

    /// The route's timeout (Envoy's default 15 s; 0 disables it).
    pub fn timeout_ms(mut self, ms: u64) -> Self {
        self.0["route"]["timeout"] = json!(format!("{}s", ms as f64 / 1000.0));
        self
    }

    /// Router retries: `num` retries on the `retry_on` conditions.
    pub fn retries(mut self, retry_on: &str, num: u32) -> Self {
        self.0["route"]["retry_policy"] = json!({ "retry_on": retry_on, "num_retries": num });
        self
    }
}

/// A whole bootstrap: admin and listener on free ports unless pinned.
#[derive(Debug, Clone, Default)]
pub struct Bootstrap {
    pub listener_port: u16,
    pub filters: Vec<WasmFilter>,
    /// Filters in the router's upstream filter chain: they see the primary
    /// and each mirrored request separately.
    pub upstream_filters: Vec<WasmFilter>,
    pub routes: Vec<Route>,
    pub clusters: Vec<(String, SocketAddr)>,
    /// Other HTTP filters, before the Wasm ones (e.g. Envoy's JWT filter).
    pub native_filters: Vec<Value>,
    /// TLS on the listener; None: plaintext only.
    pub tls: Option<ListenerTls>,
    /// The HTTP connection manager's `forward_client_cert_details`
    /// (Envoy's default: SANITIZE).
    pub forward_client_cert: Option<String>,
    /// Clusters whose upstream speaks HTTP/2 (cleartext, prior knowledge),
    /// as gRPC services and sidecars do.
    pub h2_clusters: Vec<String>,
}

/// A TLS listener, as an Istio sidecar's inbound one: the server
/// certificate, the CA client certificates must chain to, and whether a
/// client certificate is required. With `plaintext_too`, a second filter
/// chain takes plaintext connections (Istio's PERMISSIVE mode).
#[derive(Debug, Clone)]
pub struct ListenerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
    pub require_client_certificate: bool,
    pub plaintext_too: bool,
}

impl Bootstrap {
    pub fn new() -> Self {
        Self::default()
    }

    /// A bootstrap whose only route sends everything to one upstream.
    pub fn to_upstream(addr: SocketAddr) -> Self {
        Self::new().cluster("upstream", addr).route(Route::prefix("/", "upstream"))
    }

    pub fn cluster(mut self, name: &str, addr: SocketAddr) -> Self {
        self.clusters.push((name.to_string(), addr));
        self
    }

    /// A cluster whose endpoint Envoy speaks HTTP/2 to (h2c).
    pub fn h2_cluster(mut self, name: &str, addr: SocketAddr) -> Self {
        self.h2_clusters.push(name.to_string());
        self.cluster(name, addr)
    }

    pub fn route(mut self, route: Route) -> Self {
        self.routes.push(route);
        self
    }

    pub fn filter(mut self, filter: WasmFilter) -> Self {
        self.filters.push(filter);
        self
    }

    pub fn upstream_filter(mut self, filter: WasmFilter) -> Self {
        self.upstream_filters.push(filter);
        self
    }

    /// An Envoy HTTP filter (its JSON) placed before the Wasm filters.
    pub fn native_filter(mut self, filter: Value) -> Self {
        self.native_filters.push(filter);
        self
    }

    pub fn tls(mut self, tls: ListenerTls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// `APPEND_FORWARD`, `SANITIZE_SET`, … with the peer's URI in the element
    /// this Envoy adds.
    pub fn forward_client_cert(mut self, mode: &str) -> Self {
        self.forward_client_cert = Some(mode.to_string());
        self
    }

    /// Pins the listener to a port (0, the default, lets the OS choose).
    pub fn listener_port(mut self, port: u16) -> Self {
        self.listener_port = port;
        self
    }

    pub fn to_json(&self) -> Value {
        let mut http_filters: Vec<Value> = self.native_filters.clone();
        http_filters.extend(self.filters.iter().map(WasmFilter::to_json));
        let mut router = json!({ "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router" });
        if !self.upstream_filters.is_empty() {
            let mut upstream: Vec<Value> = self.upstream_filters.iter().map(WasmFilter::to_json).collect();
            upstream.push(json!({
                "name": "envoy.filters.http.upstream_codec",
                "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.http.upstream_codec.v3.UpstreamCodec" },
            }));
            router["upstream_http_filters"] = Value::Array(upstream);
        }
        http_filters.push(json!({ "name": "envoy.filters.http.router", "typed_config": router }));
        let routes: Vec<Value> = self.routes.iter().map(|r| r.0.clone()).collect();
        let clusters: Vec<Value> = self
            .clusters
            .iter()
            .map(|(name, addr)| cluster_json(name, *addr, self.h2_clusters.contains(name)))
            .collect();
        let mut hcm = json!({
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                "stat_prefix": "ingress",
                "route_config": {
                    "name": "local",
                    "virtual_hosts": [{ "name": "all", "domains": ["*"], "routes": routes }],
                },
                "http_filters": http_filters,
            },
        });
        if let Some(mode) = &self.forward_client_cert {
            hcm["typed_config"]["forward_client_cert_details"] = json!(mode);
            hcm["typed_config"]["set_current_client_cert_details"] = json!({ "uri": true });
        }
        let mut listener = json!({
            "name": "ingress",
            "address": socket(SocketAddr::from(([127, 0, 0, 1], self.listener_port))),
            "filter_chains": [{ "filters": [hcm.clone()] }],
        });
        if let Some(tls) = &self.tls {
            listener["filter_chains"][0]["transport_socket"] = tls.transport_socket();
            if tls.plaintext_too {
                listener["filter_chains"][0]["filter_chain_match"] = json!({ "transport_protocol": "tls" });
                let tls_chain = listener["filter_chains"][0].take();
                let plaintext_chain = json!({ "filter_chain_match": { "transport_protocol": "raw_buffer" }, "filters": [hcm] });
                listener["filter_chains"] = json!([tls_chain, plaintext_chain]);
                listener["listener_filters"] = json!([{
                    "name": "envoy.filters.listener.tls_inspector",
                    "typed_config": { "@type": "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector" },
                }]);
            }
        }
        json!({
            "admin": { "address": socket(SocketAddr::from(([127, 0, 0, 1], 0))) },
            "static_resources": { "listeners": [listener], "clusters": clusters },
        })
    }
}

impl ListenerTls {
    fn transport_socket(&self) -> Value {
        json!({
            "name": "envoy.transport_sockets.tls",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                "require_client_certificate": self.require_client_certificate,
                "common_tls_context": {
                    "tls_certificates": [{
                        "certificate_chain": { "filename": self.cert },
                        "private_key": { "filename": self.key },
                    }],
                    "validation_context": { "trusted_ca": { "filename": self.ca } },
                    // The HTTP connection manager's AUTO codec follows ALPN:
                    // h2 clients get HTTP/2, the rest HTTP/1.1.
                    "alpn_protocols": ["h2", "http/1.1"],
                },
            },
        })
    }
}

fn socket(addr: SocketAddr) -> Value {
    json!({ "socket_address": { "address": addr.ip().to_string(), "port_value": addr.port() } })
}

fn cluster_json(name: &str, addr: SocketAddr, h2: bool) -> Value {
    let mut cluster = json!({
        "name": name,
        "type": "STATIC",
        "connect_timeout": "2s",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{ "lb_endpoints": [{ "endpoint": { "address": socket(addr) } }] }],
        },
    });
    if h2 {
        cluster["typed_extension_protocol_options"] = json!({
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                "explicit_http_config": { "http2_protocol_options": {} },
            },
        });
    }
    cluster
}
