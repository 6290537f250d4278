//! Starts a real Envoy for one test and stops it when the test ends, pass or
//! fail. Ports are chosen by the OS (port 0) and read back from the admin
//! API, so tests run in parallel without clashes; every wait has a deadline.

use crate::bootstrap::Bootstrap;
use crate::client::{Request, Response};
use crate::error::KitError;
use serde_json::Value;
use std::fs::{self, File};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

/// How long Envoy may take to become ready (V8 compiles each module at start).
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The project's root, where `make` puts Envoy and the built modules.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default()
}

/// The Envoy binary: `$ENVOY_BIN`, else the one `make setup` installs.
pub fn envoy_binary() -> Result<PathBuf, KitError> {
    let path = std::env::var_os("ENVOY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".tools/envoy-1.40.0/envoy/_bin/envoy"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(KitError::Missing(format!("no Envoy at {}: run `make setup` or set ENVOY_BIN", path.display())))
    }
}

/// A built filter module by crate name (`stamp_fixture`): `$WASM_DIR`, else
/// the release output of `make build`.
pub fn wasm_module(name: &str) -> Result<PathBuf, KitError> {
    let dir = std::env::var_os("WASM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/wasm32-wasip1/release"));
    let path = dir.join(format!("{name}.wasm"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(KitError::Missing(format!("no module at {}: run `make build`", path.display())))
    }
}

/// A folder of the test's own, removed when dropped.
pub struct ScratchDir(PathBuf);

