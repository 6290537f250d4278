//! Istio's two string-matching dialects, compiled once at configure time:
//! - [`IstioMatch`]: AuthorizationPolicy values (`exact`, `prefix*`, `*suffix`,
//!   `*` = present and non-empty);
//! - [`StringMatch`]: VirtualService `StringMatch` (`exact` / `prefix` /
//!   `regex`, RE2-style full match), built from [`StringMatchSpec`].
//!
//! Both take `Option<&str>`: `None` is an absent value, which only the
//! negative forms a caller builds on top can match.

use crate::config_error::{ConfigError, FieldPath};
use regex_lite::Regex;
use serde::Deserialize;

/// An AuthorizationPolicy string value, e.g. in `principals`, `paths`, `hosts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IstioMatch {
    Exact(String),
    Prefix(String),
    Suffix(String),
    /// `*`: the value is present and not empty.
    Present,
}

impl IstioMatch {
    /// Reads a value the way Istio does: `*` alone is presence; a leading `*`
    /// makes a suffix match (checked first, so `*a*` is the suffix `a*`); a
    /// trailing `*` a prefix match; anything else is exact.
    pub fn parse(value: &str) -> Self {
        if value == "*" {
            Self::Present
        } else if let Some(suffix) = value.strip_prefix('*') {
            Self::Suffix(suffix.to_string())
        } else if let Some(prefix) = value.strip_suffix('*') {
            Self::Prefix(prefix.to_string())
        } else {
            Self::Exact(value.to_string())
        }
    }

    /// Like [`IstioMatch::parse`], for values compared without regard to
    /// ASCII case (Istio's `hosts`): the pattern is lower-cased here, so
    /// callers pass lower-cased values to [`IstioMatch::matches`].
    pub fn parse_ignore_case(value: &str) -> Self {
        Self::parse(&value.to_ascii_lowercase())
    }

    pub fn matches(&self, value: Option<&str>) -> bool {
        let Some(value) = value else { return false };
        match self {
            Self::Exact(s) => value == s,
            Self::Prefix(s) => value.starts_with(s.as_str()),
            Self::Suffix(s) => value.ends_with(s.as_str()),
            Self::Present => !value.is_empty(),
        }
    }
}

/// VirtualService `StringMatch` as written in YAML: exactly one of the three
/// (none at all means "present", as Istio reads an empty header match).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StringMatchSpec {
    pub exact: Option<String>,
    pub prefix: Option<String>,
    pub regex: Option<String>,
}

/// A compiled VirtualService `StringMatch`.
#[derive(Debug, Clone)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    /// Anchored at both ends: Istio's regexes (Envoy `safe_regex`) must match
    /// the whole value.
    Regex(Regex),
    /// A regex that is a literal with `.*` on either side (`.*Mobile.*`),
    /// matched as a substring test: the regex engine costs tens of thousands
    /// of instructions per value, the substring test a few hundred.
    Literal(LiteralRegex),
    Present,
}

/// Where a literal sits in a `.*`-padded regex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiteralShape {
    /// `lit`
    Whole,
    /// `lit.*`
    Prefix,
    /// `.*lit`
    Suffix,
    /// `.*lit.*`
    Contains,
}

#[derive(Debug, Clone)]
pub struct LiteralRegex {
    pub shape: LiteralShape,
    pub literal: String,
    /// The same regex compiled, for values with a newline, which RE2's `.`
    /// does not match.
    pub fallback: Regex,
}

impl LiteralRegex {
    /// Recognises `lit`, `lit.*`, `.*lit`, `.*lit.*` where `lit` has no regex
    /// syntax at all.
    fn parse(re: &str, ignore_case: bool, fallback: Regex) -> Option<Self> {
        let (lead, rest) = match re.strip_prefix(".*") {
            Some(rest) => (true, rest),
            None => (false, re),
        };
        let (trail, literal) = match rest.strip_suffix(".*") {
            Some(lit) => (true, lit),
            None => (false, rest),
        };
        let plain = |c: char| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '/' | ',' | ';' | ':' | '=' | '@' | '%' | '!' | '~' | '\'' | '"' | '<' | '>' | '&' | '#');
        if literal.is_empty() || !literal.chars().all(plain) {
            return None;
        }
        let shape = match (lead, trail) {
            (false, false) => LiteralShape::Whole,
            (false, true) => LiteralShape::Prefix,
            (true, false) => LiteralShape::Suffix,
            (true, true) => LiteralShape::Contains,
        };
        let literal = if ignore_case { literal.to_lowercase() } else { literal.to_string() };
        Some(Self { shape, literal, fallback })
    }

    fn matches(&self, value: &str) -> bool {
        if value.contains('\n') {
            return self.fallback.is_match(value);
        }
        let lit = self.literal.as_str();
        match self.shape {
            LiteralShape::Whole => value == lit,
            LiteralShape::Prefix => value.starts_with(lit),
            LiteralShape::Suffix => value.ends_with(lit),
            LiteralShape::Contains => contains(value, lit),
        }
    }
}

