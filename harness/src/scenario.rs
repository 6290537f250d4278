//! Scenario files: a plugin, the requests to send it, and what to expect.
//! A malformed file is reported with its line, column and field path.

use crate::error::HarnessError;
use crate::plugin::{FailurePolicy, PluginConfig};
use crate::properties::{split_path, PropertyValue};
use crate::stream::{CallReply, Request, UpstreamResponse};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// Header pairs in the order written, from a YAML map or a list of pairs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pairs(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Pairs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PairsVisitor;
        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = Pairs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of names to values, or a list of [name, value] pairs")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Pairs, A::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, ScalarText>()? {
                    pairs.push((k, v.0));
                }
                Ok(Pairs(pairs))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Pairs, A::Error> {
                let mut pairs = Vec::new();
                while let Some((k, v)) = seq.next_element::<(String, ScalarText)>()? {
                    pairs.push((k, v.0));
                }
                Ok(Pairs(pairs))
            }
        }
        d.deserialize_any(PairsVisitor)
    }
}

/// A header value written as a string, number or boolean.
struct ScalarText(String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(d)?;
        match value {
            serde_yaml::Value::String(s) => Ok(Self(s)),
            serde_yaml::Value::Number(n) => Ok(Self(n.to_string())),
            serde_yaml::Value::Bool(b) => Ok(Self(b.to_string())),
            _ => Err(de::Error::custom("expected a string, number or boolean")),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PluginSpec {
    #[serde(default)]
    pub root_id: Option<String>,
    /// The plugin configuration, written as YAML/JSON and passed as JSON.
    #[serde(default)]
    pub config: Option<serde_json::Value>,
    #[serde(default)]
    pub vm_config: Option<String>,
    #[serde(default)]
    pub failure_policy: FailurePolicy,
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyValue>,
    #[serde(default)]
    pub clusters: BTreeMap<String, ReplySpec>,
    #[serde(default)]
    pub env: Pairs,
    /// What the module is told Envoy's log level is (default info).
    #[serde(default)]
    pub log_level: Option<crate::abi::LogLevel>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReplySpec {
    #[serde(default = "ok_status")]
    pub status: u16,
    #[serde(default)]
    pub headers: Pairs,
    #[serde(default)]
    pub body: String,
    #[serde(default)]
    pub grpc_status: u32,
    #[serde(default)]
    pub fail: bool,
}

fn ok_status() -> u16 {
    200
}

fn get() -> String {
    "GET".into()
}

fn root() -> String {
    "/".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct RequestSpec {
    #[serde(default = "get")]
    pub method: String,
    #[serde(default = "root")]
    pub path: String,
    #[serde(default)]
    pub headers: Pairs,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub chunks: Vec<String>,
    #[serde(default)]
    pub trailers: Pairs,
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyValue>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpstreamSpec {
    #[serde(default = "ok_status")]
    pub status: u16,
    #[serde(default)]
    pub headers: Pairs,
    #[serde(default)]
    pub body: Option<String>,
    #[serde(default)]
    pub trailers: Pairs,
    /// Router attempts, retries included (`upstream.request_attempt_count`).
    #[serde(default)]
    pub attempts: Option<u32>,
}

/// Expectations on headers and body of one side.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MessageExpect {
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub headers: Pairs,
    #[serde(default)]
    pub absent_headers: Vec<String>,
    #[serde(default)]
    pub body: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Expect {
    #[serde(default)]
    pub status: Option<u16>,
    /// False: the upstream must not be contacted.
    #[serde(default)]
    pub upstream_called: Option<bool>,
    #[serde(default)]
    pub upstream: Option<MessageExpect>,
    #[serde(default)]
    pub response: Option<MessageExpect>,
    #[serde(default)]
    pub local_response: Option<bool>,
    #[serde(default)]
    pub route_cache_cleared: Option<bool>,
    #[serde(default)]
    pub trap: Option<bool>,
    #[serde(default)]
    pub stalled: Option<bool>,
    /// Metric values after this request, by name.
    #[serde(default)]
    pub metrics: BTreeMap<String, i64>,
    /// Substrings that some log line must contain.
    #[serde(default)]
    pub logs: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Step {
    #[serde(default)]
    pub name: Option<String>,
    pub request: RequestSpec,
    #[serde(default)]
    pub upstream: Option<UpstreamSpec>,
    #[serde(default)]
    pub expect: Expect,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    /// The module, relative to the scenario file (the command line may override).
    #[serde(default)]
    pub wasm: Option<String>,
    #[serde(default)]
    pub plugin: PluginSpec,
    pub requests: Vec<Step>,
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Self, HarnessError> {
        let text = std::fs::read_to_string(path).map_err(|e| HarnessError::Scenario(format!("{}: {e}", path.display())))?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// Parses a scenario; errors read `file:line:column: field: problem`.
    pub fn parse(name: &str, text: &str) -> Result<Self, HarnessError> {
        let de = serde_yaml::Deserializer::from_str(text);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            let at = inner.location().map(|l| format!(":{}:{}", l.line(), l.column())).unwrap_or_default();
            let mut message = inner.to_string();
            if let Some(cut) = message.find(" at line ") {
                message.truncate(cut);
            }
            // serde_yaml may start its message with a path of its own.
            if let Some((head, rest)) = message.split_once(": ") {
                if !head.contains(' ') && field.starts_with(head.trim_end_matches('.')) {
                    message = rest.to_string();
                }
            }
            let field = if field == "." { String::new() } else { format!("{field}: ") };
            HarnessError::Scenario(format!("{name}{at}: {field}{message}"))
        })
    }

    /// The plugin configuration, with `config` serialized as JSON.
    pub fn plugin_config(&self) -> PluginConfig {
        let spec = &self.plugin;
        let mut config = PluginConfig::new(spec.root_id.as_deref().unwrap_or("plugin")).failure_policy(spec.failure_policy);
        if let Some(value) = &spec.config {
            config = config.json(value);
        }
        if let Some(vm) = &spec.vm_config {
            config = config.vm_configuration(vm.clone());
        }
        for (name, value) in &spec.properties {
            config.properties.insert(split_path(name), value.clone());
        }
        for (name, reply) in &spec.clusters {
            let mut r = CallReply { status: reply.status, body: reply.body.clone().into_bytes(), grpc_status: reply.grpc_status, fail: reply.fail, ..CallReply::default() };
            r.headers = reply.headers.0.clone();
            config.clusters.insert(name.clone(), r);
        }
        config.env = spec.env.0.clone();
        if let Some(level) = spec.log_level {
            config.log_level = level;
        }
        config
    }
}

impl RequestSpec {
    pub fn to_request(&self) -> Request {
        let mut request = Request::new(&self.method, &self.path);
        for (k, v) in &self.headers.0 {
            request = request.header(k, v);
        }
        if let Some(body) = &self.body {
            request = request.body(body.clone());
        } else if !self.chunks.is_empty() {
            request = request.chunks(self.chunks.clone());
        }
        for (k, v) in &self.trailers.0 {
            request = request.trailer(k, v);
        }
        for (name, value) in &self.properties {
            request.properties.insert(split_path(name), value.clone());
        }
        request
    }
}

impl UpstreamSpec {
    pub fn to_response(&self) -> UpstreamResponse {
        let mut response = UpstreamResponse::status(self.status);
        for (k, v) in &self.headers.0 {
            response = response.header(k, v);
        }
        if let Some(body) = &self.body {
            response = response.body(body.clone());
        }
        for (k, v) in &self.trailers.0 {
            response = response.trailer(k, v);
        }
        if let Some(n) = self.attempts {
            response = response.attempts(n);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_scenario_parses_with_headers_in_order() {
        let text = r#"
plugin:
  rootId: stamp
  config: { requestHeaders: { x-a: "1" } }
requests:
  - name: first
    request:
      path: /x
      headers: { b: "2", a: 1 }
      properties: { connection.mtls: true, source.port: 8080 }
    expect:
      status: 200
      upstream: { headers: [[x-a, "1"]] }
"#;
        let s = Scenario::parse("s.yaml", text).unwrap();
        let r = s.requests[0].request.to_request();
        assert_eq!(r.headers, vec![("b".to_string(), "2".to_string()), ("a".to_string(), "1".to_string())]);
        assert_eq!(r.properties.get(&split_path("connection.mtls")), Some(&PropertyValue::Bool(true)));
        assert_eq!(s.plugin_config().configuration, br#"{"requestHeaders":{"x-a":"1"}}"#.to_vec());
    }

    #[test]
    fn errors_name_file_line_and_field() {
        let text = "requests:\n  - request:\n      path: /x\n    expect:\n      statuss: 200\n";
        let err = Scenario::parse("s.yaml", text).unwrap_err().to_string();
        assert!(err.contains("s.yaml:5:"), "{err}");
        assert!(err.contains("requests[0].expect.statuss"), "{err}");
        assert!(err.contains("unknown field `statuss`"), "{err}");
        let err = Scenario::parse("s.yaml", "requests: 7\n").unwrap_err().to_string();
        assert!(err.contains("requests: invalid type"), "{err}");
    }
}
