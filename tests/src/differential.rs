//! Runs one case through the harness and through the real Envoy, with the
//! same module, configuration, request and upstream answer, and reduces both
//! to what can be compared: what the upstream saw and what the client got,
//! over HTTP/1.1 or (a client and a cluster speaking h2c) HTTP/2.

use crate::bootstrap::{Bootstrap, Route, WasmFilter};
use crate::client::Request;
use crate::envoy::{wasm_module, Envoy};
use crate::error::KitError;
use crate::h2_client::H2Request;
use crate::h2_upstream::H2Upstream;
use crate::upstream::{Framing, Script, Upstream};
use serde_json::Value;
use std::time::Duration;

/// Headers whose values differ per run by nature (ids, times), or that
/// name which kit server answered.
const NOT_COMPARED: [&str; 5] = ["x-request-id", "date", "server", "x-envoy-upstream-service-time", "x-upstream-identity"];

/// FAIL_RELOAD's backoff on both sides, short so the next request reloads.
const RELOAD_BACKOFF_MS: u64 = 10;

/// Method, path, headers in order, and body, as the upstream received them.
pub type UpstreamSeen = (String, String, Vec<(String, String)>, Vec<u8>);

/// One side's view of a finished stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// method, path and headers (in order) and body the upstream received.
    pub upstream: Option<UpstreamSeen>,
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    pub response_body: Vec<u8>,
    /// The request's trailers as the upstream received them (HTTP/2).
    pub upstream_trailers: Vec<(String, String)>,
    /// The module's HTTP call as the `callout` cluster received it.
    pub call: Option<UpstreamSeen>,
    /// Values of the metrics the case names, in its order.
    pub metrics: Vec<(String, Option<u64>)>,
    /// The module's log lines the case asks for (those containing its
    /// marker), in Envoy's shape without time stamp, thread and source.
    pub logs: Vec<String>,
}

/// Values that differ per run by nature: request ids and timings, also when
/// a probe copied them into a header it wrote.
fn normalize(value: &str) -> String {
    let uuid = regex_lite::Regex::new("[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").ok();
    let timing = regex_lite::Regex::new("x-envoy-upstream-service-time=[0-9]+").ok();
    let mut v = value.to_string();
    if let Some(re) = uuid {
        v = re.replace_all(&v, "<uuid>").into_owned();
    }
    if let Some(re) = timing {
        v = re.replace_all(&v, "x-envoy-upstream-service-time=<ms>").into_owned();
    }
    v
}

fn keep(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), normalize(v)))
        .filter(|(k, _)| !NOT_COMPARED.contains(&k.as_str()))
        .collect()
}

/// A case: the probe's script, one request, and the upstream's answer.
#[derive(Debug, Clone)]
pub struct Case {
    pub module: &'static str,
    pub config: Value,
    pub failure_policy: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: Vec<u8>,
    pub upstream_status: u16,
    pub upstream_body: Vec<u8>,
    /// How the upstream frames its body (content-length by default).
    pub upstream_framing: Framing,
    /// The route's timeout; None: Envoy's default (15 s).
    pub route_timeout_ms: Option<u32>,
    /// The plugin configuration as raw text instead of `config` as JSON.
    pub raw_config: Option<&'static str>,
    /// Keep the client's connection open (no `connection: close`).
    pub keep_alive: bool,
    /// Envoy HTTP filters before the Wasm one, and the properties the
    /// harness is given to stand for what they set.
    pub native_filters: Vec<Value>,
    pub harness_properties: Vec<(&'static str, harness::properties::PropertyValue)>,
    /// The `callout` cluster answers this long after the call (Envoy: real
    /// time; the harness: virtual time).
    pub callout_delay: Duration,
    /// Worker threads (Envoy's `--concurrency`).
    pub workers: usize,
    /// Metrics to compare after the request.
    pub metrics: Vec<&'static str>,
    /// Time that passes before the compared request (Envoy waits it; the
    /// harness lets it pass in virtual time).
    pub wait: Duration,
    /// Log lines containing this marker are compared.
    pub log_marker: Option<&'static str>,
    /// Requests to send before the compared one (e.g. one that traps),
    /// with these extra headers.
    pub before: usize,
    pub before_headers: Vec<(&'static str, &'static str)>,
    /// A second cluster, `callout`, that the module may call; it answers
    /// this body with status 200 and `x-callout: yes`.
    pub callout: Option<Vec<u8>>,
    /// The client and the upstream speak HTTP/2 (h2c); the body goes as
    /// one DATA frame, followed by `trailers` if any.
    pub http2: bool,
    pub trailers: Vec<(&'static str, &'static str)>,
}

/// The upstream of a case, over either protocol.
enum Peer {
    Http1(Upstream),
    Http2(H2Upstream),
}

impl Peer {
    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Peer::Http1(u) => u.addr(),
            Peer::Http2(u) => u.addr(),
        }
    }

    fn count(&self) -> usize {
        match self {
            Peer::Http1(u) => u.received().len(),
            Peer::Http2(u) => u.received().len(),
        }
    }

    /// The n-th request it received, and its trailers. Over HTTP/2 the
    /// authority stands where HTTP/1's `host` header does.
    fn seen(&self, n: usize) -> Option<(UpstreamSeen, Vec<(String, String)>)> {
        match self {
            Peer::Http1(u) => u.received().get(n).map(|r| ((r.method.clone(), r.path.clone(), keep(&r.headers), r.body.clone()), Vec::new())),
            Peer::Http2(u) => u.received().get(n).map(|r| {
                let mut headers = vec![("host".to_string(), r.authority.clone())];
                headers.extend(keep(&r.headers));
                ((r.method.clone(), r.path.clone(), headers, r.body.clone()), keep(&r.trailers))
            }),
        }
    }
}

