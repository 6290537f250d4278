//! Hostile bytes at volume: 30,000 malformed and adversarial requests from
//! a fixed seed (see `e2e::hostile`) through the four filters deployed
//! together in the real Envoy 1.40, over mTLS, from a caller the policy
//! allows. Nothing may trap or answer 5xx, and every request is accounted
//! for: refused by Envoy's codec before any filter, denied by
//! principal-authz, or allowed and delivered; each filter's decisions and
//! errors add up to the requests it saw.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use e2e::hostile;
use e2e::http::read_message;
use e2e::soak::backend::{Backend, BackendScript};
use e2e::soak::deployment::{Deployment, Options, Upstreams};
use e2e::soak::memory;
use e2e::TlsStream;
use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

const REQUESTS: u64 = 30_000;
const SEED: u64 = 0x0bad_5eed;

/// One answer: its status and whether principal-authz wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Answer {
    Status(u16),
    Denied,
    /// The connection ended without an answer.
    None,
}

fn exchange(stream: &mut TlsStream, bytes: &[u8]) -> Option<(u16, bool, bool)> {
    stream.write_all(bytes).ok()?;
    stream.flush().ok()?;
    let message = read_message(&mut BufReader::new(stream), true).ok()??;
    let status = message.start.get(1)?.parse().ok()?;
    let close = message.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    Some((status, message.body_text() == "RBAC: access denied", close))
}

#[test]
fn thirty_thousand_hostile_requests_leave_no_trap_no_5xx_and_every_request_accounted_for() {
    let backend = |identity: &str| Backend::start(BackendScript { identity: identity.into(), fail_half: false, forbidden: Vec::new() }).unwrap();
    let (primary, shadow) = (backend("stable"), backend("shadow"));
    let d = Deployment::start(Upstreams { stable: primary.addr(), canary: primary.addr(), shadow: shadow.addr() }, &Options::default()).unwrap();
    let memories = memory::sample(d.envoy.pid(), Duration::ZERO).wasm_memories;
    let web = &d.caller("web").unwrap().credential;
    let next = AtomicU64::new(0);
    let answers = Mutex::new(Vec::new());
    let started = Instant::now();
    thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                let mut stream: Option<TlsStream> = None;
                let mut mine = Vec::new();
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    if n >= REQUESTS {
                        break;
                    }
                    let (shape, bytes) = hostile::request(SEED, n);
                    if stream.is_none() {
                        stream = Some(d.pki.connect(d.envoy.listener(), Some(web)).unwrap());
                    }
                    let answer = match exchange(stream.as_mut().unwrap(), &bytes) {
                        Some((status, denied, close)) => {
                            if close {
                                stream = None;
                            }
                            if denied && status == 403 { Answer::Denied } else { Answer::Status(status) }
                        }
                        None => {
                            stream = None;
                            Answer::None
                        }
                    };
                    mine.push((n, shape, answer));
                }
                answers.lock().unwrap().extend(mine);
            });
        }
    });
    let took = started.elapsed();
    thread::sleep(Duration::from_millis(1000)); // copies and log-time work land
    let answers = answers.into_inner().unwrap();
    let mut by_answer: BTreeMap<Answer, u64> = BTreeMap::new();
    for (_, _, a) in &answers {
        *by_answer.entry(*a).or_default() += 1;
    }
    let metric = |name: &str| d.envoy.wasm_metric(name).unwrap().unwrap_or(0);
    let delivered = primary.attempts();
    let copies = shadow.attempts().len() as u64;
    println!("{REQUESTS} hostile requests in {:.1} s: {by_answer:?}; {} delivered to the backend, {copies} copies to the shadow", took.as_secs_f64(), delivered.len());
    for f in ["principal_authz.allowed", "principal_authz.denied", "principal_authz.path_rejected", "principal_authz.path_normalized", "principal_authz.errors",
        "header_router.route.canary.matched", "header_router.route.mobile.matched", "header_router.client_header_removed", "header_router.errors",
        "retry_hints.hinted", "retry_hints.skipped_unsafe", "retry_hints.budget_exhausted", "retry_hints.client_headers_removed", "retry_hints.errors",
        "mirror_sanitizer.shadow.sanitized", "mirror_sanitizer.shadow.dropped_oversize", "mirror_sanitizer.shadow.dropped_unreadable", "mirror_sanitizer.errors"] {
        println!("  {f} = {}", metric(f));
    }

    // No trap, no VM lost, no 5xx.
    let log = d.envoy.log();
    let traps: Vec<&str> = log.lines().filter(|l| l.contains("[critical]") || l.contains("Uncaught") || l.contains("panicked")).collect();
    assert!(traps.is_empty(), "trap or panic logged: {:?}", &traps[..traps.len().min(3)]);
    assert_eq!(memory::sample(d.envoy.pid(), Duration::ZERO).wasm_memories, memories, "no VM failed and was replaced");
    let server_errors: Vec<_> = answers.iter().filter(|(_, _, a)| matches!(a, Answer::Status(s) if *s >= 500)).take(5).collect();
    assert!(server_errors.is_empty(), "5xx answers: {server_errors:?} (request numbers reproduce them: e2e::hostile::request({SEED:#x}, n))");

    // Every request accounted for. principal-authz decides every request
    // Envoy's codec accepted: its denials are exactly the RBAC 403s, and
    // what it allowed is exactly what reached the backend.
    let (allowed, denied) = (metric("principal_authz.allowed"), metric("principal_authz.denied"));
    assert_eq!(denied, by_answer.get(&Answer::Denied).copied().unwrap_or(0), "every denial answered as one");
    assert_eq!(allowed, delivered.len() as u64, "every allowed request delivered, once");
    assert!(delivered.values().all(|a| a.statuses == [200]), "no retry, no duplicate");
    let refused_by_envoy: u64 = by_answer.iter().filter(|(a, _)| matches!(a, Answer::Status(s) if (400..500).contains(s))).map(|(_, n)| n).sum();
    let unanswered = by_answer.get(&Answer::None).copied().unwrap_or(0);
    assert_eq!(allowed + denied + refused_by_envoy + unanswered, REQUESTS, "each request allowed, denied, or refused before the filters");
    assert_eq!(metric("principal_authz.errors"), 0, "nothing principal-authz could not read");
    // header-router and retry-hints see every allowed request.
    let routed = metric("header_router.route.canary.matched") + metric("header_router.route.mobile.matched");
    assert_eq!(routed + metric("header_router.errors"), allowed, "header-router: routed, or counted as an error");
    let decided = metric("retry_hints.hinted") + metric("retry_hints.skipped_unsafe") + metric("retry_hints.budget_exhausted");
    assert_eq!(decided + metric("retry_hints.errors"), allowed, "retry-hints: decided, or counted as an error");
    // mirror-sanitizer: each copy that left was sanitized or dropped, each
    // one refused is an error.
    let outcomes = metric("mirror_sanitizer.shadow.sanitized") + metric("mirror_sanitizer.shadow.dropped_oversize") + metric("mirror_sanitizer.shadow.dropped_unreadable");
    assert_eq!(outcomes, copies, "each copy the shadow got counted once");
    assert_eq!(metric("mirror_sanitizer.errors"), 0, "no copy refused for a failed host call");
    // About half are bytes Envoy's HTTP/1 codec refuses (400) before any
    // filter; the rest must reach the filters in number.
    assert!(allowed + denied >= REQUESTS / 3, "only {} requests reached the filters", allowed + denied);
    assert!(metric("mirror_sanitizer.shadow.dropped_unreadable") > 0 && metric("principal_authz.path_rejected") > 0, "the hostile inputs reached the readers");
}
