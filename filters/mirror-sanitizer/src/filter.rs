//! The proxy-wasm glue. The root context compiles the configuration (the
//! hash key from the config or a VM environment variable) and defines the
//! metrics once. Each stream decides in its request-headers callback whether
//! it is a shadow copy (one host call, none for `match: all`); a primary
//! request is never touched again. A shadow request has its headers
//! sanitized at once; its body is collected by the filter to its end (up to
//! the limit) and sanitized whole, or dropped (or the request refused) when
//! it cannot be.

use crate::body::{classify, sanitize_body, BodyKind, Unsanitizable};
use crate::config::{OnUnsanitizable, Policy, ShadowMatch};
use crate::grpc_framing::{self, Reframer};
use crate::redact::Redactor;
use crate::request::{sanitize_headers, HeaderEdit};
use crate::shadow::is_shadow_authority;
use filter_common::codec::Header;
use filter_common::metrics::name_part;
use filter_common::{count, load_config, AbiHost, BufferType, Host, HostError, LogLevel, MapType, Metric};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::rc::Rc;

struct Metrics {
    sanitized: Option<Metric>,
    dropped_oversize: Option<Metric>,
    dropped_unreadable: Option<Metric>,
    rejected: Option<Metric>,
    grpc_messages_dropped: Option<Metric>,
    grpc_messages_sanitized: Option<Metric>,
    errors: Option<Metric>,
    /// Per rule, in the policy's order: values redacted.
    rules: Vec<Option<Metric>>,
}

impl Metrics {
    fn define(host: &dyn Host, policy: &Policy) -> Self {
        let counter = |name: &str| Metric::counter(host, name).ok();
        Self {
            sanitized: counter("mirror_sanitizer.shadow.sanitized"),
            dropped_oversize: counter("mirror_sanitizer.shadow.dropped_oversize"),
            dropped_unreadable: counter("mirror_sanitizer.shadow.dropped_unreadable"),
            rejected: counter("mirror_sanitizer.shadow.rejected"),
            grpc_messages_dropped: counter("mirror_sanitizer.shadow.grpc_messages_dropped"),
            grpc_messages_sanitized: counter("mirror_sanitizer.shadow.grpc_messages_sanitized"),
            errors: counter("mirror_sanitizer.errors"),
            rules: policy.rules.iter().map(|r| counter(&format!("mirror_sanitizer.rule.{}.redactions", name_part(&r.name)))).collect(),
        }
    }
}

struct Shared {
    policy: Policy,
    metrics: Metrics,
    debug: bool,
}

#[derive(Default)]
pub struct SanitizerRoot {
    shared: Option<Rc<Shared>>,
}

impl Context for SanitizerRoot {}

