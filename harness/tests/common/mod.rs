//! What the harness's integration tests share: the compiled fixture modules
//! (compiled once per test binary) and a probe plugin started from a script.

#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

pub mod wat;

use harness::{Module, Plugin, PluginConfig, SharedState};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

pub fn module_path(name: &str, target: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("../target/{target}/release/{name}.wasm"))
}

fn load(cell: &'static OnceLock<Module>, name: &str) -> Module {
    cell.get_or_init(|| {
        let path = module_path(name, "wasm32-wasip1");
        Module::load(&path).unwrap_or_else(|e| panic!("{e} (run `make build` first)"))
    })
    .clone()
}

pub fn probe() -> Module {
    static PROBE: OnceLock<Module> = OnceLock::new();
    load(&PROBE, "probe_fixture")
}

pub fn stamp() -> Module {
    static STAMP: OnceLock<Module> = OnceLock::new();
    load(&STAMP, "stamp_fixture")
}

/// A probe plugin running `script`, on its own shared state.
pub fn probe_plugin(script: Value) -> Plugin {
    probe_with(PluginConfig::new("probe").json(&script), SharedState::new())
}

pub fn probe_with(config: PluginConfig, shared: Arc<SharedState>) -> Plugin {
    Plugin::start(&probe(), config, shared).unwrap()
}

/// Where the probe writes an observation: a header of `map`.
pub fn to(map: &str, name: &str) -> Value {
    json!({ "map": map, "name": name })
}

/// Where the probe writes an observation from a root callback: shared data.
pub fn to_shared(key: &str) -> Value {
    json!({ "sharedData": key })
}

pub fn shared_text(shared: &SharedState, key: &str) -> Option<String> {
    shared.shared_data("", key).map(|(v, _)| String::from_utf8_lossy(&v).into_owned())
}
