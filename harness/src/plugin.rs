//! A plugin as Envoy runs one: a VM of a module with its root context,
//! configured at start (a false `proxy_on_configure` means it does not
//! start), and a failure policy that says what happens after a trap.

use crate::error::HarnessError;
use crate::module::Module;
use crate::properties::{split_path, PropertyValue};
use crate::state::{LogRecord, PluginInfo, SharedState};
use crate::stream::CallReply;
use crate::vm::Vm;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;

/// Envoy's `failure_policy` for a VM that trapped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FailurePolicy {
    /// Every later request gets 503 (Istio's default).
    #[default]
    FailClosed,
    /// Requests pass as if the filter were not there.
    FailOpen,
    /// The failing request gets 503; the next one gets a fresh VM.
    FailReload,
}

/// How to start a plugin: what Envoy's `Wasm` filter config carries.
#[derive(Debug, Clone, Default)]
pub struct PluginConfig {
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
    /// Istio passes `pluginConfig` here as JSON.
    pub configuration: Vec<u8>,
    pub vm_configuration: Vec<u8>,
    pub failure_policy: FailurePolicy,
    pub env: Vec<(String, String)>,
    /// Properties every request sees (`xds.cluster_name`, ...).
    pub properties: HashMap<Vec<String>, PropertyValue>,
    /// Answers for the clusters the module may call; a call to any other
    /// cluster fails at dispatch, as in Envoy.
    pub clusters: HashMap<String, CallReply>,
    /// A fixed clock (nanoseconds since the epoch), for repeatable runs.
    pub now_nanos: Option<u64>,
    /// What `proxy_get_log_level` answers (Envoy's default: info). The
    /// harness keeps every line the module logs whatever the level.
    pub log_level: crate::abi::LogLevel,
    /// Under FAIL_RELOAD, how long after a VM was loaded a failed one may be
    /// replaced (Envoy's `reload_config.backoff`, base 1 s); until then
    /// requests get 503.
    pub reload_backoff: std::time::Duration,
    /// Worker threads (Envoy's `--concurrency`), each with a VM of its own;
    /// requests go to the first. 1 by default.
    pub workers: usize,
}

impl PluginConfig {
    /// A plugin whose name and root id are `root_id`, as Istio sets them.
    pub fn new(root_id: &str) -> Self {
        Self {
            name: root_id.to_string(),
            root_id: root_id.to_string(),
            reload_backoff: std::time::Duration::from_secs(1),
            log_level: crate::abi::LogLevel::Info,
            workers: 1,
            ..Self::default()
        }
    }

    pub fn configuration(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.configuration = bytes.into();
        self
    }

    pub fn json(self, value: &serde_json::Value) -> Self {
        self.configuration(value.to_string())
    }

    pub fn vm_configuration(mut self, bytes: impl Into<Vec<u8>>) -> Self {
        self.vm_configuration = bytes.into();
        self
    }

    pub fn failure_policy(mut self, policy: FailurePolicy) -> Self {
        self.failure_policy = policy;
        self
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    pub fn property(mut self, name: &str, value: impl Into<PropertyValue>) -> Self {
        self.properties.insert(split_path(name), value.into());
        self
    }

    pub fn cluster(mut self, name: &str, reply: CallReply) -> Self {
        self.clusters.insert(name.to_string(), reply);
        self
    }

    pub fn reload_backoff(mut self, backoff: std::time::Duration) -> Self {
        self.reload_backoff = backoff;
        self
    }

    pub fn log_level(mut self, level: crate::abi::LogLevel) -> Self {
        self.log_level = level;
        self
    }

    /// `n` worker VMs (at least one), as Envoy starts with `--concurrency n`.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    pub fn clock(mut self, nanos: u64) -> Self {
        self.now_nanos = Some(nanos);
        self
    }
}

