//! The plugin's life as Envoy runs it: start (VM and plugin configuration,
//! a refused configuration), per-stream contexts through log, done and
//! delete, properties, and what each failure policy does after a trap.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

mod common;

use common::{probe, probe_plugin, probe_with, shared_text, to, to_shared};
use harness::abi::LogLevel;
use harness::{FailurePolicy, Plugin, PluginConfig, Request, SharedState, UpstreamResponse};
use serde_json::json;
use std::time::Duration;

#[test]
fn configurations_arrive_as_envoy_passes_them() {
    // The probe reads its script from the plugin configuration, which
    // Envoy hands over in `proxy_on_configure` only: its `onVmStart`
    // actions never run (as in Envoy 1.40).
    let script = json!({
        "onVmStart": [{ "setSharedData": { "key": "vm-start-ran", "value": "yes" } }],
        "onConfigure": [
            { "readBuffer": { "buffer": "vmConfiguration", "to": to_shared("vm") } },
            { "readBuffer": { "buffer": "pluginConfiguration", "max": 15, "to": to_shared("plugin") } },
        ],
    });
    let config = PluginConfig::new("probe").json(&script).vm_configuration("vm-settings");
    let plugin = probe_with(config, SharedState::new());
    assert_eq!(shared_text(&plugin.shared, "vm").as_deref(), Some("vm-settings"));
    assert_eq!(shared_text(&plugin.shared, "plugin").as_deref(), Some(&script.to_string()[..15]));
    assert_eq!(shared_text(&plugin.shared, "vm-start-ran"), None);
}

