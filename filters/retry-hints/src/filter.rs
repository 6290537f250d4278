//! The proxy-wasm glue. The root context compiles the configuration and
//! defines the metrics; each request's context reads the header map once
//! (copying only the headers the plan may read),
//! removes router-control headers a client sent, asks the plan for the
//! rule's headers, reserves retries from the shared budget (through this
//! worker's lease on it), and sets them.
//! At log time it reads how many attempts Envoy made and settles the
//! reservation; on a withheld 503/429 it adds `retry-after`, on a withheld
//! gRPC UNAVAILABLE/RESOURCE_EXHAUSTED `grpc-retry-pushback-ms`.

use crate::budget::{self, BudgetConfig, Giveback, Lease};
use crate::config::Hints;
use crate::plan::{self, RequestView};
use filter_common::{count, count_n, load_config, AbiHost, Host, HostError, LogLevel, MapType, MatchRequest, Metric, NameSet};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::cell::RefCell;
use std::rc::Rc;

/// The metrics, defined at configure time so requests only increment.
struct Metrics {
    hinted: Option<Metric>,
    skipped_unsafe: Option<Metric>,
    budget_exhausted: Option<Metric>,
    attempts_charged: Option<Metric>,
    retry_after_added: Option<Metric>,
    client_headers_removed: Option<Metric>,
    errors: Option<Metric>,
}

impl Metrics {
    fn define(host: &dyn Host) -> Self {
        let counter = |name: &str| Metric::counter(host, name).ok();
        Self {
            hinted: counter("retry_hints.hinted"),
            skipped_unsafe: counter("retry_hints.skipped_unsafe"),
            budget_exhausted: counter("retry_hints.budget_exhausted"),
            attempts_charged: counter("retry_hints.attempts_charged"),
            retry_after_added: counter("retry_hints.retry_after_added"),
            client_headers_removed: counter("retry_hints.client_headers_removed"),
            errors: counter("retry_hints.errors"),
        }
    }
}

struct Shared {
    hints: Hints,
    metrics: Metrics,
    /// The headers the rules' match blocks and the idempotency key name:
    /// copied out of the header map with those of [`copied`].
    reads: NameSet,
    debug: bool,
    /// This worker's give-backs not yet written, by rule index.
    givebacks: RefCell<Vec<(usize, Giveback)>>,
    /// This worker's lease on each rule's budget, by rule index.
    leases: RefCell<Vec<Lease>>,
}

/// Give-backs a worker may hold before it writes them without waiting for
/// the next request to their budget.
const GIVEBACKS_HELD: usize = 64;

impl Shared {
    /// Takes the held give-backs of `rule`.
    fn take_givebacks(&self, rule: usize) -> Vec<Giveback> {
        let Ok(mut held) = self.givebacks.try_borrow_mut() else { return Vec::new() };
        if !held.iter().any(|(r, _)| *r == rule) {
            return Vec::new();
        }
        let (taken, kept): (Vec<_>, Vec<_>) = held.drain(..).partition(|(r, _)| *r == rule);
        *held = kept;
        taken.into_iter().map(|(_, g)| g).collect()
    }

    /// Holds give-backs until the next update of their budget (one of the
    /// lease's bucket goes back into the lease); false if too many are held
    /// already (the caller writes them now).
    fn hold(&self, rule: usize, givebacks: &[Giveback]) -> bool {
        if let [g] = givebacks {
            if self.with_lease(rule, |lease| lease.give_back(*g)) == Some(true) {
                return true;
            }
        }
        let Ok(mut held) = self.givebacks.try_borrow_mut() else { return false };
        if held.len() + givebacks.len() > GIVEBACKS_HELD {
            return false;
        }
        held.extend(givebacks.iter().map(|g| (rule, *g)));
        true
    }

    fn with_lease<R>(&self, rule: usize, f: impl FnOnce(&mut Lease) -> R) -> Option<R> {
        self.leases.try_borrow_mut().ok()?.get_mut(rule).map(f)
    }

