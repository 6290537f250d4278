//! Offline validation of Istio manifests against the CRDs' `openAPIV3Schema`
//! (structural schemas: types, unknown fields, required, enums, bounds,
//! patterns, oneOf/anyOf/allOf/not), plus the CEL rules users trip over that
//! the schema cannot express: a WasmPlugin `url` scheme, and at most one of
//! `selector` / `targetRef` / `targetRefs`.

use regex_lite::Regex;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::fs;
use std::path::Path;

/// One thing wrong with one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// `spec.rules[0].to[0].operation.paths[1]`, or empty for the document.
    pub field: String,
    pub message: String,
}

/// The schemas of every served version of every CRD loaded, keyed by
/// (`group/version`, kind).
#[derive(Debug, Default)]
pub struct Schemas {
    by_kind: HashMap<(String, String), Value>,
}

/// Parses every YAML document in `text` into JSON values, skipping empty ones.
pub fn yaml_documents(text: &str) -> Result<Vec<Value>, String> {
    let mut docs = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let value = Value::deserialize(doc).map_err(|e| format!("document {}: {e}", i + 1))?;
        if !value.is_null() {
            docs.push(value);
        }
    }
    Ok(docs)
}

impl Schemas {
    /// Loads every `*.yaml` CRD in `dir`.
    pub fn load_dir(dir: &Path) -> Result<Self, String> {
        let mut schemas = Self::default();
        let entries = fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths.iter().filter(|p| p.extension().is_some_and(|e| e == "yaml")) {
            let text = fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
            for crd in yaml_documents(&text).map_err(|e| format!("{}: {e}", path.display()))? {
                schemas.add_crd(&crd);
            }
        }
        if schemas.by_kind.is_empty() {
            return Err(format!("no CustomResourceDefinitions in {}", dir.display()));
        }
        Ok(schemas)
    }

    fn add_crd(&mut self, crd: &Value) {
        let (Some(group), Some(kind)) = (crd["spec"]["group"].as_str(), crd["spec"]["names"]["kind"].as_str()) else {
            return;
        };
        for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
            if version["served"] != Value::Bool(true) {
                continue;
            }
            if let Some(name) = version["name"].as_str() {
                let key = (format!("{group}/{name}"), kind.to_string());
                self.by_kind.insert(key, version["schema"]["openAPIV3Schema"].clone());
            }
        }
    }

    /// Every `apiVersion kind` pair known, for error messages.
    pub fn known(&self) -> Vec<String> {
        let mut known: Vec<String> = self.by_kind.keys().map(|(v, k)| format!("{v} {k}")).collect();
        known.sort();
        known
    }

    /// Validates one manifest document.
    pub fn validate(&self, doc: &Value) -> Vec<Violation> {
        let mut out = Vec::new();
        let api_version = doc["apiVersion"].as_str().unwrap_or_default();
        let kind = doc["kind"].as_str().unwrap_or_default();
        let Some(schema) = self.by_kind.get(&(api_version.to_string(), kind.to_string())) else {
            out.push(Violation {
                field: String::new(),
                message: format!("no schema for apiVersion {api_version:?} kind {kind:?}; known: {}", self.known().join(", ")),
            });
            return out;
        };
        if doc["metadata"]["name"].as_str().is_none_or(str::is_empty) {
            out.push(Violation { field: "metadata.name".into(), message: "required".into() });
        }
        // The API server owns apiVersion, kind and metadata; the schema covers the rest.
        let mut body = doc.clone();
        if let Some(map) = body.as_object_mut() {
            for key in ["apiVersion", "kind", "metadata"] {
                map.remove(key);
            }
        }
        check(schema, &body, "", &mut out);
        check_cel_rules(kind, &doc["spec"], &mut out);
        out
    }
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn violation(out: &mut Vec<Violation>, path: &str, message: String) {
    out.push(Violation { field: path.to_string(), message });
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "number" => value.is_number(),
        other => type_name(value) == other,
    }
}

