//! The JSON Schemas (draft 2020-12) of each filter's `pluginConfig`, kept
//! in `schemas/<filter>.schema.json`, validated with the `jsonschema` crate.

use crate::envoy::workspace_root;
use serde_json::Value;
use std::path::PathBuf;

/// The filters that publish a schema.
pub const FILTERS: [&str; 4] = ["header-router", "mirror-sanitizer", "principal-authz", "retry-hints"];

pub fn schema_path(filter: &str) -> PathBuf {
    workspace_root().join(format!("schemas/{filter}.schema.json"))
}

/// A filter's schema, compiled; it must be a valid draft 2020-12 schema.
pub struct FilterSchema {
    pub filter: String,
    pub document: Value,
    validator: jsonschema::Validator,
}

impl FilterSchema {
    pub fn load(filter: &str) -> Result<Self, String> {
        let path = schema_path(filter);
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let document: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        if document["$schema"] != "https://json-schema.org/draft/2020-12/schema" {
            return Err(format!("{}: $schema is not draft 2020-12", path.display()));
        }
        jsonschema::draft202012::meta::validate(&document).map_err(|e| format!("{}: not a valid schema: {e}", path.display()))?;
        let validator = jsonschema::draft202012::new(&document).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Self { filter: filter.to_string(), document, validator })
    }

    /// What is wrong with `config`, each as `<JSON pointer>: <message>`.
    pub fn violations(&self, config: &Value) -> Vec<String> {
        self.validator.iter_errors(config).map(|e| format!("{}: {e}", e.instance_path())).collect()
    }

    pub fn accepts(&self, config: &Value) -> bool {
        self.validator.is_valid(config)
    }
}
