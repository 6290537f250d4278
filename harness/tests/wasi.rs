//! The WASI preview-1 functions the harness gives modules, called from hand-written WAT modules: stdout/stderr to the log, the environment, arguments, clocks, random bytes, proc_exit, and bad descriptors.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use harness::abi::LogLevel;
mod common;

use common::wat::{memory, on_request_headers, send_get, slot, start, wat, Data};
use harness::{Outcome, PluginConfig};
use std::path::PathBuf;
use std::process::Command;

const FD_WRITE: &str = r#"(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))"#;

fn levelled(out: &Outcome) -> Vec<(LogLevel, String)> {
    let mut logs: Vec<(LogLevel, String)> = out.logs.iter().map(|(_, l)| (l.level, l.message.clone())).collect();
    logs.sort();
    logs
}

#[test]
fn fd_write_logs_each_write_as_one_record_like_envoy() {
    let mut d = Data::new();
    let split = d.iovecs(&["hello\nwor", "ld\n"]);
    let first = d.iovecs(&["par"]);
    let rest = d.iovecs(&["tial\n"]);
    let oops = d.iovecs(&["oops\n"]);
    let calls = format!(
        r#"
        (call $put (i32.const 0) (call $fd_write (i32.const 1) {split} (i32.const 512)))
        (call $put (i32.const 1) (i32.load (i32.const 512)))
        (call $put (i32.const 2) (call $fd_write (i32.const 1) {first} (i32.const 512)))
        (call $put (i32.const 3) (call $fd_write (i32.const 1) {rest} (i32.const 512)))
        (call $put (i32.const 4) (call $fd_write (i32.const 2) {oops} (i32.const 512)))"#
    );
    let mut plugin = start(&on_request_headers(FD_WRITE, &calls, &d), PluginConfig::new("wasi"));
    let out = send_get(&mut plugin);
    assert_eq!([0, 2, 3, 4].map(|n| slot(&plugin, n)), [0; 4], "errnos");
    assert_eq!(slot(&plugin, 1), 12, "bytes written by the two-iovec call");
    // One record per write, less one trailing newline: Envoy does not join
    // partial writes into lines.
    let mut expected = vec![
        (LogLevel::Info, "hello\nworld".to_string()),
        (LogLevel::Info, "par".to_string()),
        (LogLevel::Info, "tial".to_string()),
        (LogLevel::Error, "oops".to_string()),
    ];
    expected.sort();
    assert_eq!(levelled(&out), expected);
}

#[test]
fn fd_write_to_a_descriptor_other_than_stdout_or_stderr_is_ebadf() {
    let mut d = Data::new();
    let text = d.iovecs(&["lost\n"]);
    let calls = format!(
        r#"
        (call $put (i32.const 0) (call $fd_write (i32.const 3) {text} (i32.const 512)))
        (call $put (i32.const 1) (call $fd_write (i32.const 0) {text} (i32.const 512)))"#
    );
    let mut plugin = start(&on_request_headers(FD_WRITE, &calls, &d), PluginConfig::new("wasi"));
    let out = send_get(&mut plugin);
    assert_eq!(slot(&plugin, 0), 8, "fd 3: EBADF");
    assert_eq!(slot(&plugin, 1), 8, "fd 0: EBADF");
    assert!(out.logs.is_empty(), "{:?}", out.logs);
}

#[test]
fn fd_write_with_an_iovec_outside_memory_is_efault() {
    let calls = r#"(call $put (i32.const 0) (call $fd_write (i32.const 1) (i32.const 0x7fff0000) (i32.const 1) (i32.const 512)))"#;
    let mut plugin = start(&on_request_headers(FD_WRITE, calls, &Data::new()), PluginConfig::new("wasi"));
    let out = send_get(&mut plugin);
    assert_eq!(slot(&plugin, 0), 21, "EFAULT");
    assert_eq!(out.trap, None);
}

