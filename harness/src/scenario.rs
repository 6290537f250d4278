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
        let pairs = named_entries::<D, ScalarText>(d, "a map of names to values, or a list of [name, value] pairs")?;
        Ok(Pairs(pairs.into_iter().map(|(k, v)| (k, v.0)).collect()))
    }
}

/// Name-value entries in the order written, from a YAML map or a list of
/// `[name, value]` pairs; `expecting` says what else was wanted.
fn named_entries<'de, D: Deserializer<'de>, V: Deserialize<'de>>(d: D, expecting: &'static str) -> Result<Vec<(String, V)>, D::Error> {
    struct EntriesVisitor<V>(&'static str, std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for EntriesVisitor<V> {
        type Value = Vec<(String, V)>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::new();
            while let Some(entry) = map.next_entry::<String, V>()? {
                entries.push(entry);
            }
            Ok(entries)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut entries = Vec::new();
            while let Some(entry) = seq.next_element::<(String, V)>()? {
                entries.push(entry);
            }
            Ok(entries)
        }
    }
    d.deserialize_any(EntriesVisitor(expecting, std::marker::PhantomData))
}

/// What a scenario expects of one header name: its first value, all its
/// values in order (a list), or its absence (`null`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderWant {
    First(String),
    All(Vec<String>),
    Absent,
}

impl<'de> Deserialize<'de> for HeaderWant {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(d)?;
        match value {
            serde_yaml::Value::Null => Ok(Self::Absent),
            serde_yaml::Value::Sequence(items) => items
                .into_iter()
                .map(|v| scalar_text(v).ok_or_else(|| de::Error::custom("each value must be a string, number or boolean")))
                .collect::<Result<_, _>>()
                .map(Self::All),
            other => scalar_text(other)
                .map(Self::First)
                .ok_or_else(|| de::Error::custom("expected a value, a list of values in order, or null for absent")),
        }
    }
}

/// Expected headers by name, in the order written (a map or a list of pairs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderExpect(pub Vec<(String, HeaderWant)>);

impl<'de> Deserialize<'de> for HeaderExpect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        named_entries(d, "a map of names to a value, a list of values or null, or a list of [name, value] pairs").map(HeaderExpect)
    }
}

fn scalar_text(value: serde_yaml::Value) -> Option<String> {
    match value {
        serde_yaml::Value::String(s) => Some(s),
        serde_yaml::Value::Number(n) => Some(n.to_string()),
        serde_yaml::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A body as bytes: written as text, as `{ base64: ... }`, or as
/// `{ file: path }` (relative to the scenario file, read when it loads), so
/// binary bodies arrive byte for byte.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum BodySpec {
    Bytes(Vec<u8>),
    File(String),
    #[default]
    Empty,
}

impl BodySpec {
    /// The bytes; a file not yet read (a scenario parsed, not loaded) is empty.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Self::Bytes(b) => b.clone(),
            Self::File(_) | Self::Empty => Vec::new(),
        }
    }

    fn resolve(&mut self, base: &Path, field: &str) -> Result<(), HarnessError> {
        if let Self::File(name) = self {
            let path = base.join(&*name);
            let bytes = std::fs::read(&path).map_err(|e| HarnessError::Scenario(format!("{field}: {}: {e}", path.display())))?;
            *self = Self::Bytes(bytes);
        }
        Ok(())
    }
}

impl<'de> Deserialize<'de> for BodySpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Form {
            base64: Option<String>,
            file: Option<String>,
        }
        let value = serde_yaml::Value::deserialize(d)?;
        if let serde_yaml::Value::Mapping(_) = value {
            let form = Form::deserialize(value).map_err(de::Error::custom)?;
            return match form {
                Form { base64: Some(text), file: None } => {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD
                        .decode(text.trim())
                        .map(Self::Bytes)
                        .map_err(|e| de::Error::custom(format!("base64: {e}")))
                }
                Form { base64: None, file: Some(file) } => Ok(Self::File(file)),
                _ => Err(de::Error::custom("a body is text, `{ base64: ... }` or `{ file: path }`")),
            };
        }
        scalar_text(value)
            .map(|t| Self::Bytes(t.into_bytes()))
            .ok_or_else(|| de::Error::custom("a body is text, `{ base64: ... }` or `{ file: path }`"))
    }
}

