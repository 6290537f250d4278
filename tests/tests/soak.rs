//! The soak in short: the four filters together in one Envoy (two workers,
//! mTLS, mirror, canary, retry budget) under a fixed load for 20 seconds;
//! every bound of `make soak` must hold. The bounds are counts and
//! invariants, not timings, so a loaded machine slows the run but cannot
//! fail it (latency is printed, never asserted).

#![allow(clippy::unwrap_used, clippy::panic)] // tests fail by panicking

use e2e::soak::{self, Soak};
use std::time::Duration;

#[test]
fn twenty_seconds_of_load_leave_every_bound_holding() {
    let report = soak::run(Soak::new(Duration::from_secs(20))).unwrap();
    println!("{}", report.text());
    let failed: Vec<String> = report.failures().iter().map(|c| format!("{}: {}", c.name, c.detail)).collect();
    assert!(failed.is_empty(), "bounds failed:\n{}", failed.join("\n"));
}
