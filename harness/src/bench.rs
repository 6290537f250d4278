//! `harness bench`: what a request costs inside the module, deterministic
//! from run to run (fuel, host calls, memory), plus the harness's own
//! throughput.

use crate::plugin::{Plugin, PluginConfig};
use crate::state::SharedState;
use crate::stream::{Request, UpstreamResponse};
use crate::{HarnessError, Module};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Instant;

#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub module: String,
    pub requests: u64,
    /// Fuel per request: wasm instructions executed, roughly.
    pub instructions_per_request: f64,
    /// Host calls per request, by function.
    pub host_calls_per_request: BTreeMap<String, f64>,
    /// Entries into the module per request (callbacks).
    pub callbacks_per_request: f64,
    pub linear_memory_bytes: usize,
    /// Wall-clock throughput of the harness, one thread.
    pub requests_per_second: f64,
    /// Requests that did not reach the upstream or got no response.
    pub not_completed: u64,
}

/// Runs `total` requests, cycling through `requests`, after a warm-up.
pub fn run(module: &Module, config: PluginConfig, requests: &[(Request, UpstreamResponse)], total: u64) -> Result<BenchReport, HarnessError> {
    if requests.is_empty() {
        return Err(HarnessError::Scenario("bench needs at least one request".into()));
    }
    // A fixed clock keeps the module's own work identical from run to run.
    let config = if config.now_nanos.is_none() { config.clock(1_700_000_000_000_000_000) } else { config };
    let mut plugin = Plugin::start(module, config, SharedState::new())?;
    for (request, upstream) in requests.iter().cycle().take(requests.len() * 10) {
        plugin.send(request, upstream);
    }
    let mut fuel = 0u64;
    let mut callbacks = 0u64;
    let mut not_completed = 0u64;
    let mut calls: BTreeMap<String, u64> = BTreeMap::new();
    let started = Instant::now();
    for (request, upstream) in requests.iter().cycle().take(total as usize) {
        let outcome = plugin.send(request, upstream);
        fuel += outcome.fuel;
        callbacks += outcome.callbacks.len() as u64;
        if outcome.response.is_none() {
            not_completed += 1;
        }
        for (name, count) in outcome.host_calls {
            *calls.entry(name).or_default() += count;
        }
    }
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let per = |n: u64| n as f64 / total.max(1) as f64;
    Ok(BenchReport {
        module: module.name.clone(),
        requests: total,
        instructions_per_request: per(fuel),
        host_calls_per_request: calls.into_iter().map(|(k, v)| (k, per(v))).collect(),
        callbacks_per_request: per(callbacks),
        linear_memory_bytes: plugin.memory_bytes(),
        requests_per_second: total as f64 / seconds,
        not_completed,
    })
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "module                 {}", self.module)?;
        writeln!(f, "requests               {}", self.requests)?;
        writeln!(f, "instructions/request   {:.0}", self.instructions_per_request)?;
        writeln!(f, "callbacks/request      {:.1}", self.callbacks_per_request)?;
        let total: f64 = self.host_calls_per_request.values().sum();
        writeln!(f, "host calls/request     {total:.1}")?;
        for (name, n) in &self.host_calls_per_request {
            writeln!(f, "  {name:<36} {n:.2}")?;
        }
        writeln!(f, "linear memory          {} bytes", self.linear_memory_bytes)?;
        writeln!(f, "harness throughput     {:.0} requests/s (one thread)", self.requests_per_second)?;
        if self.not_completed > 0 {
            writeln!(f, "not completed          {}", self.not_completed)?;
        }
        Ok(())
    }
}