/// Whether `literal` occurs in `value`. A header value against a short literal
/// (`Mobile` in a user agent) is searched byte by byte from each occurrence
/// of the literal's first byte, which costs less than the standard
/// library's two-way searcher sets up; a product past 4,096 byte steps goes
/// to that searcher, whose time stays linear whatever the bytes.
fn contains(value: &str, literal: &str) -> bool {
    let (hay, needle) = (value.as_bytes(), literal.as_bytes());
    let Some((&first, rest)) = needle.split_first() else { return true };
    if hay.len().saturating_mul(needle.len()) > 4096 {
        return value.contains(literal);
    }
    let mut from = 0;
    while let Some(at) = hay.get(from..).and_then(|h| h.iter().position(|&b| b == first)).map(|p| p + from) {
        if hay.get(at + 1..at + needle.len()) == Some(rest) {
            return true;
        }
        from = at + 1;
    }
    false
}

/// The compiled form ignores ASCII case when asked (`ignoreUriCase`).
#[derive(Debug, Clone)]
pub struct CompiledStringMatch {
    pub kind: StringMatch,
    pub ignore_case: bool,
}

impl StringMatchSpec {
    /// Compiles the match; `path` names this StringMatch in error messages.
    pub fn compile(&self, path: &FieldPath, ignore_case: bool) -> Result<CompiledStringMatch, ConfigError> {
        let set = [self.exact.is_some(), self.prefix.is_some(), self.regex.is_some()];
        if set.iter().filter(|s| **s).count() > 1 {
            return Err(path.error("set only one of exact, prefix, regex"));
        }
        let fold = |s: &String| if ignore_case { s.to_ascii_lowercase() } else { s.clone() };
        let kind = if let Some(s) = &self.exact {
            StringMatch::Exact(fold(s))
        } else if let Some(s) = &self.prefix {
            StringMatch::Prefix(fold(s))
        } else if let Some(re) = &self.regex {
            let flags = if ignore_case { "(?i)" } else { "" };
            let anchored = format!("^{flags}(?:{re})$");
            let regex = Regex::new(&anchored)
                .map_err(|e| path.field("regex").error(format!("invalid regex {re:?}: {e}")))?;
            match LiteralRegex::parse(re, ignore_case, regex.clone()) {
                Some(literal) => StringMatch::Literal(literal),
                None => StringMatch::Regex(regex),
            }
        } else {
            StringMatch::Present
        };
        Ok(CompiledStringMatch { kind, ignore_case })
    }
}