#[test]
fn a_refused_configuration_stops_the_plugin_with_the_modules_reason() {
    let config = PluginConfig::new("probe").configuration(r#"{"onRequestHeaders":[{"frob":{}}]}"#);
    let err = Plugin::start(&probe(), config, SharedState::new()).err().unwrap().to_string();
    assert!(err.contains("proxy_on_configure returned false"), "{err}");
    assert!(err.contains("onRequestHeaders[0]"), "the module's own log line is included: {err}");
}

#[test]
fn every_stream_context_is_logged_done_and_deleted() {
    let mut plugin = probe_plugin(json!({
        "onLog": [{ "log": { "level": "info", "message": "logged" } }],
        "onDone": [{ "log": { "level": "debug", "message": "done" } }],
    }));
    let out = plugin.send(&Request::get("/"), &UpstreamResponse::ok());
    let names: Vec<&str> = out.callbacks.iter().map(|c| c.callback.as_str()).collect();
    assert_eq!(&names[names.len() - 3..], ["proxy_on_log", "proxy_on_done", "proxy_on_delete"]);
    let logs: Vec<(LogLevel, &str)> = out.logs.iter().map(|(_, l)| (l.level, l.message.as_str())).collect();
    assert_eq!(logs, [(LogLevel::Info, "logged"), (LogLevel::Debug, "done")]);
}

#[test]
fn properties_have_envoys_names_and_encodings() {
    let read = |path: &[&str], kind: &str, header: &str| json!({ "getProperty": { "path": path, "as": kind, "to": to("request", header) } });
    let config = PluginConfig::new("authz")
        .json(&json!({ "onRequestHeaders": [
            read(&["connection", "uri_san_peer_certificate"], "string", "x-peer"),
            read(&["connection", "mtls"], "bool", "x-mtls"),
            read(&["source", "port"], "int64", "x-source-port"),
            read(&["xds", "cluster_name"], "string", "x-cluster"),
            read(&["request", "url_path"], "string", "x-url-path"),
            read(&["request", "query"], "string", "x-query"),
            read(&["request", "id"], "string", "x-id"),
            read(&["request", "headers", "user-agent"], "string", "x-ua"),
            read(&["plugin_root_id"], "string", "x-root"),
            read(&["response", "code"], "int64", "x-code"),
            { "setProperty": { "path": ["probe", "mark"], "value": "set" } },
            read(&["probe", "mark"], "string", "x-mark"),
        ] }))
        .property("xds.cluster_name", "outbound|8080||payments");
    let mut plugin = probe_with(config, SharedState::new());
    let request = Request::get("/pay/7?currency=eur")
        .header("user-agent", "t/1")
        .property("connection.uri_san_peer_certificate", "spiffe://cluster.local/ns/billing/sa/api")
        .property("connection.mtls", true)
        .property("source.port", 40123i64);
    let up = plugin.send(&request, &UpstreamResponse::ok()).upstream.unwrap();
    assert_eq!(up.header("x-peer"), Some("spiffe://cluster.local/ns/billing/sa/api"));
    assert_eq!(up.header("x-mtls"), Some("true"));
    assert_eq!(up.header("x-source-port"), Some("40123"));
    assert_eq!(up.header("x-cluster"), Some("outbound|8080||payments"));
    assert_eq!(up.header("x-url-path"), Some("/pay/7"));
    assert_eq!(up.header("x-query"), Some("currency=eur"));
    assert_eq!(up.header("x-id"), Some("00000000-0000-4000-8000-000000000001"));
    assert_eq!(up.header("x-ua"), Some("t/1"));
    assert_eq!(up.header("x-root"), Some("authz"));
    assert_eq!(up.header("x-code"), Some("<absent>"), "no response yet");
    assert_eq!(up.header("x-mark"), Some("set"));
}

#[test]
fn each_stream_gets_a_request_id_of_its_own_unless_the_client_sent_one() {
    // As Envoy generates a new UUID per stream: a filter that remembers
    // values from one request to the next must not see the same id twice.
    let mut plugin = probe_plugin(json!({ "onRequestHeaders": [{ "getProperty": { "path": ["request", "id"], "as": "string", "to": to("request", "x-id") } }] }));
    let id = |plugin: &mut Plugin, request: &Request| plugin.send(request, &UpstreamResponse::ok()).upstream.unwrap().header("x-id").map(str::to_string);
    let first = id(&mut plugin, &Request::get("/"));
    let second = id(&mut plugin, &Request::get("/"));
    assert_eq!(first.as_deref(), Some("00000000-0000-4000-8000-000000000001"));
    assert_eq!(second.as_deref(), Some("00000000-0000-4000-8000-000000000002"));
    let sent = id(&mut plugin, &Request::get("/").header("x-request-id", "from-the-client"));
    assert_eq!(sent.as_deref(), Some("from-the-client"));
}

#[test]
fn a_plaintext_caller_has_no_peer_principal() {
    let mut plugin = probe_plugin(json!({ "onRequestHeaders": [
        { "getProperty": { "path": ["connection", "uri_san_peer_certificate"], "to": to("request", "x-peer") } },
        { "getProperty": { "path": ["connection", "mtls"], "as": "bool", "to": to("request", "x-mtls") } },
    ] }));
    let up = plugin.send(&Request::get("/"), &UpstreamResponse::ok()).upstream.unwrap();
    assert_eq!(up.header("x-peer"), Some("<absent>"));
    assert_eq!(up.header("x-mtls"), Some("false"));
}

fn trapping(policy: FailurePolicy) -> Plugin {
    let script = json!({ "onRequestHeaders": [
        { "trapIfHeader": { "name": "x-trap" } },
        { "addHeader": { "map": "request", "name": "x-probed", "value": "yes" } },
    ] });
    probe_with(PluginConfig::new("probe").json(&script).failure_policy(policy).reload_backoff(Duration::ZERO), SharedState::new())
}

fn trap_then_plain(plugin: &mut Plugin) -> harness::Outcome {
    let first = plugin.send(&Request::get("/").header("x-trap", "1"), &UpstreamResponse::ok());
    assert_eq!(first.status(), 503, "the failing stream gets 503 under every policy");
    assert!(first.upstream.is_none());
    let (_, trap) = first.trap.clone().unwrap();
    assert_eq!(trap.callback, "proxy_on_request_headers");
    assert_eq!(first.local_response.unwrap().1.details, "wasm_fail_stream");
    plugin.send(&Request::get("/"), &UpstreamResponse::ok())
}

#[test]
fn after_a_trap_fail_closed_answers_503() {
    let out = trap_then_plain(&mut trapping(FailurePolicy::FailClosed));
    assert_eq!(out.status(), 503);
    assert!(out.upstream.is_none());
    assert!(!out.callbacks.iter().any(|c| c.callback == "proxy_on_request_headers"), "the failed VM is not called");
}

#[test]
fn after_a_trap_fail_open_passes_requests_by() {
    let out = trap_then_plain(&mut trapping(FailurePolicy::FailOpen));
    assert_eq!(out.status(), 200);
    assert_eq!(out.upstream.unwrap().header("x-probed"), None);
}

#[test]
fn after_a_trap_fail_reload_starts_a_fresh_vm() {
    let mut plugin = trapping(FailurePolicy::FailReload);
    let out = trap_then_plain(&mut plugin);
    assert_eq!(out.upstream.unwrap().header("x-probed"), Some("yes"));
    assert_eq!(plugin.reloads, 1);
}

#[test]
fn fail_reload_waits_out_its_backoff() {
    let script = json!({ "onRequestHeaders": [{ "trapIfHeader": { "name": "x-trap" } }] });
    let config = PluginConfig::new("probe").json(&script).failure_policy(FailurePolicy::FailReload).reload_backoff(Duration::from_secs(3600));
    let mut plugin = probe_with(config, SharedState::new());
    assert_eq!(trap_then_plain(&mut plugin).status(), 503, "still in backoff");
    assert_eq!(plugin.reloads, 0);
}
