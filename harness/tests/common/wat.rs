//! Building small hand-written WAT modules for the host-function tests: a
//! prelude (memory, bump allocator, result slots, `$log`), constant data, and
//! reading back what the module stored.

#![allow(dead_code, clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use harness::{HarnessError, Module, Outcome, Plugin, PluginConfig, Request, SharedState, UpstreamResponse};

/// Memory, bump allocator, `_initialize`, `$put` / `$put64` result slots and `$log`.
const PRELUDE: &str = include_str!("../wat/prelude.wat");
/// The import every module has: the prelude's `$log` uses it.
const LOG_IMPORT: &str = r#"(import "env" "proxy_log" (func $proxy_log (param i32 i32 i32) (result i32)))"#;

/// Constant data for a module, placed from 1024 up.
pub struct Data {
    next: u32,
    segments: String,
}

impl Data {
    pub fn new() -> Self {
        Self { next: 1024, segments: String::new() }
    }

    /// Places `bytes` in memory; returns their address and length.
    pub fn place(&mut self, bytes: &[u8]) -> (u32, u32) {
        let at = self.next;
        self.next = (at + bytes.len() as u32 + 8) & !7;
        assert!(self.next <= 8192, "constant data overflows its region");
        let escaped: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
        self.segments.push_str(&format!("(data (i32.const {at}) \"{escaped}\")\n"));
        (at, bytes.len() as u32)
    }

    /// Places `bytes`; returns the `(i32.const ptr) (i32.const len)` operands
    /// to pass them to a host function.
    pub fn bytes(&mut self, bytes: &[u8]) -> String {
        let (at, len) = self.place(bytes);
        format!("(i32.const {at}) (i32.const {len})")
    }

    pub fn text(&mut self, text: &str) -> String {
        self.bytes(text.as_bytes())
    }

    /// Header pairs serialized as the ABI wants them.
    pub fn pairs(&mut self, pairs: &[(&str, &str)]) -> String {
        self.bytes(&filter_common::codec::encode_pairs(pairs))
    }

    /// An iovec array over `parts`: the `(i32.const iovs) (i32.const count)`
    /// operands of `fd_write`.
    pub fn iovecs(&mut self, parts: &[&str]) -> String {
        let mut array = Vec::new();
        for part in parts {
            let (ptr, len) = self.place(part.as_bytes());
            array.extend(ptr.to_le_bytes());
            array.extend(len.to_le_bytes());
        }
        let (at, _) = self.place(&array);
        format!("(i32.const {at}) (i32.const {})", parts.len())
    }
}

/// A whole module: `abi` is the version suffix (`0_2_1`), `imports` the
/// host functions beyond `proxy_log`, `body` the callbacks.
pub fn wat(abi: &str, imports: &str, body: &str, data: &Data) -> String {
    format!(
        "(module\n{LOG_IMPORT}\n{imports}\n{PRELUDE}\n(func (export \"proxy_abi_version_{abi}\"))\n{body}\n{})",
        data.segments
    )
}

/// An ABI 0.2.1 module whose request-headers callback runs `calls`.
pub fn on_request_headers(imports: &str, calls: &str, data: &Data) -> String {
    let body = format!(r#"(func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32) {calls} (i32.const 0))"#);
    wat("0_2_1", imports, &body, data)
}

pub fn start_with(text: &str, config: PluginConfig) -> Result<Plugin, HarnessError> {
    let module = Module::from_bytes("test.wat", text.as_bytes()).unwrap();
    Plugin::start(&module, config, SharedState::new())
}

pub fn start(text: &str, config: PluginConfig) -> Plugin {
    start_with(text, config).unwrap_or_else(|e| panic!("{e}"))
}

pub fn memory(plugin: &Plugin) -> Vec<u8> {
    let memory = plugin.vm.store.data().memory.unwrap();
    memory.data(&plugin.vm.store).to_vec()
}

/// Result slot `n` as the module stored it (-1 if it never did).
pub fn slot(plugin: &Plugin, n: usize) -> i64 {
    i64::from_le_bytes(memory(plugin)[n * 8..n * 8 + 8].try_into().unwrap())
}

pub fn send_get(plugin: &mut Plugin) -> Outcome {
    plugin.send(&Request::get("/").header("x-in", "1"), &UpstreamResponse::ok())
}