impl RootContext for SanitizerRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let host = AbiHost;
        let env = |name: &str| std::env::var(name).ok();
        let Some(policy) = load_config(&host, "mirror-sanitizer", |bytes| Policy::parse(bytes, &env)) else { return false };
        let metrics = Metrics::define(&host, &policy);
        let debug = host.log_level().is_ok_and(|l| l <= LogLevel::Debug);
        self.shared = Some(Rc::new(Shared { policy, metrics, debug }));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = Rc::clone(self.shared.as_ref()?);
        Some(Box::new(SanitizerStream { shared, state: State::Primary, request_id: String::new(), hold: false }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Where a stream stands.
enum State {
    /// Not a shadow copy (or nothing left to do): every callback passes.
    Primary,
    /// A shadow copy whose body the filter is collecting (taken out of each
    /// data callback, so Envoy's own buffer limit never trips on it) for
    /// this reader.
    Buffering(BodyKind, Vec<u8>),
    /// A shadow copy whose body is dropped as it arrives.
    Dropping,
    /// A shadow gRPC call, its framing kept: each message is rewritten by
    /// its type (an index into the policy's schema) when the call's method
    /// is known, else replaced by an empty one as it streams by.
    Grpc(Reframer, Option<usize>),
    /// A shadow copy refused or finished.
    Done,
}

struct SanitizerStream {
    shared: Rc<Shared>,
    state: State,
    request_id: String,
    /// The copy announced trailers (`trailer`): its emptied chunks are held
    /// so that the trailers callback may write the body (see `collect`).
    hold: bool,
}

impl Context for SanitizerStream {}

/// Writes header edits into a map (the request headers, or its trailers).
fn apply_edits(host: &dyn Host, map: MapType, edits: &[HeaderEdit]) -> Result<(), HostError> {
    for edit in edits {
        match edit {
            HeaderEdit::Remove(name) => host.remove_header(map, name)?,
            HeaderEdit::Set(name, values) => match values.as_slice() {
                [one] => host.replace_header(map, name, one)?,
                many => {
                    host.remove_header(map, name)?;
                    for v in many {
                        host.add_header(map, name, v)?;
                    }
                }
            },
        }
    }
    Ok(())
}

fn header<'h>(headers: &[Header<'h>], name: &str) -> Option<&'h str> {
    headers.iter().find(|&&(k, _)| k == name).and_then(|&(_, v)| std::str::from_utf8(v).ok())
}

impl SanitizerStream {
    fn is_shadow(&self, host: &dyn Host) -> Result<bool, HostError> {
        Ok(match &self.shared.policy.shadow {
            ShadowMatch::All => true,
            ShadowMatch::HostSuffix(suffix) => {
                host.header(MapType::RequestHeaders, ":authority")?.is_some_and(|a| is_shadow_authority(&a, suffix))
            }
            ShadowMatch::Header { name, .. } => host.header(MapType::RequestHeaders, name)?.is_some(),
        })
    }

    fn record(&self, host: &dyn Host, r: &Redactor) {
        for (metric, &n) in self.shared.metrics.rules.iter().zip(&r.counts) {
            if n > 0 {
                if let Some(m) = metric {
                    m.add(host, i64::from(n));
                }
            }
        }
    }

    /// Sanitizes the shadow request's headers and plans its body.
    fn shadow_headers(&mut self, host: &dyn Host, end_of_stream: bool) -> Result<Action, HostError> {
        let shared = Rc::clone(&self.shared);
        let block = host.header_block(MapType::RequestHeaders)?;
        let headers = block.pairs_where(|_| true)?;
        self.request_id = header(&headers, "x-request-id").unwrap_or_default().chars().take(64).collect();
        let mut r = crate::nested::redactor(&shared.policy);
        apply_edits(host, MapType::RequestHeaders, &sanitize_headers(&headers, &shared.policy.shadow, &mut r))?;
        self.record(host, &r);
        if shared.debug {
            host.log(LogLevel::Debug, &format!("mirror-sanitizer: shadow request {}: {} header values redacted", self.request_id, r.total()));
        }
        if end_of_stream {
            count(host, shared.metrics.sanitized.as_ref());
            self.state = State::Done;
            return Ok(Action::Continue);
        }
        // The body may change: a stale content-length would cut it short.
        let declared = header(&headers, "content-length").and_then(|v| v.trim().parse::<u64>().ok());
        if headers.iter().any(|&(k, _)| k == "content-length") {
            host.remove_header(MapType::RequestHeaders, "content-length")?;
        }
        if declared == Some(0) {
            count(host, shared.metrics.sanitized.as_ref());
            self.state = State::Done;
            return Ok(Action::Continue);
        }
        let content_type = header(&headers, "content-type");
        if grpc_framing::is_grpc(content_type) {
            // With the call's message type known, its messages are
            // rewritten field by field; otherwise each is dropped.
            let input = shared.policy.schema.as_ref().filter(|_| grpc_framing::is_protobuf(content_type)).and_then(|s| s.input_of(header(&headers, ":path").unwrap_or_default()));
            self.state = match input {
                Some(message) => State::Grpc(Reframer::rewriting(shared.policy.max_body_bytes), Some(message)),
                None => State::Grpc(Reframer::default(), None),
            };
            return Ok(Action::Continue);
        }
        let limit = shared.policy.max_body_bytes;
        let plan = match declared {
            Some(n) if n > limit as u64 => Err(Unsanitizable::Oversize { limit }),
            _ => classify(content_type, header(&headers, "content-encoding")),
        };
        match plan {
            Ok(kind) => {
                self.hold = headers.iter().any(|&(k, _)| k == "trailer");
                self.state = State::Buffering(kind, Vec::new());
                Ok(Action::Continue)
            }
            Err(why) => {
                // An empty body that still says gzip would not decode.
                if matches!(why, Unsanitizable::Encoded(_)) && shared.policy.on_unsanitizable == OnUnsanitizable::DropBody {
                    host.remove_header(MapType::RequestHeaders, "content-encoding")?;
                }
                Ok(self.unsanitizable(host, &why))
            }
        }
    }

