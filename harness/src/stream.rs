//! What a test sends and what it gets back: a request as a client sends it,
//! the upstream's scripted answer, scripted answers to the module's own
//! calls, and the outcome of one stream through a chain of filters.

use crate::abi::Action;
use crate::properties::{split_path, PropertyValue};
use crate::state::{GrpcCall, HeaderMap, HttpCall, LocalResponse, LogRecord};
use crate::vm::Trap;
pub use crate::call_reply::CallReply;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// A request as a client sends it over HTTP/1.1 (or HTTP/2: [`Request::http2`]).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub authority: String,
    pub scheme: String,
    /// In order; `host` sets the authority instead.
    pub headers: Vec<(String, String)>,
    /// The body as it arrives, chunk by chunk.
    pub body: Vec<Vec<u8>>,
    pub trailers: Vec<(String, String)>,
    /// Properties for this request (`connection.uri_san_peer_certificate`, ...).
    pub properties: HashMap<Vec<String>, PropertyValue>,
    /// `x-request-id` as Envoy would generate it; left at
    /// [`GENERATED_REQUEST_ID`], each stream gets one of its own (see
    /// [`request_id_of`]).
    pub request_id: String,
    /// Answers for the calls the module makes during this request, by
    /// cluster, in order; the plugin's clusters answer the rest.
    pub calls: HashMap<String, VecDeque<CallReply>>,
    /// The client asked to close the connection after this request
    /// (`connection: close`, which Envoy takes off before the filters).
    pub close_connection: bool,
    /// The client and the upstream speak HTTP/2 (see [`Request::http2`]).
    pub http2: bool,
}

/// The request id of the first stream sent on a state.
pub const GENERATED_REQUEST_ID: &str = "00000000-0000-4000-8000-000000000001";

/// The request id of the `n`th stream (from 1): unique per stream, as
/// Envoy's random UUIDs are, and the same on every run.
pub fn request_id_of(n: u64) -> String {
    format!("00000000-0000-4000-8000-{:012x}", n & 0xffff_ffff_ffff)
}

impl Request {
    pub fn new(method: &str, path: &str) -> Self {
        Self {
            method: method.to_string(),
            path: path.to_string(),
            authority: "localhost".to_string(),
            scheme: "http".to_string(),
            headers: Vec::new(),
            body: Vec::new(),
            trailers: Vec::new(),
            properties: HashMap::new(),
            request_id: GENERATED_REQUEST_ID.to_string(),
            calls: HashMap::new(),
            close_connection: false,
            http2: false,
        }
    }

    /// The stream as an HTTP/2 client sends it through HTTP/2 clusters
    /// (h2c, as sidecars speak): the last DATA frame ends the stream (no
    /// empty end-of-stream callback after the body), no `content-length`
    /// unless a header gives one, and no framing header added towards the
    /// upstream or the client.
    pub fn http2(mut self) -> Self {
        self.http2 = true;
        self
    }

    pub fn get(path: &str) -> Self {
        Self::new("GET", path)
    }

    pub fn post(path: &str, body: impl Into<Vec<u8>>) -> Self {
        Self::new("POST", path).body(body)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        if name.eq_ignore_ascii_case("host") {
            self.authority = value.to_string();
        } else if name.eq_ignore_ascii_case("connection") {
            // Envoy's connection manager removes hop-by-hop headers before
            // any filter runs; `close` is remembered for the response.
            self.close_connection |= value.split(',').any(|t| t.trim().eq_ignore_ascii_case("close"));
        } else {
            self.headers.push((name.to_ascii_lowercase(), value.to_string()));
        }
        self
    }

    /// The whole body in one chunk.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        self.body = if body.is_empty() { Vec::new() } else { vec![body] };
        self
    }

    /// The body in the given chunks, each a separate body callback.
    pub fn chunks<I: IntoIterator<Item = B>, B: Into<Vec<u8>>>(mut self, chunks: I) -> Self {
        self.body = chunks.into_iter().map(Into::into).filter(|c: &Vec<u8>| !c.is_empty()).collect();
        self
    }

    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The next call the module makes to `cluster` during this request gets
    /// `reply` (calls answer in the order scripted).
    pub fn call(mut self, cluster: &str, reply: CallReply) -> Self {
        self.calls.entry(cluster.to_string()).or_default().push_back(reply);
        self
    }

    /// Sets a property by its name, e.g. `connection.mtls`, or with a
    /// bracketed segment: `metadata.filter_metadata["envoy.lb"].canary`.
    pub fn property(mut self, name: &str, value: impl Into<PropertyValue>) -> Self {
        self.properties.insert(split_path(name), value.into());
        self
    }

    /// The header map filters see: Envoy's pseudo-headers first, the
    /// client's headers in order, then what Envoy's connection manager adds.
    pub fn header_map(&self) -> HeaderMap {
        let mut map: HeaderMap = vec![
            (":authority".into(), self.authority.clone().into_bytes()),
            (":path".into(), self.path.clone().into_bytes()),
            (":method".into(), self.method.clone().into_bytes()),
            (":scheme".into(), self.scheme.clone().into_bytes()),
        ];
        for (k, v) in &self.headers {
            map.push((k.clone(), v.clone().into_bytes()));
        }
        let has = |name: &str| self.headers.iter().any(|(k, _)| k == name);
        if !self.http2 && !self.body.is_empty() && !has("content-length") && !has("transfer-encoding") {
            let len: usize = self.body.iter().map(Vec::len).sum();
            map.push(("content-length".into(), len.to_string().into_bytes()));
        }
        if !has("x-forwarded-proto") {
            map.push(("x-forwarded-proto".into(), self.scheme.clone().into_bytes()));
        }
        if !has("x-request-id") {
            map.push(("x-request-id".into(), self.request_id.clone().into_bytes()));
        }
        map
    }
}

