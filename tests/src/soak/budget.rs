//! The retry budget against the retries Envoy really made. retry-hints
//! counts requests and retries in one-second buckets of the wall clock and
//! grants a retry only while the ten buckets ending now hold fewer retries
//! than 20% of their requests + 10/s × 10 s. So for every ten consecutive
//! buckets, the retries of the requests that started in them stay within
//! that allowance. Envoy's clock is the client's and the backends', and it
//! reads it for a request between the client sending it and the backend
//! receiving its first attempt: a request whose send and first arrival fall
//! in different seconds may be in either bucket, and the per-window bound
//! allows for exactly those.

use crate::soak::checks::Report;
use crate::soak::deployment::{BUDGET_MIN_PER_SECOND, BUDGET_RATIO_PERCENT, BUDGET_WINDOW_S};
use crate::soak::evidence::Evidence;
use std::collections::BTreeMap;

fn allowance(requests: u64) -> u64 {
    requests * BUDGET_RATIO_PERCENT / 100 + BUDGET_MIN_PER_SECOND * BUDGET_WINDOW_S
}

/// One allowed request: the buckets Envoy may have counted it in, and its retries.
#[derive(Debug, Clone, Copy)]
struct Counted {
    /// The second it was sent in.
    from: u64,
    /// The second its first attempt reached the backend in.
    to: u64,
    retries: u64,
}

pub fn judge(ev: &Evidence, r: &mut Report) {
    r.section("retry budget (20% of requests + 10/s, over 10 one-second buckets)");
    let mut counted = Vec::new();
    let mut retries_seen = 0;
    for (kind, outcome) in &ev.requests {
        if !ev.allowed(kind) || outcome.status.is_none() {
            continue;
        }
        let attempts = ev.primary.get(&outcome.n).map(|(_, a)| a);
        let retries = attempts.map_or(0, |a| a.statuses.len().saturating_sub(1) as u64);
        retries_seen += retries;
        let from = outcome.sent_at_ms / 1000;
        let to = attempts.map_or(from, |a| (a.first_at_ms / 1000).max(from));
        counted.push(Counted { from, to, retries });
    }
    let mut buckets: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for c in &counted {
        let b = buckets.entry(c.from).or_default();
        b.0 += 1;
        b.1 += c.retries;
    }
    let requests: u64 = buckets.values().map(|b| b.0).sum();
    let envoy_retries = ev.stat("cluster.stable.upstream_rq_retry") + ev.stat("cluster.canary.upstream_rq_retry");
    let charged = ev.metric("retry_hints.attempts_charged");
    r.equal("Envoy's retries = retries the backends saw", envoy_retries, retries_seen, "upstream_rq_retry of both clusters");
    r.equal("retries charged to the budget = retries made", charged, retries_seen, "retry_hints.attempts_charged");
    // Envoy's buckets may run one second past the last send.
    let first = buckets.keys().next().copied().unwrap_or(0);
    let last = counted.iter().map(|c| c.to).max().unwrap_or(first);
    let spans = (last - first + 1).div_ceil(BUDGET_WINDOW_S);
    let whole = requests * BUDGET_RATIO_PERCENT / 100 + BUDGET_MIN_PER_SECOND * BUDGET_WINDOW_S * spans;
    r.check(
        "whole run within budget",
        retries_seen <= whole,
        format!(
            "{retries_seen} retries for {requests} requests over {} s ({spans} windows): at most {whole}; without a budget \
             every failed safe attempt would be retried",
            last - first + 1
        ),
    );
    // Every window of ten consecutive buckets, sliding by one.
    let (mut worst, mut worst_at, mut failed) = (0.0f64, first, Vec::new());
    let mut table = Vec::new();
    let edge = counted.iter().filter(|c| c.to > c.from).count();
    for start in first..=last {
        let end = start + BUDGET_WINDOW_S - 1;
        let inside = |c: &&Counted| (start..=end).contains(&c.from);
        let requests = counted.iter().filter(inside).count() as u64;
        let retries: u64 = counted.iter().filter(inside).map(|c| c.retries).sum();
        // Envoy may have counted in this window requests sent just before it,
        // and in the next one retries of requests sent at its very end.
        let before = counted.iter().filter(|c| c.from < start && c.to >= start).count() as u64;
        let out: u64 = counted.iter().filter(|c| inside(c) && c.to > end).map(|c| c.retries).sum();
        let bound = allowance(requests + before) + out;
        let use_ratio = retries as f64 / allowance(requests).max(1) as f64;
        if use_ratio > worst {
            (worst, worst_at) = (use_ratio, start);
        }
        if retries > bound {
            failed.push(format!("window at +{} s: {retries} > {bound}", start - first));
        }
        if (start - first) % BUDGET_WINDOW_S == 0 {
            table.push(format!(
                "+{:>4} s  {requests:>6} requests  {retries:>5} retries  allowance {:>5} (bound with edge requests {bound})",
                start - first,
                allowance(requests)
            ));
        }
    }
    r.line(format!(
        "disjoint windows, requests by the second they were sent in ({edge} requests reached the backend in a later second than they were sent, and may be in Envoy's next bucket):"
    ));
    for row in table {
        r.line(format!("  {row}"));
    }
    r.check(
        "every 10-second window within budget",
        failed.is_empty(),
        format!(
            "{} sliding windows; the fullest used {:.0}% of its allowance (at +{} s); {}",
            last - first + 1,
            worst * 100.0,
            worst_at - first,
            if failed.is_empty() { "none over".to_string() } else { failed.join(", ") }
        ),
    );
    let exhausted = ev.metric("retry_hints.budget_exhausted");
    r.line(format!("requests sent with x-envoy-max-retries: 0 because the budget was spent: {exhausted}"));
}
