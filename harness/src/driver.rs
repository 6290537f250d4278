//! Drives one HTTP stream through a chain of plugins the way Envoy's filter
//! manager does: request headers, body chunks and trailers in filter order,
//! the upstream, then the response in reverse order, then log, done and
//! delete. A paused filter holds the stream until it resumes; a body callback
//! that pauses buffers, and sees the whole body so far on its next call; a
//! local response ends the request and runs the response path; a trap is
//! handled as the plugin's failure policy says.

use crate::abi::Action;
use crate::access::Access;
use crate::envoy_codec::{self, ClientSide};
use crate::plugin::{FailurePolicy, Plugin};
use crate::state::{HeaderMap, LocalResponse, StreamView};
use crate::stream::{CallbackRecord, Forwarded, Outcome, Request, Response, UpstreamResponse};
use crate::vm::Trap;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Request,
    Response,
}

/// Why a phase ended early.
enum Stop {
    /// A filter (index) answered locally, or failed closed.
    Reply(usize, LocalResponse),
    Stall(String),
    /// A filter closed the stream (`proxy_close_stream`): Envoy resets it.
    Reset(usize),
}

enum Step {
    Continue,
    Pause,
    Stop(Stop),
}

#[derive(Default)]
struct Slot {
    context: u32,
    created: bool,
    /// Fail-open after a trap: the filter is passed over.
    skip: bool,
    /// Body this filter holds (it paused a body callback).
    pending: Vec<u8>,
    /// Its last body callback paused: Envoy keeps its body buffer open to it.
    buffering: bool,
}

/// The maps as the stream carries them between filters.
#[derive(Default)]
struct Maps {
    request_headers: HeaderMap,
    request_trailers: HeaderMap,
    response_headers: HeaderMap,
    response_trailers: HeaderMap,
}

struct Driver<'a> {
    chain: &'a mut [Plugin],
    /// What the response's framing depends on: HEAD, `connection: close`,
    /// a request body not yet read.
    client: ClientSide,
    /// The request's end of stream has reached the filters.
    request_ended: bool,
    slots: Vec<Slot>,
    maps: Maps,
    /// Body that has passed every filter, per direction.
    request_sink: Vec<u8>,
    response_sink: Vec<u8>,
    out: Outcome,
}

/// The local reply Envoy sends when a VM failed closed.
fn fail_stream_reply() -> LocalResponse {
    LocalResponse { status: 503, details: "wasm_fail_stream".into(), headers: Vec::new(), body: Vec::new(), grpc_status: 14 }
}

/// How much of a body Envoy holds for a filter that paused on it: the
/// default `per_connection_buffer_limit_bytes`.
pub const BUFFER_LIMIT: usize = 1024 * 1024;

/// Envoy's answer when the request body a paused filter holds outgrows
/// the limit. (A response body that does is not modelled: Envoy answers
/// 500, or resets the stream once the client has the response headers.)
fn too_large_reply() -> LocalResponse {
    LocalResponse { status: 413, details: "request_payload_too_large".into(), headers: Vec::new(), body: b"Payload Too Large".to_vec(), grpc_status: -1 }
}

fn text(map: &HeaderMap) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned())).collect()
}

fn pseudo(map: &HeaderMap, name: &str) -> String {
    map.iter().find(|(k, _)| k == name).map(|(_, v)| String::from_utf8_lossy(v).into_owned()).unwrap_or_default()
}

fn regular(map: &HeaderMap) -> Vec<(String, String)> {
    text(map).into_iter().filter(|(k, _)| !k.starts_with(':')).collect()
}

/// The request's headers as the chain receives them: a request id Envoy
/// would generate is this stream's own.
fn request_headers(state: Option<&crate::SharedState>, request: &Request) -> HeaderMap {
    let mut map = request.header_map();
    let n = state.map_or(1, |s| s.streams_sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1);
    let generated = request.request_id == crate::stream::GENERATED_REQUEST_ID && !request.headers.iter().any(|(k, _)| k == "x-request-id");
    if generated {
        if let Some((_, v)) = map.iter_mut().find(|(k, _)| k == "x-request-id") {
            *v = crate::stream::request_id_of(n).into_bytes();
        }
    }
    map
}

