//! The shadow request's header map: headers removed or redacted by name or
//! name pattern, single cookies, the path (segments and query), and the
//! detectors over every other header value. Pure: header pairs in, a list of
//! edits out.

use crate::config::ShadowMatch;
use crate::mode::Replacement;
use crate::names::NameKind;
use crate::path::sanitize_path;
use crate::redact::Redactor;
use crate::text::lossy;
use filter_common::codec::Header;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderEdit {
    Remove(String),
    /// The header's new values, in order.
    Set(String, Vec<Vec<u8>>),
}

/// Headers left to Envoy: framing and the authority.
fn untouched(name: &str) -> bool {
    name.starts_with(':') && name != ":path" || matches!(name, "content-length" | "transfer-encoding" | "host")
}

/// The edits that sanitize a shadow request's headers, read in place from
/// the host's map (names and raw values, repeats included).
pub fn sanitize_headers(headers: &[Header], shadow: &ShadowMatch, r: &mut Redactor) -> Vec<HeaderEdit> {
    let mut edits = Vec::new();
    for (i, &(name, value)) in headers.iter().enumerate() {
        // A repeated header is sanitized with all its values at its first line.
        if untouched(name) || headers.get(..i).is_some_and(|seen| seen.iter().any(|&(k, _)| k == name)) {
            continue;
        }
        if let ShadowMatch::Header { name: marker, remove: true } = shadow {
            if name == marker {
                edits.push(HeaderEdit::Remove(name.to_string()));
                continue;
            }
        }
        let repeated = headers.get(i + 1..).is_some_and(|rest| rest.iter().any(|&(k, _)| k == name));
        let edit = if repeated {
            let values: Vec<&[u8]> = headers.iter().filter(|&&(k, _)| k == name).map(|&(_, v)| v).collect();
            sanitize_header(name, &values, r)
        } else {
            sanitize_header(name, &[value], r)
        };
        edits.extend(edit);
    }
    edits
}

/// What one value becomes when its header's name does not select it:
/// cookies one by one, any other value by the detectors.
fn unnamed(name: &str, text: &str, r: &mut Redactor) -> Option<String> {
    if name == "cookie" {
        sanitize_cookies(text, r)
    } else {
        r.detect_header_value(text)
    }
}

fn sanitize_header(name: &str, values: &[&[u8]], r: &mut Redactor) -> Option<HeaderEdit> {
    if name == ":path" {
        let path = lossy(values.first()?);
        return sanitize_path(&path, r).map(|p| HeaderEdit::Set(name.to_string(), vec![p.into_bytes()]));
    }
    let verdict = r.name(NameKind::Header, name);
    // Most headers carry one value: no lists to build.
    if let [value] = values {
        let text = lossy(value);
        let new = match r.named(verdict, &text) {
            Some(Replacement::Remove) => return Some(HeaderEdit::Remove(name.to_string())),
            Some(Replacement::Text(t)) => t,
            None => unnamed(name, &text, r)?,
        };
        return Some(if new.is_empty() { HeaderEdit::Remove(name.to_string()) } else { HeaderEdit::Set(name.to_string(), vec![new.into_bytes()]) });
    }
    let mut named = Vec::with_capacity(values.len());
    for v in values {
        match r.named(verdict, &lossy(v)) {
            Some(Replacement::Remove) => return Some(HeaderEdit::Remove(name.to_string())),
            Some(Replacement::Text(t)) => named.push(Some(t.into_bytes())),
            None => named.push(None),
        }
    }
    if named.iter().all(Option::is_some) {
        return Some(HeaderEdit::Set(name.to_string(), named.into_iter().flatten().collect()));
    }
    let mut changed = false;
    let mut out = Vec::with_capacity(values.len());
    for (v, named) in values.iter().zip(named) {
        let new = match named {
            Some(t) => Some(t),
            None => unnamed(name, &lossy(v), r).map(String::into_bytes),
        };
        match new {
            Some(n) => {
                changed = true;
                if !n.is_empty() {
                    out.push(n);
                }
            }
            None => out.push(v.to_vec()),
        }
    }
    match (changed, out.is_empty()) {
        (false, _) => None,
        (true, true) => Some(HeaderEdit::Remove(name.to_string())),
        (true, false) => Some(HeaderEdit::Set(name.to_string(), out)),
    }
}