impl Case {
    pub fn probe(config: Value) -> Self {
        Self {
            module: "probe_fixture",
            config,
            failure_policy: "FAIL_CLOSED",
            method: "GET",
            path: "/probe",
            headers: vec![("user-agent", "diff/1.0")],
            body: Vec::new(),
            upstream_status: 200,
            upstream_body: b"upstream body\n".to_vec(),
            upstream_framing: Framing::ContentLength,
            route_timeout_ms: None,
            raw_config: None,
            keep_alive: false,
            native_filters: Vec::new(),
            harness_properties: Vec::new(),
            callout_delay: Duration::ZERO,
            workers: 1,
            metrics: Vec::new(),
            wait: Duration::ZERO,
            log_marker: None,
            before: 0,
            before_headers: Vec::new(),
            callout: None,
            http2: false,
            trailers: Vec::new(),
        }
    }

    /// The same case with an HTTP/2 client and an HTTP/2 cluster.
    pub fn http2(mut self) -> Self {
        self.http2 = true;
        self
    }

    pub fn trailer(mut self, name: &'static str, value: &'static str) -> Self {
        self.trailers.push((name, value));
        self
    }

    pub fn request(mut self, method: &'static str, path: &'static str, body: &[u8]) -> Self {
        self.method = method;
        self.path = path;
        self.body = body.to_vec();
        self
    }

    pub fn header(mut self, name: &'static str, value: &'static str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// The upstream's headers as the kit's upstream sends them.
    fn upstream_headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![("content-type".to_string(), "text/plain".to_string())];
        if self.http2 {
            // The kit's HTTP/2 upstream frames its body by DATA frames alone.
            headers.push(("x-upstream-identity".into(), "upstream".into()));
            return headers;
        }
        match self.upstream_framing {
            Framing::ContentLength => headers.push(("content-length".into(), self.upstream_body.len().to_string())),
            Framing::Chunked(_) => headers.push(("transfer-encoding".into(), "chunked".into())),
            Framing::Close => {}
        }
        headers.push(("x-upstream-identity".into(), "upstream".into()));
        headers
    }

    /// The case through both; an error shows both sides (and Envoy's log)
    /// when they differ.
    pub fn compare(&self) -> Result<harness::Outcome, String> {
        let (envoy, log) = self.in_envoy().map_err(|e| e.to_string())?;
        let (harness, outcome) = self.in_harness()?;
        if envoy != harness {
            return Err(format!("harness and Envoy differ\n envoy:   {envoy:?}\n harness: {harness:?}\n harness outcome: {outcome:?}\n envoy log:\n{log}"));
        }
        Ok(outcome)
    }