/// Runs one stream through `chain` with the upstream answering `upstream`.
pub fn run(chain: &mut [Plugin], request: &Request, upstream: &UpstreamResponse) -> Outcome {
    let slots = chain.iter().map(|_| Slot::default()).collect();
    let request_headers = request_headers(chain.first().map(|p| &*p.shared), request);
    let mut driver = Driver {
        chain,
        client: ClientSide {
            head: request.method.eq_ignore_ascii_case("HEAD"),
            close: request.close_connection,
            body_unread: false,
            http2: request.http2,
            grpc: request.headers.iter().any(|(k, v)| k.eq_ignore_ascii_case("content-type") && envoy_codec::is_grpc_content_type(v)),
        },
        request_ended: false,
        slots,
        maps: Maps { request_headers, ..Maps::default() },
        request_sink: Vec::new(),
        response_sink: Vec::new(),
        out: Outcome::default(),
    };
    driver.maps.request_trailers = request.trailers.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
    let before = driver.open(request);
    match driver.request_phase(request) {
        Ok(()) if driver.request_map_replaced() => {
            driver.out.route_not_found = true;
            let reply = LocalResponse { status: 404, details: "route_not_found".into(), headers: Vec::new(), body: Vec::new(), grpc_status: 12 };
            driver.reply(None, reply);
        }
        Ok(()) => {
            driver.forward(upstream.route_timeout_ms);
            driver.upstream_attempts(upstream.attempts);
            if let Err(stop) = driver.response_phase(upstream) {
                driver.finish_response(stop);
            }
        }
        Err(Stop::Reply(i, reply)) => {
            driver.client.body_unread = !driver.request_ended;
            driver.reply(Some(i), reply);
        }
        Err(stop) => driver.finish_response(stop),
    }
    driver.close(before)
}

