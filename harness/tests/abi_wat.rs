//! Host functions the SDK-built fixtures never reach, exercised by hand-written WAT modules through the real plugin and stream path (`Plugin::start`, `plugin.send`): ABI 0.2.0, log level, effective context, done, stream control, map and buffer sizes, bad pointers, gRPC calls and streams, traps, and plugins that refuse to start.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

mod common;

use common::wat::{send_get, slot, start, start_with, wat, Data};
use harness::{CallReply, HarnessError, Outcome, PluginConfig, Request, UpstreamResponse};

fn start_error(text: &str) -> String {
    match start_with(text, PluginConfig::new("wat")) {
        Ok(_) => panic!("the plugin started"),
        Err(e @ HarnessError::Start(_)) => e.to_string(),
        Err(e) => panic!("expected a start error, got {e}"),
    }
}

/// Everything the module logged during the stream, as text.
fn messages(out: &Outcome) -> Vec<String> {
    out.logs.iter().map(|(_, l)| l.message.clone()).collect()
}

const HTTP_CALL: &str = r#"(import "env" "proxy_http_call" (func $http_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#;
const GRPC_CALL: &str = r#"(import "env" "proxy_grpc_call" (func $grpc_call (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#;
const GRPC_STREAM: &str = r#"(import "env" "proxy_grpc_stream" (func $grpc_stream (param i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))"#;

#[test]
fn abi_0_2_0_module_pauses_and_resumes_a_request_from_a_call_response() {
    let mut d = Data::new();
    let cluster = d.text("auth");
    let headers = d.pairs(&[(":method", "GET"), (":path", "/check"), (":authority", "auth")]);
    let key = d.text("x-checked");
    let value = d.text("yes");
    let imports = format!(
        r#"{HTTP_CALL}
        (import "env" "proxy_set_effective_context" (func $set_effective_context (param i32) (result i32)))
        (import "env" "proxy_add_header_map_value" (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
        (import "env" "proxy_continue_stream" (func $continue_stream (param i32) (result i32)))"#
    );
    let body = format!(
        r#"
        (global $stream (mut i32) (i32.const 0))
        (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
          (global.set $stream (local.get $ctx))
          (call $put (i32.const 0) (call $http_call {cluster} {headers} (i32.const 0) (i32.const 0)
            (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 512)))
          (i32.const 1))
        (func (export "proxy_on_http_call_response") (param i32 i32 i32 i32 i32)
          (call $put (i32.const 1) (call $set_effective_context (global.get $stream)))
          (call $put (i32.const 2) (call $add_header (i32.const 0) {key} {value}))
          (call $put (i32.const 3) (call $continue_stream (i32.const 0))))"#
    );
    let config = PluginConfig::new("wat").cluster("auth", CallReply::http(200, "ok"));
    let mut plugin = start(&wat("0_2_0", &imports, &body, &d), config);
    assert_eq!(plugin.module().abi_version, "0.2.0");

    let out = send_get(&mut plugin);
    assert_eq!(out.stalled, None);
    assert_eq!(out.http_calls.len(), 1);
    assert_eq!(out.http_calls[0].cluster, "auth");
    let statuses: Vec<i64> = (0..4).map(|n| slot(&plugin, n)).collect();
    assert_eq!(statuses, vec![0, 0, 0, 0], "http_call, set_effective_context, add_header, continue_stream");
    assert_eq!(out.upstream.as_ref().unwrap().header("x-checked"), Some("yes"));
    assert_eq!(out.status(), 200);
}

#[test]
fn proxy_get_log_level_writes_the_hosts_level() {
    let imports = r#"(import "env" "proxy_get_log_level" (func $get_log_level (param i32) (result i32)))"#;
    let body = r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $put (i32.const 0) (call $get_log_level (i32.const 512)))
          (call $put (i32.const 1) (i32.load (i32.const 512)))
          (i32.const 0))"#;
    let mut plugin = start(&wat("0_2_1", imports, body, &Data::new()), PluginConfig::new("wat"));
    send_get(&mut plugin);
    assert_eq!(slot(&plugin, 0), 0, "status");
    let level = plugin.vm.store.data().log_level;
    assert_eq!(slot(&plugin, 1), level as i64, "the level written is the host's ({level:?})");
}

