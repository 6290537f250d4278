//! Envoy's health over the run: memory after warm-up, the Wasm VMs (none
//! reloaded, none leaked), traps and errors in its log, and the primary's
//! latency with and without the mirror.

use crate::soak::checks::{percentile, Report};
use crate::soak::evidence::Evidence;
use crate::soak::memory::Sample;
use std::time::Duration;

/// Allowed growth of Envoy's RSS after warm-up. What moves it without a
/// leak: the allocator's caches and per-thread free lists, TLS and
/// connection buffers that grow to the largest request seen, stats for
/// new names. Measured after warm-up: +12 kB in 20 s, +500 kB in 10 min
/// (100 requests/s), so 8 MiB leaves room for a machine busier than ours
/// and still fails a leak of 200 bytes per request in a 10-minute run
/// (48,000 requests after warm-up), of 2 KiB per request in a 60-second one.
pub const RSS_GROWTH_BOUND_KB: u64 = 8 * 1024;
/// Allowed growth of the Wasm linear memories' size (all VMs) after
/// warm-up: linear memory never shrinks, and once each VM's allocator has
/// seen the largest request of the mix it needs no new pages; 1 MiB (16
/// pages) of slack for a late high-water mark. A per-request leak of 16
/// bytes fills it in 65,536 requests, 11 minutes at 100/s.
pub const WASM_GROWTH_BOUND_KB: u64 = 1024;

/// The end of warm-up: the first fifth of the run, at least 5 s.
pub fn warm_up(run: Duration) -> Duration {
    (run / 5).max(Duration::from_secs(5))
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Baseline (median of the first three samples after warm-up) and end
/// (median of the last three) of one reading.
fn baseline_and_end(samples: &[Sample], warm: Duration, read: fn(&Sample) -> u64) -> (u64, u64) {
    let after: Vec<&Sample> = samples.iter().filter(|s| s.at >= warm).collect();
    let first: Vec<u64> = after.iter().take(3).map(|s| read(s)).collect();
    let last: Vec<u64> = after.iter().rev().take(3).map(|s| read(s)).collect();
    (median(first), median(last))
}

pub fn judge(ev: &Evidence, r: &mut Report) {
    r.section("memory (sampled from /proc every few seconds)");
    let warm = warm_up(ev.elapsed);
    for s in &ev.samples {
        r.line(format!(
            "+{:>5.1} s  RSS {:>7} kB  Wasm linear memory {:>6} kB ({:>5} kB resident) in {} VMs",
            s.at.as_secs_f64(),
            s.rss_kb,
            s.wasm_kb,
            s.wasm_rss_kb,
            s.wasm_memories
        ));
    }
    let after = ev.samples.iter().filter(|s| s.at >= warm).count();
    r.check("enough samples after warm-up", after >= 3, format!("{after} samples after {:.0} s of warm-up", warm.as_secs_f64()));
    let (rss0, rss1) = baseline_and_end(&ev.samples, warm, |s| s.rss_kb);
    let (wasm0, wasm1) = baseline_and_end(&ev.samples, warm, |s| s.wasm_kb);
    r.check(
        "RSS growth after warm-up",
        rss1.saturating_sub(rss0) <= RSS_GROWTH_BOUND_KB,
        format!("{rss0} kB -> {rss1} kB ({:+} kB; bound {RSS_GROWTH_BOUND_KB} kB)", rss1 as i64 - rss0 as i64),
    );
    r.check(
        "Wasm memory growth after warm-up",
        wasm1.saturating_sub(wasm0) <= WASM_GROWTH_BOUND_KB,
        format!("{wasm0} kB -> {wasm1} kB ({:+} kB; bound {WASM_GROWTH_BOUND_KB} kB)", wasm1 as i64 - wasm0 as i64),
    );
    let vms: Vec<u64> = ev.samples.iter().map(|s| s.wasm_memories).collect();
    let steady = vms.windows(2).all(|w| w.first() == w.last());
    r.check("Wasm VMs neither reloaded nor leaked", steady && vms.first().is_some_and(|v| *v > 0), format!("live Wasm memories per sample: {:?}", dedup(&vms)));
    let created = ev.stat("wasm.envoy.wasm.runtime.v8.created");
    let active = ev.stat("wasm.envoy.wasm.runtime.v8.active");
    r.line(format!("Envoy's wasm stats: envoy.wasm.runtime.v8 created {created}, active {active}"));

    r.section("Envoy's log");
    let bad: Vec<&str> = ev
        .log
        .lines()
        .filter(|l| l.contains("[critical]") || l.contains("Uncaught") || l.contains("panicked") || (l.contains("[error]") && l.contains("wasm")))
        .collect();
    r.check("no trap, panic or Wasm error logged", bad.is_empty(), format!("{} lines {:?}", bad.len(), bad.iter().take(3).collect::<Vec<_>>()));

    r.section("latency of the primary (allowed requests, from when each was due)");
    for mirrored in [true, false] {
        let mut micros: Vec<u64> = ev
            .requests
            .iter()
            .filter(|(k, o)| ev.allowed(k) && k.mirrored == mirrored && o.status.is_some())
            .map(|(_, o)| o.latency.as_micros() as u64)
            .collect();
        micros.sort_unstable();
        r.line(format!(
            "mirror {:<3}  {:>6} requests  p50 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            if mirrored { "on" } else { "off" },
            micros.len(),
            percentile(&micros, 50.0) as f64 / 1000.0,
            percentile(&micros, 99.0) as f64 / 1000.0,
            micros.last().copied().unwrap_or(0) as f64 / 1000.0,
        ));
    }
}

fn dedup(v: &[u64]) -> Vec<u64> {
    let mut out: Vec<u64> = Vec::new();
    for x in v {
        if out.last() != Some(x) {
            out.push(*x);
        }
    }
    out
}
