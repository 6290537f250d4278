//! What istiod and the Istio node agent make of a `WasmPlugin`, for an
//! Envoy without a cluster around it:
//! - istiod puts an ECDS entry in the HCM filter list (named after the
//!   plugin, with the Wasm and RBAC type URLs), placed by `phase` and
//!   `priority` among the filters that mark Istio's phases, and serves a
//!   `TypedExtensionConfig` holding the `Wasm` filter with a remote module;
//! - the agent fetches the module and rewrites the code to a local file, or,
//!   when the fetch fails, stands in an RBAC filter: deny-all under
//!   `FAIL_CLOSE`, allow-all under `FAIL_OPEN`.
//!
//! Follows istio/istio `pilot/pkg/model/extensions.go` (the plugin config),
//! `pilot/pkg/networking/core/listener_builder.go` (the phase order) and
//! `pkg/wasm/convert.go` (the agent's rewrite and its fallbacks).

use crate::crd::yaml_documents;
use serde_json::{json, Map, Value};
use std::path::Path;

pub const WASM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
pub const RBAC_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC";
pub const TYPED_EXTENSION_CONFIG_TYPE_URL: &str = "type.googleapis.com/envoy.config.core.v3.TypedExtensionConfig";

/// The variables istiod adds to the VM environment for the agent, which
/// strips every `ISTIO_META_` one before Envoy sees the config.
const AGENT_ENV_PREFIX: &str = "ISTIO_META_";
const PULL_POLICY_ENV: &str = "ISTIO_META_WASM_IMAGE_PULL_POLICY";
const RESOURCE_VERSION_ENV: &str = "ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION";

/// How an Istio release names the ECDS resource of a `WasmPlugin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ResourceNaming {
    /// Istio up to 1.25, in its own spelling: `extenstions.istio.io/wasmplugin/`.
    #[default]
    Extenstions,
    /// Istio 1.26 on: `extensions.istio.io/wasmplugin/`.
    Extensions,
}

impl ResourceNaming {
    fn prefix(self) -> &'static str {
        match self {
            Self::Extenstions => "extenstions.istio.io/wasmplugin/",
            Self::Extensions => "extensions.istio.io/wasmplugin/",
        }
    }
}

/// Where in the HTTP filter chain a plugin goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Before Istio's authentication filters (JWT, `istio_authn`).
    Authn,
    /// Before Istio's authorization filter (RBAC).
    Authz,
    /// After authorization, before the router (Istio appends its stats
    /// filters later in the chain).
    Stats,
    /// Just before the router.
    Unspecified,
}

impl Phase {
    fn parse(text: Option<&str>) -> Result<Self, String> {
        match text {
            None | Some("UNSPECIFIED_PHASE") => Ok(Self::Unspecified),
            Some("AUTHN") => Ok(Self::Authn),
            Some("AUTHZ") => Ok(Self::Authz),
            Some("STATS") => Ok(Self::Stats),
            Some(other) => Err(format!("spec.phase: {other:?} is not AUTHN, AUTHZ, STATS or UNSPECIFIED_PHASE")),
        }
    }
}

/// `failStrategy`: what the proxy does when the plugin cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailStrategy {
    Close,
    Open,
    Reload,
}

impl FailStrategy {
    fn parse(text: Option<&str>) -> Result<Self, String> {
        match text {
            None | Some("FAIL_CLOSE") => Ok(Self::Close),
            Some("FAIL_OPEN") => Ok(Self::Open),
            Some("FAIL_RELOAD") => Ok(Self::Reload),
            Some(other) => Err(format!("spec.failStrategy: {other:?} is not FAIL_CLOSE, FAIL_OPEN or FAIL_RELOAD")),
        }
    }

    /// The Wasm filter's `failure_policy`.
    fn envoy_policy(self) -> &'static str {
        match self {
            Self::Close => "FAIL_CLOSED",
            Self::Open => "FAIL_OPEN",
            Self::Reload => "FAIL_RELOAD",
        }
    }
}

/// One `vmConfig.env` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmEnv {
    /// `valueFrom: INLINE` (the default): the value is in the manifest.
    Inline { name: String, value: String },
    /// `valueFrom: HOST`: the proxy's own environment variable.
    Host { name: String },
}

