//! A listener Envoy reads from a file and re-reads whenever a new version is
//! moved into place (LDS through `path_config_source`), for tests that
//! replace a plugin's configuration while traffic flows. Each update is
//! written beside the watched file and renamed over it, the atomic move
//! Envoy's file watcher reacts to.

use crate::bootstrap::Bootstrap;
use crate::envoy::{Envoy, ScratchDir};
use crate::error::KitError;
use serde_json::{json, Value};
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant};

/// The watched file and the versions published to it.
pub struct FileListener {
    _dir: ScratchDir,
    path: PathBuf,
    /// The last version written (the first is 0).
    pub version: u64,
    /// The port every version of the listener binds.
    pub port: u16,
}

impl FileListener {
    pub fn new() -> Result<Self, KitError> {
        let dir = ScratchDir::new()?;
        let path = dir.path().join("listeners.json");
        // The port must stay the same across versions: pick a free one once.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(KitError::io("picking a listener port"))?
            .port();
        Ok(Self { _dir: dir, path, version: 0, port })
    }

    /// Envoy's bootstrap: the static clusters of `bootstrap`, its listener
    /// from the watched file (write version 0 with [`FileListener::publish`] first).
    pub fn bootstrap(&self, bootstrap: &Bootstrap) -> Value {
        let mut config = bootstrap.to_json();
        config["static_resources"]["listeners"] = json!([]);
        // Envoy requires a node identity for any xDS source, files included.
        config["node"] = json!({ "id": "e2e", "cluster": "e2e" });
        config["dynamic_resources"] = json!({
            "lds_config": { "path_config_source": { "path": self.path }, "resource_api_version": "V3" },
        });
        config
    }

    /// Writes `bootstrap`'s listener (on this file's port) as the next
    /// version and moves it into place; returns its version.
    pub fn publish(&mut self, bootstrap: &Bootstrap) -> Result<u64, KitError> {
        let listener = bootstrap.clone().listener_port(self.port).to_json()["static_resources"]["listeners"][0].take();
        let mut typed = listener;
        typed["@type"] = json!("type.googleapis.com/envoy.config.listener.v3.Listener");
        let version = if self.path.exists() { self.version + 1 } else { 0 };
        let response = json!({ "version_info": version.to_string(), "resources": [typed] });
        let staging = self.path.with_extension(format!("{version}.tmp"));
        let text = serde_json::to_string(&response).map_err(|e| KitError::Protocol(e.to_string()))?;
        fs::write(&staging, text).map_err(KitError::io("writing a listener version"))?;
        fs::rename(&staging, &self.path).map_err(KitError::io("moving a listener version into place"))?;
        self.version = version;
        Ok(version)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }
}

/// Waits until Envoy has accepted `updates` listener updates in all (the
/// first file counts as one).
pub fn wait_for_updates(envoy: &Envoy, updates: u64, timeout: Duration) -> Result<(), KitError> {
    let deadline = Instant::now() + timeout;
    loop {
        let done = envoy.stat("listener_manager.lds.update_success")?.unwrap_or(0);
        if done >= updates {
            return Ok(());
        }
        let rejected = envoy.stat("listener_manager.lds.update_rejected")?.unwrap_or(0);
        if rejected > 0 {
            return Err(KitError::Protocol(format!("Envoy rejected a listener update; log:\n{}", envoy.log())));
        }
        if Instant::now() > deadline {
            return Err(KitError::Timeout { what: format!("{done} of {updates} listener updates applied"), log: envoy.log() });
        }
        thread::sleep(Duration::from_millis(5));
    }
}
