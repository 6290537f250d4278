//! A real OCI registry for one test: the reference distribution registry
//! (Debian's `docker-registry`) on a loopback port, with its own config and
//! storage folder, stopped when dropped. Images go in with `skopeo` (as
//! `make publish` pushes them) and come back over the registry API the way
//! Istio's agent pulls: the manifest by tag or digest, each blob by digest,
//! every digest checked against the bytes.

use crate::client::Request;
use crate::envoy::ScratchDir;
use crate::error::KitError;
use crate::istio_fetch::extract_module;
use crate::oci::{sha256_digest, MANIFEST_TYPE};
use std::fs;
use std::net::{SocketAddr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// What an Istio agent asks for: OCI and Docker image manifests.
const ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

/// A running registry.
pub struct Registry {
    child: Child,
    addr: SocketAddr,
    dir: ScratchDir,
}

/// A manifest as the registry served it.
#[derive(Debug, Clone)]
pub struct Pulled {
    pub bytes: Vec<u8>,
    /// `Docker-Content-Digest`, checked against the bytes.
    pub digest: String,
}

fn tool(name: &str) -> Result<(), KitError> {
    let found = Command::new("sh").args(["-c", &format!("command -v {name}")]).stdout(Stdio::null()).status();
    if found.is_ok_and(|s| s.success()) {
        Ok(())
    } else {
        Err(KitError::Missing(format!("no `{name}` on PATH: run `make registry-tools`")))
    }
}

impl Registry {
    pub fn start() -> Result<Self, KitError> {
        tool("docker-registry")?;
        let dir = ScratchDir::new()?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(KitError::io("choosing a registry port"))?
            .port();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let storage = dir.path().join("storage");
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n  secret: e2e-only\n",
            storage.display()
        );
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config).map_err(KitError::io("writing the registry config"))?;
        let log = fs::File::create(dir.path().join("registry.log")).map_err(KitError::io("creating the registry log"))?;
        let log_err = log.try_clone().map_err(KitError::io("creating the registry log"))?;
        let mut command = Command::new("docker-registry");
        command.arg("serve").arg(&config_path).stdin(Stdio::null()).stdout(log).stderr(log_err);
        // SAFETY: prctl is async-signal-safe; the kernel kills the registry
        // if the test process dies without running destructors.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command.spawn().map_err(KitError::io("starting docker-registry"))?;
        let mut registry = Self { child, addr, dir };
        registry.wait_ready()?;
        Ok(registry)
    }

    fn wait_ready(&mut self) -> Result<(), KitError> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(KitError::Protocol(format!("docker-registry exited ({status}): {}", self.log())));
            }
            if Request::get("/v2/").send(self.addr).is_ok_and(|r| r.status == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(KitError::Timeout { what: format!("registry not ready in {READY_TIMEOUT:?}"), log: self.log() });
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:<port>`, the registry part of an image reference.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Pushes `tag` of the image layout at `layout` to `repository:tag`
    /// with skopeo, digests preserved.
    pub fn push(&self, layout: &Path, tag: &str, repository: &str) -> Result<(), KitError> {
        tool("skopeo")?;
        let source = format!("oci:{}:{tag}", layout.display());
        let destination = format!("docker://{}/{repository}:{tag}", self.host());
        let out = Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false"])
            .args([&source, &destination])
            .output()
            .map_err(KitError::io("running skopeo"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(KitError::Protocol(format!("skopeo copy {source} {destination}: {}", String::from_utf8_lossy(&out.stderr))))
        }
    }

    /// The manifest of `repository` at `reference` (a tag or a digest).
    pub fn manifest(&self, repository: &str, reference: &str) -> Result<Pulled, KitError> {
        let path = format!("/v2/{repository}/manifests/{reference}");
        let response = Request::get(&path).header("accept", ACCEPT).send(self.addr)?;
        if response.status != 200 {
            return Err(KitError::Protocol(format!("GET {path}: {} {}", response.status, response.body_text())));
        }
        let bytes = response.message.body.clone();
        let digest = sha256_digest(&bytes);
        let served = response.header("docker-content-digest").unwrap_or_default();
        if served != digest {
            return Err(KitError::Protocol(format!("GET {path}: Docker-Content-Digest {served} but the bytes are {digest}")));
        }
        if reference.starts_with("sha256:") && reference != digest {
            return Err(KitError::Protocol(format!("GET {path}: asked for {reference}, got {digest}")));
        }
        if response.header("content-type") != Some(MANIFEST_TYPE) {
            return Err(KitError::Protocol(format!("GET {path}: content-type {:?}", response.header("content-type"))));
        }
        Ok(Pulled { bytes, digest })
    }

    /// A blob by digest, its bytes checked against it.
    pub fn blob(&self, repository: &str, digest: &str) -> Result<Vec<u8>, KitError> {
        let path = format!("/v2/{repository}/blobs/{digest}");
        let response = Request::get(&path).send(self.addr)?;
        if response.status != 200 {
            return Err(KitError::Protocol(format!("GET {path}: {}", response.status)));
        }
        let bytes = response.message.body;
        if sha256_digest(&bytes) != digest {
            return Err(KitError::Protocol(format!("GET {path}: the bytes are {}", sha256_digest(&bytes))));
        }
        Ok(bytes)
    }

    /// The module at `repository:reference` as Istio's agent gets it: the
    /// manifest, its digest checked against `sha256` when the WasmPlugin
    /// pins one, then the module out of the layers by Istio's rules.
    pub fn pull_wasm(&self, repository: &str, reference: &str, sha256: Option<&str>) -> Result<Vec<u8>, KitError> {
        let manifest = self.manifest(repository, reference)?;
        let actual = manifest.digest.trim_start_matches("sha256:");
        if let Some(want) = sha256.filter(|want| *want != actual) {
            return Err(KitError::Protocol(format!(
                "module downloaded from {repository}:{reference} has checksum {actual}, which does not match: {want}"
            )));
        }
        let mut blob = |digest: &str| self.blob(repository, digest).map_err(|e| e.to_string());
        extract_module(&manifest.bytes, &mut blob).map_err(KitError::Protocol)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!("---- registry log ----\n{}---- end of registry log ----", self.log());
        }
    }
}