    /// The case through a real Envoy.
    pub fn in_envoy(&self) -> Result<(Seen, String), KitError> {
        let mut script = Script::ok("upstream").framed(self.upstream_framing);
        script.statuses = vec![self.upstream_status];
        script.body = self.upstream_body.clone();
        let upstream = if self.http2 { Peer::Http2(H2Upstream::start(script)?) } else { Peer::Http1(Upstream::start(script)?) };
        // A short reload backoff, so FAIL_RELOAD reloads on the next request.
        // (Not below 2 ms: Envoy 1.40 dies of SIGFPE computing the jitter of
        // a 1 ms backoff when it reloads.)
        let mut filter = WasmFilter::new(wasm_module(self.module)?, "probe", &self.config)
            .failure_policy(self.failure_policy)
            .reload_backoff_ms(RELOAD_BACKOFF_MS);
        if let Some(raw) = self.raw_config {
            filter = filter.raw_configuration(raw);
        }
        let mut route = Route::prefix("/", "upstream");
        if let Some(ms) = self.route_timeout_ms {
            route = route.timeout_ms(u64::from(ms));
        }
        let bootstrap = if self.http2 { Bootstrap::new().h2_cluster("upstream", upstream.addr()) } else { Bootstrap::new().cluster("upstream", upstream.addr()) };
        let mut bootstrap = bootstrap.route(route).filter(filter);
        for native in &self.native_filters {
            bootstrap = bootstrap.native_filter(native.clone());
        }
        let callout = match &self.callout {
            Some(body) => {
                let mut script = Script::ok("callout").with_header("x-callout", "yes").with_delay(self.callout_delay);
                script.body = body.clone();
                Some(Upstream::start(script)?)
            }
            None => None,
        };
        if let Some(c) = &callout {
            bootstrap = bootstrap.cluster("callout", c.addr());
        }
        let envoy = Envoy::start_json_with_workers(&bootstrap.to_json(), self.workers)?;
        let mut request = Request::new(self.method, self.path);
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        request.body = self.body.clone();
        request.keep_alive = self.keep_alive;
        let mut before = request.clone();
        for (k, v) in &self.before_headers {
            before = before.header(k, v);
        }
        let with_log = |e: KitError| KitError::Protocol(format!("{e}; envoy log:\n{}", envoy.log()));
        for _ in 0..self.before {
            before.send(envoy.listener()).map_err(with_log)?;
        }
        std::thread::sleep(Duration::from_millis(2 * RELOAD_BACKOFF_MS).max(self.wait));
        let seen_before = upstream.count();
        let (status, response_headers, response_body) = if self.http2 {
            let mut h2 = H2Request::new(self.method, self.path).frames(if self.body.is_empty() { Vec::new() } else { vec![self.body.clone()] });
            for (k, v) in &self.headers {
                h2 = h2.header(k, v);
            }
            for (k, v) in &self.trailers {
                h2 = h2.trailer(k, v);
            }
            let r = h2.send(envoy.listener()).map_err(with_log)?;
            (r.status, r.headers, r.body)
        } else {
            let r = envoy.send(&request).map_err(with_log)?;
            (r.status, r.message.headers, r.message.body)
        };
        // The upstream request, if any, has arrived by the time the client has its answer.
        let (upstream_seen, upstream_trailers) = match upstream.seen(seen_before) {
            Some((seen, trailers)) => (Some(seen), trailers),
            None => (None, Vec::new()),
        };
        std::thread::sleep(Duration::from_millis(50));
        let call = callout.as_ref().and_then(|c| c.received().into_iter().last()).map(|r| (r.method.clone(), r.path.clone(), keep(&r.headers), r.body));
        let mut metrics = Vec::new();
        for name in &self.metrics {
            metrics.push((name.to_string(), envoy.wasm_metric(name)?));
        }
        let log = envoy.log();
        let logs = self.log_marker.map(|marker| envoy_log_lines(&log, marker)).unwrap_or_default();
        let seen = Seen {
            upstream: upstream_seen,
            status,
            response_headers: keep(&response_headers),
            response_body,
            upstream_trailers,
            call,
            metrics,
            logs,
        };
        Ok((seen, log))
    }