impl CompiledStringMatch {
    pub fn matches(&self, value: Option<&str>) -> bool {
        let Some(value) = value else { return false };
        let folded;
        let value = if self.ignore_case && !matches!(self.kind, StringMatch::Regex(_)) {
            // Literal regexes were lower-cased whole (Unicode), like `(?i)`.
            folded = if matches!(self.kind, StringMatch::Literal(_)) { value.to_lowercase() } else { value.to_ascii_lowercase() };
            folded.as_str()
        } else {
            value
        };
        match &self.kind {
            StringMatch::Exact(s) => value == s,
            StringMatch::Prefix(s) => value.starts_with(s.as_str()),
            StringMatch::Regex(re) => re.is_match(value),
            StringMatch::Literal(lit) => lit.matches(value),
            StringMatch::Present => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn spec(json: &str) -> StringMatchSpec {
        serde_json::from_str(json).unwrap()
    }

    fn compile(json: &str) -> CompiledStringMatch {
        spec(json).compile(&FieldPath::root().field("uri"), false).unwrap()
    }

    #[test]
    fn the_short_search_agrees_with_the_standard_one() {
        let long = "ab".repeat(3000);
        let cases = [("", ""), ("abc", ""), ("", "a"), ("Mobile", "Mobile"), ("xMobil", "Mobile"), ("aab", "ab"), ("abab", "bab"), ("aaaa", "aaab"), ("é Mobile", "Mobile"), ("ééx", "éx"), (long.as_str(), "ba"), (long.as_str(), "abc")];
        for (value, literal) in cases {
            assert_eq!(contains(value, literal), value.contains(literal), "{value:?} {literal:?}");
        }
    }

    #[test]
    fn istio_values_parse_like_istio() {
        assert_eq!(IstioMatch::parse("*"), IstioMatch::Present);
        assert_eq!(IstioMatch::parse("abc*"), IstioMatch::Prefix("abc".into()));
        assert_eq!(IstioMatch::parse("*abc"), IstioMatch::Suffix("abc".into()));
        assert_eq!(IstioMatch::parse("*abc*"), IstioMatch::Suffix("abc*".into()));
        assert_eq!(IstioMatch::parse("a*c"), IstioMatch::Exact("a*c".into()));
        assert_eq!(IstioMatch::parse(""), IstioMatch::Exact("".into()));
    }

    #[test]
    fn istio_matching() {
        let principal = IstioMatch::parse("cluster.local/ns/billing/sa/*");
        assert!(principal.matches(Some("cluster.local/ns/billing/sa/api")));
        assert!(!principal.matches(Some("cluster.local/ns/billing-evil/sa/api")));
        assert!(!principal.matches(None));

        let present = IstioMatch::Present;
        assert!(present.matches(Some("x")));
        assert!(!present.matches(Some("")), "presence means non-empty");
        assert!(!present.matches(None));

        assert!(IstioMatch::parse("*.example.com").matches(Some("api.example.com")));
        assert!(!IstioMatch::parse("*.example.com").matches(Some("example.com")));
        assert!(IstioMatch::parse("").matches(Some("")));
    }

    #[test]
    fn ignore_case_lowers_the_pattern() {
        let host = IstioMatch::parse_ignore_case("API.Example.COM");
        assert!(host.matches(Some("api.example.com")));
    }

    #[test]
    fn string_match_exact_prefix_present() {
        assert!(compile(r#"{"exact":"/a"}"#).matches(Some("/a")));
        assert!(!compile(r#"{"exact":"/a"}"#).matches(Some("/a/")));
        assert!(compile(r#"{"prefix":"/api"}"#).matches(Some("/api/v1")));
        assert!(!compile(r#"{"prefix":"/api"}"#).matches(Some("/ap")));
        assert!(compile(r#"{"prefix":""}"#).matches(Some("")));
        assert!(compile("{}").matches(Some("")));
        assert!(!compile("{}").matches(None));
        assert!(!compile(r#"{"exact":""}"#).matches(None));
    }

    #[test]
    fn regex_matches_the_whole_value() {
        let m = compile(r#"{"regex":".*Mobile.*"}"#);
        assert!(m.matches(Some("Mozilla/5.0 (iPhone) Mobile/15E148")));
        assert!(!m.matches(Some("Desktop")));
        let partial = compile(r#"{"regex":"v1"}"#);
        assert!(partial.matches(Some("v1")));
        assert!(!partial.matches(Some("v12")), "RE2 full match, not search");
        let alternation = compile(r#"{"regex":"a|b"}"#);
        assert!(!alternation.matches(Some("ab")), "anchors apply to the whole alternation");
    }

    #[test]
    fn literal_regexes_match_exactly_like_the_regex() {
        let cases = [
            (".*Mobile.*", LiteralShape::Contains),
            ("Mozilla.*", LiteralShape::Prefix),
            (".*Safari", LiteralShape::Suffix),
            ("curl", LiteralShape::Whole),
        ];
        let values = ["Mozilla/5.0 (iPhone) Mobile/15E148 Safari", "Mobile", "curl", "curl/8", "xcurl", "Mob\nile", "Mobile\nx", "", "mobile"];
        for (re, shape) in cases {
            let m = compile(&format!(r#"{{"regex":"{re}"}}"#));
            match &m.kind {
                StringMatch::Literal(l) => assert_eq!(l.shape, shape, "{re}"),
                other => panic!("{re} compiled to {other:?}"),
            }
            let reference = Regex::new(&format!("^(?:{re})$")).unwrap();
            for v in values {
                assert_eq!(m.matches(Some(v)), reference.is_match(v), "{re} on {v:?}");
            }
        }
        for re in [".*a.b.*", "a|b", ".*(x).*", "^x$", ".*", "x+"] {
            let m = compile(&format!(r#"{{"regex":"{}"}}"#, re.replace('\\', "\\\\")));
            assert!(matches!(m.kind, StringMatch::Regex(_)), "{re} must stay a regex");
        }
        let folded = spec(r#"{"regex":".*MOBILE.*"}"#).compile(&FieldPath::root(), true).unwrap();
        assert!(folded.matches(Some("an iphone mobile")));
    }

    #[test]
    fn ignore_case_applies_to_every_kind() {
        let path = FieldPath::root();
        for json in [r#"{"exact":"/API"}"#, r#"{"prefix":"/Ap"}"#, r#"{"regex":"/a.I"}"#] {
            let m = spec(json).compile(&path, true).unwrap();
            assert!(m.matches(Some("/api")), "{json}");
            assert!(m.matches(Some("/API")), "{json}");
        }
    }

    #[test]
    fn bad_specs_name_the_field() {
        let path = FieldPath::root().field("match").index(0).field("uri");
        let err = spec(r#"{"exact":"a","prefix":"b"}"#).compile(&path, false).unwrap_err();
        assert_eq!(err.to_string(), "match[0].uri: set only one of exact, prefix, regex");
        let err = spec(r#"{"regex":"(unclosed"}"#).compile(&path, false).unwrap_err();
        assert_eq!(err.path.to_string(), "match[0].uri.regex");
        assert!(serde_json::from_str::<StringMatchSpec>(r#"{"suffix":"x"}"#).is_err());
    }
}
