//! A file-based ECDS source (`path_config_source`): Envoy's own xDS
//! subscription machinery, fed from a file instead of istiod. An update is a
//! whole new file moved over the old one, the way Envoy's file watcher
//! wants it (a move is atomic; a rewrite in place could be read half done).

use crate::envoy::{Envoy, ScratchDir};
use crate::error::KitError;
use crate::istio_translate::TYPED_EXTENSION_CONFIG_TYPE_URL;
use serde_json::{json, Value};
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// A folder holding the ECDS file Envoy watches; removed when dropped.
pub struct EcdsSource {
    dir: ScratchDir,
    version: AtomicU64,
}

impl EcdsSource {
    pub fn new() -> Result<Self, KitError> {
        let dir = ScratchDir::new()?;
        fs::create_dir_all(dir.path().join("staging")).map_err(KitError::io("creating the ECDS staging folder"))?;
        Ok(Self { dir, version: AtomicU64::new(0) })
    }

    /// The file Envoy reads the resources from.
    pub fn path(&self) -> PathBuf {
        self.dir.path().join("ecds.yaml")
    }

    /// The `config_source` of an ECDS filter entry, as Istio sets it (no
    /// initial fetch timeout: the listener waits for the config), with the
    /// file in place of ADS.
    pub fn config_source(&self) -> Value {
        json!({
            "path_config_source": { "path": self.path() },
            "resource_api_version": "V3",
            "initial_fetch_timeout": "0s",
        })
    }

    /// Publishes `resources` (`TypedExtensionConfig`s without their
    /// `@type`) as the next version, by moving a complete file into place.
    pub fn publish(&self, resources: &[Value]) -> Result<u64, KitError> {
        let version = self.version.fetch_add(1, Ordering::SeqCst) + 1;
        let resources: Vec<Value> = resources
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r["@type"] = json!(TYPED_EXTENSION_CONFIG_TYPE_URL);
                r
            })
            .collect();
        let response = json!({ "version_info": version.to_string(), "resources": resources });
        let text = serde_json::to_string_pretty(&response).map_err(|e| KitError::Protocol(e.to_string()))?;
        let staged = self.dir.path().join("staging").join(format!("ecds-{version}.yaml"));
        fs::write(&staged, text).map_err(KitError::io("writing an ECDS file"))?;
        fs::rename(&staged, self.path()).map_err(KitError::io("moving the ECDS file into place"))?;
        Ok(version)
    }
}

/// Gives a bootstrap the node identity every xDS subscription, ECDS from a
/// file included, needs (Istio's sidecars are `sidecar~<ip>~<pod>.<ns>~…`).
pub fn with_node(mut config: Value) -> Value {
    config["node"] = json!({ "id": "sidecar~127.0.0.1~e2e.test~test.svc.cluster.local", "cluster": "e2e.test" });
    config
}

/// The value of the ECDS counter `stat` (`update_success`, `update_rejected`)
/// of the filter config `name`, 0 before Envoy has made it.
pub fn ecds_counter(envoy: &Envoy, name: &str, stat: &str) -> Result<u64, KitError> {
    let suffix = format!("{name}.{stat}");
    let stats = envoy.admin_json("/stats?format=json")?;
    Ok(stats["stats"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|s| s["name"].as_str().is_some_and(|n| n.contains("extension_config_discovery") && n.ends_with(&suffix)))
        .filter_map(|s| s["value"].as_u64())
        .sum())
}

/// Waits until `ecds_counter` reaches `at_least`.
pub fn wait_for_counter(envoy: &Envoy, name: &str, stat: &str, at_least: u64, timeout: Duration) -> Result<(), KitError> {
    let deadline = Instant::now() + timeout;
    loop {
        let value = ecds_counter(envoy, name, stat)?;
        if value >= at_least {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(KitError::Timeout {
                what: format!("ECDS {name} {stat} stayed at {value}, below {at_least}, for {timeout:?}"),
                log: envoy.log(),
            });
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The names of the ECDS resources Envoy holds now (its config dump).
pub fn ecds_names(envoy: &Envoy) -> Result<Vec<String>, KitError> {
    let dump = envoy.admin_json("/config_dump")?;
    let mut names = Vec::new();
    for config in dump["configs"].as_array().into_iter().flatten() {
        for filter in config["ecds_filters"].as_array().into_iter().flatten() {
            if let Some(name) = filter["ecds_filter"]["name"].as_str() {
                names.push(name.to_string());
            }
        }
    }
    Ok(names)
}