/// Validates `value` against a structural schema, appending what is wrong.
fn check(schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
    // The API server drops nulls of non-nullable fields; treat them as absent.
    if value.is_null() {
        return;
    }
    if schema["x-kubernetes-int-or-string"] == Value::Bool(true) {
        if !(value.is_string() || type_name(value) == "integer") {
            violation(out, path, format!("must be an integer or a string, not {}", type_name(value)));
        }
    } else if let Some(expected) = schema["type"].as_str() {
        if !type_matches(expected, value) {
            violation(out, path, format!("must be {expected}, not {}", type_name(value)));
            return;
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            let list: Vec<String> = allowed.iter().map(Value::to_string).collect();
            violation(out, path, format!("{value} is not one of {}", list.join(", ")));
        }
    }
    match value {
        Value::String(s) => check_string(schema, s, path, out),
        Value::Number(n) => check_number(schema, n.as_f64().unwrap_or_default(), path, out),
        Value::Array(items) => check_array(schema, items, path, out),
        Value::Object(map) => check_object(schema, map, path, out),
        _ => {}
    }
    check_combinators(schema, value, path, out);
}

fn check_string(schema: &Value, s: &str, path: &str, out: &mut Vec<Violation>) {
    let len = s.chars().count() as u64;
    if let Some(max) = schema["maxLength"].as_u64().filter(|max| len > *max) {
        violation(out, path, format!("longer than {max} characters"));
    }
    if let Some(min) = schema["minLength"].as_u64().filter(|min| len < *min) {
        violation(out, path, format!("shorter than {min} characters"));
    }
    if let Some(pattern) = schema["pattern"].as_str() {
        match Regex::new(pattern) {
            Ok(re) if !re.is_match(s) => violation(out, path, format!("{s:?} does not match {pattern}")),
            Ok(_) => {}
            Err(e) => violation(out, path, format!("schema pattern {pattern} does not compile: {e}")),
        }
    }
}

fn check_number(schema: &Value, n: f64, path: &str, out: &mut Vec<Violation>) {
    if let Some(max) = schema["maximum"].as_f64() {
        let exclusive = schema["exclusiveMaximum"] == Value::Bool(true);
        if n > max || (exclusive && n >= max) {
            violation(out, path, format!("{n} is above the maximum {max}"));
        }
    }
    if let Some(min) = schema["minimum"].as_f64() {
        let exclusive = schema["exclusiveMinimum"] == Value::Bool(true);
        if n < min || (exclusive && n <= min) {
            violation(out, path, format!("{n} is below the minimum {min}"));
        }
    }
}

fn check_array(schema: &Value, items: &[Value], path: &str, out: &mut Vec<Violation>) {
    let len = items.len() as u64;
    if let Some(max) = schema["maxItems"].as_u64().filter(|max| len > *max) {
        violation(out, path, format!("more than {max} items"));
    }
    if let Some(min) = schema["minItems"].as_u64().filter(|min| len < *min) {
        violation(out, path, format!("fewer than {min} items"));
    }
    if schema["items"].is_object() {
        for (i, item) in items.iter().enumerate() {
            check(&schema["items"], item, &format!("{path}[{i}]"), out);
        }
    }
}

fn check_object(schema: &Value, map: &Map<String, Value>, path: &str, out: &mut Vec<Violation>) {
    let properties = schema["properties"].as_object();
    let additional = &schema["additionalProperties"];
    // Only a schema that declares the object's shape prunes unknown fields;
    // the value-only schemas inside oneOf/anyOf/not say nothing of them.
    let shaped = schema["type"] == "object";
    let preserve = !shaped || schema["x-kubernetes-preserve-unknown-fields"] == Value::Bool(true);
    for (key, value) in map {
        let field = join(path, key);
        if let Some(sub) = properties.and_then(|p| p.get(key)) {
            check(sub, value, &field, out);
        } else if additional.is_object() {
            check(additional, value, &field, out);
        } else if !(preserve || *additional == Value::Bool(true)) {
            violation(out, &field, "unknown field".into());
        }
    }
    for required in schema["required"].as_array().into_iter().flatten().filter_map(Value::as_str) {
        if map.get(required).is_none_or(Value::is_null) {
            violation(out, &join(path, required), "required".into());
        }
    }
    let count = map.len() as u64;
    if let Some(max) = schema["maxProperties"].as_u64().filter(|max| count > *max) {
        violation(out, path, format!("more than {max} entries"));
    }
}

