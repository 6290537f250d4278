//! Plays a scenario and reports it: readable text for people, JSON for
//! machines.

use crate::expect::check;
use crate::plugin::Plugin;
use crate::scenario::Scenario;
use crate::state::SharedState;
use crate::stream::{Outcome, UpstreamResponse};
use crate::{HarnessError, Module};
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub name: String,
    pub failures: Vec<String>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub module: String,
    pub abi_version: String,
    pub steps: Vec<StepResult>,
    pub passed: usize,
    pub failed: usize,
}

/// Starts the scenario's plugin (with `config` replacing its `pluginConfig`
/// if given) and sends each request in turn to the same plugin.
pub fn play(module: &Module, scenario: &Scenario, config: Option<Vec<u8>>) -> Result<Report, HarnessError> {
    let mut plugin_config = scenario.plugin_config();
    if let Some(bytes) = config {
        plugin_config.configuration = bytes;
    }
    let shared = SharedState::new();
    let mut plugin = Plugin::start(module, plugin_config, shared.clone())?;
    let mut steps = Vec::new();
    for (i, step) in scenario.requests.iter().enumerate() {
        let upstream = step.upstream.as_ref().map(|u| u.to_response()).unwrap_or_else(UpstreamResponse::ok);
        let outcome = plugin.send(&step.request.to_request(), &upstream);
        let failures = check(&step.expect, &outcome, &shared);
        let name = step.name.clone().unwrap_or_else(|| format!("request {}", i + 1));
        steps.push(StepResult { name, failures, outcome });
    }
    let failed = steps.iter().filter(|s| !s.failures.is_empty()).count();
    Ok(Report {
        module: module.name.clone(),
        abi_version: module.abi_version.to_string(),
        passed: steps.len() - failed,
        failed,
        steps,
    })
}

fn pairs(out: &mut String, pairs: &[(String, String)]) {
    for (k, v) in pairs {
        let _ = writeln!(out, "        {k}: {v}");
    }
}

fn body(out: &mut String, body: &[u8]) {
    if !body.is_empty() {
        let _ = writeln!(out, "        body: {:?}", String::from_utf8_lossy(body));
    }
}

impl Report {
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "module {} (proxy-wasm ABI {})", self.module, self.abi_version);
        for (i, step) in self.steps.iter().enumerate() {
            let verdict = if step.failures.is_empty() { "ok" } else { "FAILED" };
            let _ = writeln!(out, "\n[{}] {} ... {verdict}", i + 1, step.name);
            let o = &step.outcome;
            match &o.upstream {
                Some(up) => {
                    let _ = writeln!(out, "    upstream saw: {} {} (host {})", up.method, up.path, up.authority);
                    pairs(&mut out, &up.headers);
                    body(&mut out, &up.body);
                }
                None => {
                    let _ = writeln!(out, "    upstream saw: nothing");
                }
            }
            if let Some((filter, reply)) = &o.local_response {
                let _ = writeln!(out, "    local response from filter {filter}: {} ({})", reply.status, reply.details);
            }
            match &o.response {
                Some(r) => {
                    let _ = writeln!(out, "    client got: {}", r.status);
                    pairs(&mut out, &r.headers);
                    body(&mut out, &r.body);
                }
                None => {
                    let _ = writeln!(out, "    client got: nothing: {}", o.stalled.as_deref().unwrap_or("stalled"));
                }
            }
            if let Some((filter, trap)) = &o.trap {
                let _ = writeln!(out, "    trap in filter {filter}: {trap}");
            }
            if o.route_cache_cleared {
                let _ = writeln!(out, "    route cache cleared: Envoy picks the route again");
            }
            for (_, log) in &o.logs {
                let _ = writeln!(out, "    log {:?}: {}", log.level, log.message);
            }
            for failure in &step.failures {
                let _ = writeln!(out, "    expectation failed: {failure}");
            }
        }
        let _ = writeln!(out, "\n{} passed, {} failed", self.passed, self.failed);
        out
    }
}