    /// Counts and logs a body that cannot go on, then drops it or refuses
    /// the request.
    fn unsanitizable(&mut self, host: &dyn Host, why: &Unsanitizable) -> Action {
        let shared = Rc::clone(&self.shared);
        let m = &shared.metrics;
        count(host, if why.is_oversize() { m.dropped_oversize.as_ref() } else { m.dropped_unreadable.as_ref() });
        match shared.policy.on_unsanitizable {
            OnUnsanitizable::DropBody => {
                host.log(LogLevel::Info, &format!("mirror-sanitizer: shadow request {}: body dropped: {why}", self.request_id));
                self.state = State::Dropping;
                Action::Continue
            }
            OnUnsanitizable::Reject => {
                host.log(LogLevel::Info, &format!("mirror-sanitizer: shadow request {}: refused: {why}", self.request_id));
                count(host, m.rejected.as_ref());
                self.state = State::Done;
                let sent = host.send_local_response(403, "mirror_sanitizer_refused", &[], b"shadow request refused: body cannot be sanitized\n");
                if sent.is_err() {
                    count(host, m.errors.as_ref());
                }
                Action::Pause
            }
        }
    }

    fn shadow_body(&mut self, host: &dyn Host, size: usize, end_of_stream: bool) -> Result<Action, HostError> {
        match self.state {
            State::Primary | State::Done => Ok(Action::Continue),
            State::Dropping => {
                if size > 0 {
                    host.set_buffer(BufferType::RequestBody, 0, size, &[])?;
                }
                Ok(Action::Continue)
            }
            State::Buffering(..) => self.collect(host, size, end_of_stream),
            State::Grpc(..) => self.reframe(host, size, end_of_stream),
        }
    }

    /// Passes on what each message that ended in this chunk becomes (its
    /// sanitized form, or an empty message); no byte of a message leaves
    /// unsanitized.
    fn reframe(&mut self, host: &dyn Host, size: usize, end_of_stream: bool) -> Result<Action, HostError> {
        let shared = Rc::clone(&self.shared);
        let State::Grpc(reframer, input) = &mut self.state else { return Ok(Action::Continue) };
        let (before, dropped_before) = (reframer.messages, reframer.dropped);
        let mut r = crate::nested::redactor(&shared.policy);
        if size > 0 {
            let chunk = host.buffer(BufferType::RequestBody, 0, size)?.unwrap_or_default();
            let out = match (*input, shared.policy.schema.as_ref()) {
                (Some(message), Some(schema)) => reframer.chunk(&chunk, &mut |m| {
                    // Counted only when the whole message could be sanitized
                    // (an undecodable one is dropped, nothing of it redacted).
                    let mut one = crate::nested::redactor(&shared.policy);
                    let out = crate::protobuf::sanitize_message(schema, message, m, &mut one).ok()?;
                    for (total, n) in r.counts.iter_mut().zip(&one.counts) {
                        *total = total.saturating_add(*n);
                    }
                    Some(out)
                }),
                _ => reframer.chunk(&chunk, &mut |_| None),
            };
            host.set_buffer(BufferType::RequestBody, 0, size, &out)?;
        }
        let dropped = reframer.dropped - dropped_before;
        let sanitized = reframer.messages - before - dropped;
        let m = &shared.metrics;
        for (metric, n) in [(&m.grpc_messages_dropped, dropped), (&m.grpc_messages_sanitized, sanitized)] {
            if let (Some(metric), true) = (metric, n > 0) {
                metric.add(host, i64::try_from(n).unwrap_or(i64::MAX));
            }
        }
        self.record(host, &r);
        if end_of_stream {
            self.grpc_done(host);
        }
        Ok(Action::Continue)
    }