/// A header value written as a string, number or boolean.
struct ScalarText(String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_yaml::Value::deserialize(d)?;
        scalar_text(value).map(Self).ok_or_else(|| de::Error::custom("expected a string, number or boolean"))
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PluginSpec {
    #[serde(default)]
    pub root_id: Option<String>,
    /// The plugin configuration: a YAML/JSON structure is passed as JSON
    /// (as Istio passes `pluginConfig`); a string is passed as it is, like
    /// the `value` of Envoy's `StringValue` (`config: "plain text"`).
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
    /// Worker VMs (Envoy's `--concurrency`); requests go to the first.
    #[serde(default)]
    pub workers: Option<usize>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ReplySpec {
    #[serde(default = "ok_status")]
    pub status: u16,
    #[serde(default)]
    pub headers: Pairs,
    #[serde(default)]
    pub body: BodySpec,
    #[serde(default)]
    pub grpc_status: u32,
    #[serde(default)]
    pub grpc_message: String,
    /// The call fails (reset): no response reaches the module.
    #[serde(default)]
    pub fail: bool,
    /// The answer comes this long after the call, in virtual time; at or
    /// past the call's own timeout the call times out instead.
    #[serde(default)]
    pub delay_ms: u64,
}

impl ReplySpec {
    pub fn to_reply(&self) -> CallReply {
        CallReply {
            status: self.status,
            headers: self.headers.0.clone(),
            body: self.body.bytes(),
            trailers: Vec::new(),
            grpc_status: self.grpc_status,
            grpc_message: self.grpc_message.clone(),
            fail: self.fail,
            delay: std::time::Duration::from_millis(self.delay_ms),
        }
    }
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
    pub body: Option<BodySpec>,
    #[serde(default)]
    pub chunks: Vec<BodySpec>,
    #[serde(default)]
    pub trailers: Pairs,
    #[serde(default)]
    pub properties: BTreeMap<String, PropertyValue>,
    /// An HTTP/2 client through an HTTP/2 cluster (`Request::http2`).
    #[serde(default)]
    pub http2: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UpstreamSpec {
    #[serde(default = "ok_status")]
    pub status: u16,
    #[serde(default)]
    pub headers: Pairs,
    #[serde(default)]
    pub body: Option<BodySpec>,
    /// The body in chunks, framed without a content-length (chunked, or
    /// until the upstream closes): each chunk is one body callback.
    #[serde(default)]
    pub chunks: Vec<BodySpec>,
    #[serde(default)]
    pub trailers: Pairs,
    /// Router attempts, retries included (`upstream.request_attempt_count`).
    #[serde(default)]
    pub attempts: Option<u32>,
    /// The route's timeout (default 15000; 0: none).
    #[serde(default)]
    pub route_timeout_ms: Option<u32>,
}

/// Expectations on headers and body of one side.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MessageExpect {
    #[serde(default)]
    pub path: Option<String>,
    /// By name: the first value, every value in order (a list), or absent (null).
    #[serde(default)]
    pub headers: HeaderExpect,
    #[serde(default)]
    pub absent_headers: Vec<String>,
    #[serde(default)]
    pub body: Option<BodySpec>,
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
    /// Answers to the module's calls made during this request, by cluster,
    /// in the order the calls are made; the plugin's `clusters` answer the rest.
    #[serde(default)]
    pub calls: BTreeMap<String, Vec<ReplySpec>>,
    /// Virtual time that passes before this request: every VM's timer fires
    /// as often as its tick period fits in it. No real time passes.
    #[serde(default)]
    pub advance_ms: u64,
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
        let mut scenario = Self::parse(&path.display().to_string(), &text)?;
        scenario.read_body_files(path.parent().unwrap_or(Path::new(".")))?;
        Ok(scenario)
    }

    /// Reads every `{ file: ... }` body, relative to `base`.
    pub fn read_body_files(&mut self, base: &Path) -> Result<(), HarnessError> {
        for (name, reply) in self.plugin.clusters.iter_mut() {
            reply.body.resolve(base, &format!("plugin.clusters.{name}.body"))?;
        }
        for (i, step) in self.requests.iter_mut().enumerate() {
            let at = format!("requests[{i}]");
            if let Some(body) = step.request.body.as_mut() {
                body.resolve(base, &format!("{at}.request.body"))?;
            }
            for (j, chunk) in step.request.chunks.iter_mut().enumerate() {
                chunk.resolve(base, &format!("{at}.request.chunks[{j}]"))?;
            }
            if let Some(up) = step.upstream.as_mut() {
                if let Some(body) = up.body.as_mut() {
                    body.resolve(base, &format!("{at}.upstream.body"))?;
                }
                for (j, chunk) in up.chunks.iter_mut().enumerate() {
                    chunk.resolve(base, &format!("{at}.upstream.chunks[{j}]"))?;
                }
            }
            for (side, expect) in [("upstream", step.expect.upstream.as_mut()), ("response", step.expect.response.as_mut())] {
                if let Some(body) = expect.and_then(|e| e.body.as_mut()) {
                    body.resolve(base, &format!("{at}.expect.{side}.body"))?;
                }
            }
            for (cluster, replies) in step.calls.iter_mut() {
                for (j, reply) in replies.iter_mut().enumerate() {
                    reply.body.resolve(base, &format!("{at}.calls.{cluster}[{j}].body"))?;
                }
            }
        }
        Ok(())
    }

    /// Parses a scenario; errors read `file:line:column: field: problem`.
    pub fn parse(name: &str, text: &str) -> Result<Self, HarnessError> {
        let scenario = Self::parse_fields(name, text)?;
        scenario.check_property_names(name)?;
        Ok(scenario)
    }

    /// Every property name must parse (brackets closed, quotes matched).
    fn check_property_names(&self, file: &str) -> Result<(), HarnessError> {
        let plugin = self.plugin.properties.keys().map(|k| ("plugin.properties".to_string(), k));
        let requests = self
            .requests
            .iter()
            .enumerate()
            .flat_map(|(i, step)| step.request.properties.keys().map(move |k| (format!("requests[{i}].request.properties"), k)));
        for (field, name) in plugin.chain(requests) {
            crate::property_path::parse_path(name).map_err(|e| HarnessError::Scenario(format!("{file}: {field}: {e}")))?;
        }
        Ok(())
    }

    fn parse_fields(name: &str, text: &str) -> Result<Self, HarnessError> {
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
        match &spec.config {
            Some(serde_json::Value::String(raw)) => config = config.configuration(raw.clone()),
            Some(value) => config = config.json(value),
            None => {}
        }
        if let Some(n) = spec.workers {
            config = config.workers(n);
        }
        if let Some(vm) = &spec.vm_config {
            config = config.vm_configuration(vm.clone());
        }
        for (name, value) in &spec.properties {
            config.properties.insert(split_path(name), value.clone());
        }
        for (name, reply) in &spec.clusters {
            config.clusters.insert(name.clone(), reply.to_reply());
        }
        config.env = spec.env.0.clone();
        if let Some(level) = spec.log_level {
            config.log_level = level;
        }
        config
    }
}

impl Step {
    /// The request, with the answers scripted for its calls.
    pub fn to_request(&self) -> Request {
        let mut request = self.request.to_request();
        for (cluster, replies) in &self.calls {
            for reply in replies {
                request = request.call(cluster, reply.to_reply());
            }
        }
        request
    }

    pub fn to_upstream(&self) -> UpstreamResponse {
        self.upstream.as_ref().map(UpstreamSpec::to_response).unwrap_or_else(UpstreamResponse::ok)
    }
}

impl RequestSpec {
    pub fn to_request(&self) -> Request {
        let mut request = Request::new(&self.method, &self.path);
        for (k, v) in &self.headers.0 {
            request = request.header(k, v);
        }
        if let Some(body) = &self.body {
            request = request.body(body.bytes());
        } else if !self.chunks.is_empty() {
            request = request.chunks(self.chunks.iter().map(BodySpec::bytes));
        }
        for (k, v) in &self.trailers.0 {
            request = request.trailer(k, v);
        }
        for (name, value) in &self.properties {
            request.properties.insert(split_path(name), value.clone());
        }
        if self.http2 {
            request = request.http2();
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
            response = response.body(body.bytes());
        } else if !self.chunks.is_empty() {
            response = response.chunks(self.chunks.iter().map(BodySpec::bytes));
        }
        for (k, v) in &self.trailers.0 {
            response = response.trailer(k, v);
        }
        if let Some(n) = self.attempts {
            response = response.attempts(n);
        }
        if let Some(ms) = self.route_timeout_ms {
            response = response.route_timeout_ms(ms);
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

    #[test]
    fn bodies_come_as_text_base64_or_a_file_and_configs_as_raw_text() {
        let dir = std::env::temp_dir().join(format!("harness-scenario-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("body.bin"), [0xfe, 0x00]).unwrap();
        let text = r#"
plugin:
  config: "plain text, not JSON"
  clusters: { authz: { body: { base64: "/g==" } } }
requests:
  - request: { method: POST, body: { file: body.bin } }
    calls: { authz: [{ status: 503, delayMs: 20 }] }
    upstream: { chunks: ["a", { base64: "/w==" }] }
"#;
        let path = dir.join("s.yaml");
        std::fs::write(&path, text).unwrap();
        let s = Scenario::load(&path).unwrap();
        let config = s.plugin_config();
        assert_eq!(config.configuration, b"plain text, not JSON".to_vec());
        assert_eq!(config.clusters["authz"].body, vec![0xfe]);
        let step = &s.requests[0];
        assert_eq!(step.to_request().body, vec![vec![0xfe, 0x00]]);
        let scripted = &step.to_request().calls["authz"][0];
        assert_eq!((scripted.status, scripted.delay), (503, std::time::Duration::from_millis(20)));
        let upstream = step.to_upstream();
        assert_eq!(upstream.body, vec![b"a".to_vec(), vec![0xff]]);
        assert!(!upstream.headers.iter().any(|(k, _)| k == "content-length"));
        let err = Scenario::parse("s.yaml", "requests:\n  - request: { body: { base64: \"%%\" } }\n").unwrap_err().to_string();
        assert!(err.contains("requests[0].request.body") && err.contains("base64"), "{err}");
    }

    #[test]
    fn header_expectations_take_a_value_every_value_or_absence() {
        let text = "requests:\n  - request: {}\n    expect:\n      upstream: { headers: { x-a: [\"1\", \"2\"], x-b: null, x-c: v } }\n";
        let s = Scenario::parse("s.yaml", text).unwrap();
        let want = &s.requests[0].expect.upstream.as_ref().unwrap().headers.0;
        assert_eq!(want[0], ("x-a".to_string(), HeaderWant::All(vec!["1".into(), "2".into()])));
        assert_eq!(want[1], ("x-b".to_string(), HeaderWant::Absent));
        assert_eq!(want[2], ("x-c".to_string(), HeaderWant::First("v".into())));
    }

    #[test]
    fn a_property_name_with_an_open_bracket_is_refused() {
        let err = Scenario::parse("s.yaml", "plugin: { properties: { 'a[\"b': 1 } }\nrequests: []\n").unwrap_err().to_string();
        assert!(err.contains("plugin.properties") && err.contains("not closed"), "{err}");
    }
}
