//! A fixed-rate load generator over mTLS: request `n` is due at
//! `start + n / rate`, whatever happened to the ones before (open loop, so a
//! slow answer cannot slow the offered load down), and is sent by whichever
//! worker is free, on that worker's keep-alive connection for the caller.
//! Latency is measured from when the request was due, so time spent waiting
//! for a free worker counts (no coordinated omission).

use crate::client::Request;
use crate::error::KitError;
use crate::tls::{Credential, Pki, TlsStream};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// What happened to one request.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub n: u64,
    /// The status, or None when no answer came (the error says why).
    pub status: Option<u16>,
    pub error: Option<String>,
    pub retry_after: bool,
    /// `x-upstream-identity`: which backend answered, if one did.
    pub identity: Option<String>,
    /// header-router's choice, as it names it on the response.
    pub chosen: Option<String>,
    /// From when it was due to the end of the answer.
    pub latency: Duration,
    /// When it was sent, in milliseconds since the Unix epoch (the clock
    /// retry-hints' budget buckets are aligned to).
    pub sent_at_ms: u64,
}

/// The load: how fast, how long, how many connections at most.
#[derive(Debug, Clone, Copy)]
pub struct Load {
    pub rate_per_s: f64,
    pub duration: Duration,
    pub workers: usize,
}

impl Load {
    pub fn total(&self) -> u64 {
        (self.rate_per_s * self.duration.as_secs_f64()).round() as u64
    }
}

fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Sends `load.total()` requests built by `build(n)` (which caller, which
/// request) to `listener`, and returns every outcome in request order.
pub fn run(
    pki: &Pki,
    listener: SocketAddr,
    callers: &[&Credential],
    load: Load,
    build: &(dyn Fn(u64) -> (usize, Request) + Sync),
) -> Vec<Outcome> {
    let total = load.total();
    let next = AtomicU64::new(0);
    let outcomes = Mutex::new(Vec::with_capacity(total as usize));
    let start = Instant::now();
    let interval = Duration::from_secs_f64(1.0 / load.rate_per_s.max(0.001));
    thread::scope(|scope| {
        for _ in 0..load.workers.max(1) {
            scope.spawn(|| {
                let mut connections: Vec<Option<TlsStream>> = callers.iter().map(|_| None).collect();
                let mut mine = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= total {
                        break;
                    }
                    let due = start + interval.mul_f64(n as f64);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        thread::sleep(wait);
                    }
                    let (caller, request) = build(n);
                    let sent_at_ms = epoch_ms();
                    let result = send(pki, listener, callers.get(caller).copied(), connections.get_mut(caller), &request);
                    let latency = due.elapsed();
                    mine.push(match result {
                        Ok(r) => Outcome {
                            n,
                            status: Some(r.status),
                            error: None,
                            retry_after: r.header("retry-after").is_some(),
                            identity: r.header("x-upstream-identity").map(str::to_string),
                            chosen: r.header(crate::soak::deployment::CHOSEN_HEADER).map(str::to_string),
                            latency,
                            sent_at_ms,
                        },
                        Err(e) => Outcome {
                            n,
                            status: None,
                            error: Some(e.to_string()),
                            retry_after: false,
                            identity: None,
                            chosen: None,
                            latency,
                            sent_at_ms,
                        },
                    });
                }
                if let Ok(mut all) = outcomes.lock() {
                    all.extend(mine);
                }
            });
        }
    });
    let mut all = outcomes.into_inner().unwrap_or_default();
    all.sort_by_key(|o| o.n);
    all
}

/// Sends on the caller's open connection, opening one if there is none;
/// a connection that failed or that the server closes is not reused.
fn send(
    pki: &Pki,
    listener: SocketAddr,
    caller: Option<&Credential>,
    slot: Option<&mut Option<TlsStream>>,
    request: &Request,
) -> Result<crate::client::Response, KitError> {
    let Some(slot) = slot else { return Err(KitError::Protocol("no such caller".into())) };
    if slot.is_none() {
        *slot = Some(pki.connect(listener, caller)?);
    }
    let Some(stream) = slot.as_mut() else { return Err(KitError::Protocol("no connection".into())) };
    match request.send_keep_alive(stream) {
        Ok(response) => {
            if response.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
                *slot = None;
            }
            Ok(response)
        }
        Err(e) => {
            *slot = None;
            Err(e)
        }
    }
}
