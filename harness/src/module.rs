//! Loading a module: compiled once, checked at load time so that a file that
//! is not wasm, a module without the proxy-wasm ABI, or an import the host
//! does not provide is a clear error naming the problem, not a crash later.

use crate::abi::ABI_VERSIONS;
use crate::error::HarnessError;
use crate::host;
use crate::state::{HostState, PluginInfo, SharedState};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use wasmtime::{Config, Engine, Extern, ExternType, FuncType, Linker, Store};

/// One engine for the process: compiled code is shared by every store.
/// Fuel is always on so `harness bench` can count instructions.
pub fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.consume_fuel(true);
        if crate::profile::enabled() {
            config.epoch_interruption(true);
        }
        Engine::new(&config).unwrap_or_default()
    })
}

/// A compiled proxy-wasm module, cheap to clone and share between VMs.
#[derive(Clone)]
pub struct Module {
    pub(crate) module: wasmtime::Module,
    pub(crate) linker: Arc<Linker<HostState>>,
    pub name: String,
    pub abi_version: &'static str,
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Module({}, ABI {})", self.name, self.abi_version)
    }
}

impl Module {
    /// A module `make build` produced in this workspace
    /// (`target/wasm32-wasip1/release/<crate_name>.wasm`), compiled once per
    /// process: the filters' tests share it.
    pub fn built(crate_name: &str) -> Result<Self, HarnessError> {
        static BUILT: OnceLock<Mutex<HashMap<String, Module>>> = OnceLock::new();
        let cache = BUILT.get_or_init(Mutex::default);
        if let Some(m) = cache.lock().ok().and_then(|c| c.get(crate_name).cloned()) {
            return Ok(m);
        }
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../target/wasm32-wasip1/release/{crate_name}.wasm"));
        let module = Self::load(&path).map_err(|e| HarnessError::Load(format!("{e} (run `make build` first)")))?;
        if let Ok(mut c) = cache.lock() {
            c.insert(crate_name.to_string(), module.clone());
        }
        Ok(module)
    }

    pub fn load(path: impl AsRef<Path>) -> Result<Self, HarnessError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| HarnessError::Load(format!("{}: {e}", path.display())))?;
        Self::from_bytes(&path.display().to_string(), &bytes)
    }

    /// Compiles a module from bytes (binary wasm, or text format for tests).
    pub fn from_bytes(name: &str, bytes: &[u8]) -> Result<Self, HarnessError> {
        let fail = |why: String| HarnessError::Load(format!("{name}: {why}"));
        let is_binary = bytes.starts_with(b"\0asm");
        let looks_textual = std::str::from_utf8(bytes).is_ok_and(|t| t.trim_start().starts_with('('));
        if !is_binary && !looks_textual {
            return Err(fail("not a WebAssembly module (no \\0asm header)".into()));
        }
        let module = wasmtime::Module::new(engine(), bytes).map_err(|e| fail(format!("does not compile: {e}")))?;

        let exports: Vec<&str> = module.exports().map(|e| e.name()).collect();
        let abi_version = ABI_VERSIONS
            .iter()
            .find(|(export, _)| exports.contains(export))
            .map(|(_, version)| *version)
            .ok_or_else(|| fail("not a proxy-wasm module: it exports no proxy_abi_version_* function".into()))?;
        if abi_version == "0.1.0" {
            return Err(fail("proxy-wasm ABI 0.1.0 is not supported; rebuild with an SDK for ABI 0.2.x".into()));
        }

        let mut linker = Linker::new(engine());
        host::link_all(&mut linker, abi_version).map_err(|e| fail(format!("host setup failed: {e}")))?;
        let mut store = Store::new(engine(), HostState::new(Arc::new(PluginInfo::default()), SharedState::new(), 0));
        for import in module.imports() {
            let what = format!("{}.{}", import.module(), import.name());
            let provided = linker.get(&mut store, import.module(), import.name());
            match (provided, import.ty()) {
                (Ok(Extern::Func(func)), ExternType::Func(wanted)) => {
                    let given = func.ty(&store);
                    if !FuncType::eq(&given, &wanted) {
                        return Err(fail(format!("imports {what} as {wanted}, but the host's {what} is {given}")));
                    }
                }
                _ => {
                    return Err(fail(format!(
                        "imports {what}, which the host does not provide to ABI {abi_version} modules (it provides proxy-wasm ABI 0.2.x and WASI preview 1, as Envoy does)"
                    )))
                }
            }
        }
        if !exports.contains(&"memory") {
            return Err(fail("exports no memory".into()));
        }
        if !exports.contains(&"proxy_on_memory_allocate") && !exports.contains(&"malloc") {
            return Err(fail("exports no allocator (proxy_on_memory_allocate or malloc)".into()));
        }
        Ok(Self { module, linker: Arc::new(linker), name: name.to_string(), abi_version })
    }
}