/// The parts of a `WasmPlugin` that shape what Envoy gets.
#[derive(Debug, Clone)]
pub struct WasmPlugin {
    pub namespace: String,
    pub name: String,
    pub url: String,
    pub sha256: Option<String>,
    pub image_pull_policy: Option<String>,
    pub plugin_name: String,
    pub phase: Phase,
    pub priority: i64,
    pub fail_strategy: FailStrategy,
    pub plugin_config: Option<Value>,
    pub env: Vec<VmEnv>,
}

/// Every `WasmPlugin` in a manifest file's text, in document order.
pub fn wasm_plugins(text: &str) -> Result<Vec<WasmPlugin>, String> {
    yaml_documents(text)?
        .iter()
        .filter(|doc| doc["kind"] == "WasmPlugin")
        .map(WasmPlugin::from_manifest)
        .collect()
}

impl WasmPlugin {
    /// Reads one `WasmPlugin` document (already checked against its CRD).
    pub fn from_manifest(doc: &Value) -> Result<Self, String> {
        if doc["kind"] != "WasmPlugin" {
            return Err(format!("kind: {} is not WasmPlugin", doc["kind"]));
        }
        let text = |v: &Value| v.as_str().map(str::to_string);
        let name = text(&doc["metadata"]["name"]).ok_or("metadata.name: required")?;
        let spec = &doc["spec"];
        let url = text(&spec["url"]).ok_or("spec.url: required")?;
        let mut env = Vec::new();
        for (i, e) in spec["vmConfig"]["env"].as_array().into_iter().flatten().enumerate() {
            let name = text(&e["name"]).ok_or(format!("spec.vmConfig.env[{i}].name: required"))?;
            env.push(match e["valueFrom"].as_str() {
                None | Some("INLINE") => VmEnv::Inline { name, value: text(&e["value"]).unwrap_or_default() },
                Some("HOST") => VmEnv::Host { name },
                Some(other) => return Err(format!("spec.vmConfig.env[{i}].valueFrom: {other:?} is not INLINE or HOST")),
            });
        }
        Ok(Self {
            namespace: text(&doc["metadata"]["namespace"]).unwrap_or_else(|| "default".into()),
            plugin_name: text(&spec["pluginName"]).unwrap_or_default(),
            name,
            url,
            sha256: text(&spec["sha256"]),
            image_pull_policy: text(&spec["imagePullPolicy"]),
            phase: Phase::parse(spec["phase"].as_str())?,
            priority: spec["priority"].as_i64().unwrap_or(0),
            fail_strategy: FailStrategy::parse(spec["failStrategy"].as_str())?,
            plugin_config: spec.get("pluginConfig").filter(|c| c.as_object().is_some_and(|m| !m.is_empty())).cloned(),
            env,
        })
    }

    /// The ECDS resource name, as the filter chain and the resource carry it.
    pub fn resource_name(&self, naming: ResourceNaming) -> String {
        format!("{}{}.{}", naming.prefix(), self.namespace, self.name)
    }

    /// The HCM filter entry istiod writes: no config, only where to
    /// discover it and which types it may be.
    pub fn hcm_filter(&self, naming: ResourceNaming, config_source: &Value) -> Value {
        json!({
            "name": self.resource_name(naming),
            "config_discovery": {
                "config_source": config_source,
                "type_urls": [WASM_TYPE_URL, RBAC_TYPE_URL],
            },
        })
    }

    /// The `Wasm` filter istiod sends: the module still remote (the
    /// agent's to fetch), the plugin config as JSON in a StringValue.
    pub fn istiod_wasm(&self, resource_version: &str) -> Value {
        let mut key_values = Map::new();
        if let Some(policy) = &self.image_pull_policy {
            key_values.insert(PULL_POLICY_ENV.into(), json!(policy));
        }
        key_values.insert(RESOURCE_VERSION_ENV.into(), json!(resource_version));
        let mut host_env_keys = Vec::new();
        for e in &self.env {
            match e {
                VmEnv::Inline { name, value } => {
                    key_values.insert(name.clone(), json!(value));
                }
                VmEnv::Host { name } => host_env_keys.push(json!(name)),
            }
        }
        let mut environment = json!({ "key_values": key_values });
        if !host_env_keys.is_empty() {
            environment["host_env_keys"] = Value::Array(host_env_keys);
        }
        let mut config = json!({
            "name": format!("{}.{}", self.namespace, self.name),
            "root_id": self.plugin_name,
            "failure_policy": self.fail_strategy.envoy_policy(),
            "vm_config": {
                "runtime": "envoy.wasm.runtime.v8",
                "code": { "remote": {
                    "http_uri": { "uri": self.url, "timeout": "30s", "cluster": "_" },
                    "sha256": self.sha256.clone().unwrap_or_default(),
                } },
                "environment_variables": environment,
            },
        });
        if let Some(plugin_config) = &self.plugin_config {
            config["configuration"] = json!({
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": plugin_config.to_string(),
            });
        }
        json!({ "@type": WASM_TYPE_URL, "config": config })
    }