/// A started plugin.
pub struct Plugin {
    module: Module,
    info: Arc<PluginInfo>,
    pub config: PluginConfig,
    pub shared: Arc<SharedState>,
    /// The first worker's VM, which serves the requests.
    pub vm: Vm,
    /// The main thread's VM and the other workers' VMs: started,
    /// configured and ticking like the first, but no request reaches them.
    pub other_workers: Vec<Vm>,
    /// VMs created after a trap under FAIL_RELOAD.
    pub reloads: u32,
    /// When the current VM was loaded.
    loaded_at: std::time::Instant,
    /// What the module logged while starting.
    pub start_logs: Vec<LogRecord>,
}

impl Plugin {
    /// Starts the plugin: instantiate, create the root context, then
    /// `proxy_on_vm_start` and `proxy_on_configure`; false from either, or a
    /// trap, means the plugin does not start (Envoy rejects the config).
    pub fn start(module: &Module, config: PluginConfig, shared: Arc<SharedState>) -> Result<Self, HarnessError> {
        let info = Arc::new(PluginInfo {
            name: config.name.clone(),
            root_id: config.root_id.clone(),
            vm_id: config.vm_id.clone(),
            plugin_configuration: config.configuration.clone(),
            vm_configuration: config.vm_configuration.clone(),
            env: config.env.clone(),
        });
        // Seen in Envoy 1.40: the main thread configures the plugin twice
        // (a check whose VM is then dropped, and a VM that stays and
        // ticks), then each worker starts its own VM.
        let (_, mut start_logs) = boot(module, &info, &config, &shared)?;
        let (main_thread, logs) = boot(module, &info, &config, &shared)?;
        start_logs.extend(logs);
        let (vm, logs) = boot(module, &info, &config, &shared)?;
        start_logs.extend(logs);
        let mut other_workers = vec![main_thread];
        for _ in 1..config.workers.max(1) {
            let (worker, logs) = boot(module, &info, &config, &shared)?;
            start_logs.extend(logs);
            other_workers.push(worker);
        }
        Ok(Self {
            module: module.clone(),
            info,
            config,
            shared,
            vm,
            other_workers,
            reloads: 0,
            loaded_at: std::time::Instant::now(),
            start_logs,
        })
    }

    /// Lets virtual time pass: every VM's timer fires each time its period
    /// comes round (in time order across VMs, with the clock at each tick),
    /// and calls made from a tick are answered. Returns the first trap.
    pub fn advance(&mut self, by: std::time::Duration) -> Result<(), crate::vm::Trap> {
        let until = self.shared.elapsed().saturating_add(by).as_nanos() as u64;
        loop {
            let next = std::iter::once(&mut self.vm)
                .chain(self.other_workers.iter_mut())
                .filter(|vm| vm.failed.is_none() && vm.store.data().tick_period_ms > 0 && vm.store.data().next_tick_at <= until)
                .min_by_key(|vm| vm.store.data().next_tick_at);
            let Some(vm) = next else { break };
            let at = vm.store.data().next_tick_at;
            self.shared.advance_to(at);
            let root = vm.root_context_id;
            vm.call("proxy_on_tick", &[root as i32])?;
            crate::replies::deliver_all(vm, root)?;
            let state = vm.store.data_mut();
            // Unless the tick re-armed the timer, the next one is a period on.
            if state.next_tick_at == at {
                state.next_tick_at = at.saturating_add(u64::from(state.tick_period_ms) * 1_000_000);
            }
        }
        self.shared.advance_to(until);
        Ok(())
    }

    /// Log lines the VMs logged outside any request (ticks, calls they
    /// made), taken from every VM.
    pub fn take_background_logs(&mut self) -> Vec<LogRecord> {
        let mut logs = std::mem::take(&mut self.vm.store.data_mut().logs);
        for vm in &mut self.other_workers {
            logs.append(&mut vm.store.data_mut().logs);
        }
        logs
    }

    /// True once the reload backoff has passed since the VM was loaded.
    pub(crate) fn reload_due(&self) -> bool {
        self.loaded_at.elapsed() >= self.config.reload_backoff
    }