#[test]
fn fd_write_under_the_wasi_unstable_module_name_logs_too() {
    let mut d = Data::new();
    let text = d.iovecs(&["old name\n"]);
    let imports = r#"(import "wasi_unstable" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))"#;
    let calls = format!(r#"(call $put (i32.const 0) (call $fd_write (i32.const 1) {text} (i32.const 512)))"#);
    let mut plugin = start(&on_request_headers(imports, &calls, &d), PluginConfig::new("wasi"));
    let out = send_get(&mut plugin);
    assert_eq!(slot(&plugin, 0), 0);
    assert_eq!(levelled(&out), vec![(LogLevel::Info, "old name".to_string())]);
}

#[test]
fn fd_write_without_a_newline_is_logged_at_once() {
    let mut d = Data::new();
    let text = d.iovecs(&["no newline"]);
    let calls = format!(r#"(call $put (i32.const 0) (call $fd_write (i32.const 2) {text} (i32.const 512)))"#);
    let mut plugin = start(&on_request_headers(FD_WRITE, &calls, &d), PluginConfig::new("wasi"));
    let out = send_get(&mut plugin);
    assert_eq!(slot(&plugin, 0), 0);
    assert_eq!(levelled(&out), vec![(LogLevel::Error, "no newline".to_string())]);
}

#[test]
fn environ_sizes_get_and_environ_get_give_the_configured_environment() {
    let imports = r#"
        (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))"#;
    // Pointers at 9000, strings at 9100.
    let body = r#"
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32)
          (call $put (i32.const 0) (call $environ_sizes_get (i32.const 512) (i32.const 516)))
          (call $put (i32.const 1) (i32.load (i32.const 512)))
          (call $put (i32.const 2) (i32.load (i32.const 516)))
          (call $put (i32.const 3) (call $environ_get (i32.const 9000) (i32.const 9100)))
          (call $put (i32.const 4) (i32.load (i32.const 9000)))
          (call $put (i32.const 5) (i32.load (i32.const 9004)))
          (i32.const 1))"#;
    let config = PluginConfig::new("wasi").env("A", "1").env("GREETING", "hello world");
    let plugin = start(&wat("0_2_1", imports, body, &Data::new()), config);
    let strings = b"A=1\0GREETING=hello world\0";
    assert_eq!(slot(&plugin, 0), 0, "environ_sizes_get");
    assert_eq!(slot(&plugin, 1), 2, "count");
    assert_eq!(slot(&plugin, 2), strings.len() as i64, "size");
    assert_eq!(slot(&plugin, 3), 0, "environ_get");
    assert_eq!((slot(&plugin, 4), slot(&plugin, 5)), (9100, 9104), "pointers to each string");
    assert_eq!(&memory(&plugin)[9100..9100 + strings.len()], strings);
}

#[test]
fn args_sizes_get_reports_no_arguments() {
    let imports = r#"(import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))"#;
    // The out-parameters start as 0xff bytes, so the zeros are the host's.
    let calls = r#"
        (i64.store (i32.const 512) (i64.const -1))
        (call $put (i32.const 0) (call $args_sizes_get (i32.const 512) (i32.const 516)))
        (call $put (i32.const 1) (i32.load (i32.const 512)))
        (call $put (i32.const 2) (i32.load (i32.const 516)))"#;
    let mut plugin = start(&on_request_headers(imports, calls, &Data::new()), PluginConfig::new("wasi"));
    send_get(&mut plugin);
    assert_eq!([0, 1, 2].map(|n| slot(&plugin, n)), [0, 0, 0]);
}

const CLOCK: &str = r#"(import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))"#;
const FIXED: u64 = 1_700_000_000_123_456_789;