#[test]
fn proxy_set_effective_context_to_an_unknown_context_is_bad_argument() {
    let imports = r#"(import "env" "proxy_set_effective_context" (func $set_effective_context (param i32) (result i32)))"#;
    let body = r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $put (i32.const 0) (call $set_effective_context (i32.const 9999)))
          (i32.const 0))"#;
    let mut plugin = start(&wat("0_2_1", imports, body, &Data::new()), PluginConfig::new("wat"));
    send_get(&mut plugin);
    assert_eq!(slot(&plugin, 0), 2, "BadArgument");
}

#[test]
fn a_root_context_that_defers_its_shutdown_finishes_with_proxy_done() {
    // proxy_on_done answers false (not done yet); the next tick calls proxy_done.
    let imports = r#"(import "env" "proxy_done" (func $done (result i32)))"#;
    let body = r#"
        (func (export "proxy_on_done") (param i32) (result i32) (i32.const 0))
        (func (export "proxy_on_tick") (param i32)
          (call $put (i32.const 0) (call $done)))"#;
    let mut plugin = start(&wat("0_2_1", imports, body, &Data::new()), PluginConfig::new("wat"));
    assert!(!plugin.shutdown().unwrap(), "the module asked for time");
    assert!(!plugin.vm.store.data().done_called);
    plugin.tick().unwrap();
    assert_eq!(slot(&plugin, 0), 0, "proxy_done is Ok while shutdown is pending");
    assert!(plugin.vm.store.data().done_called);
}

#[test]
fn proxy_done_outside_shutdown_returns_not_found() {
    let imports = r#"(import "env" "proxy_done" (func $done (result i32)))"#;
    let body = r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $put (i32.const 0) (call $done))
          (i32.const 0))"#;
    let mut plugin = start(&wat("0_2_1", imports, body, &Data::new()), PluginConfig::new("wat"));
    send_get(&mut plugin);
    assert_eq!(slot(&plugin, 0), 1, "NotFound");
}

const STREAM_CONTROL: &str = r#"
    (import "env" "proxy_close_stream" (func $close_stream (param i32) (result i32)))
    (import "env" "proxy_continue_stream" (func $continue_stream (param i32) (result i32)))"#;

#[test]
fn proxy_close_stream_with_a_bad_stream_type_is_bad_argument() {
    let body = r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $put (i32.const 0) (call $close_stream (i32.const 9)))
          (call $put (i32.const 1) (call $continue_stream (i32.const 9)))
          (i32.const 0))"#;
    let mut plugin = start(&wat("0_2_1", STREAM_CONTROL, body, &Data::new()), PluginConfig::new("wat"));
    let out = send_get(&mut plugin);
    assert_eq!(slot(&plugin, 0), 2, "close_stream(9)");
    assert_eq!(slot(&plugin, 1), 2, "continue_stream(9)");
    assert_eq!(out.trap, None);
    assert!(out.upstream.is_some(), "a refused call changes nothing");
    assert_eq!(out.status(), 200);
}

#[test]
fn proxy_close_stream_request_resets_the_stream() {
    let body = r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $put (i32.const 0) (call $close_stream (i32.const 0)))
          (i32.const 0))"#;
    let mut plugin = start(&wat("0_2_1", STREAM_CONTROL, body, &Data::new()), PluginConfig::new("wat"));
    let out = send_get(&mut plugin);
    assert_eq!(slot(&plugin, 0), 0);
    assert!(out.upstream.is_none(), "the upstream must not see a reset request: {:?}", out.upstream);
    assert!(out.response.is_none(), "the client gets a reset, not a response: {:?}", out.response);
}

#[test]
fn proxy_get_header_map_size_is_the_bytes_of_names_and_values() {
    let imports = r#"(import "env" "proxy_get_header_map_size" (func $map_size (param i32 i32) (result i32)))"#;
    let body = r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $put (i32.const 0) (call $map_size (i32.const 0) (i32.const 512)))
          (call $put (i32.const 1) (i32.load (i32.const 512)))
          (call $put (i32.const 2) (call $map_size (i32.const 9) (i32.const 512)))
          (i32.const 0))"#;
    let mut plugin = start(&wat("0_2_1", imports, body, &Data::new()), PluginConfig::new("wat"));
    let request = Request::get("/size").header("x-in", "12345");
    plugin.send(&request, &UpstreamResponse::ok());
    let expected: usize = request.header_map().iter().map(|(k, v)| k.len() + v.len()).sum();
    assert_eq!(slot(&plugin, 0), 0, "status");
    assert_eq!(slot(&plugin, 1), expected as i64);
    assert_eq!(slot(&plugin, 2), 2, "map type 9 is BadArgument");
}

