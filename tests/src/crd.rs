//! Offline validation of Istio manifests against the CRDs' `openAPIV3Schema`,
//! read as the API server reads a structural schema and checked by the
//! `jsonschema` crate (types, unknown fields, required, enums, bounds,
//! patterns, oneOf/anyOf/allOf/not), plus, by hand, the CEL rules users trip
//! over that the schema leaves out: a WasmPlugin `url` scheme, and at most
//! one of `selector` / `targetRef` / `targetRefs`.

use serde::Deserialize;
use serde_json::Value;
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
#[derive(Default)]
pub struct Schemas {
    by_kind: HashMap<(String, String), jsonschema::Validator>,
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
                schemas.add_crd(&crd).map_err(|e| format!("{}: {e}", path.display()))?;
            }
        }
        if schemas.by_kind.is_empty() {
            return Err(format!("no CustomResourceDefinitions in {}", dir.display()));
        }
        Ok(schemas)
    }

    fn add_crd(&mut self, crd: &Value) -> Result<(), String> {
        let (Some(group), Some(kind)) = (crd["spec"]["group"].as_str(), crd["spec"]["names"]["kind"].as_str()) else {
            return Ok(());
        };
        for version in crd["spec"]["versions"].as_array().into_iter().flatten() {
            if version["served"] != Value::Bool(true) {
                continue;
            }
            if let Some(name) = version["name"].as_str() {
                let schema = to_json_schema(&version["schema"]["openAPIV3Schema"]);
                let validator = jsonschema::draft202012::new(&schema).map_err(|e| format!("{group}/{name} {kind}: {e}"))?;
                self.by_kind.insert((format!("{group}/{name}"), kind.to_string()), validator);
            }
        }
        Ok(())
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
        let Some(validator) = self.by_kind.get(&(api_version.to_string(), kind.to_string())) else {
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
        check(validator, &body, &mut out);
        check_cel_rules(kind, &doc["spec"], &mut out);
        out.sort_by(|a, b| a.field.cmp(&b.field));
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

/// A CRD's structural schema (OpenAPI v3 with Kubernetes extensions) as a
/// JSON Schema with the API server's reading of it: an object whose shape is
/// declared has no other fields unless it preserves unknown fields;
/// `x-kubernetes-int-or-string` is an integer or a string; OpenAPI's
/// boolean `exclusiveMinimum`/`exclusiveMaximum` become the numeric form.
/// Value-only schemas (inside oneOf/anyOf/not) say nothing of fields.
pub fn to_json_schema(structural: &Value) -> Value {
    let mut schema = structural.clone();
    convert(&mut schema);
    if let Some(map) = schema.as_object_mut() {
        map.insert("$schema".into(), Value::String("https://json-schema.org/draft/2020-12/schema".into()));
    }
    schema
}

fn convert(schema: &mut Value) {
    let Some(map) = schema.as_object_mut() else { return };
    if map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        map.insert("type".into(), serde_json::json!(["integer", "string"]));
    }
    for (flag, bound) in [("exclusiveMaximum", "maximum"), ("exclusiveMinimum", "minimum")] {
        if map.get(flag).is_some_and(Value::is_boolean) {
            let exclusive = map.remove(flag) == Some(Value::Bool(true));
            if let (true, Some(limit)) = (exclusive, map.get(bound).cloned()) {
                map.remove(bound);
                map.insert(flag.into(), limit);
            }
        }
    }
    let shaped = map.get("type").is_some_and(|t| t == "object");
    let preserve = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    if shaped && !preserve && !map.contains_key("additionalProperties") {
        map.insert("additionalProperties".into(), Value::Bool(false));
    }
    for (key, sub) in map.iter_mut() {
        match key.as_str() {
            "properties" | "patternProperties" | "$defs" | "definitions" => {
                if let Some(subs) = sub.as_object_mut() {
                    subs.values_mut().for_each(convert);
                }
            }
            "items" | "additionalProperties" | "not" => convert(sub),
            "oneOf" | "anyOf" | "allOf" => {
                if let Some(subs) = sub.as_array_mut() {
                    subs.iter_mut().for_each(convert);
                }
            }
            _ => {}
        }
    }
}

/// The document as the API server stores it: null fields dropped.
fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(map.iter().filter(|(_, v)| !v.is_null()).map(|(k, v)| (k.clone(), without_nulls(v))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

/// `/spec/rules/0/to` → `spec.rules[0].to`.
fn field_path(location: &jsonschema::paths::Location) -> String {
    let mut path = String::new();
    for segment in location.iter() {
        match segment {
            jsonschema::paths::LocationSegment::Index(i) => path.push_str(&format!("[{i}]")),
            jsonschema::paths::LocationSegment::Property(name) => path = join(&path, &name),
        }
    }
    path
}

/// Validates `body` (a document without apiVersion, kind, metadata).
fn check(validator: &jsonschema::Validator, body: &Value, out: &mut Vec<Violation>) {
    let body = without_nulls(body);
    for error in validator.iter_errors(&body) {
        let path = field_path(error.instance_path());
        match error.kind() {
            jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                for name in unexpected {
                    violation(out, &join(&path, name), "unknown field".into());
                }
            }
            jsonschema::error::ValidationErrorKind::Required { property } => {
                violation(out, &join(&path, property.as_str().unwrap_or_default()), "required".into());
            }
            _ => violation(out, &path, error.to_string()),
        }
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
    fn structural_schemas_read_as_the_api_server_reads_them() {
        let structural = json!({
            "type": "object",
            "properties": {
                "port": { "x-kubernetes-int-or-string": true },
                "ratio": { "type": "number", "maximum": 1, "exclusiveMaximum": true },
                "config": { "type": "object", "x-kubernetes-preserve-unknown-fields": true },
            },
        });
        let validator = jsonschema::draft202012::new(&to_json_schema(&structural)).unwrap();
        let run = |doc: Value| {
            let mut out = Vec::new();
            check(&validator, &doc, &mut out);
            fields(&out).into_iter().map(str::to_string).collect::<Vec<_>>()
        };
        assert_eq!(run(json!({ "port": 8080, "ratio": 0.5, "config": { "any": [1] }, "ratio2": 1 })), ["ratio2"], "unknown field");
        assert_eq!(run(json!({ "port": "http", "config": null })), Vec::<String>::new(), "nulls are dropped");
        assert_eq!(run(json!({ "port": true, "ratio": 1 })), ["port", "ratio"]);
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
