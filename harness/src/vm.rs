//! One instance of a module in its own store: calls into the module's
//! callbacks with any signature the ABI allows, counts fuel, and turns a trap
//! into a value that names the callback it happened in.

use crate::error::HarnessError;
use crate::module::{engine, Module};
use crate::state::{HostState, PluginInfo, SharedState};
use serde::Serialize;
use std::sync::Arc;
use wasmtime::{Instance, Store, Val};

/// Fuel given to a store; far more than any callback needs.
const FUEL: u64 = u64::MAX / 4;

/// A trap inside the module.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trap {
    pub callback: String,
    pub message: String,
}

impl std::fmt::Display for Trap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the module trapped in {}: {}", self.callback, self.message)
    }
}

pub struct Vm {
    pub store: Store<HostState>,
    instance: Instance,
    next_context_id: u32,
    pub root_context_id: u32,
    /// Set once the module trapped; a failed VM is never called again.
    pub failed: Option<Trap>,
}

impl Vm {
    /// Instantiates the module and runs its start function (`_initialize`,
    /// else `_start`), as proxy-wasm-cpp-host does.
    pub fn new(module: &Module, plugin: Arc<PluginInfo>, shared: Arc<SharedState>) -> Result<Self, HarnessError> {
        let serial = shared.next_vm_serial();
        let mut store = Store::new(engine(), HostState::new(plugin, shared, serial));
        store.set_fuel(FUEL).map_err(|e| HarnessError::Start(e.to_string()))?;
        if crate::profile::enabled() {
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(crate::profile::sample);
            store.call_hook(crate::profile::skip_host_time);
        }
        let instance = module
            .linker
            .instantiate(&mut store, &module.module)
            .map_err(|e| HarnessError::Start(format!("{}: instantiation failed: {e}", module.name)))?;
        let memory = instance.get_memory(&mut store, "memory");
        let allocate = instance
            .get_typed_func::<i32, i32>(&mut store, "proxy_on_memory_allocate")
            .or_else(|_| instance.get_typed_func::<i32, i32>(&mut store, "malloc"))
            .ok();
        store.data_mut().memory = memory;
        store.data_mut().allocate = allocate;
        let mut vm = Self { store, instance, next_context_id: 1, root_context_id: 0, failed: None };
        for start in ["_initialize", "_start"] {
            if vm.has_export(start) {
                vm.call(start, &[]).map_err(|t| HarnessError::Start(t.to_string()))?;
                break;
            }
        }
        Ok(vm)
    }

    pub fn has_export(&mut self, name: &str) -> bool {
        self.instance.get_func(&mut self.store, name).is_some()
    }

    pub fn new_context_id(&mut self) -> u32 {
        let id = self.next_context_id;
        self.next_context_id += 1;
        id
    }

    /// Fuel consumed so far: roughly, wasm instructions executed.
    pub fn fuel_used(&self) -> u64 {
        FUEL.saturating_sub(self.store.get_fuel().unwrap_or(FUEL))
    }

    /// Calls an exported callback with as many of `args` as it takes (so ABI
    /// 0.2.0 and 0.2.1 signatures both work). `Ok(None)` if the module does
    /// not export it or it returns nothing. A trap marks the VM failed.
    pub fn call(&mut self, name: &str, args: &[i32]) -> Result<Option<i64>, Trap> {
        if let Some(trap) = &self.failed {
            return Err(trap.clone());
        }
        let Some(func) = self.instance.get_func(&mut self.store, name) else { return Ok(None) };
        // Every proxy_on_* callback names its context first.
        if name.starts_with("proxy_on_") && name != "proxy_on_memory_allocate" {
            self.store.data_mut().current_context = args.first().copied().unwrap_or(0) as u32;
        }
        let ty = func.ty(&self.store);
        let params: Vec<Val> = ty
            .params()
            .enumerate()
            .map(|(i, p)| {
                let v = args.get(i).copied().unwrap_or(0);
                match p {
                    wasmtime::ValType::I64 => Val::I64(i64::from(v as u32)),
                    _ => Val::I32(v),
                }
            })
            .collect();
        let mut results: Vec<Val> = ty.results().map(|_| Val::I32(0)).collect();
        let fuel_before = self.fuel_used();
        let called = func.call(&mut self.store, &params, &mut results);
        if crate::profile::enabled() {
            crate::profile::callback(name, self.fuel_used().saturating_sub(fuel_before));
        }
        match called {
            Ok(()) => Ok(results.first().and_then(|v| v.i32().map(i64::from).or_else(|| v.i64()))),
            Err(e) => {
                let trap = Trap { callback: name.to_string(), message: describe(&e) };
                self.failed = Some(trap.clone());
                Err(trap)
            }
        }
    }
}

/// The trap's cause and, when wasmtime has one, the module's backtrace.
fn describe(e: &wasmtime::Error) -> String {
    let mut message = e.root_cause().to_string();
    if let Some(trace) = e.downcast_ref::<wasmtime::WasmBacktrace>() {
        let frames: Vec<String> = trace
            .frames()
            .iter()
            .take(8)
            .map(|f| f.func_name().unwrap_or("?").to_string())
            .collect();
        if !frames.is_empty() {
            message = format!("{message} (in {})", frames.join(" <- "));
        }
    }
    message
}