    /// The `TypedExtensionConfig` Envoy gets once the agent has fetched
    /// the module (`Ok(path)`) or failed to (`Err`).
    pub fn delivered(&self, naming: ResourceNaming, fetched: Result<&Path, &str>) -> Value {
        let typed_config = agent_rewrite(self.istiod_wasm("1"), fetched);
        json!({ "name": self.resource_name(naming), "typed_config": typed_config })
    }
}

/// The agent's rewrite of istiod's `Wasm` config: the module as the local
/// file it fetched, its own variables removed; when the fetch failed, an
/// RBAC filter that denies everything (fail closed) or nothing (fail open).
pub fn agent_rewrite(mut wasm: Value, fetched: Result<&Path, &str>) -> Value {
    let config = &mut wasm["config"];
    let Ok(module) = fetched else {
        return rbac_fallback(config["failure_policy"] == "FAIL_OPEN");
    };
    config["vm_config"]["code"] = json!({ "local": { "filename": module } });
    if let Some(vars) = config["vm_config"]["environment_variables"]["key_values"].as_object_mut() {
        vars.retain(|name, _| !name.starts_with(AGENT_ENV_PREFIX));
    }
    wasm
}

/// Istio's stand-in for a plugin whose module could not be fetched.
pub fn rbac_fallback(fail_open: bool) -> Value {
    if fail_open {
        // No rules: RBAC allows everything.
        json!({ "@type": RBAC_TYPE_URL, "rules_stat_prefix": "wasm-default-allow" })
    } else {
        // Rules with no policy: RBAC denies everything.
        json!({ "@type": RBAC_TYPE_URL, "rules": {}, "rules_stat_prefix": "wasm-default-deny" })
    }
}

/// Istio's own filters that mark the phases, as a chain builder sees them.
#[derive(Debug, Clone, Default)]
pub struct PhaseMarkers {
    /// Authentication filters (Istio: JWT, `istio_authn`): AUTHN plugins go before them.
    pub authn: Vec<Value>,
    /// Authorization filters (Istio: RBAC): AUTHZ plugins go before them.
    pub authz: Vec<Value>,
}

