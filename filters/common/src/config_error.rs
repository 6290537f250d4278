//! Configuration errors that name the field they are about, in the form users
//! write it: `rules[2].to[0].operation.paths[1]: …`.

use crate::json_path;
use serde::de::DeserializeOwned;
use std::fmt;

/// Where in the config a value sits. Cheap to clone and extend while walking
/// a config during compilation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn root() -> Self {
        Self::default()
    }

    /// The path one field further down: `rules` → `rules.from`.
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            Self(name.to_string())
        } else {
            Self(format!("{}.{name}", self.0))
        }
    }

    /// The path of one element of a list: `rules` → `rules[2]`.
    pub fn index(&self, i: usize) -> Self {
        Self(format!("{}[{i}]", self.0))
    }

    /// An error about the value at this path.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError { path: self.clone(), message: message.into() }
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("(config)")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// A configuration the filter refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub path: FieldPath,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Parses plugin configuration JSON into `T`. A missing or empty
/// configuration parses as `{}`, so a filter whose fields all have defaults
/// starts without one. Errors, unknown fields included, carry the field path.
pub fn parse_json<T: DeserializeOwned>(bytes: Option<&[u8]>) -> Result<T, ConfigError> {
    let bytes = match bytes {
        Some(b) if !b.iter().all(u8::is_ascii_whitespace) => b,
        _ => b"{}",
    };
    serde_json::from_slice(bytes).map_err(|e| {
        // serde_json appends " at line L column C"; keep it only for syntax
        // errors, where the field path says nothing.
        if e.is_syntax() || e.is_eof() {
            return FieldPath::root().error(e.to_string());
        }
        let path = json_path::path_at(bytes, json_path::offset_of(bytes, e.line(), e.column()));
        let path = if path.is_empty() { FieldPath::root() } else { FieldPath(path) };
        path.error(strip_position(&e.to_string()))
    })
}

fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message.get(..at).unwrap_or(message).to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    struct Policy {
        #[serde(default)]
        rules: Vec<Rule>,
        #[serde(default)]
        dry_run: bool,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rule {
        #[allow(dead_code)]
        paths: Vec<String>,
    }

    #[test]
    fn paths_read_like_the_config() {
        let p = FieldPath::root().field("rules").index(2).field("to").index(0).field("paths").index(1);
        assert_eq!(p.to_string(), "rules[2].to[0].paths[1]");
        assert_eq!(p.error("must not be empty").to_string(), "rules[2].to[0].paths[1]: must not be empty");
        assert_eq!(FieldPath::root().error("x").to_string(), "(config): x");
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let err = parse_json::<Policy>(Some(br#"{"rules":[{"paths":[]},{"paths":[],"methods":[]}]}"#)).unwrap_err();
        assert_eq!(err.path.to_string(), "rules[1].methods");
        assert!(err.message.contains("unknown field `methods`"), "{err}");
        assert!(!err.message.contains("line"), "{err}");
    }

    #[test]
    fn wrong_types_name_the_field() {
        let err = parse_json::<Policy>(Some(br#"{"dryRun":"yes"}"#)).unwrap_err();
        assert_eq!(err.path.to_string(), "dryRun");
        assert!(err.message.contains("expected a boolean"), "{err}");
        let err = parse_json::<Policy>(Some(br#"{"rules":[{"paths":[1]}]}"#)).unwrap_err();
        assert_eq!(err.path.to_string(), "rules[0].paths[0]");
    }

    #[test]
    fn syntax_errors_keep_their_position() {
        let err = parse_json::<Policy>(Some(b"{\"rules\": [")).unwrap_err();
        assert!(err.message.contains("line 1"), "{err}");
    }

    #[test]
    fn missing_or_blank_config_is_empty_object() {
        assert!(parse_json::<Policy>(None).unwrap().rules.is_empty());
        assert!(!parse_json::<Policy>(Some(b"  \n")).unwrap().dry_run);
    }

    #[test]
    fn non_utf8_config_is_an_error() {
        assert!(parse_json::<Policy>(Some(&[b'{', 0xff, b'}'])).is_err());
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Doc {
        #[serde(default)]
        rules: Vec<DocRule>,
        #[serde(default)]
        dry_run: bool,
        #[serde(default)]
        labels: std::collections::BTreeMap<String, Vec<u8>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct DocRule {
        name: String,
        retry: Option<DocRetry>,
        #[serde(default)]
        matches: Vec<Vec<DocRetry>>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields, rename_all = "camelCase")]
    #[allow(dead_code)]
    struct DocRetry {
        attempts: u32,
        per_try_timeout: Option<String>,
    }

    #[test]
    fn paths_agree_with_a_path_tracking_deserializer() {
        let cases = [
            r#"{"nope":1}"#,
            r#"{"dryRun":1}"#,
            r#"{"rules":{}}"#,
            r#"{"rules":[{"name":"a"},{"name":2}]}"#,
            r#"{"rules":[{"name":"a","retry":{"attempts":-1}}]}"#,
            r#"{"rules":[{"name":"a","retry":{"attempts":99999999999}}]}"#,
            r#"{"rules":[{"name":"a","retry":{"perTryTimeout":"1s"}}]}"#,
            r#"{"rules":[{"name":"a","retry":{"attempts":1,"perTryTimeout":5}}]}"#,
            r#"{"rules":[{"name":"a","retry":{"attempts":1,"x":5}}]}"#,
            r#"{"rules":[{"retry":null}]}"#,
            r#"{"rules":[{"name":"a","matches":[[],[{"attempts":1},{"attempts":"2"}]]}]}"#,
            r#"{"rules":[{"name":"a","matches":[[],[{"attempts":1},{}]]}]}"#,
            r#"{"labels":{"a.b":[1,2],"c":[1,300]}}"#,
            r#"{"labels":{"q\"[x":[1,"2"]}}"#,
            "{\n  \"rules\": [\n    {\"name\": \"a\"},\n    {\"name\": \"b\", \"retry\": {\n      \"attempts\": true\n    }}\n  ]\n}",
            "{\n  \"dryRun\": false,\n  \"räder\": 1\n}",
            r#"[1]"#,
            r#"7"#,
        ];
        for case in cases {
            let ours = parse_json::<Doc>(Some(case.as_bytes())).unwrap_err();
            let theirs = serde_path_to_error::deserialize::<_, Doc>(&mut serde_json::Deserializer::from_str(case)).unwrap_err();
            let path = theirs.path().to_string();
            let path = if path == "." { "(config)".to_string() } else { path };
            assert_eq!(ours.path.to_string(), path, "{case}: {ours}");
        }
    }

}