    fn grpc_done(&mut self, host: &dyn Host) {
        if let State::Grpc(reframer, _) = &self.state {
            if self.shared.debug {
                let cut = if reframer.at_boundary() { "" } else { " (cut inside a message)" };
                let sanitized = reframer.messages - reframer.dropped;
                host.log(LogLevel::Debug, &format!("mirror-sanitizer: shadow gRPC call {}: {sanitized} messages sanitized, {} passed on empty{cut}", self.request_id, reframer.dropped));
            }
            count(host, self.shared.metrics.sanitized.as_ref());
        }
        self.state = State::Done;
    }

    /// Takes this data callback's bytes into the filter's own buffer and
    /// passes the (now empty) chunk on; at the end of the stream (the last
    /// data callback, or the trailers), writes the sanitized body in its
    /// place. Envoy then holds none of the copy while it arrives, whatever
    /// its size. A copy that announced trailers has its emptied chunks held
    /// instead: Envoy opens its body buffer to the filter in the trailers
    /// callback only after a held chunk. The price is Envoy's buffer limit:
    /// a held stream that receives one chunk larger than the limit (one
    /// read of a fast HTTP/1 upload) is answered 413 by Envoy and lost.
    fn collect(&mut self, host: &dyn Host, size: usize, end_of_stream: bool) -> Result<Action, HostError> {
        let limit = self.shared.policy.max_body_bytes;
        let chunk = if size > 0 { host.buffer(BufferType::RequestBody, 0, size)?.unwrap_or_default() } else { Vec::new() };
        let State::Buffering(_, body) = &mut self.state else {
            return Ok(Action::Continue);
        };
        if body.len().saturating_add(chunk.len()) > limit {
            *body = Vec::new();
            let action = self.unsanitizable(host, &Unsanitizable::Oversize { limit });
            if matches!(self.state, State::Dropping) && size > 0 {
                host.set_buffer(BufferType::RequestBody, 0, size, &[])?;
            }
            return Ok(action);
        }
        body.extend_from_slice(&chunk);
        if !end_of_stream {
            if size > 0 {
                host.set_buffer(BufferType::RequestBody, 0, size, &[])?;
            }
            return Ok(if self.hold { Action::Pause } else { Action::Continue });
        }
        self.finish_body(host, size)
    }

