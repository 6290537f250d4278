//! Loading modules: every load-time problem (not wasm, not proxy-wasm, an import the host lacks, an unsupported ABI, no memory or allocator, a missing file) is a clear error value, and the SDK-built fixture loads and runs from both wasm32 targets.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use harness::{HarnessError, Module, Plugin, PluginConfig, Request, SharedState, UpstreamResponse};
use serde_json::json;
use std::path::PathBuf;

const MEMORY: &str = r#"(memory (export "memory") 1)"#;
const ALLOCATOR: &str = r#"(func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))"#;
const ABI: &str = r#"(func (export "proxy_abi_version_0_2_1"))"#;

/// A scratch file in cargo's temporary folder for integration tests.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("harness-load-tests");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The load error for a module given as text.
fn load_error(text: &str) -> String {
    match Module::from_bytes("m.wat", text.as_bytes()) {
        Ok(module) => panic!("{module:?} loaded"),
        Err(HarnessError::Load(message)) => message,
        Err(e) => panic!("expected a load error, got {e}"),
    }
}

fn load_ok(text: &str) -> Module {
    match Module::from_bytes("m.wat", text.as_bytes()) {
        Ok(module) => module,
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn a_file_that_is_not_wasm_is_not_a_webassembly_module() {
    let path = scratch("hello.wasm");
    std::fs::write(&path, b"hello").unwrap();
    let err = Module::load(&path).unwrap_err();
    let HarnessError::Load(message) = &err else { panic!("{err}") };
    assert!(message.contains("not a WebAssembly module"), "{message}");
    assert!(message.contains(&path.display().to_string()), "names the file: {message}");
}

#[test]
fn bytes_with_a_wasm_header_that_do_not_compile_are_refused() {
    let err = Module::from_bytes("broken.wasm", b"\0asm\x01\0\0\0this is not a section").unwrap_err();
    let HarnessError::Load(message) = &err else { panic!("{err}") };
    assert!(message.contains("broken.wasm") && message.contains("does not compile"), "{message}");
}

#[test]
fn a_missing_file_is_an_error_naming_the_path() {
    let path = scratch("does-not-exist.wasm");
    let err = Module::load(&path).unwrap_err();
    assert!(matches!(err, HarnessError::Load(_)), "{err}");
    assert!(err.to_string().contains(&path.display().to_string()), "{err}");
}

#[test]
fn a_module_without_an_abi_version_export_is_not_a_proxy_wasm_module() {
    let message = load_error(&format!("(module {MEMORY} {ALLOCATOR})"));
    assert!(message.contains("not a proxy-wasm module"), "{message}");
}

#[test]
fn an_unknown_env_import_is_refused_naming_it() {
    let message = load_error(&format!(r#"(module (import "env" "proxy_does_not_exist" (func (param i32) (result i32))) {MEMORY} {ALLOCATOR} {ABI})"#));
    assert!(message.contains("env.proxy_does_not_exist"), "{message}");
}

#[test]
fn a_wasi_function_the_host_lacks_is_refused_naming_it() {
    // proc_raise is WASI preview 1, and neither Envoy nor the harness provides it.
    let message = load_error(&format!(r#"(module (import "wasi_snapshot_preview1" "proc_raise" (func (param i32) (result i32))) {MEMORY} {ALLOCATOR} {ABI})"#));
    assert!(message.contains("wasi_snapshot_preview1.proc_raise"), "{message}");
}

#[test]
fn an_import_that_is_not_a_function_is_refused_naming_it() {
    let message = load_error(&format!(r#"(module (import "env" "memory" (memory 1)) {ALLOCATOR} {ABI})"#));
    assert!(message.contains("env.memory"), "{message}");
}

#[test]
fn an_import_with_a_known_name_and_the_wrong_signature_is_refused_naming_it() {
    // proxy_log takes three i32s; this module declares one.
    let text = format!(r#"(module (import "env" "proxy_log" (func (param i32) (result i32))) {MEMORY} {ALLOCATOR} {ABI})"#);
    let err = match Module::from_bytes("m.wat", text.as_bytes()) {
        Err(e) => e,
        Ok(module) => match Plugin::start(&module, PluginConfig::new("m"), SharedState::new()) {
            Err(e) => e,
            Ok(_) => panic!("a module with a mistyped import started"),
        },
    };
    println!("{err}");
    assert!(err.to_string().contains("proxy_log"), "{err}");
}

#[test]
fn abi_0_1_0_is_refused_with_a_clear_message() {
    let message = load_error(&format!(r#"(module {MEMORY} {ALLOCATOR} (func (export "proxy_abi_version_0_1_0")))"#));
    assert!(message.contains("0.1.0") && message.contains("not supported"), "{message}");
}

#[test]
fn a_module_without_memory_is_refused() {
    let message = load_error(&format!("(module {ALLOCATOR} {ABI})"));
    assert!(message.contains("no memory"), "{message}");
}

#[test]
fn a_module_without_an_allocator_is_refused() {
    let message = load_error(&format!("(module {MEMORY} {ABI})"));
    assert!(message.contains("no allocator"), "{message}");
}

#[test]
fn a_module_whose_allocator_is_malloc_loads_and_receives_host_data() {
    // The header value the host hands over goes through `malloc`.
    let text = r#"(module
        (import "env" "proxy_log" (func $log (param i32 i32 i32) (result i32)))
        (import "env" "proxy_get_header_map_value" (func $get (param i32 i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 2)
        (global $heap (mut i32) (i32.const 4096))
        (func (export "malloc") (param $size i32) (result i32)
          (global.get $heap)
          (global.set $heap (i32.add (global.get $heap) (local.get $size))))
        (func (export "proxy_abi_version_0_2_1"))
        (data (i32.const 16) ":path")
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (if (i32.eqz (call $get (i32.const 0) (i32.const 16) (i32.const 5) (i32.const 64) (i32.const 68)))
            (then (drop (call $log (i32.const 2) (i32.load (i32.const 64)) (i32.load (i32.const 68))))))
          (i32.const 0)))"#;
    let module = load_ok(text);
    let mut plugin = Plugin::start(&module, PluginConfig::new("m"), SharedState::new()).unwrap();
    let out = plugin.send(&Request::get("/via-malloc"), &UpstreamResponse::ok());
    assert!(out.logged("/via-malloc"), "{:?}", out.logs);
}

#[test]
fn wasi_functions_envoy_stubs_load_and_return_their_errno() {
    let text = r#"(module
        (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_filestat_get" (func $fd_filestat_get (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_filestat_get" (func $path_filestat_get (param i32 i32 i32 i32 i32) (result i32)))
        (memory (export "memory") 1)
        (func (export "proxy_on_memory_allocate") (param i32) (result i32) (i32.const 1024))
        (func (export "proxy_abi_version_0_2_1"))
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
          (i32.store (i32.const 0) (call $path_open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 0) (i64.const 0) (i64.const 0) (i32.const 0) (i32.const 200)))
          (i32.store (i32.const 4) (call $fd_filestat_get (i32.const 3) (i32.const 200)))
          (i32.store (i32.const 8) (call $path_filestat_get (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 1) (i32.const 200)))
          (i32.const 1)))"#;
    let module = load_ok(text);
    let plugin = Plugin::start(&module, PluginConfig::new("m"), SharedState::new()).unwrap();
    let memory = plugin.vm.store.data().memory.unwrap();
    let bytes = memory.data(&plugin.vm.store);
    let errno = |at: usize| i32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!((errno(0), errno(4), errno(8)), (44, 8, 58), "ENOENT, EBADF, ENOTSUP as proxy-wasm-cpp-host answers");
}

#[test]
fn abi_0_2_x_modules_importing_0_1_0_only_functions_are_refused() {
    for (abi, function) in [("0_2_0", "proxy_continue_request"), ("0_2_0", "proxy_continue_response"), ("0_2_1", "proxy_clear_route_cache")] {
        let text = format!(r#"(module (import "env" "{function}" (func (result i32))) {MEMORY} {ALLOCATOR} (func (export "proxy_abi_version_{abi}")))"#);
        match Module::from_bytes("m.wat", text.as_bytes()) {
            Err(HarnessError::Load(message)) => assert!(message.contains(function), "{message}"),
            other => panic!("ABI {abi} importing {function}: {other:?}"),
        }
    }
}

#[test]
fn abi_0_2_0_module_importing_proxy_get_log_level_is_refused() {
    let text = format!(r#"(module (import "env" "proxy_get_log_level" (func (param i32) (result i32))) {MEMORY} {ALLOCATOR} (func (export "proxy_abi_version_0_2_0")))"#);
    match Module::from_bytes("m.wat", text.as_bytes()) {
        Err(HarnessError::Load(message)) => assert!(message.contains("proxy_get_log_level"), "{message}"),
        other => panic!("{other:?}"),
    }
}

/// Loads the stamp fixture built for `target` and sends one request through it.
fn stamp_runs(target: &str) {
    let path = format!("{}/../target/{target}/release/stamp_fixture.wasm", env!("CARGO_MANIFEST_DIR"));
    let module = Module::load(&path).unwrap_or_else(|e| panic!("{e} (build it: cargo build --release --target {target} -p stamp-fixture)"));
    println!("{target}: {module:?}");
    assert_eq!(module.abi_version, "0.2.1", "{target}");
    let config = PluginConfig::new("stamp").json(&json!({"requestHeaders": {"x-stamp": "v"}}));
    let mut plugin = Plugin::start(&module, config, SharedState::new()).unwrap_or_else(|e| panic!("{target}: {e}"));
    let out = plugin.send(&Request::get("/"), &UpstreamResponse::ok());
    assert_eq!(out.trap, None, "{target}");
    assert_eq!(out.upstream.as_ref().unwrap().header("x-stamp"), Some("v"), "{target}");
    assert_eq!(out.status(), 200, "{target}");
}

#[test]
fn the_sdk_fixture_built_for_wasm32_wasip1_loads_and_runs() {
    stamp_runs("wasm32-wasip1");
}

#[test]
fn the_sdk_fixture_built_for_wasm32_unknown_unknown_loads_and_runs() {
    stamp_runs("wasm32-unknown-unknown");
}