    /// The case through the harness.
    pub fn in_harness(&self) -> Result<(Seen, harness::Outcome), String> {
        let module = harness::Module::load(wasm_module(self.module).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let policy = match self.failure_policy {
            "FAIL_OPEN" => harness::FailurePolicy::FailOpen,
            "FAIL_RELOAD" => harness::FailurePolicy::FailReload,
            _ => harness::FailurePolicy::FailClosed,
        };
        let mut config = harness::PluginConfig::new("probe")
            .json(&self.config)
            .failure_policy(policy)
            .reload_backoff(Duration::from_millis(RELOAD_BACKOFF_MS))
            .workers(self.workers);
        if let Some(raw) = self.raw_config {
            config = config.configuration(raw);
        }
        for (name, value) in &self.harness_properties {
            config = config.property(name, value.clone());
        }
        if let Some(body) = &self.callout {
            // As the kit's upstream answers: its headers, then the body.
            let reply = harness::CallReply::http(200, body.clone())
                .header("content-type", "text/plain")
                .header("content-length", &body.len().to_string())
                .header("x-upstream-identity", "callout")
                .header("x-callout", "yes")
                .after(self.callout_delay);
            config = config.cluster("callout", reply);
        }
        let shared = harness::SharedState::new();
        let mut plugin = harness::Plugin::start(&module, config, shared.clone()).map_err(|e| e.to_string())?;
        let mut request = harness::Request::new(self.method, self.path);
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        if self.http2 {
            request = request.http2();
        } else if !self.keep_alive {
            request = request.header("connection", "close");
        }
        request = request.body(self.body.clone());
        for (k, v) in &self.trailers {
            request = request.trailer(k, v);
        }
        let mut upstream = harness::UpstreamResponse::status(self.upstream_status);
        if let Some(ms) = self.route_timeout_ms {
            upstream = upstream.route_timeout_ms(ms);
        }
        for (k, v) in self.upstream_headers() {
            upstream = upstream.header(&k, &v);
        }
        upstream = upstream.chunks([self.upstream_body.clone()]);
        let mut before = request.clone();
        for (k, v) in &self.before_headers {
            before = before.header(k, v);
        }
        for _ in 0..self.before {
            plugin.send(&before, &upstream);
        }
        // Past the reload backoff, as the Envoy side is by the time its
        // VM started and the first request ran.
        std::thread::sleep(Duration::from_millis(2 * RELOAD_BACKOFF_MS));
        plugin.advance(self.wait).map_err(|t| t.to_string())?;
        let mut logs: Vec<harness::state::LogRecord> = plugin.start_logs.clone();
        logs.extend(plugin.take_background_logs());
        let outcome = plugin.send(&request, &upstream);
        logs.extend(outcome.logs.iter().map(|(_, l)| l.clone()));
        let response = outcome.response.clone().ok_or_else(|| format!("stalled: {:?}", outcome.stalled))?;
        let call = outcome.http_calls.last().map(|c| {
            let header = |name: &str| c.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
            let mut headers = vec![("host".to_string(), header(":authority"))];
            headers.extend(keep(&c.received_headers).into_iter().filter(|(k, _)| !k.starts_with(':')));
            (header(":method"), header(":path"), headers, c.body.clone())
        });
        let metrics = self.metrics.iter().map(|name| (name.to_string(), shared.metrics().get(*name).map(|v| *v as u64))).collect();
        let logs = match self.log_marker {
            Some(marker) => logs
                .iter()
                .filter(|l| l.message.contains(marker))
                .map(|l| harness::report::envoy_log_line(plugin.info(), l))
                .collect(),
            None => Vec::new(),
        };
        let seen = Seen {
            upstream: outcome.upstream.as_ref().map(|u| {
                let mut headers = vec![("host".to_string(), u.authority.clone())];
                headers.extend(keep(&u.headers));
                (u.method.clone(), u.path.clone(), headers, u.body.clone())
            }),
            status: response.status,
            response_headers: keep(&response.headers),
            response_body: response.body.clone(),
            upstream_trailers: outcome.upstream.as_ref().map(|u| keep(&u.trailers)).unwrap_or_default(),
            call,
            metrics,
            logs,
        };
        Ok((seen, outcome))
    }
}

/// Where the probe writes what it observed: header `name` of `map`.
pub fn to(map: &str, name: &str) -> Value {
    serde_json::json!({ "map": map, "name": name })
}

/// The module's log lines in Envoy's log that contain `marker`, as
/// `[level][wasm] wasm log...: message` (time stamp, thread and source
/// location dropped, as the harness prints them).
pub fn envoy_log_lines(log: &str, marker: &str) -> Vec<String> {
    let Ok(shape) = regex_lite::Regex::new(r"^\[[^\]]*\]\[\d+\](\[\w+\]\[wasm\]) \[[^\]]*\] (wasm log.*)$") else { return Vec::new() };
    log.lines()
        .filter(|l| l.contains(marker))
        .filter_map(|l| shape.captures(l).map(|c| format!("{} {}", &c[1], &c[2])))
        .collect()
}
