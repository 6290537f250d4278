//! Path templates (`/users/{id}`, `/orgs/*/members/{member}`): which
//! segments of a request path a rule redacts.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}`: the segment is redacted.
    Capture,
    /// `*`: any segment, left alone.
    Any,
}

/// A path template: its segments match the path's first segments; the
/// `{...}` ones are redacted. `/users/{id}` also covers `/users/7/orders`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Segment>);

impl Template {
    pub fn parse(text: &str) -> Result<Self, String> {
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!("{text:?} must start with '/'"));
        };
        let segments: Vec<Segment> = rest
            .split('/')
            .map(|s| {
                if s.len() >= 2 && s.starts_with('{') && s.ends_with('}') {
                    Segment::Capture
                } else if s == "*" {
                    Segment::Any
                } else {
                    Segment::Literal(s.to_string())
                }
            })
            .collect();
        if !segments.contains(&Segment::Capture) {
            return Err(format!("{text:?} has no {{placeholder}} segment to redact"));
        }
        Ok(Self(segments))
    }

    /// Which of `segments` this template redacts, if it matches.
    pub fn captures(&self, segments: &[&str]) -> Option<Vec<usize>> {
        if segments.len() < self.0.len() {
            return None;
        }
        let mut out = Vec::new();
        for (i, (t, s)) in self.0.iter().zip(segments).enumerate() {
            match t {
                Segment::Literal(l) if l != s => return None,
                Segment::Capture if s.is_empty() => return None,
                Segment::Capture => out.push(i),
                _ => {}
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn templates_capture_their_placeholders() {
        let t = Template::parse("/orgs/*/members/{m}").unwrap();
        assert_eq!(t.captures(&["orgs", "acme", "members", "jane", "x"]), Some(vec![3]));
        assert_eq!(t.captures(&["orgs", "acme"]), None);
        assert!(Template::parse("/a/b").is_err());
    }
}
