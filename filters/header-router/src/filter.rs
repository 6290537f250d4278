//! The proxy-wasm glue: the root context compiles the configuration, defines
//! the metrics and lists the headers the decision reads, once; each
//! request's context reads the header map in one host call, copying only
//! those headers (plus the peer identity or port only when a route needs
//! them), asks `Router::decide`, and sets the routing header.

use crate::config::{Router, Sticky};
use crate::destination::{Decision, RequestView};
use filter_common::metrics::name_part;
use filter_common::{count, load_config, AbiHost, Host, LogLevel, MapType, Metric, NameSet};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::rc::Rc;

/// The metrics, defined at configure time so requests only increment.
struct Metrics {
    /// Per route: matched, and per side of a split (none for one value,
    /// whose count is the route's).
    routes: Vec<(Option<Metric>, Vec<Option<Metric>>)>,
    default: Option<Metric>,
    unrouted: Option<Metric>,
    trusted: Option<Metric>,
    client_header_removed: Option<Metric>,
    errors: Option<Metric>,
}

impl Metrics {
    fn define(host: &dyn Host, router: &Router) -> Self {
        let counter = |name: String| Metric::counter(host, &name).ok();
        let routes = router
            .routes
            .iter()
            .map(|r| {
                let route = name_part(&r.name);
                let sides = if r.targets.len() > 1 {
                    r.targets.iter().map(|t| counter(format!("header_router.route.{route}.value.{}", name_part(&t.value)))).collect()
                } else {
                    Vec::new()
                };
                (counter(format!("header_router.route.{route}.matched")), sides)
            })
            .collect();
        Self {
            routes,
            default: counter("header_router.default".into()),
            unrouted: counter("header_router.unrouted".into()),
            trusted: counter("header_router.trusted_caller".into()),
            client_header_removed: counter("header_router.client_header_removed".into()),
            errors: counter("header_router.errors".into()),
        }
    }
}

struct Shared {
    router: Router,
    metrics: Metrics,
    /// The request headers the decision (and the debug line) reads: the
    /// only ones copied out of the header map.
    reads: NameSet,
    debug: bool,
}

/// Every header `decide` may read: the match blocks', the routing header,
/// and for splits the sticky key and the request id.
fn headers_read(router: &Router, debug: bool) -> NameSet {
    let mut names: Vec<&str> = vec![router.header.as_str()];
    names.extend(router.routes.iter().flat_map(|r| r.matches.iter().flat_map(|m| m.headers_read())));
    if router.routes.iter().any(|r| r.targets.len() > 1) {
        match &router.sticky {
            Some(Sticky::Header(name)) => names.push(name),
            Some(Sticky::Cookie(_)) => names.push("cookie"),
            None => {}
        }
        names.push("x-request-id");
    }
    if debug {
        names.push("x-request-id");
    }
    NameSet::new(names)
}

#[derive(Default)]
pub struct RouterRoot {
    shared: Option<Rc<Shared>>,
}

impl Context for RouterRoot {}

impl RootContext for RouterRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let host = AbiHost;
        let Some(router) = load_config(&host, "header-router", Router::parse) else { return false };
        let metrics = Metrics::define(&host, &router);
        // Read once: formatting a debug line per request costs even when dropped.
        let debug = host.log_level().is_ok_and(|l| l <= LogLevel::Debug);
        let reads = headers_read(&router, debug);
        self.shared = Some(Rc::new(Shared { router, metrics, reads, debug }));
        true
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = Rc::clone(self.shared.as_ref()?);
        Some(Box::new(RouterStream { shared, chosen: None, entropy: u64::from(context_id) }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct RouterStream {
    shared: Rc<Shared>,
    /// The value set, for the optional response header.
    chosen: Option<String>,
    /// For an unkeyed split of a request without `x-request-id`: the
    /// context id, new for every stream.
    entropy: u64,
}

impl Context for RouterStream {}

impl RouterStream {
    fn route(&mut self, host: &dyn Host) -> Result<(), filter_common::HostError> {
        let shared = Rc::clone(&self.shared);
        let router = &shared.router;
        let block = host.header_block(MapType::RequestHeaders)?;
        let headers = block.pairs_where(|name| shared.reads.contains(name))?;
        let client_sent = headers.iter().any(|(k, _)| *k == router.header);
        // Identity and port cost a host call each: read them only when needed.
        let principal = if router.needs_identity || (client_sent && !router.trusted_principals.is_empty()) {
            host.property(&["connection", "uri_san_peer_certificate"])?.map(|v| String::from_utf8_lossy(&v).into_owned())
        } else {
            None
        };
        let port = if router.needs_port {
            host.int_property(&["destination", "port"])?.and_then(|p| u32::try_from(p).ok())
        } else {
            None
        };
        let view = RequestView { headers: &headers, principal: principal.as_deref(), port, fallback_entropy: self.entropy };
        let decision = router.decide(&view);
        match &decision {
            Decision::Route { route, target, .. } => {
                if let Some((matched, sides)) = shared.metrics.routes.get(*route) {
                    count(host, matched.as_ref());
                    count(host, sides.get(*target).and_then(Option::as_ref));
                }
            }
            Decision::Default(_) => count(host, shared.metrics.default.as_ref()),
            Decision::Unrouted => count(host, shared.metrics.unrouted.as_ref()),
            Decision::Trusted => count(host, shared.metrics.trusted.as_ref()),
        }
        match decision.value() {
            Some(value) => {
                // Replacing drops whatever value the client sent. The module
                // speaks ABI 0.2.1 (proxy-wasm 0.2.5), where Envoy clears the
                // route cache on any request-header change by itself, so no
                // clear_route_cache call: an SDK on a later ABI needs it back.
                host.replace_header(MapType::RequestHeaders, &router.header, value.as_bytes())?;
                if router.response_header.is_some() {
                    self.chosen = Some(value.to_string());
                }
            }
            None if client_sent && decision != Decision::Trusted => {
                host.remove_header(MapType::RequestHeaders, &router.header)?;
            }
            None => {}
        }
        if client_sent && decision != Decision::Trusted {
            count(host, shared.metrics.client_header_removed.as_ref());
        }
        if shared.debug {
            let id = view.header("x-request-id").unwrap_or_default();
            host.log(LogLevel::Debug, &format!("header-router: request {id}: {decision:?}"));
        }
        Ok(())
    }
}

impl HttpContext for RouterStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let host = AbiHost;
        if let Err(e) = self.route(&host) {
            // Leave the request as it is: Envoy's own routes still apply.
            count(&host, self.shared.metrics.errors.as_ref());
            host.log(LogLevel::Warn, &format!("header-router: request left unrouted: {e}"));
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        if let (Some(name), Some(value)) = (&self.shared.router.response_header, &self.chosen) {
            let host = AbiHost;
            if let Err(e) = host.replace_header(MapType::ResponseHeaders, name, value.as_bytes()) {
                host.log(LogLevel::Warn, &format!("header-router: {name}: {e}"));
            }
        }
        Action::Continue
    }
}
