//! State shared across VMs: shared data with CAS versions, shared queues
//! with their ready notifications, metrics by name, and the root timer.

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

mod common;

use common::{probe_plugin, probe_with, shared_text, to, to_shared};
use harness::{PluginConfig, Request, SharedState, UpstreamResponse};
use serde_json::json;

#[test]
fn shared_data_is_seen_by_another_vm_and_guarded_by_cas() {
    let shared = SharedState::new();
    let writer = json!({
        "onRequestHeaders": [
            { "setSharedData": { "key": "budget", "value": "10", "to": to("request", "x-first") } },
            { "setSharedData": { "key": "budget", "value": "9", "cas": 1, "to": to("request", "x-cas-ok") } },
            { "setSharedData": { "key": "budget", "value": "8", "cas": 1, "to": to("request", "x-cas-stale") } },
        ],
    });
    let reader = json!({ "onRequestHeaders": [{ "getSharedData": { "key": "budget", "to": to("request", "x-read") } }] });
    let mut a = probe_with(PluginConfig::new("probe").json(&writer), shared.clone());
    let mut b = probe_with(PluginConfig::new("probe").json(&reader), shared.clone());
    let up = a.send(&Request::get("/"), &UpstreamResponse::ok()).upstream.unwrap();
    assert_eq!(up.header("x-first"), Some("ok"));
    assert_eq!(up.header("x-cas-ok"), Some("ok"));
    assert_eq!(up.header("x-cas-stale"), Some("<error:CasMismatch>"));
    let read = b.send(&Request::get("/"), &UpstreamResponse::ok()).upstream.unwrap();
    assert_eq!(read.header("x-read"), Some("9@2"), "value and version, from the other VM");
}

#[test]
fn a_queue_delivers_items_and_wakes_its_owner() {
    let shared = SharedState::new();
    let owner = json!({
        "onConfigure": [{ "registerQueue": { "name": "events" } }],
        "onQueueReady": [{ "dequeue": { "name": "events", "to": to_shared("dequeued") } }],
    });
    let producer = json!({
        "onRequestHeaders": [
            { "resolveQueue": { "name": "events", "to": to("request", "x-queue-id") } },
            { "enqueue": { "name": "events", "value": "hello" } },
        ],
    });
    let mut owner = probe_with(PluginConfig::new("probe").json(&owner), shared.clone());
    let mut producer = probe_with(PluginConfig::new("probe").json(&producer), shared.clone());
    let up = producer.send(&Request::get("/"), &UpstreamResponse::ok()).upstream.unwrap();
    assert_eq!(up.header("x-queue-id"), Some("1"));
    // The owner is notified the next time it runs.
    owner.send(&Request::get("/"), &UpstreamResponse::ok());
    assert_eq!(shared_text(&shared, "dequeued").as_deref(), Some("hello"));
}

#[test]
fn metrics_are_shared_by_name_across_vms() {
    let shared = SharedState::new();
    let script = json!({
        "onRequestHeaders": [
            { "metric": { "type": "counter", "name": "probe.requests", "increment": 1 } },
            { "metric": { "type": "histogram", "name": "probe.sizes", "record": 512 } },
            { "metric": { "type": "gauge", "name": "probe.inflight", "record": 3 } },
        ],
    });
    let mut a = probe_with(PluginConfig::new("probe").json(&script), shared.clone());
    let mut b = probe_with(PluginConfig::new("probe").json(&script), shared.clone());
    a.send(&Request::get("/"), &UpstreamResponse::ok());
    b.send(&Request::get("/"), &UpstreamResponse::ok());
    assert_eq!(shared.metrics().get("probe.requests"), Some(&2));
    assert_eq!(shared.metric("probe.sizes").unwrap().samples, vec![512, 512]);
    assert_eq!(shared.metrics().get("probe.inflight"), Some(&3));
}

#[test]
fn the_root_timer_fires_on_tick() {
    let mut plugin = probe_plugin(json!({
        "onConfigure": [{ "tickPeriod": { "ms": 250 } }],
        "onTick": [{ "setSharedData": { "key": "ticked", "value": "yes" } }, { "currentTime": { "to": to_shared("tick-time") } }],
    }));
    assert_eq!(plugin.tick_period_ms(), 250);
    plugin.tick().unwrap();
    assert_eq!(shared_text(&plugin.shared, "ticked").as_deref(), Some("yes"));
}

#[test]
fn a_fixed_clock_is_what_the_module_reads() {
    let config = PluginConfig::new("probe").json(&json!({ "onRequestHeaders": [{ "currentTime": { "to": to("request", "x-now") } }] })).clock(1_234_567_890);
    let mut plugin = probe_with(config, SharedState::new());
    let up = plugin.send(&Request::get("/"), &UpstreamResponse::ok()).upstream.unwrap();
    assert_eq!(up.header("x-now"), Some("1234567890"));
}