#[test]
fn proxy_get_buffer_status_gives_body_and_configuration_lengths() {
    let imports = r#"(import "env" "proxy_get_buffer_status" (func $buffer_status (param i32 i32 i32) (result i32)))"#;
    let body = r#"
        (func (export "proxy_on_configure") (param i32 i32) (result i32)
          (call $put (i32.const 0) (call $buffer_status (i32.const 7) (i32.const 512) (i32.const 516)))
          (call $put (i32.const 1) (i32.load (i32.const 512)))
          (call $put (i32.const 2) (i32.load (i32.const 516)))
          (call $put (i32.const 3) (call $buffer_status (i32.const 42) (i32.const 512) (i32.const 516)))
          (call $put (i32.const 4) (call $buffer_status (i32.const 2) (i32.const 512) (i32.const 516)))
          (i32.const 1))
        (func (export "proxy_on_request_body") (param i32) (param $size i32) (param i32) (result i32)
          (if (i32.gt_u (local.get $size) (i32.const 0))
            (then
              (call $put (i32.const 5) (call $buffer_status (i32.const 0) (i32.const 520) (i32.const 524)))
              (call $put (i32.const 6) (i32.load (i32.const 520)))
              (call $put (i32.const 7) (i32.load (i32.const 524)))))
          (i32.const 0))"#;
    let config = PluginConfig::new("wat").configuration(r#"{"a":1}"#);
    let mut plugin = start(&wat("0_2_1", imports, body, &Data::new()), config);
    assert_eq!(slot(&plugin, 0), 0, "plugin configuration status");
    assert_eq!(slot(&plugin, 1), 7, "plugin configuration length");
    assert_eq!(slot(&plugin, 2), 0, "flags");
    assert_eq!(slot(&plugin, 3), 2, "buffer type 42 is BadArgument");
    assert_eq!(slot(&plugin, 4), 1, "no downstream data in an HTTP filter: NotFound");

    let out = plugin.send(&Request::post("/", "hello"), &UpstreamResponse::ok());
    assert_eq!(out.upstream.unwrap().body_text(), "hello");
    assert_eq!(slot(&plugin, 5), 0, "request body status");
    assert_eq!(slot(&plugin, 6), 5, "request body length");
    assert_eq!(slot(&plugin, 7), 0, "flags");
}

#[test]
fn a_bad_pointer_is_invalid_memory_access_not_a_crash() {
    let mut d = Data::new();
    let key = d.text("x-in");
    let imports = r#"
        (import "env" "proxy_get_header_map_value" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
        (import "env" "proxy_add_header_map_value" (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
        (import "env" "proxy_get_header_map_size" (func $map_size (param i32 i32) (result i32)))
        (import "env" "proxy_get_log_level" (func $get_log_level (param i32) (result i32)))"#;
    // 0x7fff0000 is far past the module's 4 pages; -16 plus 256 bytes runs past 4 GiB.
    let body = format!(
        r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $put (i32.const 0) (call $proxy_log (i32.const 2) (i32.const 0x7fff0000) (i32.const 4)))
          (call $put (i32.const 1) (call $proxy_log (i32.const 2) (i32.const -16) (i32.const 256)))
          (call $put (i32.const 2) (call $get_header (i32.const 0) (i32.const 0x7fff0000) (i32.const 4) (i32.const 512) (i32.const 516)))
          (call $put (i32.const 3) (call $get_header (i32.const 0) {key} (i32.const 0x7fff0000) (i32.const 516)))
          (call $put (i32.const 4) (call $add_header (i32.const 0) {key} (i32.const 0x7fff0000) (i32.const 1)))
          (call $put (i32.const 5) (call $map_size (i32.const 0) (i32.const 0x7fff0000)))
          (call $put (i32.const 6) (call $get_log_level (i32.const 0x7fff0000)))
          (i32.const 0))"#
    );
    let mut plugin = start(&wat("0_2_1", imports, &body, &d), PluginConfig::new("wat"));
    let out = send_get(&mut plugin);
    let statuses: Vec<i64> = (0..7).map(|n| slot(&plugin, n)).collect();
    assert_eq!(statuses, vec![6; 7], "every call with a bad pointer is InvalidMemoryAccess");
    assert_eq!(out.trap, None);
    assert!(plugin.vm.failed.is_none());
    assert_eq!(out.status(), 200);
    assert!(out.upstream.is_some());
}

/// The four gRPC callbacks, each logging a marker and what it can read.
fn grpc_callbacks(d: &mut Data) -> String {
    let initial = d.text("initial_metadata");
    let receive = d.text("receive");
    let trailing = d.text("trailing_metadata");
    let close = d.text("close");
    let x_init = d.text("x-init");
    let x_trail = d.text("x-trail");
    format!(
        r#"
        (func (export "proxy_on_grpc_receive_initial_metadata") (param i32 i32) (param $n i32)
          (call $log {initial})
          (call $put (i32.const 10) (local.get $n))
          (if (i32.eqz (call $get_header (i32.const 4) {x_init} (i32.const 600) (i32.const 604)))
            (then (call $log (i32.load (i32.const 600)) (i32.load (i32.const 604))))))
        (func (export "proxy_on_grpc_receive") (param i32 i32) (param $size i32)
          (call $log {receive})
          (if (i32.eqz (call $get_buffer (i32.const 5) (i32.const 0) (local.get $size) (i32.const 608) (i32.const 612)))
            (then (call $log (i32.load (i32.const 608)) (i32.load (i32.const 612))))))
        (func (export "proxy_on_grpc_receive_trailing_metadata") (param i32 i32) (param $n i32)
          (call $log {trailing})
          (if (i32.eqz (call $get_header (i32.const 5) {x_trail} (i32.const 616) (i32.const 620)))
            (then (call $log (i32.load (i32.const 616)) (i32.load (i32.const 620))))))
        (func (export "proxy_on_grpc_close") (param i32 i32) (param $code i32)
          (call $log {close})
          (call $put (i32.const 11) (local.get $code))
          (call $put (i32.const 12) (call $get_status (i32.const 624) (i32.const 628) (i32.const 632)))
          (call $put (i32.const 13) (i32.load (i32.const 624)))
          (call $log (i32.load (i32.const 628)) (i32.load (i32.const 632))))"#
    )
}

const GRPC_READERS: &str = r#"
    (import "env" "proxy_get_header_map_value" (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
    (import "env" "proxy_get_buffer_bytes" (func $get_buffer (param i32 i32 i32 i32 i32) (result i32)))
    (import "env" "proxy_get_status" (func $get_status (param i32 i32 i32) (result i32)))
    (import "env" "proxy_grpc_send" (func $grpc_send (param i32 i32 i32 i32) (result i32)))
    (import "env" "proxy_grpc_cancel" (func $grpc_cancel (param i32) (result i32)))"#;

/// A module that opens a gRPC stream to `cluster` in its request headers,
/// sends "ping" ending the stream, then (if `cancel`) cancels it.
fn grpc_stream_module(cluster: &str, cancel: bool) -> String {
    let mut d = Data::new();
    let cluster = d.text(cluster);
    let service = d.text("pkg.Echo");
    let method = d.text("Stream");
    let ping = d.text("ping");
    let cancel = if cancel { "(call $put (i32.const 2) (call $grpc_cancel (i32.load (i32.const 512))))" } else { "" };
    let callbacks = grpc_callbacks(&mut d);
    let body = format!(
        r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $put (i32.const 0) (call $grpc_stream {cluster} {service} {method} (i32.const 0) (i32.const 0) (i32.const 512)))
          (call $put (i32.const 1) (call $grpc_send (i32.load (i32.const 512)) {ping} (i32.const 1)))
          {cancel}
          (i32.const 0))
        {callbacks}"#
    );
    wat("0_2_1", &format!("{GRPC_STREAM}{GRPC_READERS}"), &body, &d)
}

fn echo_reply() -> CallReply {
    CallReply {
        status: 200,
        headers: vec![("x-init".into(), "1".into())],
        body: b"pong".to_vec(),
        trailers: vec![("x-trail".into(), "2".into())],
        ..CallReply::default()
    }
}

const GRPC_MARKERS: [&str; 4] = ["initial_metadata", "receive", "trailing_metadata", "close"];

#[test]
fn grpc_stream_reply_reaches_every_stream_callback() {
    let config = PluginConfig::new("wat").cluster("grpc-backend", echo_reply());
    let mut plugin = start(&grpc_stream_module("grpc-backend", false), config);
    let out = send_get(&mut plugin);
    assert_eq!(out.trap, None);
    assert_eq!(slot(&plugin, 0), 0, "proxy_grpc_stream");
    assert_eq!(slot(&plugin, 1), 0, "proxy_grpc_send");

    let call = &out.grpc_calls[0];
    assert_eq!((call.cluster.as_str(), call.service.as_str(), call.method.as_str()), ("grpc-backend", "pkg.Echo", "Stream"));
    assert!(call.streaming && call.closed && !call.cancelled);
    assert_eq!(call.messages, vec![b"ping".to_vec()]);

    let mut logged = messages(&out);
    logged.sort();
    // Each callback's marker, and what it read: initial metadata x-init,
    // the message, trailing metadata x-trail, and (in close) the status message, empty.
    let mut expected: Vec<String> = ["initial_metadata", "1", "receive", "pong", "trailing_metadata", "2", "close", ""].map(String::from).to_vec();
    expected.sort();
    assert_eq!(logged, expected);
    assert_eq!(slot(&plugin, 10), 1, "initial metadata count");
    assert_eq!(slot(&plugin, 11), 0, "close status: OK");
    assert_eq!(slot(&plugin, 12), 0, "proxy_get_status in close");
    assert_eq!(slot(&plugin, 13), 0, "proxy_get_status code");
}

#[test]
fn grpc_cancel_means_no_reply_is_delivered() {
    let config = PluginConfig::new("wat").cluster("grpc-backend", echo_reply());
    let mut plugin = start(&grpc_stream_module("grpc-backend", true), config);
    let out = send_get(&mut plugin);
    assert_eq!(slot(&plugin, 2), 0, "proxy_grpc_cancel");
    assert!(out.grpc_calls[0].cancelled);
    let logged = messages(&out);
    for marker in GRPC_MARKERS {
        assert!(!logged.iter().any(|l| l == marker), "{marker} ran after cancel: {logged:?}");
    }
    assert_eq!(out.status(), 200);
}

#[test]
fn grpc_to_a_cluster_not_configured_is_bad_argument() {
    let mut d = Data::new();
    let cluster = d.text("nowhere");
    let service = d.text("pkg.Echo");
    let method = d.text("Check");
    let message = d.text("req");
    let callbacks = grpc_callbacks(&mut d);
    let body = format!(
        r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $put (i32.const 0) (call $grpc_call {cluster} {service} {method} (i32.const 0) (i32.const 0) {message} (i32.const 1000) (i32.const 512)))
          (call $put (i32.const 1) (call $grpc_stream {cluster} {service} {method} (i32.const 0) (i32.const 0) (i32.const 516)))
          (i32.const 0))
        {callbacks}"#
    );
    let text = wat("0_2_1", &format!("{GRPC_CALL}{GRPC_STREAM}{GRPC_READERS}"), &body, &d);
    let config = PluginConfig::new("wat").cluster("grpc-backend", echo_reply());
    let mut plugin = start(&text, config);
    let out = send_get(&mut plugin);
    assert_eq!(slot(&plugin, 0), 2, "proxy_grpc_call");
    assert_eq!(slot(&plugin, 1), 2, "proxy_grpc_stream");
    assert!(out.grpc_calls.is_empty());
    assert!(messages(&out).is_empty(), "no callback runs: {:?}", messages(&out));
}