    /// Counts a request to `rule` at `tick` and grants it up to `wanted`
    /// retries: from this worker's lease when it can, else from the window,
    /// settling the lease and taking a new one. If the write fails the
    /// lease is gone: its retries count as spent until the window slides
    /// past them.
    fn reserve(&self, host: &dyn Host, rule: usize, key: &str, config: &BudgetConfig, tick: u64, wanted: u32) -> Result<u32, HostError> {
        if let Some(granted) = self.with_lease(rule, |lease| lease.grant(tick, wanted)).flatten() {
            return Ok(granted);
        }
        let held = self.with_lease(rule, std::mem::take).unwrap_or_default();
        let mut next = Lease::default();
        let granted = self.update_budget(host, rule, key, |w| {
            next = held;
            w.deposit_leasing(config, tick, wanted, &mut next)
        })?;
        self.with_lease(rule, |lease| *lease = next);
        Ok(granted)
    }

    /// Reads, changes and writes `rule`'s budget, with this worker's held
    /// give-backs for it applied first. If the write fails they are held
    /// again, or dropped when the worker holds too many already: the budget
    /// then counts them as spent, erring toward fewer retries.
    fn update_budget<R>(&self, host: &dyn Host, rule: usize, key: &str, mut change: impl FnMut(&mut budget::Window) -> R) -> Result<R, HostError> {
        let pending = self.take_givebacks(rule);
        let result = budget::update(host, key, |w| {
            for g in &pending {
                w.give_back(*g);
            }
            change(w)
        });
        if result.is_err() {
            self.hold(rule, &pending);
        }
        result
    }
}

/// Whether a request header is copied out of the map for the plan. Only
/// names the plan may read are: pseudo-headers, router-control headers
/// (`x-envoy-…`, which the plan strips), body and protocol framing
/// (`content-…`, `grpc-…`, `te`), the request id, and `reads`. Whatever the
/// plan reads must fall in here.
fn copied(name: &[u8], reads: &NameSet) -> bool {
    name.starts_with(b":")
        || name.starts_with(b"x-envoy-")
        || name.starts_with(b"content-")
        || name.starts_with(b"grpc-")
        || name == b"te"
        || name == b"x-request-id"
        || reads.contains(name)
}

/// The rules' match-block headers and the idempotency key header.
fn headers_read(hints: &Hints) -> NameSet {
    let mut names = NameSet::new([hints.idempotency_key_header.as_str()]);
    for name in hints.rules.iter().flat_map(|r| r.matches.iter().flat_map(|m| m.headers_read())) {
        names.insert(name);
    }
    names
}

#[derive(Default)]
pub struct RetryRoot {
    shared: Option<Rc<Shared>>,
}

impl Context for RetryRoot {}

