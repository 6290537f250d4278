//! Values of `paths` / `notPaths`: Istio's string forms (exact, `prefix*`,
//! `*suffix`, `*`) and path templates, where `{*}` is exactly one segment and
//! `{**}` one or more segments, allowed only as the last segment.

use filter_common::IstioMatch;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Istio(IstioMatch),
    Template(Vec<TemplatePart>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplatePart {
    Literal(String),
    /// `{*}`: one non-empty segment.
    One,
    /// `{**}`: one or more segments, the rest of the path.
    Rest,
}

impl PathMatch {
    /// Reads one configured path; the error says what is wrong with it.
    pub fn parse(value: &str) -> Result<Self, String> {
        if value.is_empty() {
            return Err("an empty path matches nothing; remove it or write `*`".into());
        }
        if !value.contains('{') && !value.contains('}') {
            let inner = value.strip_prefix('*').unwrap_or(value);
            let inner = inner.strip_suffix('*').unwrap_or(inner);
            if inner.contains('*') {
                return Err("`*` is allowed only at the start or end of a path, or use a template such as /a/{*}/b".into());
            }
            return Ok(Self::Istio(IstioMatch::parse(value)));
        }
        let Some(rest) = value.strip_prefix('/') else {
            return Err("a path template must start with /".into());
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let mut parts = Vec::with_capacity(segments.len());
        for (i, segment) in segments.iter().enumerate() {
            let part = match *segment {
                "{*}" => TemplatePart::One,
                "{**}" if i + 1 == segments.len() => TemplatePart::Rest,
                "{**}" => return Err("{**} must be the last segment of a path template".into()),
                s if s.contains('{') || s.contains('}') || s.contains('*') => {
                    return Err(format!(
                        "`{s}`: {{*}} and {{**}} must each be a whole segment, with no other text or `*` beside them"
                    ))
                }
                s => TemplatePart::Literal(s.to_string()),
            };
            parts.push(part);
        }
        Ok(Self::Template(parts))
    }

    /// Matches a normalized path (see `path::normalize`).
    pub fn matches(&self, path: &str) -> bool {
        match self {
            Self::Istio(m) => m.matches(Some(path)),
            Self::Template(parts) => {
                let Some(rest) = path.strip_prefix('/') else { return false };
                let mut segments = rest.split('/');
                for part in parts {
                    match part {
                        TemplatePart::Literal(l) => {
                            if segments.next() != Some(l.as_str()) {
                                return false;
                            }
                        }
                        TemplatePart::One => {
                            if segments.next().is_none_or(str::is_empty) {
                                return false;
                            }
                        }
                        TemplatePart::Rest => {
                            let remaining: Vec<&str> = segments.collect();
                            return !remaining.is_empty() && remaining.iter().any(|s| !s.is_empty());
                        }
                    }
                }
                segments.next().is_none()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn m(pattern: &str, path: &str) -> bool {
        PathMatch::parse(pattern).unwrap().matches(path)
    }

    #[test]
    fn istio_string_forms() {
        assert!(m("/info", "/info"));
        assert!(!m("/info", "/info/"));
        assert!(m("/api/*", "/api/v1"));
        assert!(m("/api/*", "/api/"));
        assert!(!m("/api/*", "/api"));
        assert!(m("*/healthz", "/a/healthz"));
        assert!(m("*", "/anything"));
    }

    // Istio's documented examples: "/foo/{*}" matches /foo/bar but not
    // /foo/bar/baz; "/foo/{**}/" is invalid; "/foo/{*}/bar/{**}" matches
    // /foo/buzz/bar/bat/baz.
    #[test]
    fn templates_match_whole_segments() {
        assert!(m("/foo/{*}", "/foo/bar"));
        assert!(!m("/foo/{*}", "/foo/bar/baz"));
        assert!(!m("/foo/{*}", "/foo/"));
        assert!(!m("/foo/{*}", "/foo"));
        assert!(m("/foo/{**}", "/foo/bar"));
        assert!(m("/foo/{**}", "/foo/bar/baz/"));
        assert!(!m("/foo/{**}", "/foo/"));
        assert!(!m("/foo/{**}", "/foo"));
        assert!(m("/foo/{*}/bar/{**}", "/foo/buzz/bar/bat/baz"));
        assert!(!m("/foo/{*}/bar/{**}", "/foo/buzz/baz/bat"));
        assert!(m("/users/{*}/orders", "/users/42/orders"));
        assert!(!m("/users/{*}/orders", "/users/42/orders/7"));
    }

    #[test]
    fn invalid_templates_are_refused() {
        for bad in ["/foo/{*}.txt", "/foo/{**}/bar", "/foo/{**}/", "foo/{*}", "/a/*/b", "/a*b", "/foo/{x}", "/foo/{*", ""] {
            assert!(PathMatch::parse(bad).is_err(), "{bad}");
        }
    }
}