/// The upstream's answer.
#[derive(Debug, Clone)]
pub struct UpstreamResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<Vec<u8>>,
    pub trailers: Vec<(String, String)>,
    /// How many times Envoy's router tried the upstream, retries included
    /// (1 without retries): `upstream.request_attempt_count` once the
    /// response is in. The answer above is the last attempt's.
    pub attempts: u32,
    /// The route's timeout (Envoy's default 15 s; 0 disables it), which
    /// the router announces upstream in `x-envoy-expected-rq-timeout-ms`.
    pub route_timeout_ms: u32,
}

impl UpstreamResponse {
    pub fn ok() -> Self {
        Self::status(200)
    }

    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            trailers: Vec::new(),
            attempts: 1,
            route_timeout_ms: crate::envoy_codec::DEFAULT_ROUTE_TIMEOUT_MS,
        }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The body in one chunk, with its content-length.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        let body = body.into();
        self.headers.push(("content-length".into(), body.len().to_string()));
        self.body = if body.is_empty() { Vec::new() } else { vec![body] };
        self
    }

    pub fn chunks<I: IntoIterator<Item = B>, B: Into<Vec<u8>>>(mut self, chunks: I) -> Self {
        self.body = chunks.into_iter().map(Into::into).filter(|c: &Vec<u8>| !c.is_empty()).collect();
        self
    }

    pub fn trailer(mut self, name: &str, value: &str) -> Self {
        self.trailers.push((name.to_ascii_lowercase(), value.to_string()));
        self
    }

    /// The route's timeout in milliseconds (0: none).
    pub fn route_timeout_ms(mut self, ms: u32) -> Self {
        self.route_timeout_ms = ms;
        self
    }

    /// The router made `n` attempts (retries included) before this answer.
    pub fn attempts(mut self, n: u32) -> Self {
        self.attempts = n;
        self
    }

    /// The response header map filters see: Envoy's router adds the
    /// upstream's service time (0 here) after the upstream's headers.
    pub(crate) fn header_map(&self) -> HeaderMap {
        let mut map: HeaderMap = vec![(":status".into(), self.status.to_string().into_bytes())];
        map.extend(self.headers.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())));
        map.push(("x-envoy-upstream-service-time".into(), b"0".to_vec()));
        map
    }
}

/// The request as the upstream received it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forwarded {
    pub method: String,
    pub path: String,
    pub authority: String,
    /// Regular headers in order (pseudo-headers are in the fields above).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

impl Forwarded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The response the client received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One callback the harness made, what it returned, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallbackRecord {
    pub filter: usize,
    pub callback: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Action>,
}

/// Everything that happened to one stream.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Outcome {
    /// What the upstream received; None if it was never contacted.
    pub upstream: Option<Forwarded>,
    /// What the client received; None if the stream stalled or was reset.
    pub response: Option<Response>,
    /// The local response a filter sent, and which filter (index in the chain).
    pub local_response: Option<(usize, LocalResponse)>,
    /// Request headers changed or `clear_route_cache` was called: Envoy
    /// picks the route again.
    pub route_cache_cleared: bool,
    /// Envoy found no route and answered 404 itself: it does, in 1.40, after
    /// a filter replaced the request header map whole.
    pub route_not_found: bool,
    /// Why the stream stopped without finishing (a filter paused and never resumed).
    pub stalled: Option<String>,
    /// A filter closed the stream: Envoy resets it, the client gets no response.
    pub reset: Option<String>,
    /// A trap, by filter index.
    pub trap: Option<(usize, Trap)>,
    pub callbacks: Vec<CallbackRecord>,
    pub logs: Vec<(usize, LogRecord)>,
    /// Host calls made during the stream, by function name.
    pub host_calls: BTreeMap<String, u64>,
    pub http_calls: Vec<HttpCall>,
    pub grpc_calls: Vec<GrpcCall>,
    /// Fuel (roughly, wasm instructions) the stream consumed.
    pub fuel: u64,
}

impl Outcome {
    /// The client's status: the response's, or 0 if the stream stalled.
    pub fn status(&self) -> u16 {
        self.response.as_ref().map_or(0, |r| r.status)
    }

    pub fn logged(&self, needle: &str) -> bool {
        self.logs.iter().any(|(_, l)| l.message.contains(needle))
    }
}