#[test]
fn clock_time_get_returns_the_fixed_clock() {
    let imports = format!(r#"{CLOCK} (import "env" "proxy_get_current_time_nanoseconds" (func $now (param i32) (result i32)))"#);
    let calls = r#"
        (call $put (i32.const 0) (call $clock_time_get (i32.const 0) (i64.const 1) (i32.const 512)))
        (call $put64 (i32.const 1) (i64.load (i32.const 512)))
        (call $put (i32.const 2) (call $now (i32.const 520)))
        (call $put64 (i32.const 3) (i64.load (i32.const 520)))
        (call $put (i32.const 4) (call $clock_time_get (i32.const 1) (i64.const 1) (i32.const 528)))"#;
    let mut plugin = start(&on_request_headers(&imports, calls, &Data::new()), PluginConfig::new("wasi").clock(FIXED));
    send_get(&mut plugin);
    assert_eq!(slot(&plugin, 0), 0, "clock_time_get(realtime)");
    assert_eq!(slot(&plugin, 1), FIXED as i64, "WASI realtime clock");
    assert_eq!(slot(&plugin, 2), 0, "proxy_get_current_time_nanoseconds");
    assert_eq!(slot(&plugin, 3), FIXED as i64, "the proxy-wasm clock agrees");
    assert_eq!(slot(&plugin, 4), 0, "clock_time_get(monotonic)");
}

#[test]
fn clock_time_get_of_cpu_time_clocks_is_enotsup() {
    let calls = r#"
        (call $put (i32.const 0) (call $clock_time_get (i32.const 2) (i64.const 1) (i32.const 512)))
        (call $put (i32.const 1) (call $clock_time_get (i32.const 3) (i64.const 1) (i32.const 512)))"#;
    let mut plugin = start(&on_request_headers(CLOCK, calls, &Data::new()), PluginConfig::new("wasi").clock(FIXED));
    send_get(&mut plugin);
    assert_eq!([0, 1].map(|n| slot(&plugin, n)), [58, 58]);
}

const RANDOM: &str = r#"(import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))"#;

#[test]
fn random_get_fills_the_buffer() {
    let calls = r#"(call $put (i32.const 0) (call $random_get (i32.const 9000) (i32.const 32)))"#;
    let mut plugin = start(&on_request_headers(RANDOM, calls, &Data::new()), PluginConfig::new("wasi"));
    assert!(memory(&plugin)[9000..9032].iter().all(|b| *b == 0), "zeros before");
    send_get(&mut plugin);
    assert_eq!(slot(&plugin, 0), 0);
    let bytes = &memory(&plugin)[9000..9032];
    assert!(bytes.iter().filter(|b| **b != 0).count() > 16, "random bytes: {bytes:?}");
}

#[test]
fn random_get_gives_fresh_bytes_on_each_call() {
    let calls = r#"
        (call $put (i32.const 0) (call $random_get (i32.const 9000) (i32.const 16)))
        (call $put (i32.const 1) (call $random_get (i32.const 9016) (i32.const 16)))"#;
    let mut plugin = start(&on_request_headers(RANDOM, calls, &Data::new()), PluginConfig::new("wasi"));
    send_get(&mut plugin);
    let memory = memory(&plugin);
    assert_ne!(memory[9000..9016], memory[9016..9032], "two calls, the same 16 bytes");
}

#[test]
fn random_get_is_repeatable_from_run_to_run() {
    // The module logs 16 random bytes as letters a..p; two runs of the
    // harness binary must log the same letters.
    let body = r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (local $i i32)
          (drop (call $random_get (i32.const 9000) (i32.const 16)))
          (loop $each
            (i32.store8 (i32.add (i32.const 9000) (local.get $i))
              (i32.add (i32.const 97) (i32.and (i32.load8_u (i32.add (i32.const 9000) (local.get $i))) (i32.const 15))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br_if $each (i32.lt_u (local.get $i) (i32.const 16))))
          (call $log (i32.const 9000) (i32.const 16))
          (i32.const 0))"#;
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("harness-wasi-tests");
    std::fs::create_dir_all(&dir).unwrap();
    let module = dir.join("random.wat");
    std::fs::write(&module, wat("0_2_1", RANDOM, body, &Data::new())).unwrap();
    let scenario = dir.join("random.yaml");
    std::fs::write(&scenario, format!("wasm: {}\nrequests:\n  - request: {{ path: / }}\n", module.display())).unwrap();
    let logged = || {
        let run = Command::new(env!("CARGO_BIN_EXE_harness")).arg("run").arg(&scenario).arg("--json").output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
        let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
        report["steps"][0]["outcome"]["logs"][0][1]["message"].as_str().unwrap().to_string()
    };
    let first = logged();
    assert_eq!(first.len(), 16, "{first}");
    assert_eq!(logged(), first);
}

#[test]
fn proc_exit_in_a_callback_is_a_trap_naming_proc_exit() {
    let imports = r#"(import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))"#;
    let calls = "(call $proc_exit (i32.const 3))";
    let mut plugin = start(&on_request_headers(imports, calls, &Data::new()), PluginConfig::new("wasi"));
    let out = send_get(&mut plugin);
    let (_, trap) = out.trap.clone().unwrap();
    assert_eq!(trap.callback, "proxy_on_request_headers");
    assert!(trap.message.contains("proc_exit"), "{trap}");
    assert_eq!(plugin.vm.store.data().exit_code, Some(3));
    assert_eq!(out.status(), 503);
}

#[test]
fn poll_oneoff_returns_success_with_no_events() {
    let imports = r#"(import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))"#;
    let calls = r#"
        (i32.store (i32.const 512) (i32.const -1))
        (call $put (i32.const 0) (call $poll_oneoff (i32.const 9000) (i32.const 9100) (i32.const 1) (i32.const 512)))
        (call $put (i32.const 1) (i32.load (i32.const 512)))"#;
    let mut plugin = start(&on_request_headers(imports, calls, &Data::new()), PluginConfig::new("wasi"));
    send_get(&mut plugin);
    assert_eq!([0, 1].map(|n| slot(&plugin, n)), [0, 0], "errno, events");
}