/// True when `value` satisfies `schema` (for the combinators).
fn passes(schema: &Value, value: &Value) -> bool {
    let mut out = Vec::new();
    check(schema, value, "", &mut out);
    out.is_empty()
}

fn check_combinators(schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
    // Istio's CRDs use these over `required` lists to say "only one of".
    if let Some(options) = schema["oneOf"].as_array() {
        let passing = options.iter().filter(|o| passes(o, value)).count();
        if passing != 1 {
            let fields = alternatives(options);
            let message = if passing == 0 { "matches none of the allowed forms" } else { "sets more than one of" };
            violation(out, path, format!("{message} {fields}"));
        }
    }
    if let Some(options) = schema["anyOf"].as_array() {
        if !options.iter().any(|o| passes(o, value)) {
            violation(out, path, format!("must set one of {}", alternatives(options)));
        }
    }
    for sub in schema["allOf"].as_array().into_iter().flatten() {
        check(sub, value, path, out);
    }
    if schema["not"].is_object() && passes(&schema["not"], value) {
        violation(out, path, "matches a form the schema forbids".into());
    }
}

/// The fields named by `required` lists inside combinator options.
fn alternatives(options: &[Value]) -> String {
    let mut names: Vec<&str> = options
        .iter()
        .flat_map(|o| o["required"].as_array().into_iter().flatten().filter_map(Value::as_str))
        .collect();
    names.dedup();
    if names.is_empty() {
        "the allowed forms".into()
    } else {
        names.join(", ")
    }
}

/// The CEL rules (`x-kubernetes-validations`) worth checking offline.
fn check_cel_rules(kind: &str, spec: &Value, out: &mut Vec<Violation>) {
    let targets = ["selector", "targetRef", "targetRefs"].iter().filter(|f| !spec[**f].is_null()).count();
    if targets > 1 {
        violation(out, "spec", "only one of targetRefs or selector can be set".into());
    }
    if let Some(labels) = spec["selector"]["matchLabels"].as_object() {
        for (key, value) in labels {
            let field = format!("spec.selector.matchLabels.{key}");
            if key.is_empty() || key.contains('*') {
                violation(out, &field, "label keys must be non-empty and without wildcards".into());
            }
            if value.as_str().is_some_and(|v| v.contains('*')) {
                violation(out, &field, "wildcard not allowed in label value match".into());
            }
        }
    }
    if kind == "WasmPlugin" {
        if let Some(url) = spec["url"].as_str() {
            check_wasm_url(url, out);
        }
    }
}

