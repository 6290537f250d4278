//! Configuration errors that name the field they are about, in the form users
//! write it: `rules[2].to[0].operation.paths[1]: …`.

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
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        // serde_path_to_error writes "." for the root.
        let path = if path == "." { FieldPath::root() } else { FieldPath(path) };
        let inner = e.into_inner();
        // serde_json appends " at line L column C"; keep it only for syntax
        // errors, where the field path says nothing.
        let message = if inner.is_syntax() || inner.is_eof() {
            inner.to_string()
        } else {
            strip_position(&inner.to_string())
        };
        path.error(message)
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
}
