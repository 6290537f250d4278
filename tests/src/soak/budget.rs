//! The retry budget against the retries Envoy really made. retry-hints
//! counts requests and retries in one-second buckets of the wall clock and
//! grants a retry only while the ten buckets ending now hold fewer retries
//! than 20% of their requests + 10/s × 10 s. So for every ten consecutive
//! buckets, the retries of the requests that started in them stay within
//! that allowance. The client's clock is the same as Envoy's, but a request
//! is sent a little before Envoy reads the clock for it: requests sent in
//! the last `EDGE_MS` of a bucket may have been counted in the next one,
//! and the per-window bound allows for exactly those.

use crate::soak::checks::Report;
use crate::soak::deployment::{BUDGET_MIN_PER_SECOND, BUDGET_RATIO_PERCENT, BUDGET_WINDOW_S};
use crate::soak::evidence::Evidence;
use std::collections::BTreeMap;

/// How late in its bucket a request must be sent for Envoy to have possibly
/// counted it in the next one (scheduling delay on a loaded machine).
const EDGE_MS: u64 = 250;

fn allowance(requests: u64) -> u64 {
    requests * BUDGET_RATIO_PERCENT / 100 + BUDGET_MIN_PER_SECOND * BUDGET_WINDOW_S
}

#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    requests: u64,
    retries: u64,
    /// Sent in the bucket's last EDGE_MS.
    edge_requests: u64,
    edge_retries: u64,
}

pub fn judge(ev: &Evidence, r: &mut Report) {
    r.section("retry budget (20% of requests + 10/s, over 10 one-second buckets)");
    let mut buckets: BTreeMap<u64, Bucket> = BTreeMap::new();
    let mut retries_seen = 0;
    for (kind, outcome) in &ev.requests {
        if !ev.allowed(kind) || outcome.status.is_none() {
            continue;
        }
        let retries = ev.primary.get(&outcome.n).map_or(0, |(_, a)| a.statuses.len().saturating_sub(1) as u64);
        retries_seen += retries;
        let b = buckets.entry(outcome.sent_at_ms / 1000).or_default();
        b.requests += 1;
        b.retries += retries;
        if outcome.sent_at_ms % 1000 >= 1000 - EDGE_MS {
            b.edge_requests += 1;
            b.edge_retries += retries;
        }
    }
    let requests: u64 = buckets.values().map(|b| b.requests).sum();
    let envoy_retries = ev.stat("cluster.stable.upstream_rq_retry") + ev.stat("cluster.canary.upstream_rq_retry");
    let charged = ev.metric("retry_hints.attempts_charged");
    r.equal("Envoy's retries = retries the backends saw", envoy_retries, retries_seen, "upstream_rq_retry of both clusters");
    r.equal("retries charged to the budget = retries made", charged, retries_seen, "retry_hints.attempts_charged");
    let (first, last) = (buckets.keys().next().copied().unwrap_or(0), buckets.keys().last().copied().unwrap_or(0));
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
    for start in first..=last {
        let window: Vec<Bucket> = (start..start + BUDGET_WINDOW_S).map(|t| buckets.get(&t).copied().unwrap_or_default()).collect();
        let requests: u64 = window.iter().map(|b| b.requests).sum();
        let retries: u64 = window.iter().map(|b| b.retries).sum();
        // Requests of the bucket before may have been counted in this window,
        // retries of its last bucket's edge in the next one.
        let before = start.checked_sub(1).and_then(|t| buckets.get(&t)).map_or(0, |b| b.edge_requests);
        let out = window.last().map_or(0, |b| b.edge_retries);
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
    r.line(format!("disjoint windows, requests by the client's send time (a request sent in the last {EDGE_MS} ms of a second may be in Envoy's next bucket):"));
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