#[test]
fn proxy_get_status_in_grpc_close_gives_the_code_and_message() {
    let mut d = Data::new();
    let cluster = d.text("grpc-backend");
    let service = d.text("pkg.Auth");
    let method = d.text("Check");
    let message = d.text("req");
    let callbacks = grpc_callbacks(&mut d);
    let body = format!(
        r#"
        (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
          (call $put (i32.const 0) (call $grpc_call {cluster} {service} {method} (i32.const 0) (i32.const 0) {message} (i32.const 1000) (i32.const 512)))
          (i32.const 0))
        {callbacks}"#
    );
    let text = wat("0_2_1", &format!("{GRPC_CALL}{GRPC_READERS}"), &body, &d);
    let config = PluginConfig::new("wat").cluster("grpc-backend", CallReply::grpc_error(7, "denied"));
    let mut plugin = start(&text, config);
    let out = send_get(&mut plugin);
    assert_eq!(slot(&plugin, 0), 0, "proxy_grpc_call");
    assert_eq!(out.grpc_calls[0].messages, vec![b"req".to_vec()]);
    assert_eq!(slot(&plugin, 11), 7, "close callback's status");
    assert_eq!(slot(&plugin, 12), 0, "proxy_get_status");
    assert_eq!(slot(&plugin, 13), 7, "proxy_get_status code");
    let logged = messages(&out);
    assert!(logged.iter().any(|l| l == "denied"), "the status message: {logged:?}");
    assert!(!logged.iter().any(|l| l == "receive"), "a failed unary call gets no message: {logged:?}");
}