impl RootContext for RetryRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let host = AbiHost;
        let Some(hints) = load_config(&host, "retry-hints", Hints::parse) else { return false };
        for warning in &hints.warnings {
            host.log(LogLevel::Warn, &format!("retry-hints: ignored: {warning}"));
        }
        let metrics = Metrics::define(&host);
        // Read once: formatting a debug line per request costs even when dropped.
        let debug = host.log_level().is_ok_and(|l| l <= LogLevel::Debug);
        let reads = headers_read(&hints);
        let leases = RefCell::new(vec![Lease::default(); hints.rules.len()]);
        self.shared = Some(Rc::new(Shared { hints, metrics, reads, debug, givebacks: RefCell::default(), leases }));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = Rc::clone(self.shared.as_ref()?);
        Some(Box::new(RetryStream { shared, budget: None, withheld: false, grpc: false }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// Retries reserved from a rule's budget, settled at log time.
struct Reservation {
    rule: usize,
    tick: u64,
    retries: u32,
}

struct RetryStream {
    shared: Rc<Shared>,
    budget: Option<Reservation>,
    /// A rule offered retries that this request did not get (unsafe, or the
    /// budget was spent): a 503/429 answer gets `retry-after`, a gRPC
    /// try-later status `grpc-retry-pushback-ms`.
    withheld: bool,
    grpc: bool,
}

impl Context for RetryStream {}

fn now_ms(host: &dyn Host) -> Result<u64, HostError> {
    host.current_time_nanos().map(|n| n / 1_000_000)
}

impl RetryStream {
    fn on_request(&mut self, host: &dyn Host, end_of_stream: bool) -> Result<(), HostError> {
        let shared = Rc::clone(&self.shared);
        let (hints, metrics) = (&shared.hints, &shared.metrics);
        let block = host.header_block(MapType::RequestHeaders)?;
        let headers = block.pairs_where(|name| copied(name, &shared.reads))?;
        let sent = plan::router_control_headers(&headers);
        let check_caller = !sent.is_empty() && !hints.trusted_principals.is_empty();
        // Identity and port cost a host call each: read them only when needed.
        let principal = if hints.needs_identity || check_caller {
            host.property(&["connection", "uri_san_peer_certificate"])?.map(|v| String::from_utf8_lossy(&v).into_owned())
        } else {
            None
        };
        let port = if hints.needs_port { host.int_property(&["destination", "port"])?.and_then(|p| u32::try_from(p).ok()) } else { None };
        let request = MatchRequest { headers: &headers, principal: principal.as_deref(), port };
        let trusted = check_caller && request.principal_istio_form().is_some_and(|p| hints.trusted_principals.iter().any(|t| t == p));
        if !sent.is_empty() && !trusted {
            for name in &sent {
                host.remove_header(MapType::RequestHeaders, name)?;
            }
            count(host, metrics.client_headers_removed.as_ref());
        }
        let Some((index, rule)) = hints.rule_for(&request) else { return Ok(()) };
        let offered = rule.retry.as_ref().map(|r| r.attempts);
        let safety = hints.safety(rule, &RequestView { request, end_of_stream });
        let wanted = if safety.is_ok() { offered.unwrap_or(0) } else { 0 };
        let config: &BudgetConfig = &hints.budget;
        let tick = config.tick(now_ms(host)?);
        let granted = shared.reserve(host, index, &rule.budget_key, config, tick, wanted)?;
        self.budget = Some(Reservation { rule: index, tick, retries: granted });
        let allowed = offered.map(|_| if safety.is_ok() { granted } else { 0 });
        match (offered, safety) {
            (Some(n), Err(_)) if n > 0 => {
                self.withheld = true;
                count(host, metrics.skipped_unsafe.as_ref());
            }
            (Some(n), Ok(())) if n > 0 && granted == 0 => {
                self.withheld = true;
                count(host, metrics.budget_exhausted.as_ref());
            }
            (Some(_), Ok(())) if granted > 0 => count(host, metrics.hinted.as_ref()),
            _ => {}
        }
        self.grpc = plan::is_grpc(&request);
        for (name, value) in plan::headers_for(rule, self.grpc, allowed) {
            // A trusted caller's own value stands, unless this request gets no retries.
            let withheld_retries = name == "x-envoy-max-retries" && value == "0";
            if trusted && sent.contains(&name) && !withheld_retries {
                continue;
            }
            host.replace_header(MapType::RequestHeaders, name, value.as_bytes())?;
        }
        if shared.debug {
            let id = request.header("x-request-id").unwrap_or_default();
            host.log(LogLevel::Debug, &format!("retry-hints: request {id}: rule {}, safety {safety:?}, retries offered {offered:?}, granted {granted}, client headers {sent:?} trusted {trusted}", rule.name));
        }
        Ok(())
    }

    fn on_response(&self, host: &dyn Host) -> Result<(), HostError> {
        let status = host.header(MapType::ResponseHeaders, ":status")?;
        let status = status.as_deref().and_then(|s| std::str::from_utf8(s).ok()).and_then(|s| s.parse::<u16>().ok()).unwrap_or(0);
        if !matches!(status, 429 | 503) {
            return Ok(());
        }
        let upstream_said = host.header(MapType::ResponseHeaders, "retry-after")?.is_some();
        if plan::needs_retry_after(status, upstream_said, self.withheld) {
            let seconds = self.shared.hints.retry_after_secs.to_string();
            host.add_header(MapType::ResponseHeaders, "retry-after", seconds.as_bytes())?;
            count(host, self.shared.metrics.retry_after_added.as_ref());
        }
        Ok(())
    }

    /// A gRPC call's status is in the response headers (trailers-only) or
    /// in the trailers: `map` is where this callback found the end.
    fn on_grpc_end(&self, host: &dyn Host, map: MapType) -> Result<(), HostError> {
        let status = host.header(map, "grpc-status")?;
        if status.is_none() {
            return Ok(());
        }
        let upstream_said = host.header(map, "grpc-retry-pushback-ms")?.is_some();
        if plan::needs_grpc_pushback(status.as_deref(), upstream_said, self.withheld) {
            let ms = self.shared.hints.grpc_retry_pushback_ms.to_string();
            host.add_header(map, "grpc-retry-pushback-ms", ms.as_bytes())?;
            count(host, self.shared.metrics.retry_after_added.as_ref());
        }
        Ok(())
    }

    /// Replaces the reservation by the retries Envoy really made.
    fn settle(&self, host: &dyn Host, reservation: &Reservation) -> Result<(), HostError> {
        let shared = &self.shared;
        let attempts = host.int_property(&["upstream", "request_attempt_count"])?.and_then(|a| u64::try_from(a).ok()).unwrap_or(0);
        let made = u32::try_from(attempts.saturating_sub(1)).unwrap_or(u32::MAX);
        count_n(host, shared.metrics.attempts_charged.as_ref(), u64::from(made));
        if made == reservation.retries {
            return Ok(());
        }
        if made < reservation.retries {
            let giveback = Giveback { tick: reservation.tick, retries: reservation.retries - made };
            if shared.hold(reservation.rule, &[giveback]) {
                return Ok(());
            }
        }
        // More retries than reserved are charged now, in the current bucket.
        let config = &shared.hints.budget;
        let tick = if made > reservation.retries { config.tick(now_ms(host)?) } else { reservation.tick };
        let Some(rule) = shared.hints.rules.get(reservation.rule) else { return Ok(()) };
        shared.update_budget(host, reservation.rule, &rule.budget_key, |w| w.settle(tick, reservation.tick, reservation.retries, made))
    }

    fn failed(&self, host: &dyn Host, stage: &str, e: &HostError) {
        count(host, self.shared.metrics.errors.as_ref());
        host.log(LogLevel::Warn, &format!("retry-hints: {stage}: {e}"));
    }
}

impl HttpContext for RetryStream {
    fn on_http_request_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        let host = AbiHost;
        if let Err(e) = self.on_request(&host, end_of_stream) {
            // Whatever was not set stays unset: Envoy's route policy applies.
            self.failed(&host, "request left without retry hints", &e);
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        if self.withheld {
            let host = AbiHost;
            let done = match (self.grpc, end_of_stream) {
                (true, true) => self.on_grpc_end(&host, MapType::ResponseHeaders),
                (true, false) => Ok(()),
                (false, _) => self.on_response(&host),
            };
            if let Err(e) = done {
                self.failed(&host, "response left without retry-after", &e);
            }
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _trailers: usize) -> Action {
        if self.withheld && self.grpc {
            let host = AbiHost;
            if let Err(e) = self.on_grpc_end(&host, MapType::ResponseTrailers) {
                self.failed(&host, "response left without grpc-retry-pushback-ms", &e);
            }
        }
        Action::Continue
    }

    fn on_log(&mut self) {
        if let Some(reservation) = self.budget.take() {
            let host = AbiHost;
            if let Err(e) = self.settle(&host, &reservation) {
                self.failed(&host, "attempts not charged to the budget", &e);
            }
        }
    }
}