    /// Sanitizes the collected body and writes it over the `size` bytes in
    /// Envoy's buffer (the last chunk; nothing when trailers end the body).
    fn finish_body(&mut self, host: &dyn Host, size: usize) -> Result<Action, HostError> {
        let State::Buffering(kind, body) = &mut self.state else {
            return Ok(Action::Continue);
        };
        let kind = kind.clone();
        let body = std::mem::take(body);
        let shared = Rc::clone(&self.shared);
        let mut r = crate::nested::redactor(&shared.policy);
        let result = if body.is_empty() { Ok(None) } else { sanitize_body(&kind, &body, &mut r) };
        match result {
            Ok(new) => {
                let out = new.as_deref().unwrap_or(&body);
                // The last chunk becomes the whole (sanitized) body.
                if !(out.is_empty() && size == 0) {
                    host.set_buffer(BufferType::RequestBody, 0, size, out)?;
                }
                self.record(host, &r);
                count(host, shared.metrics.sanitized.as_ref());
                if shared.debug {
                    host.log(LogLevel::Debug, &format!("mirror-sanitizer: shadow request {}: body sanitized, {} values redacted", self.request_id, r.total()));
                }
                self.state = State::Done;
                Ok(Action::Continue)
            }
            Err(why) => {
                let action = self.unsanitizable(host, &why);
                if matches!(self.state, State::Dropping) && size > 0 {
                    host.set_buffer(BufferType::RequestBody, 0, size, &[])?;
                }
                Ok(action)
            }
        }
    }

    /// The end of a shadow stream that carries trailers: the body ends here
    /// (sanitized, dropped or refused as at an end of stream), then the
    /// trailers are sanitized by the header rules.
    fn shadow_trailers(&mut self, host: &dyn Host) -> Result<Action, HostError> {
        match self.state {
            State::Buffering(..) if self.hold => {
                if self.finish_body(host, 0)? == Action::Pause {
                    return Ok(Action::Pause);
                }
            }
            // The body went on emptied, chunk by chunk, and cannot be
            // written now.
            State::Buffering(..) => {
                if self.unsanitizable(host, &Unsanitizable::UnannouncedTrailers) == Action::Pause {
                    return Ok(Action::Pause);
                }
            }
            // Every message is already out, empty.
            State::Grpc(..) => self.grpc_done(host),
            State::Primary => return Ok(Action::Continue),
            State::Dropping | State::Done => {}
        }
        self.state = State::Done;
        let block = host.header_block(MapType::RequestTrailers)?;
        let trailers = block.pairs_where(|_| true)?;
        let mut r = crate::nested::redactor(&self.shared.policy);
        apply_edits(host, MapType::RequestTrailers, &sanitize_headers(&trailers, &self.shared.policy.shadow, &mut r))?;
        self.record(host, &r);
        Ok(Action::Continue)
    }

    /// A host call failed on a shadow request: nothing unsanitized may leave,
    /// so the shadow request is refused.
    fn fail_closed(&mut self, host: &dyn Host, e: &HostError) -> Action {
        count(host, self.shared.metrics.errors.as_ref());
        host.log(LogLevel::Warn, &format!("mirror-sanitizer: shadow request {} refused: {e}", self.request_id));
        self.state = State::Done;
        let _ = host.send_local_response(500, "mirror_sanitizer_error", &[], b"");
        Action::Pause
    }
}

impl HttpContext for SanitizerStream {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let host = AbiHost;
        match self.is_shadow(&host) {
            Ok(false) => Action::Continue,
            Ok(true) => match self.shadow_headers(&host, end_of_stream) {
                Ok(action) => action,
                Err(e) => self.fail_closed(&host, &e),
            },
            Err(e) => {
                // The primary is never failed by the sanitizer; a request it
                // cannot classify is counted and left alone.
                count(&host, self.shared.metrics.errors.as_ref());
                host.log(LogLevel::Warn, &format!("mirror-sanitizer: cannot tell whether a request is a shadow copy: {e}"));
                Action::Continue
            }
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if matches!(self.state, State::Primary | State::Done) {
            return Action::Continue;
        }
        let host = AbiHost;
        match self.shadow_body(&host, body_size, end_of_stream) {
            Ok(action) => action,
            Err(e) => self.fail_closed(&host, &e),
        }
    }

    fn on_http_request_trailers(&mut self, _trailers: usize) -> Action {
        if matches!(self.state, State::Primary) {
            return Action::Continue;
        }
        let host = AbiHost;
        match self.shadow_trailers(&host) {
            Ok(action) => action,
            Err(e) => self.fail_closed(&host, &e),
        }
    }
}