#[test]
fn http_and_grpc_call_callbacks_get_the_root_context_id() {
    let mut d = Data::new();
    let auth = d.text("auth");
    let headers = d.pairs(&[(":method", "GET"), (":path", "/check"), (":authority", "auth")]);
    let grpc = d.text("grpc-backend");
    let service = d.text("pkg.Auth");
    let method = d.text("Check");
    let message = d.text("req");
    let body = format!(
        r#"
        (func (export "proxy_on_context_create") (param $ctx i32) (param $parent i32)
          (if (i32.eqz (local.get $parent)) (then (call $put (i32.const 0) (local.get $ctx)))))
        (func (export "proxy_on_request_headers") (param $ctx i32) (param i32 i32) (result i32)
          (call $put (i32.const 1) (local.get $ctx))
          (drop (call $http_call {auth} {headers} (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1000) (i32.const 512)))
          (drop (call $grpc_call {grpc} {service} {method} (i32.const 0) (i32.const 0) {message} (i32.const 1000) (i32.const 516)))
          (i32.const 0))
        (func (export "proxy_on_http_call_response") (param $ctx i32) (param i32 i32 i32 i32)
          (call $put (i32.const 2) (local.get $ctx)))
        (func (export "proxy_on_grpc_receive") (param $ctx i32) (param i32 i32)
          (call $put (i32.const 3) (local.get $ctx)))"#
    );
    let text = wat("0_2_1", &format!("{HTTP_CALL}{GRPC_CALL}"), &body, &d);
    let config = PluginConfig::new("wat").cluster("auth", CallReply::http(200, "ok")).cluster("grpc-backend", CallReply::grpc("pong"));
    let mut plugin = start(&text, config);
    send_get(&mut plugin);
    let root = slot(&plugin, 0);
    assert_ne!(slot(&plugin, 1), root, "the stream has its own context");
    assert_eq!(slot(&plugin, 2), root, "proxy_on_http_call_response's context");
    assert_eq!(slot(&plugin, 3), root, "proxy_on_grpc_receive's context");
}