    /// A fresh VM in place of a failed one (FAIL_RELOAD).
    pub(crate) fn reload(&mut self) -> Result<(), HarnessError> {
        self.loaded_at = std::time::Instant::now();
        let (vm, logs) = boot(&self.module, &self.info, &self.config, &self.shared)?;
        self.vm = vm;
        self.start_logs.extend(logs);
        self.reloads += 1;
        Ok(())
    }

    /// Fires the root context's timer (`proxy_on_tick`), as Envoy does every
    /// tick period once the module set one.
    pub fn tick(&mut self) -> Result<(), crate::vm::Trap> {
        let root = self.vm.root_context_id as i32;
        self.vm.call("proxy_on_tick", &[root]).map(|_| ())
    }

    /// Shuts the plugin down as Envoy does on drain: `proxy_on_done` on the
    /// root context; if it returns false the module finishes later and calls
    /// `proxy_done` (e.g. from a tick). Returns true once the root context
    /// is done, after `proxy_on_delete`.
    pub fn shutdown(&mut self) -> Result<bool, crate::vm::Trap> {
        let root = self.vm.root_context_id as i32;
        if self.vm.call("proxy_on_done", &[root])? == Some(0) {
            self.vm.store.data_mut().done_pending = true;
            return Ok(false);
        }
        self.vm.call("proxy_on_delete", &[root])?;
        Ok(true)
    }

    pub fn tick_period_ms(&self) -> u32 {
        self.vm.store.data().tick_period_ms
    }

    /// Every log line the VM has kept (start logs are in `start_logs`).
    pub fn logs(&self) -> &[LogRecord] {
        &self.vm.store.data().logs
    }

    /// The names and configuration the plugin was started with.
    pub fn info(&self) -> &PluginInfo {
        &self.info
    }

    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Linear memory in bytes.
    pub fn memory_bytes(&mut self) -> usize {
        match self.vm.store.data().memory {
            Some(memory) => memory.data_size(&self.vm.store),
            None => 0,
        }
    }
}

fn boot(module: &Module, info: &Arc<PluginInfo>, config: &PluginConfig, shared: &Arc<SharedState>) -> Result<(Vm, Vec<LogRecord>), HarnessError> {
    let mut vm = Vm::new(module, Arc::clone(info), Arc::clone(shared))?;
    let root = vm.new_context_id();
    vm.root_context_id = root;
    {
        let state = vm.store.data_mut();
        state.root_context_id = root;
        state.properties = config.properties.clone();
        state.clusters = Arc::new(config.clusters.clone());
        state.now_nanos = config.now_nanos;
        state.log_level = config.log_level;
    }
    let root = root as i32;
    let failed = |vm: &mut Vm, what: String| {
        let logs: Vec<String> = vm.store.data().logs.iter().map(|l| l.message.clone()).collect();
        let logged = if logs.is_empty() { String::new() } else { format!("; the module logged: {}", logs.join(" | ")) };
        HarnessError::Start(format!("{}: {what}{logged}", module.name))
    };
    let steps: [(&str, Vec<i32>); 3] = [
        ("proxy_on_context_create", vec![root, 0]),
        ("proxy_on_vm_start", vec![root, info.vm_configuration.len() as i32]),
        ("proxy_on_configure", vec![root, info.plugin_configuration.len() as i32]),
    ];
    for (callback, args) in steps {
        // Envoy hands the plugin configuration over only while it configures.
        vm.store.data_mut().configuring = callback == "proxy_on_configure";
        let result = vm.call(callback, &args);
        vm.store.data_mut().configuring = false;
        match result {
            Ok(Some(0)) if callback != "proxy_on_context_create" => {
                return Err(failed(&mut vm, format!("{callback} returned false")));
            }
            Ok(_) => {}
            Err(trap) => return Err(failed(&mut vm, trap.to_string())),
        }
    }
    let logs = std::mem::take(&mut vm.store.data_mut().logs);
    Ok((vm, logs))
}