impl ScratchDir {
    pub fn new() -> Result<Self, KitError> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("e2e-envoy-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).map_err(KitError::io("creating a scratch folder"))?;
        Ok(Self(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A running Envoy. Dropping it kills the process; if the test is failing at
/// that moment, Envoy's log is printed first.
pub struct Envoy {
    child: Child,
    admin: SocketAddr,
    listener: SocketAddr,
    log_path: PathBuf,
    _dir: ScratchDir,
}

impl Envoy {
    pub fn start(bootstrap: &Bootstrap) -> Result<Self, KitError> {
        Self::start_json(&bootstrap.to_json())
    }

    /// Starts Envoy on a config given whole; it must have an admin listener.
    pub fn start_json(config: &Value) -> Result<Self, KitError> {
        Self::start_json_with_workers(config, 1)
    }

    /// Like [`Envoy::start_json`], with `workers` worker threads (each with
    /// its own Wasm VMs, sharing their shared data).
    pub fn start_json_with_workers(config: &Value, workers: usize) -> Result<Self, KitError> {
        Self::start_json_with_options(config, workers, &[], &[])
    }

    /// Like [`Envoy::start_json_with_workers`], with more command-line
    /// options (`--drain-time-s 1`, …).
    pub fn start_json_with_args(config: &Value, workers: usize, extra_args: &[&str]) -> Result<Self, KitError> {
        Self::start_json_with_options(config, workers, extra_args, &[])
    }

    /// Like [`Envoy::start_json_with_workers`], with `env` added to Envoy's
    /// environment (what a Wasm VM's `host_env_keys` read).
    pub fn start_json_with_env(config: &Value, workers: usize, env: &[(&str, &str)]) -> Result<Self, KitError> {
        Self::start_json_with_options(config, workers, &[], env)
    }

    fn start_json_with_options(
        config: &Value,
        workers: usize,
        extra_args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Self, KitError> {
        let binary = envoy_binary()?;
        let dir = ScratchDir::new()?;
        let config_path = dir.0.join("envoy.yaml");
        let text = serde_json::to_string_pretty(config).map_err(|e| KitError::Protocol(e.to_string()))?;
        fs::write(&config_path, text).map_err(KitError::io("writing the Envoy config"))?;
        let admin_path = dir.0.join("admin-address");
        let log_path = dir.0.join("envoy.log");
        let log = File::create(&log_path).map_err(KitError::io("creating the Envoy log"))?;
        let log_err = log.try_clone().map_err(KitError::io("creating the Envoy log"))?;
        // E2E_ENVOY_LOG_LEVEL=debug shows Envoy's reasoning when a test needs it.
        let level = std::env::var("E2E_ENVOY_LOG_LEVEL").unwrap_or_else(|_| "info".to_string());
        let mut command = Command::new(&binary);
        command
            .arg("-c")
            .arg(&config_path)
            .arg("--admin-address-path")
            .arg(&admin_path)
            .args(["--use-dynamic-base-id", "--concurrency", &workers.to_string(), "--disable-hot-restart"])
            .args(["-l", &level, "--component-log-level", "wasm:debug"])
            .args(extra_args)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log_err));
        // SAFETY: prctl is async-signal-safe; it makes the kernel kill Envoy if
        // the test process dies without running destructors (no orphans).
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().map_err(KitError::io("starting envoy"))?;
        let mut envoy = Self {
            child,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            listener: SocketAddr::from(([127, 0, 0, 1], 0)),
            log_path,
            _dir: dir,
        };
        envoy.admin = envoy.wait_ready(&admin_path)?;
        envoy.listener = envoy.find_listener()?;
        Ok(envoy)
    }

    fn wait_ready(&mut self, admin_path: &Path) -> Result<SocketAddr, KitError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Give the log a moment to be flushed by the exiting process.
                return Err(KitError::EnvoyExited { status: status.to_string(), log: self.log() });
            }
            let admin = fs::read_to_string(admin_path).ok().and_then(|s| s.trim().parse::<SocketAddr>().ok());
            if let Some(admin) = admin {
                if Request::get("/ready").send(admin).is_ok_and(|r| r.status == 200) {
                    return Ok(admin);
                }
            }
            if Instant::now() > deadline {
                return Err(KitError::Timeout {
                    what: format!("envoy was not ready within {READY_TIMEOUT:?}"),
                    log: self.log(),
                });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn find_listener(&self) -> Result<SocketAddr, KitError> {
        let listeners = self.admin_json("/listeners?format=json")?;
        let socket = &listeners["listener_statuses"][0]["local_address"]["socket_address"];
        let port = socket["port_value"].as_u64().and_then(|p| u16::try_from(p).ok());
        let ip = socket["address"].as_str().and_then(|a| a.parse::<std::net::IpAddr>().ok());
        match (ip, port) {
            (Some(ip), Some(port)) => Ok(SocketAddr::new(ip, port)),
            _ => Err(KitError::Protocol(format!("no listener address in {listeners}"))),
        }
    }

    /// The address of the HTTP listener.
    pub fn listener(&self) -> SocketAddr {
        self.listener
    }

    /// Envoy's process id (for its memory in `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn admin(&self) -> SocketAddr {
        self.admin
    }

    /// Sends a request to the listener.
    pub fn send(&self, request: &Request) -> Result<Response, KitError> {
        request.send(self.listener)
    }

    pub fn admin_json(&self, path: &str) -> Result<Value, KitError> {
        let response = Request::get(path).send(self.admin)?;
        serde_json::from_slice(&response.message.body)
            .map_err(|e| KitError::Protocol(format!("admin {path} did not answer JSON: {e}")))
    }

    /// A stat's value from `/stats`, `None` if Envoy has no such stat.
    pub fn stat(&self, name: &str) -> Result<Option<u64>, KitError> {
        let stats = self.admin_json("/stats?format=json")?;
        Ok(stats["stats"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["name"] == name)
            .and_then(|s| s["value"].as_u64()))
    }

    /// A metric a Wasm filter defined, by the name it gave it: Envoy keeps
    /// them as `wasmcustom.<name>` (and exports `<name>` with dots as
    /// underscores to Prometheus).
    pub fn wasm_metric(&self, name: &str) -> Result<Option<u64>, KitError> {
        self.stat(&format!("wasmcustom.{name}"))
    }

    /// The Prometheus exposition text from the admin API.
    pub fn prometheus(&self) -> Result<String, KitError> {
        Ok(Request::get("/stats/prometheus").send(self.admin)?.body_text())
    }

    /// Everything Envoy has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("---- envoy log ({}) ----\n{}---- end of envoy log ----", self.log_path.display(), self.log());
        }
    }
}