#[test]
fn a_trap_in_a_callback_is_reported_with_the_callbacks_name() {
    for callback in ["proxy_on_request_headers", "proxy_on_response_headers"] {
        let body = format!(r#"(func (export "{callback}") (param i32 i32 i32) (result i32) unreachable)"#);
        let mut plugin = start(&wat("0_2_1", "", &body, &Data::new()), PluginConfig::new("wat"));
        let out = send_get(&mut plugin);
        let (filter, trap) = out.trap.clone().unwrap();
        assert_eq!(filter, 0);
        assert_eq!(trap.callback, callback);
        assert!(trap.message.contains("unreachable"), "{trap}");
        assert_eq!(out.status(), 503, "{callback}");
        assert_eq!(out.local_response.unwrap().1.details, "wasm_fail_stream");
        assert!(plugin.vm.failed.is_some());
    }
}

#[test]
fn proxy_on_configure_returning_false_means_the_plugin_does_not_start() {
    let mut d = Data::new();
    let why = d.text("config rejected");
    let body = format!(r#"(func (export "proxy_on_configure") (param i32 i32) (result i32) (call $log {why}) (i32.const 0))"#);
    let err = start_error(&wat("0_2_1", "", &body, &d));
    assert!(err.contains("proxy_on_configure"), "{err}");
    assert!(err.contains("config rejected"), "what the module logged: {err}");
}

#[test]
fn proxy_on_vm_start_returning_false_means_the_plugin_does_not_start() {
    let body = r#"
        (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 0))
        (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))"#;
    let err = start_error(&wat("0_2_1", "", body, &Data::new()));
    assert!(err.contains("proxy_on_vm_start"), "{err}");
}

#[test]
fn a_trap_in_proxy_on_configure_means_the_plugin_does_not_start() {
    let body = r#"(func (export "proxy_on_configure") (param i32 i32) (result i32) unreachable)"#;
    let err = start_error(&wat("0_2_1", "", body, &Data::new()));
    assert!(err.contains("trapped in proxy_on_configure"), "{err}");
}
