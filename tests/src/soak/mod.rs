//! The soak: the four filters deployed together in one Envoy with two
//! workers, a fixed request rate for as long as asked, backends that fail
//! half their attempts, and a report that explains every status, holds the
//! retries to the budget, reconciles each filter's counters and bounds
//! memory growth. `make soak` runs it; a short run is an e2e test.

pub mod backend;
pub mod budget;
pub mod checks;
pub mod counters;
pub mod deployment;
pub mod evidence;
pub mod health;
pub mod load;
pub mod memory;
pub mod statuses;
pub mod traffic;

use crate::error::KitError;
use backend::{Backend, BackendScript};
use checks::Report;
use deployment::{Deployment, Options, Upstreams};
use evidence::Evidence;
use load::Load;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};
use traffic::{Mix, SECRETS};

/// What to run.
#[derive(Debug, Clone, Copy)]
pub struct Soak {
    pub duration: Duration,
    pub rate_per_s: f64,
    /// Client connections' workers (each keeps one connection per caller).
    pub clients: usize,
    pub seed: u64,
}

impl Soak {
    pub fn new(duration: Duration) -> Self {
        Self { duration, rate_per_s: 100.0, clients: 16, seed: 0x5eed_2026 }
    }

    /// Memory is sampled this often: every 2 s in short runs, 5 s in long ones.
    fn sample_every(&self) -> Duration {
        if self.duration < Duration::from_secs(120) { Duration::from_secs(2) } else { Duration::from_secs(5) }
    }
}

/// Runs the soak and judges it.
pub fn run(soak: Soak) -> Result<Report, KitError> {
    let fail_half = |identity: &str| BackendScript { identity: identity.into(), fail_half: true, forbidden: Vec::new() };
    let stable = Backend::start(fail_half("stable"))?;
    let canary = Backend::start(fail_half("canary"))?;
    let shadow = Backend::start(BackendScript {
        identity: "shadow".into(),
        fail_half: false,
        forbidden: SECRETS.iter().map(|s| s.to_string()).collect(),
    })?;
    let upstreams = Upstreams { stable: stable.addr(), canary: canary.addr(), shadow: shadow.addr() };
    let deployment = Deployment::start(upstreams, &Options::default())?;
    let mix = Mix { seed: soak.seed };
    let load = Load { rate_per_s: soak.rate_per_s, duration: soak.duration, workers: soak.clients };
    let credentials: Vec<&crate::tls::Credential> = deployment.callers.iter().map(|c| &c.credential).collect();
    let pid = deployment.envoy.pid();
    let samples = Mutex::new(Vec::new());
    let done = AtomicBool::new(false);
    let started = Instant::now();
    let outcomes = thread::scope(|scope| {
        scope.spawn(|| {
            let every = soak.sample_every();
            let mut next = Duration::ZERO;
            while !done.load(Ordering::SeqCst) {
                let at = started.elapsed();
                if at >= next {
                    if let Ok(mut s) = samples.lock() {
                        s.push(memory::sample(pid, at));
                    }
                    next += every;
                }
                thread::sleep(Duration::from_millis(100));
            }
        });
        let build = |n: u64| {
            let (kind, request) = mix.request(n);
            (kind.caller, request)
        };
        let outcomes = load::run(&deployment.pki, deployment.envoy.listener(), &credentials, load, &build);
        done.store(true, Ordering::SeqCst);
        outcomes
    });
    let elapsed = started.elapsed();
    let callers_allowed: Vec<bool> = deployment.callers.iter().map(|c| c.allowed).collect();
    let mirrored = outcomes.iter().filter(|o| o.status.is_some() && mix.kind(o.n).allowed(&callers_allowed) && mix.kind(o.n).mirrored).count();
    settle(&shadow, mirrored as u64);
    let mut samples = samples.into_inner().unwrap_or_default();
    samples.push(memory::sample(pid, started.elapsed()));
    let stats = stats(&deployment.envoy)?;
    let mut primary: HashMap<u64, (String, backend::Attempts)> = HashMap::new();
    for (name, b) in [("stable", &stable), ("canary", &canary)] {
        primary.extend(b.attempts().into_iter().map(|(n, a)| (n, (name.to_string(), a))));
    }
    let evidence = Evidence {
        load,
        elapsed,
        requests: outcomes.into_iter().map(|o| (mix.kind(o.n), o)).collect(),
        caller_allowed: callers_allowed,
        primary,
        shadow: shadow.attempts(),
        anonymous: (stable.anonymous() + canary.anonymous(), shadow.anonymous()),
        leaks: shadow.leaks(),
        stats,
        samples,
        log: deployment.envoy.log(),
    };
    Ok(judge(&evidence))
}

/// Judges a run's evidence: the whole report.
pub fn judge(evidence: &Evidence) -> Report {
    let mut report = Report::default();
    let classes = statuses::judge(evidence, &mut report);
    budget::judge(evidence, &mut report);
    counters::judge(evidence, &mut report, &classes);
    health::judge(evidence, &mut report);
    report
}

/// Waits until the mirrored copies have landed (they are fire-and-forget:
/// up to 15 s for `expected` of them), then a second for the filters'
/// log-time work (the budget settles the retries made at log time).
fn settle(shadow: &Backend, expected: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while shadow.attempt_count() < expected && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_secs(1));
}

/// Every counter and gauge Envoy has, by name.
pub fn stats(envoy: &crate::envoy::Envoy) -> Result<HashMap<String, u64>, KitError> {
    let json = envoy.admin_json("/stats?format=json")?;
    Ok(json["stats"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| Some((s["name"].as_str()?.to_string(), s["value"].as_u64()?)))
        .collect())
}
