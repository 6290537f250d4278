//! Every status explained: each answer is put in exactly one class from
//! what the request was and what the backends saw of it; a request that
//! fits none is unexplained and fails the run.

use crate::soak::checks::Report;
use crate::soak::evidence::Evidence;
use crate::soak::load::Outcome;
use crate::soak::traffic::Kind;
use std::collections::BTreeMap;

/// Why a request got the answer it got.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// 200 from a backend (after retries or not).
    Served,
    /// 403 from principal-authz for a caller or path the policy refuses.
    Denied,
    /// 503 with `retry-after`: a POST without idempotency key, never retried.
    WithheldUnsafe,
    /// 503 with `retry-after`: a safe request the budget had no retry left for.
    WithheldBudget,
    /// 503 without `retry-after` after retries: every attempt failed.
    RetriesFailed,
    /// 503 without `retry-after`, one attempt: retries were granted but
    /// Envoy's circuit breaker (`max_retries`) refused them.
    RetryOverflow,
    Unexplained,
}

impl Class {
    pub fn describe(self) -> &'static str {
        match self {
            Self::Served => "200 served by a backend",
            Self::Denied => "403 denied by principal-authz (caller or path refused by policy)",
            Self::WithheldUnsafe => "503 + retry-after, retries withheld: POST without idempotency key",
            Self::WithheldBudget => "503 + retry-after, retries withheld: retry budget spent",
            Self::RetriesFailed => "503, retries granted and made, every attempt answered 503",
            Self::RetryOverflow => "503, retries granted, refused by Envoy's circuit breaker (upstream_rq_retry_overflow)",
            Self::Unexplained => "UNEXPLAINED",
        }
    }
}

/// The class of one request, or Unexplained.
pub fn classify(ev: &Evidence, kind: &Kind, outcome: &Outcome) -> Class {
    let allowed = ev.allowed(kind);
    let attempts = ev.primary.get(&outcome.n).map(|(_, a)| a.statuses.as_slice()).unwrap_or(&[]);
    let all_failed = !attempts.is_empty() && attempts.iter().all(|s| *s == 503);
    match (outcome.status, allowed) {
        (Some(200), true) if attempts.last() == Some(&200) => Class::Served,
        (Some(403), false) if attempts.is_empty() => Class::Denied,
        (Some(503), true) if outcome.retry_after && attempts == [503] => {
            if kind.safe() { Class::WithheldBudget } else { Class::WithheldUnsafe }
        }
        (Some(503), true) if !outcome.retry_after && kind.safe() && attempts.len() > 1 && all_failed => Class::RetriesFailed,
        (Some(503), true) if !outcome.retry_after && kind.safe() && attempts == [503] => Class::RetryOverflow,
        _ => Class::Unexplained,
    }
}

/// Prints the status counts and each class, and checks that every
/// answer is explained.
pub fn judge(ev: &Evidence, r: &mut Report) -> BTreeMap<Class, u64> {
    r.section("requests and statuses");
    let sent = ev.requests.len() as u64;
    let allowed = ev.count(|k, _| ev.allowed(k));
    r.line(format!(
        "{sent} requests sent in {:.1} s ({:.1}/s offered), {allowed} from allowed callers to allowed paths, {} denied by policy",
        ev.elapsed.as_secs_f64(),
        ev.load.rate_per_s,
        sent - allowed
    ));
    let mut statuses: BTreeMap<String, u64> = BTreeMap::new();
    for (_, o) in &ev.requests {
        let key = o.status.map_or_else(|| "no answer".to_string(), |s| s.to_string());
        *statuses.entry(key).or_default() += 1;
    }
    r.line(format!("statuses: {}", statuses.iter().map(|(s, n)| format!("{s}: {n}")).collect::<Vec<_>>().join(", ")));
    let mut classes: BTreeMap<Class, u64> = BTreeMap::new();
    let mut unexplained = Vec::new();
    for (kind, outcome) in &ev.requests {
        let class = classify(ev, kind, outcome);
        *classes.entry(class).or_default() += 1;
        if class == Class::Unexplained && unexplained.len() < 5 {
            let seen = ev.primary.get(&outcome.n).map(|(b, a)| format!("{b} {:?}", a.statuses)).unwrap_or_else(|| "no attempt".into());
            unexplained.push(format!(
                "#{} {:?} -> {:?} retry-after={} {} {}",
                outcome.n,
                kind,
                outcome.status,
                outcome.retry_after,
                seen,
                outcome.error.as_deref().unwrap_or("")
            ));
        }
    }
    for (class, n) in &classes {
        r.line(format!("{n:>8}  {}", class.describe()));
    }
    let none = classes.get(&Class::Unexplained).copied().unwrap_or(0);
    r.check("every status explained", none == 0, format!("{none} unexplained {}", unexplained.join("; ")));
    let denied_callers = ev.count(|k, _| !ev.allowed(k));
    r.equal("403 exactly for denied requests", classes.get(&Class::Denied).copied().unwrap_or(0), denied_callers, "every request the policy refuses, and no other");
    let overflow = ev.stat("cluster.stable.upstream_rq_retry_overflow") + ev.stat("cluster.canary.upstream_rq_retry_overflow");
    let refused = classes.get(&Class::RetryOverflow).copied().unwrap_or(0);
    r.check(
        "503s without retries match Envoy's circuit-breaker count",
        refused <= overflow,
        format!("{refused} such 503s, Envoy refused {overflow} retries (upstream_rq_retry_overflow)"),
    );
    classes
}