/// One `cookie` header value with cookies removed or redacted; `None` if
/// unchanged, `Some("")` if no cookie is left.
fn sanitize_cookies(value: &str, r: &mut Redactor) -> Option<String> {
    let mut changed = false;
    let mut kept: Vec<String> = Vec::new();
    for cookie in value.split(';') {
        let cookie = cookie.trim();
        if cookie.is_empty() {
            continue;
        }
        let (name, v) = cookie.split_once('=').unwrap_or((cookie, ""));
        let verdict = r.name(NameKind::Cookie, name);
        let replacement = match r.named(verdict, v.trim_matches('"')) {
            Some(replacement) => Some(replacement),
            None => r.detect(v).map(Replacement::Text),
        };
        match replacement {
            Some(Replacement::Remove) => changed = true,
            Some(Replacement::Text(t)) => {
                changed = true;
                kept.push(format!("{name}={t}"));
            }
            None => kept.push(cookie.to_string()),
        }
    }
    changed.then(|| kept.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn headers<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<Header<'a>> {
        pairs.iter().map(|&(k, v)| (k, v.as_bytes())).collect()
    }

    fn run(config: &str, pairs: &[(&str, &str)]) -> Vec<HeaderEdit> {
        let p = Policy::parse(Some(config.as_bytes()), &|_| None).unwrap();
        let mut r = Redactor::new(&p);
        sanitize_headers(&headers(pairs), &p.shadow, &mut r)
    }

    fn set(name: &str, values: &[&str]) -> HeaderEdit {
        HeaderEdit::Set(name.into(), values.iter().map(|v| v.as_bytes().to_vec()).collect())
    }

    #[test]
    fn builtin_rules_remove_credentials_and_cookies() {
        let edits = run(
            "{}",
            &[(":authority", "a-shadow"), (":path", "/"), ("authorization", "Basic x"), ("cookie", "a=1; b=2"), ("x-api-key", "k"), ("accept", "*/*")],
        );
        assert_eq!(edits, [HeaderEdit::Remove("authorization".into()), HeaderEdit::Remove("cookie".into()), HeaderEdit::Remove("x-api-key".into())]);
    }

    #[test]
    fn single_cookies_are_kept_or_hashed() {
        let config = r#"{"rules":[{"name":"keep-theme","cookies":["theme"],"mode":"mask","placeholder":"dark"},{"name":"sess","cookies":["session"],"mode":"hash"}],"hashKey":{"value":"0123456789abcdef-key"}}"#;
        let edits = run(config, &[("cookie", "theme=light; session=abc; tracking=xyz")]);
        let HeaderEdit::Set(name, values) = &edits[0] else { panic!("{edits:?}") };
        assert_eq!(name, "cookie");
        let v = String::from_utf8(values[0].clone()).unwrap();
        assert!(v.starts_with("theme=dark; session=hmac-") && !v.contains("tracking"), "{v}");
    }

    #[test]
    fn patterns_detectors_and_repeated_headers() {
        let config = r#"{"rules":[{"name":"internal","headerPatterns":["^x-internal-"],"mode":"remove"},{"name":"ua","headers":["x-user"],"mode":"mask","keepLast":2}]}"#;
        let edits = run(
            config,
            &[("x-internal-trace", "t"), ("x-user", "jane"), ("x-note", "a"), ("x-note", "call +1 (555) 123-4567"), ("x-ok", "fine")],
        );
        assert_eq!(edits, [HeaderEdit::Remove("x-internal-trace".into()), set("x-user", &["REDACTEDne"]), set("x-note", &["a", "call REDACTED"])]);
    }

    #[test]
    fn values_remembered_clean_are_sanitized_alike_on_later_requests() {
        let p = Policy::parse(Some(b"{}"), &|_| None).unwrap();
        let pairs = [("user-agent", "shop-client/1.0"), ("x-note", "card 4111 1111 1111 1111"), ("x-doc", "eyJhIjoiYiJ9"), ("x-card", "4111 1111 1111 1111")];
        let mut first = None;
        for _ in 0..3 {
            let mut r = crate::nested::redactor(&p);
            let edits = sanitize_headers(&headers(&pairs), &p.shadow, &mut r);
            assert_eq!(r.total(), 2, "both cards, every time: {edits:?}");
            assert_eq!(*first.get_or_insert_with(|| edits.clone()), edits);
        }
        let edited: Vec<&str> = first.iter().flatten().map(|e| match e {
            HeaderEdit::Remove(n) | HeaderEdit::Set(n, _) => n.as_str(),
        }).collect();
        assert_eq!(edited, ["x-note", "x-card"]);
    }

    #[test]
    fn the_path_and_the_marker_header() {
        let config = r#"{"shadow":{"match":"header","header":"x-mirror"}}"#;
        let edits = run(config, &[(":path", "/u?email=a%40b.io&q=1"), ("x-mirror", "1"), (":authority", "jane@example.com")]);
        assert_eq!(edits, [set(":path", &["/u?email=REDACTED&q=1"]), HeaderEdit::Remove("x-mirror".into())]);
    }
}
