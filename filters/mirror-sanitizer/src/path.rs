//! The request's `:path`: segments picked by templates such as
//! `/users/{id}`, query parameters by name, and detectors over every decoded
//! segment and query value.

use crate::form::sanitize_pairs;
use crate::names::NameKind;
use crate::text::{decoded_text, percent_encode};
use crate::redact::Redactor;

/// The sanitized path, or `None` if nothing changed.
pub fn sanitize_path(path: &str, r: &mut Redactor) -> Option<String> {
    let (path_part, query) = match path.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path, None),
    };
    let mut changed = false;
    let new_path = sanitize_segments(path_part, r);
    changed |= new_path.is_some();
    let new_query = query.and_then(|q| sanitize_pairs(q.as_bytes(), NameKind::Query, r));
    changed |= new_query.is_some();
    if !changed {
        return None;
    }
    let mut out = new_path.unwrap_or_else(|| path_part.to_string());
    match (query, new_query) {
        // Every parameter removed: no dangling '?'.
        (Some(_), Some(q)) if q.is_empty() => {}
        (Some(_), Some(q)) => {
            out.push('?');
            out.push_str(&String::from_utf8_lossy(&q));
        }
        (Some(q), None) => {
            out.push('?');
            out.push_str(q);
        }
        (None, _) => {}
    }
    Some(out)
}

fn sanitize_segments(path: &str, r: &mut Redactor) -> Option<String> {
    // The leading '/' gives an empty first piece, which is kept as is.
    let pieces: Vec<&str> = path.split('/').collect();
    let segments = pieces.get(1..).unwrap_or_default();
    // What changes, by piece: most paths keep every piece and build nothing.
    let mut replaced: Vec<(usize, String)> = Vec::new();
    let taken = |replaced: &[(usize, String)], i: usize| replaced.iter().any(|&(j, _)| j == i);
    for (template, rule) in &r.policy.path_templates {
        for i in template.captures(segments).unwrap_or_default() {
            if let Some(raw) = segments.get(i).filter(|_| !taken(&replaced, i + 1)) {
                let value = decoded_text(raw.as_bytes(), false);
                replaced.push((i + 1, percent_encode(&r.select_text(*rule, &value))));
            }
        }
    }
    for (i, piece) in pieces.iter().enumerate() {
        if !piece.is_empty() && !taken(&replaced, i) {
            if let Some(t) = r.detect(&decoded_text(piece.as_bytes(), false)) {
                replaced.push((i, percent_encode(&t)));
            }
        }
    }
    if replaced.is_empty() {
        return None;
    }
    let out: Vec<&str> = pieces.iter().enumerate().map(|(i, p)| replaced.iter().find(|&&(j, _)| j == i).map_or(*p, |(_, t)| t.as_str())).collect();
    Some(out.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn run(config: &str, path: &str) -> Option<String> {
        let p = Policy::parse(Some(config.as_bytes()), &|_| None).unwrap();
        let mut r = Redactor::new(&p);
        sanitize_path(path, &mut r)
    }

    const USERS: &str = r#"{"rules":[{"name":"user","pathSegments":["/users/{id}","/orgs/*/members/{member}"],"placeholder":"x"}]}"#;

    #[test]
    fn templates_redact_their_segments() {
        assert_eq!(run(USERS, "/users/42").as_deref(), Some("/users/x"));
        assert_eq!(run(USERS, "/users/42/orders?page=2").as_deref(), Some("/users/x/orders?page=2"));
        assert_eq!(run(USERS, "/orgs/acme/members/jane").as_deref(), Some("/orgs/acme/members/x"));
        assert_eq!(run(USERS, "/users/"), None, "an empty segment is not an id");
        assert_eq!(run(USERS, "/user/42"), None);
        assert_eq!(run(USERS, "/"), None);
    }

    #[test]
    fn query_parameters_are_decoded_before_matching() {
        let config = r#"{"rules":[{"name":"uid","queryParams":["user_id"]}]}"#;
        assert_eq!(run(config, "/a?user%5Fid=7&x=1").as_deref(), Some("/a?user%5Fid=REDACTED&x=1"));
        assert_eq!(run(config, "/a?access_token=abc&x=1").as_deref(), Some("/a?x=1"), "built-in fields");
        assert_eq!(run(config, "/a?x=1"), None);
        assert_eq!(run(config, "/a?user_id=1&token=2").as_deref(), Some("/a?user_id=REDACTED"));
        assert_eq!(run(config, "/a?token=2").as_deref(), Some("/a"));
    }

    #[test]
    fn detectors_see_decoded_segments_and_values() {
        let config = r#"{}"#;
        assert_eq!(run(config, "/people/jane%40example.com/x").as_deref(), Some("/people/REDACTED/x"));
        assert_eq!(run(config, "/p?email=jane%40example.com").as_deref(), Some("/p?email=REDACTED"));
    }
}