/// The HTTP filters before the router, as istiod's listener builder orders
/// them: AUTHN plugins, authn markers, AUTHZ plugins, authz markers, STATS
/// plugins, unspecified-phase plugins. Within a phase, higher `priority`
/// first; equal priorities by namespace, then name.
pub fn http_filters(plugins: &[WasmPlugin], markers: &PhaseMarkers, naming: ResourceNaming, config_source: &Value) -> Vec<Value> {
    let mut ordered: Vec<&WasmPlugin> = plugins.iter().collect();
    ordered.sort_by(|a, b| {
        (a.phase, std::cmp::Reverse(a.priority), &a.namespace, &a.name).cmp(&(
            b.phase,
            std::cmp::Reverse(b.priority),
            &b.namespace,
            &b.name,
        ))
    });
    let of = |phase: Phase| ordered.iter().filter(move |p| p.phase == phase).map(|p| p.hcm_filter(naming, config_source));
    let mut chain: Vec<Value> = of(Phase::Authn).collect();
    chain.extend(markers.authn.iter().cloned());
    chain.extend(of(Phase::Authz));
    chain.extend(markers.authz.iter().cloned());
    chain.extend(of(Phase::Stats));
    chain.extend(of(Phase::Unspecified));
    chain
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn plugin(name: &str, phase: &str, priority: i64) -> WasmPlugin {
        let doc = json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": { "name": name, "namespace": "ns" },
            "spec": { "url": "oci://r/x:1", "phase": phase, "priority": priority, "pluginName": name },
        });
        WasmPlugin::from_manifest(&doc).unwrap()
    }

    fn names(chain: &[Value]) -> Vec<String> {
        chain.iter().map(|f| f["name"].as_str().unwrap_or_default().to_string()).collect()
    }

    #[test]
    fn phases_go_before_their_markers_and_priority_orders_within_a_phase() {
        let plugins = [
            plugin("last", "UNSPECIFIED_PHASE", 0),
            plugin("stats", "STATS", 0),
            plugin("authz-low", "AUTHZ", 1),
            plugin("authz-high", "AUTHZ", 10),
            plugin("authn", "AUTHN", 0),
        ];
        let markers = PhaseMarkers { authn: vec![json!({ "name": "jwt" })], authz: vec![json!({ "name": "rbac" })] };
        let chain = http_filters(&plugins, &markers, ResourceNaming::Extensions, &json!({ "ads": {} }));
        let p = "extensions.istio.io/wasmplugin/ns.";
        assert_eq!(
            names(&chain),
            [format!("{p}authn"), "jwt".into(), format!("{p}authz-high"), format!("{p}authz-low"), "rbac".into(), format!("{p}stats"), format!("{p}last")]
        );
        assert_eq!(chain[0]["config_discovery"]["type_urls"], json!([WASM_TYPE_URL, RBAC_TYPE_URL]));
    }

    #[test]
    fn istio_spells_the_older_prefix_its_own_way() {
        assert_eq!(plugin("a", "AUTHN", 0).resource_name(ResourceNaming::default()), "extenstions.istio.io/wasmplugin/ns.a");
    }

    #[test]
    fn the_agent_rewrites_the_module_and_strips_its_variables() {
        let doc = json!({
            "kind": "WasmPlugin",
            "metadata": { "name": "p", "namespace": "shop" },
            "spec": {
                "url": "oci://r/p:1", "sha256": "ab", "imagePullPolicy": "IfNotPresent", "pluginName": "root",
                "failStrategy": "FAIL_OPEN", "pluginConfig": { "a": 1 },
                "vmConfig": { "env": [{ "name": "K", "value": "v" }, { "name": "H", "valueFrom": "HOST" }] },
            },
        });
        let p = WasmPlugin::from_manifest(&doc).unwrap();
        let sent = p.istiod_wasm("7");
        assert_eq!(sent["config"]["vm_config"]["code"]["remote"]["http_uri"]["uri"], "oci://r/p:1");
        assert_eq!(sent["config"]["vm_config"]["environment_variables"]["key_values"][RESOURCE_VERSION_ENV], "7");
        let module = PathBuf::from("/m.wasm");
        let got = p.delivered(ResourceNaming::Extensions, Ok(&module));
        let config = &got["typed_config"]["config"];
        assert_eq!(got["name"], "extensions.istio.io/wasmplugin/shop.p");
        assert_eq!(config["name"], "shop.p");
        assert_eq!(config["root_id"], "root");
        assert_eq!(config["failure_policy"], "FAIL_OPEN");
        assert_eq!(config["configuration"]["value"], r#"{"a":1}"#);
        assert_eq!(config["vm_config"]["code"], json!({ "local": { "filename": "/m.wasm" } }));
        assert_eq!(config["vm_config"]["environment_variables"], json!({ "key_values": { "K": "v" }, "host_env_keys": ["H"] }));
    }

    #[test]
    fn a_failed_fetch_stands_in_rbac_by_fail_strategy() {
        let closed = plugin("c", "AUTHZ", 0).delivered(ResourceNaming::Extensions, Err("gone"));
        assert_eq!(closed["typed_config"], json!({ "@type": RBAC_TYPE_URL, "rules": {}, "rules_stat_prefix": "wasm-default-deny" }));
        let mut open = plugin("o", "AUTHZ", 0);
        open.fail_strategy = FailStrategy::Open;
        let open = open.delivered(ResourceNaming::Extensions, Err("gone"));
        assert_eq!(open["typed_config"]["rules_stat_prefix"], "wasm-default-allow");
        assert!(open["typed_config"].get("rules").is_none());
    }

    #[test]
    fn bad_enums_name_the_field() {
        let doc = json!({ "kind": "WasmPlugin", "metadata": { "name": "p" }, "spec": { "url": "x", "phase": "LATE" } });
        assert_eq!(WasmPlugin::from_manifest(&doc).unwrap_err(), r#"spec.phase: "LATE" is not AUTHN, AUTHZ, STATS or UNSPECIFIED_PHASE"#);
    }
}