/// Istio reads a URL without a scheme as an OCI reference; with one, only
/// these schemes load.
fn check_wasm_url(url: &str, out: &mut Vec<Violation>) {
    const SCHEMES: [&str; 4] = ["oci", "file", "http", "https"];
    if let Some((scheme, _)) = url.split_once("://") {
        if !SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()) {
            violation(out, "spec.url", format!("scheme {scheme:?} is not one of oci://, file://, http://, https://"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schemas() -> Schemas {
        Schemas::load_dir(&crate::manifests::schema_dir()).unwrap()
    }

    fn wasm_plugin(spec: Value) -> Value {
        json!({
            "apiVersion": "extensions.istio.io/v1alpha1",
            "kind": "WasmPlugin",
            "metadata": { "name": "p", "namespace": "default" },
            "spec": spec,
        })
    }

    fn fields(v: &[Violation]) -> Vec<&str> {
        v.iter().map(|v| v.field.as_str()).collect()
    }

    #[test]
    fn a_good_wasm_plugin_passes() {
        let doc = wasm_plugin(json!({
            "selector": { "matchLabels": { "app": "payments" } },
            "url": "oci://ghcr.io/example/filter:1.0",
            "sha256": "a".repeat(64),
            "phase": "AUTHZ",
            "pluginConfig": { "anything": ["goes", 1] },
        }));
        assert_eq!(schemas().validate(&doc), vec![]);
    }

    #[test]
    fn unknown_fields_types_and_enums_are_caught_with_their_path() {
        let doc = wasm_plugin(json!({
            "url": "oci://x/y",
            "phase": "SOMETIMES",
            "priority": "high",
            "imagePullPolicy": "Always",
            "matchh": [],
        }));
        let v = schemas().validate(&doc);
        assert_eq!(fields(&v), vec!["spec.matchh", "spec.phase", "spec.priority"], "{v:?}");
    }

    #[test]
    fn cel_rules_users_trip_over() {
        let s = schemas();
        let v = s.validate(&wasm_plugin(json!({ "url": "ftp://x/y.wasm" })));
        assert_eq!(fields(&v), vec!["spec.url"]);
        assert!(s.validate(&wasm_plugin(json!({ "url": "ghcr.io/x/y:1" }))).is_empty(), "no scheme means OCI");
        let both = json!({
            "url": "file:///f.wasm",
            "selector": { "matchLabels": { "app": "a" } },
            "targetRefs": [{ "kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "gw" }],
        });
        assert_eq!(fields(&s.validate(&wasm_plugin(both))), vec!["spec"]);
        let v = s.validate(&wasm_plugin(json!({ "url": "file:///f.wasm", "sha256": "ABC" })));
        assert_eq!(fields(&v), vec!["spec.sha256"]);
        let v = s.validate(&wasm_plugin(json!({ "url": "file:///f.wasm", "sha256": "A".repeat(64) })));
        assert_eq!(fields(&v), vec!["spec.sha256"], "upper-case hex is refused");
        let v = s.validate(&wasm_plugin(json!({ "url": "file:///f.wasm", "selector": { "matchLabels": { "app": "*" } } })));
        assert_eq!(fields(&v), vec!["spec.selector.matchLabels.app"]);
    }

    #[test]
    fn one_of_catches_two_string_match_kinds() {
        let vs = json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": { "name": "r" },
            "spec": {
                "hosts": ["payments"],
                "http": [{
                    "match": [{ "uri": { "exact": "/a", "prefix": "/b" } }],
                    "route": [{ "destination": { "host": "payments" } }],
                }],
            },
        });
        let v = schemas().validate(&vs);
        assert_eq!(fields(&v), vec!["spec.http[0].match[0].uri"], "{v:?}");
    }

    #[test]
    fn authorization_policy_fields_are_checked() {
        let ap = json!({
            "apiVersion": "security.istio.io/v1",
            "kind": "AuthorizationPolicy",
            "metadata": { "name": "payments-to-billing" },
            "spec": {
                "selector": { "matchLabels": { "app": "payments" } },
                "action": "PERMIT",
                "rules": [{ "from": [{ "source": { "principal": ["x"] } }] }],
            },
        });
        let v = schemas().validate(&ap);
        assert_eq!(fields(&v), vec!["spec.action", "spec.rules[0].from[0].source.principal"], "{v:?}");
    }

    #[test]
    fn missing_name_and_unknown_kinds() {
        let s = schemas();
        let v = s.validate(&json!({ "apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin", "metadata": {}, "spec": { "url": "oci://x/y" } }));
        assert_eq!(fields(&v), vec!["metadata.name"]);
        let v = s.validate(&json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "x" } }));
        assert!(v[0].message.starts_with("no schema for"), "{v:?}");
    }
}
