//! `make soak`: the four filters in one Envoy under a fixed load for
//! `SOAK_SECONDS` (default 60), then the report; exits non-zero when a
//! bound fails. `SOAK_RATE` sets the requests per second (default 100).

use e2e::soak::{self, Soak};
use std::process::ExitCode;
use std::time::Duration;

fn number(name: &str, default: f64) -> Result<f64, String> {
    match std::env::var(name) {
        Ok(v) => v.trim().parse::<f64>().ok().filter(|x| *x > 0.0).ok_or_else(|| format!("{name}={v:?} is not a positive number")),
        Err(_) => Ok(default),
    }
}

fn main() -> ExitCode {
    let (seconds, rate) = match (number("SOAK_SECONDS", 60.0), number("SOAK_RATE", 100.0)) {
        (Ok(s), Ok(r)) => (s, r),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("soak: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut plan = Soak::new(Duration::from_secs_f64(seconds));
    plan.rate_per_s = rate;
    println!(
        "Soak: one Envoy 1.40, two workers, the four filters over mTLS; {rate} requests/s for {seconds} s against backends \
         failing every other attempt (seed {:#x})",
        plan.seed
    );
    match soak::run(plan) {
        Ok(report) => {
            print!("{}", report.text());
            let failed = report.failures();
            if failed.is_empty() {
                println!("\nsoak passed: {} bounds held", report.checks.len());
                ExitCode::SUCCESS
            } else {
                println!("\nsoak FAILED: {} of {} bounds:", failed.len(), report.checks.len());
                for c in failed {
                    println!("  {}: {}", c.name, c.detail);
                }
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("soak could not run: {e}");
            ExitCode::FAILURE
        }
    }
}
