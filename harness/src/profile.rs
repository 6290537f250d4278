//! `harness bench --profile`: where a module's time goes, by function.
//! Instruction counts (fuel) say how much a request costs, not where; this
//! samples the module's wasm stack every few microseconds through epoch
//! interruption and counts each sample for the innermost function (self)
//! and for every function on the stack (total). Names come from the
//! module's name section: profile a build that keeps it (`make profile`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use wasmtime::{CallHook, Engine, StoreContextMut, UpdateDeadline, WasmBacktrace};

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns sampling on for the process; call before the first module loads
/// (the engine is built with epoch interruption only then).
pub fn enable() {
    ENABLED.store(true, Ordering::SeqCst);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::SeqCst)
}

#[derive(Default)]
struct Counts {
    samples: u64,
    by_self: HashMap<String, u64>,
    by_total: HashMap<String, u64>,
    /// Per exported callback: (calls, instructions), nested calls included.
    callbacks: HashMap<String, (u64, u64)>,
}

fn counts() -> &'static Mutex<Counts> {
    static COUNTS: OnceLock<Mutex<Counts>> = OnceLock::new();
    COUNTS.get_or_init(Mutex::default)
}

/// The store's epoch callback: one sample of the stack, then wait for the
/// next tick.
pub fn sample<T>(store: StoreContextMut<'_, T>) -> wasmtime::Result<UpdateDeadline> {
    let trace = WasmBacktrace::capture(&store);
    let names: Vec<String> = trace.frames().iter().map(|f| f.func_name().map_or_else(|| format!("func[{}]", f.func_index()), str::to_string)).collect();
    if let (Ok(mut c), Some(leaf)) = (counts().lock(), names.first()) {
        c.samples += 1;
        *c.by_self.entry(leaf.clone()).or_default() += 1;
        let mut seen: Vec<&String> = Vec::new();
        for name in &names {
            if !seen.contains(&name) {
                seen.push(name);
                *c.by_total.entry(name.clone()).or_default() += 1;
            }
        }
    }
    Ok(UpdateDeadline::Continue(1))
}

/// The store's call hook: a tick while the host ran (a host call, or
/// between callbacks) is not the module's time, so the deadline restarts
/// whenever the module is entered or a host call returns.
pub fn skip_host_time<T>(mut store: StoreContextMut<'_, T>, hook: CallHook) -> wasmtime::Result<()> {
    if matches!(hook, CallHook::CallingWasm | CallHook::ReturningFromHost) {
        store.set_epoch_deadline(1);
    }
    Ok(())
}

/// Counts the instructions (fuel) one call of an exported callback took.
pub fn callback(name: &str, fuel: u64) {
    if let Ok(mut c) = counts().lock() {
        let entry = c.callbacks.entry(name.to_string()).or_default();
        entry.0 += 1;
        entry.1 += fuel;
    }
}

/// Advances the engine's epoch every `period` until the returned guard drops.
pub struct Ticker {
    stop: Arc<AtomicBool>,
}

impl Ticker {
    pub fn start(engine: &Engine, period: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (engine, flag) = (engine.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(period);
                engine.increment_epoch();
            }
        });
        Self { stop }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The `top` functions by self samples, with their share of self and total.
pub fn report(top: usize) -> String {
    let Ok(c) = counts().lock() else { return String::new() };
    let total = c.samples.max(1) as f64;
    let mut rows: Vec<(&String, &u64)> = c.by_self.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut out = String::from("instructions per call, by callback (nested calls included):\n");
    let mut callbacks: Vec<(&String, &(u64, u64))> = c.callbacks.iter().collect();
    callbacks.sort_by_key(|(_, (_, fuel))| std::cmp::Reverse(*fuel));
    for (name, (calls, fuel)) in callbacks {
        out.push_str(&format!("  {:>9.0}  {:>8} calls  {name}\n", *fuel as f64 / (*calls).max(1) as f64, calls));
    }
    out.push_str(&format!("profile: {} samples\n  self%  total%  function\n", c.samples));
    for (name, n) in rows.into_iter().take(top) {
        let all = c.by_total.get(name).copied().unwrap_or(0);
        out.push_str(&format!("  {:5.1}  {:6.1}  {}\n", *n as f64 * 100.0 / total, all as f64 * 100.0 / total, shorten(name)));
    }
    out
}

/// A Rust path, demangled and without its hash, cut to a readable length.
fn shorten(name: &str) -> String {
    format!("{:#}", rustc_demangle::demangle(name)).chars().take(140).collect()
}
