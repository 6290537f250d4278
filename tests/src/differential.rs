//! Runs one case through the harness and through the real Envoy, with the
//! same module, configuration, request and upstream answer, and reduces both
//! to what can be compared: what the upstream saw and what the client got.

use crate::bootstrap::{Bootstrap, WasmFilter};
use crate::client::Request;
use crate::envoy::{wasm_module, Envoy};
use crate::error::KitError;
use crate::upstream::{Script, Upstream};
use serde_json::Value;
use std::time::Duration;

/// Headers only one side has by construction: Envoy's router and codec add
/// them outside any filter's view (or with values that differ per run).
const NOT_COMPARED: [&str; 8] = [
    "x-request-id",
    "x-envoy-expected-rq-timeout-ms",
    "date",
    "server",
    "x-envoy-upstream-service-time",
    "connection",
    "transfer-encoding",
    "x-upstream-identity",
];

/// FAIL_RELOAD's backoff on both sides, short so the next request reloads.
const RELOAD_BACKOFF_MS: u64 = 10;

/// Method, path, headers in order, and body, as the upstream received them.
pub type UpstreamSeen = (String, String, Vec<(String, String)>, String);

/// One side's view of a finished stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    /// method, path and headers (in order) and body the upstream received.
    pub upstream: Option<UpstreamSeen>,
    pub status: u16,
    pub response_headers: Vec<(String, String)>,
    pub response_body: String,
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
    pub upstream_body: &'static str,
    /// Requests to send before the compared one (e.g. one that traps),
    /// with these extra headers.
    pub before: usize,
    pub before_headers: Vec<(&'static str, &'static str)>,
    /// A second cluster, `callout`, that the module may call; it answers
    /// this body with status 200 and `x-callout: yes`.
    pub callout: Option<&'static str>,
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
            upstream_body: "upstream body\n",
            before: 0,
            before_headers: Vec::new(),
            callout: None,
        }
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

    fn upstream_headers(&self) -> Vec<(String, String)> {
        vec![
            ("content-type".into(), "text/plain".into()),
            ("content-length".into(), self.upstream_body.len().to_string()),
            ("x-upstream-identity".into(), "upstream".into()),
        ]
    }

    /// The case through a real Envoy.
    pub fn in_envoy(&self) -> Result<(Seen, String), KitError> {
        let mut script = Script::ok("upstream");
        script.statuses = vec![self.upstream_status];
        script.body = self.upstream_body.as_bytes().to_vec();
        let upstream = Upstream::start(script)?;
        // A short reload backoff, so FAIL_RELOAD reloads on the next request.
        // (Not below 2 ms: Envoy 1.40 dies of SIGFPE computing the jitter of
        // a 1 ms backoff when it reloads.)
        let filter = WasmFilter::new(wasm_module(self.module)?, "probe", &self.config)
            .failure_policy(self.failure_policy)
            .reload_backoff_ms(RELOAD_BACKOFF_MS);
        let mut bootstrap = Bootstrap::to_upstream(upstream.addr()).filter(filter);
        let callout = match self.callout {
            Some(body) => {
                let mut script = Script::ok("callout").with_header("x-callout", "yes");
                script.body = body.as_bytes().to_vec();
                Some(Upstream::start(script)?)
            }
            None => None,
        };
        if let Some(c) = &callout {
            bootstrap = bootstrap.cluster("callout", c.addr());
        }
        let envoy = Envoy::start(&bootstrap)?;
        let mut request = Request::new(self.method, self.path);
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        request.body = self.body.clone();
        let mut before = request.clone();
        for (k, v) in &self.before_headers {
            before = before.header(k, v);
        }
        let with_log = |e: KitError| KitError::Protocol(format!("{e}; envoy log:\n{}", envoy.log()));
        for _ in 0..self.before {
            before.send(envoy.listener()).map_err(with_log)?;
        }
        std::thread::sleep(Duration::from_millis(2 * RELOAD_BACKOFF_MS));
        let seen_before = upstream.received().len();
        let response = envoy.send(&request).map_err(with_log)?;
        // The upstream request, if any, has arrived by the time the client has its answer.
        let received = upstream.received();
        let upstream_seen = received.get(seen_before).map(|r| (r.method.clone(), r.path.clone(), keep(&r.headers), r.body_text()));
        std::thread::sleep(Duration::from_millis(50));
        let seen = Seen {
            upstream: upstream_seen,
            status: response.status,
            response_headers: keep(&response.message.headers),
            response_body: response.body_text(),
        };
        Ok((seen, envoy.log()))
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
            .reload_backoff(Duration::from_millis(RELOAD_BACKOFF_MS));
        if let Some(body) = self.callout {
            // As the kit's upstream answers: its headers, then the body.
            let reply = harness::CallReply::http(200, body)
                .header("content-type", "text/plain")
                .header("content-length", &body.len().to_string())
                .header("x-upstream-identity", "callout")
                .header("x-callout", "yes");
            config = config.cluster("callout", reply);
        }
        let mut plugin = harness::Plugin::start(&module, config, harness::SharedState::new()).map_err(|e| e.to_string())?;
        let mut request = harness::Request::new(self.method, self.path);
        for (k, v) in &self.headers {
            request = request.header(k, v);
        }
        request = request.body(self.body.clone());
        let mut upstream = harness::UpstreamResponse::status(self.upstream_status);
        for (k, v) in self.upstream_headers() {
            upstream = upstream.header(&k, &v);
        }
        upstream = upstream.chunks([self.upstream_body.as_bytes().to_vec()]);
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
        let outcome = plugin.send(&request, &upstream);
        let response = outcome.response.clone().ok_or_else(|| format!("stalled: {:?}", outcome.stalled))?;
        let seen = Seen {
            upstream: outcome.upstream.as_ref().map(|u| {
                let mut headers = vec![("host".to_string(), u.authority.clone())];
                headers.extend(keep(&u.headers));
                (u.method.clone(), u.path.clone(), headers, u.body_text())
            }),
            status: response.status,
            response_headers: keep(&response.headers),
            response_body: response.body_text(),
        };
        Ok((seen, outcome))
    }
}
