//! Plays a scenario and reports it: readable text for people, JSON for
//! machines.

use crate::expect::check;
use crate::plugin::Plugin;
use crate::scenario::Scenario;
use crate::state::SharedState;
use crate::abi::LogLevel;
use crate::state::{LogRecord, PluginInfo};
use crate::stream::Outcome;
use crate::{HarnessError, Module};
use serde::Serialize;
use std::fmt::Write;

#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    pub name: String,
    pub failures: Vec<String>,
    /// What the VMs logged while the step's virtual time passed (ticks).
    pub background_logs: Vec<LogRecord>,
    pub outcome: Outcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub module: String,
    pub abi_version: String,
    /// The plugin's names, as Envoy's log lines carry them.
    #[serde(skip)]
    pub plugin: PluginInfo,
    /// What the VMs logged while they started (every VM Envoy starts).
    pub start_logs: Vec<LogRecord>,
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
    let names = PluginInfo {
        name: plugin_config.name.clone(),
        root_id: plugin_config.root_id.clone(),
        vm_id: plugin_config.vm_id.clone(),
        ..PluginInfo::default()
    };
    let mut plugin = Plugin::start(module, plugin_config, shared.clone())?;
    let start_logs = plugin.start_logs.clone();
    let mut steps = Vec::new();
    for (i, step) in scenario.requests.iter().enumerate() {
        let mut failures = Vec::new();
        if step.advance_ms > 0 {
            if let Err(trap) = plugin.advance(std::time::Duration::from_millis(step.advance_ms)) {
                failures.push(format!("a timer callback trapped: {trap}"));
            }
        }
        let background_logs = plugin.take_background_logs();
        let outcome = plugin.send(&step.to_request(), &step.to_upstream());
        failures.extend(check(&step.expect, &outcome, &shared));
        let name = step.name.clone().unwrap_or_else(|| format!("request {}", i + 1));
        steps.push(StepResult { name, failures, background_logs, outcome });
    }
    let failed = steps.iter().filter(|s| !s.failures.is_empty()).count();
    Ok(Report {
        module: module.name.clone(),
        abi_version: module.abi_version.to_string(),
        plugin: names,
        start_logs,
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

/// Envoy's name for a log level, as its log lines print it.
pub fn envoy_level(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warning",
        LogLevel::Error => "error",
        LogLevel::Critical => "critical",
    }
}

/// A module's log line as Envoy 1.40 prints it (without the time stamp,
/// thread and source location): a stream context's line names the plugin,
/// its root id and VM id (those that are set), a root context's line its
/// root id and VM id: `wasm log probe probe: ...` and `wasm log probe: ...`
/// for a plugin named and rooted `probe`.
pub fn envoy_log_line(plugin: &PluginInfo, record: &LogRecord) -> String {
    let names: &[&str] = if record.from_stream { &[&plugin.name, &plugin.root_id, &plugin.vm_id] } else { &[&plugin.root_id, &plugin.vm_id] };
    let prefix: String = names.iter().filter(|n| !n.is_empty()).map(|n| format!(" {n}")).collect();
    format!("[{}][wasm] wasm log{prefix}: {}", envoy_level(record.level), record.message)
}

impl Report {
    /// The report with every log line in Envoy's words (`--envoy-like`).
    pub fn envoy_text(&self) -> String {
        self.render(true)
    }

    pub fn text(&self) -> String {
        self.render(false)
    }

    fn log_line(&self, envoy_like: bool, record: &LogRecord) -> String {
        if envoy_like {
            envoy_log_line(&self.plugin, record)
        } else {
            format!("log {:?}: {}", record.level, record.message)
        }
    }

    fn render(&self, envoy_like: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "module {} (proxy-wasm ABI {})", self.module, self.abi_version);
        for log in &self.start_logs {
            let _ = writeln!(out, "  start: {}", self.log_line(envoy_like, log));
        }
        for (i, step) in self.steps.iter().enumerate() {
            let verdict = if step.failures.is_empty() { "ok" } else { "FAILED" };
            let _ = writeln!(out, "\n[{}] {} ... {verdict}", i + 1, step.name);
            for log in &step.background_logs {
                let _ = writeln!(out, "    before it: {}", self.log_line(envoy_like, log));
            }
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
                let _ = writeln!(out, "    {}", self.log_line(envoy_like, log));
            }
            for failure in &step.failures {
                let _ = writeln!(out, "    expectation failed: {failure}");
            }
        }
        let _ = writeln!(out, "\n{} passed, {} failed", self.passed, self.failed);
        out
    }
}