impl Driver<'_> {
    /// Prepares each filter for the stream: reloads a failed VM under
    /// FAIL_RELOAD, passes over a failed one under FAIL_OPEN. Returns the
    /// host-call counts and fuel before the stream, to report the difference.
    fn open(&mut self, request: &Request) -> Vec<(BTreeMap<&'static str, u64>, u64)> {
        let mut before = Vec::new();
        for (plugin, slot) in self.chain.iter_mut().zip(self.slots.iter_mut()) {
            if plugin.vm.failed.is_some() {
                match plugin.config.failure_policy {
                    FailurePolicy::FailReload if plugin.reload_due() => {
                        if let Err(e) = plugin.reload() {
                            plugin.start_logs.push(crate::state::LogRecord::host(crate::abi::LogLevel::Error, e.to_string()));
                        }
                    }
                    FailurePolicy::FailOpen => slot.skip = true,
                    _ => {}
                }
            }
            let state = plugin.vm.store.data_mut();
            state.stream = Some(StreamView {
                properties: request.properties.clone(),
                call_script: request.calls.clone(),
                routing: true,
                ..StreamView::default()
            });
            before.push((state.host_calls.clone(), plugin.vm.fuel_used()));
        }
        before
    }

    fn record(&mut self, filter: usize, callback: &str, action: Option<Action>) {
        self.out.callbacks.push(CallbackRecord { filter, callback: callback.to_string(), action });
    }

    /// Calls one callback of filter `i` with the stream's maps (and `body`)
    /// visible, then delivers the answers to any calls it made.
    fn invoke(&mut self, i: usize, callback: &'static str, args: &[i32], access: Access, mut body: Option<(Dir, &mut Vec<u8>)>) -> Result<Option<i64>, Trap> {
        let Some(plugin) = self.chain.get_mut(i) else { return Ok(None) };
        let state = plugin.vm.store.data_mut();
        let context = self.slots.get(i).map_or(0, |s| s.context);
        state.access = access;
        if let Some(view) = state.stream.as_mut() {
            view.context_id = context;
            view.request_headers = std::mem::take(&mut self.maps.request_headers);
            view.request_trailers = std::mem::take(&mut self.maps.request_trailers);
            view.response_headers = std::mem::take(&mut self.maps.response_headers);
            view.response_trailers = std::mem::take(&mut self.maps.response_trailers);
            view.response_started = !view.response_headers.is_empty();
            if let Some((dir, data)) = body.as_mut() {
                let target = if *dir == Dir::Request { &mut view.request_body } else { &mut view.response_body };
                *target = std::mem::take(*data);
            }
        }
        let mut result = plugin.vm.call(callback, args);
        if result.is_ok() {
            result = crate::replies::deliver_all(&mut plugin.vm, context).map(|()| result.unwrap_or_default());
        }
        let state = plugin.vm.store.data_mut();
        state.access = Access::default();
        if let Some(view) = state.stream.as_mut() {
            self.maps.request_headers = std::mem::take(&mut view.request_headers);
            self.maps.request_trailers = std::mem::take(&mut view.request_trailers);
            self.maps.response_headers = std::mem::take(&mut view.response_headers);
            self.maps.response_trailers = std::mem::take(&mut view.response_trailers);
            if let Some((dir, data)) = body {
                let source = if dir == Dir::Request { &mut view.request_body } else { &mut view.response_body };
                *data = std::mem::take(source);
            }
        }
        result
    }

    /// One callback that returns an action; applies local responses, traps
    /// (per failure policy) and resumes requested during the callback.
    fn step(&mut self, i: usize, callback: &'static str, args: &[i32], access: Access, body: Option<(Dir, &mut Vec<u8>)>) -> Step {
        let dir = if callback.contains("request") { Dir::Request } else { Dir::Response };
        match self.invoke(i, callback, args, access, body) {
            Err(trap) => {
                // Whatever the policy, the stream in which the VM failed gets
                // Envoy's 503; the policy decides the streams after it.
                self.record(i, callback, None);
                self.out.trap = Some((i, trap));
                Step::Stop(Stop::Reply(i, fail_stream_reply()))
            }
            Ok(returned) => {
                let action = Action::from_abi(returned.unwrap_or(0) as i32);
                self.record(i, callback, Some(action));
                let view = self.chain.get_mut(i).and_then(|p| p.vm.store.data_mut().stream.as_mut());
                let (reply, resumed, closed) = match view {
                    Some(v) => {
                        let resumed = if dir == Dir::Request { std::mem::take(&mut v.resume_request) } else { std::mem::take(&mut v.resume_response) };
                        let closed = std::mem::take(&mut v.close_request) | std::mem::take(&mut v.close_response);
                        (v.local_response.take(), resumed, closed)
                    }
                    None => (None, false, false),
                };
                if closed {
                    Step::Stop(Stop::Reset(i))
                } else if let Some(reply) = reply {
                    Step::Stop(Stop::Reply(i, reply))
                } else if action == Action::Continue || resumed {
                    Step::Continue
                } else {
                    Step::Pause
                }
            }
        }
    }

    fn active(&self, i: usize) -> bool {
        self.slots.get(i).is_some_and(|s| s.created && !s.skip)
    }

    /// Creates filter `i`'s stream context, unless its VM already failed.
    fn create(&mut self, i: usize) -> Result<(), Stop> {
        let Some(plugin) = self.chain.get_mut(i) else { return Ok(()) };
        if plugin.vm.failed.is_some() {
            return match plugin.config.failure_policy {
                FailurePolicy::FailOpen => Ok(()),
                _ => Err(Stop::Reply(i, fail_stream_reply())),
            };
        }
        let context = plugin.vm.new_context_id();
        let root = plugin.vm.root_context_id as i32;
        let result = plugin.vm.call("proxy_on_context_create", &[context as i32, root]);
        if let Some(slot) = self.slots.get_mut(i) {
            slot.context = context;
            slot.created = result.is_ok();
        }
        self.record(i, "proxy_on_context_create", None);
        if let Err(trap) = result {
            self.out.trap = Some((i, trap));
            return Err(Stop::Reply(i, fail_stream_reply()));
        }
        Ok(())
    }

    fn request_phase(&mut self, request: &Request) -> Result<(), Stop> {
        let end_at_headers = request.body.is_empty() && request.trailers.is_empty();
        self.request_ended = end_at_headers;
        for i in 0..self.chain.len() {
            if self.slots.get(i).is_some_and(|s| s.skip) {
                continue;
            }
            self.create(i)?;
            if !self.active(i) {
                continue;
            }
            let args = [self.context(i), self.maps.request_headers.len() as i32, i32::from(end_at_headers)];
            let access = Access { request_headers: true, ..Access::default() };
            match self.step(i, "proxy_on_request_headers", &args, access, None) {
                Step::Continue => {}
                Step::Pause => {
                    return Err(Stop::Stall(format!("filter {i} paused in proxy_on_request_headers and never resumed")));
                }
                Step::Stop(stop) => return Err(stop),
            }
            if let Some(plugin) = self.chain.get_mut(i) {
                if let Some(view) = plugin.vm.store.data_mut().stream.as_mut() {
                    view.routing = false;
                }
            }
        }
        self.body(Dir::Request, &request.body, !request.trailers.is_empty())
    }

    /// Delivers a body as Envoy's codecs do: over HTTP/1 each chunk as it
    /// arrives (not the end of stream), then the end of stream as an empty
    /// callback; over HTTP/2 the last DATA frame carries the end of stream.
    /// Trailers end the stream instead, where there are any.
    fn body(&mut self, dir: Dir, chunks: &[Vec<u8>], has_trailers: bool) -> Result<(), Stop> {
        if chunks.is_empty() && !has_trailers {
            return Ok(());
        }
        let last_ends = self.client.http2 && !has_trailers;
        let name = if dir == Dir::Request { "request" } else { "response" };
        for (n, chunk) in chunks.iter().enumerate() {
            let end = last_ends && n + 1 == chunks.len();
            if end && dir == Dir::Request {
                self.request_ended = true;
            }
            if let (Some(i), true) = (self.push_body(dir, 0, chunk.clone(), end)?, end) {
                return Err(Stop::Stall(format!("filter {i} paused the {name} body at end of stream and never resumed")));
            }
        }
        if last_ends {
            return Ok(());
        }
        if dir == Dir::Request {
            self.request_ended = true;
        }
        if has_trailers {
            return self.trailers(dir);
        }
        match self.push_body(dir, 0, Vec::new(), true)? {
            Some(i) => Err(Stop::Stall(format!("filter {i} paused the {name} body at end of stream and never resumed"))),
            None => Ok(()),
        }
    }

    fn context(&self, i: usize) -> i32 {
        self.slots.get(i).map_or(0, |s| s.context as i32)
    }

    /// Filter indexes in the order data flows in `dir`.
    fn order(&self, dir: Dir) -> Vec<usize> {
        match dir {
            Dir::Request => (0..self.chain.len()).collect(),
            Dir::Response => (0..self.chain.len()).rev().collect(),
        }
    }

    /// Passes a chunk through the filters, starting at position `from` in
    /// the direction's order. Returns the filter that holds it, if one paused.
    fn push_body(&mut self, dir: Dir, from: usize, data: Vec<u8>, end: bool) -> Result<Option<usize>, Stop> {
        let callback = if dir == Dir::Request { "proxy_on_request_body" } else { "proxy_on_response_body" };
        let mut data = data;
        for i in self.order(dir).into_iter().skip(from) {
            if !self.active(i) {
                continue;
            }
            let Some(slot) = self.slots.get_mut(i) else { continue };
            slot.pending.append(&mut data);
            // A filter that paused has the next chunk added to what Envoy
            // holds for it before it is called (seen in Envoy 1.40: one
            // large read after a paused chunk answers the stream 413).
            if dir == Dir::Request && slot.buffering && slot.pending.len() > BUFFER_LIMIT {
                return Err(Stop::Reply(i, too_large_reply()));
            }
            let mut body = std::mem::take(&mut slot.pending);
            let args = [slot.context as i32, body.len() as i32, i32::from(end)];
            // Outside its own phase a header map is out of reach (BadArgument),
            // even after the filter paused on it (seen in Envoy 1.40).
            let access = Access::default();
            let step = self.step(i, callback, &args, access, Some((dir, &mut body)));
            if let Some(slot) = self.slots.get_mut(i) {
                slot.buffering = matches!(step, Step::Pause);
            }
            match step {
                Step::Continue => data = body,
                Step::Pause if dir == Dir::Request && body.len() > BUFFER_LIMIT => return Err(Stop::Reply(i, too_large_reply())),
                Step::Pause => {
                    if let Some(slot) = self.slots.get_mut(i) {
                        slot.pending = body;
                    }
                    return Ok(Some(i));
                }
                Step::Stop(stop) => return Err(stop),
            }
        }
        let sink = if dir == Dir::Request { &mut self.request_sink } else { &mut self.response_sink };
        sink.append(&mut data);
        Ok(None)
    }

    fn trailers(&mut self, dir: Dir) -> Result<(), Stop> {
        let (callback, access) = match dir {
            Dir::Request => ("proxy_on_request_trailers", Access { request_trailers: true, ..Access::default() }),
            Dir::Response => ("proxy_on_response_trailers", Access { response_trailers: true, ..Access::default() }),
        };
        for (position, i) in self.order(dir).into_iter().enumerate() {
            if !self.active(i) {
                continue;
            }
            let count = if dir == Dir::Request { self.maps.request_trailers.len() } else { self.maps.response_trailers.len() };
            // A filter that paused its body finds what Envoy buffered for it
            // in its body buffer, and may rewrite it, as Envoy's decoding
            // buffer is open to it there; one that passed its body on finds
            // none.
            let buffering = self.slots.get(i).is_some_and(|s| s.buffering);
            let mut held = self.slots.get_mut(i).map(|s| std::mem::take(&mut s.pending)).unwrap_or_default();
            let body = if buffering { Some((dir, &mut held)) } else { None };
            match self.step(i, callback, &[self.context(i), count as i32], access, body) {
                Step::Continue => {
                    // Body the filter held goes on ahead of the trailers.
                    if !held.is_empty() {
                        if let Some(j) = self.push_body(dir, position + 1, held, false)? {
                            return Err(Stop::Stall(format!("filter {j} paused the body before the trailers and never resumed")));
                        }
                    }
                }
                Step::Pause => return Err(Stop::Stall(format!("filter {i} paused in {callback} and never resumed"))),
                Step::Stop(stop) => return Err(stop),
            }
        }
        Ok(())
    }

    /// Records what the upstream receives. Like Envoy's HTTP/1 codec, a
    /// `content-length` the filters left in place frames the body: a longer
    /// body is cut to it. The router adds its timeout header.
    fn forward(&mut self, route_timeout_ms: u32) {
        let headers = &self.maps.request_headers;
        let mut body = std::mem::take(&mut self.request_sink);
        let declared = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse::<usize>().ok());
        if let Some(declared) = declared {
            if body.len() > declared {
                body.truncate(declared);
            } else if body.len() < declared {
                self.out.stalled = Some(format!("content-length says {declared} bytes but the body has {}: the upstream waits for the rest", body.len()));
            }
        }
        let had_body = !body.is_empty() || !self.maps.request_trailers.is_empty();
        self.out.upstream = Some(Forwarded {
            method: pseudo(headers, ":method"),
            path: pseudo(headers, ":path"),
            authority: pseudo(headers, ":authority"),
            headers: envoy_codec::upstream_request(regular(headers), had_body, route_timeout_ms, self.client.http2),
            body,
            trailers: text(&self.maps.request_trailers),
        });
    }

    /// What `upstream.request_attempt_count` reads from now on, in every filter.
    fn upstream_attempts(&mut self, attempts: u32) {
        for plugin in self.chain.iter_mut() {
            if let Some(view) = plugin.vm.store.data_mut().stream.as_mut() {
                view.upstream_attempts = attempts;
            }
        }
    }

    fn response_phase(&mut self, upstream: &UpstreamResponse) -> Result<(), Stop> {
        self.maps.response_headers = upstream.header_map();
        self.maps.response_trailers = upstream.trailers.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect();
        // A response to HEAD ends at its headers, whatever its length says.
        if self.client.head {
            return self.encode(&[], false);
        }
        self.encode(&upstream.body, !upstream.trailers.is_empty())
    }

    /// The response path: headers, body and trailers through the filters in
    /// reverse order.
    fn encode(&mut self, body: &[Vec<u8>], has_trailers: bool) -> Result<(), Stop> {
        let end_at_headers = body.is_empty() && !has_trailers;
        for i in self.order(Dir::Response) {
            if !self.active(i) {
                continue;
            }
            let access = Access { response_headers: true, ..Access::default() };
            let args = [self.context(i), self.maps.response_headers.len() as i32, i32::from(end_at_headers)];
            match self.step(i, "proxy_on_response_headers", &args, access, None) {
                Step::Continue => {}
                Step::Pause => return Err(Stop::Stall(format!("filter {i} paused in proxy_on_response_headers and never resumed"))),
                Step::Stop(stop) => return Err(stop),
            }
        }
        self.body(Dir::Response, body, has_trailers)
    }

    fn request_map_replaced(&self) -> bool {
        self.chain.iter().any(|p| p.vm.store.data().stream.as_ref().is_some_and(|v| v.request_map_replaced))
    }

    /// A filter (or, for `None`, Envoy's router) answered during the
    /// request: the upstream is skipped and the reply runs the response path
    /// of the filters that saw the request.
    fn reply(&mut self, from: Option<usize>, reply: LocalResponse) {
        if let Some(i) = from {
            self.out.local_response = Some((i, reply.clone()));
        }
        self.maps.response_headers = reply_headers(&reply, self.client);
        self.maps.response_trailers = Vec::new();
        // Envoy answers HEAD with the headers alone (content-length kept),
        // and a gRPC call with them alone (its body became grpc-message).
        let body = if reply.body.is_empty() || self.client.head || self.client.grpc { Vec::new() } else { vec![reply.body.clone()] };
        if let Err(stop) = self.encode(&body, false) {
            self.finish_response(stop);
            return;
        }
        self.respond();
    }

    /// The response phase ended early: a reply replaces the response as is.
    fn finish_response(&mut self, stop: Stop) {
        match stop {
            Stop::Reply(i, reply) => {
                self.out.local_response = Some((i, reply.clone()));
                self.maps.response_headers = reply_headers(&reply, self.client);
                self.response_sink = if self.client.grpc { Vec::new() } else { reply.body };
                self.respond();
            }
            Stop::Stall(why) => self.out.stalled = Some(why),
            Stop::Reset(i) => self.out.reset = Some(format!("filter {i} closed the stream (wasm_close_stream)")),
        }
    }

    /// What the client receives: the response as the filters left it,
    /// framed by Envoy's HTTP/1 codec.
    fn respond(&mut self) {
        let headers = &self.maps.response_headers;
        let status = pseudo(headers, ":status").parse().unwrap_or(0);
        let (headers, body) = envoy_codec::client_response(status, regular(headers), std::mem::take(&mut self.response_sink), self.client);
        self.out.response = Some(Response { status, headers, body, trailers: text(&self.maps.response_trailers) });
    }

    /// Log, done and delete for every context created; then gathers logs,
    /// calls, host-call counts and fuel into the outcome.
    fn close(mut self, before: Vec<(BTreeMap<&'static str, u64>, u64)>) -> Outcome {
        if self.out.response.is_none() && self.out.stalled.is_none() && self.out.reset.is_none() {
            self.respond();
        }
        for i in 0..self.chain.len() {
            if !self.active(i) || self.chain.get(i).is_some_and(|p| p.vm.failed.is_some()) {
                continue;
            }
            let context = self.context(i);
            for callback in ["proxy_on_log", "proxy_on_done", "proxy_on_delete"] {
                if let Err(trap) = self.invoke(i, callback, &[context], Access::all(), None) {
                    self.out.trap.get_or_insert((i, trap));
                    break;
                }
                self.record(i, callback, None);
            }
        }
        for (i, (plugin, (calls_before, fuel_before))) in self.chain.iter_mut().zip(before).enumerate() {
            self.out.fuel += plugin.vm.fuel_used().saturating_sub(fuel_before);
            let state = plugin.vm.store.data_mut();
            if let Some(view) = state.stream.take() {
                self.out.route_cache_cleared |= view.route_cache_cleared;
            }
            for (name, count) in &state.host_calls {
                let delta = count - calls_before.get(name).copied().unwrap_or(0);
                if delta > 0 {
                    *self.out.host_calls.entry(name.to_string()).or_default() += delta;
                }
            }
            self.out.logs.extend(state.logs.drain(..).map(|l| (i, l)));
            self.out.http_calls.append(&mut state.http_calls);
            self.out.grpc_calls.append(&mut state.grpc_calls);
        }
        self.out
    }
}

/// The headers of a local reply as Envoy 1.40 builds them: status, the
/// filter's headers, then, for a body, its length and type. (Without a
/// body the HTTP/1 codec writes `content-length: 0` after the whole map.)
/// A gRPC call gets gRPC's trailers-only form instead.
fn reply_headers(reply: &LocalResponse, client: ClientSide) -> HeaderMap {
    if client.grpc {
        let grpc_status = u32::try_from(reply.grpc_status).ok();
        return envoy_codec::grpc_local_reply(reply.status, &reply.headers, grpc_status, &reply.body, client.head);
    }
    let mut map: HeaderMap = vec![(":status".into(), reply.status.to_string().into_bytes())];
    for (k, v) in &reply.headers {
        map.push((k.to_ascii_lowercase(), v.clone().into_bytes()));
    }
    if !reply.body.is_empty() {
        map.push(("content-length".into(), reply.body.len().to_string().into_bytes()));
        map.push(("content-type".into(), b"text/plain".to_vec()));
    }
    map
}
