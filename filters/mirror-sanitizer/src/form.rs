//! `name=value&...` lists: `application/x-www-form-urlencoded` bodies and
//! query strings. Names are percent-decoded (and `+` read as a space) before
//! they are matched; values are decoded before detectors look at them. Pairs
//! nothing touches are copied as they came.

use filter_common::codec::hex_value;
use crate::mode::Replacement;
use crate::redact::Redactor;
use std::collections::HashMap;

/// Percent-decodes leniently: a `%` not followed by two hex digits stays as
/// it is (as most servers read it).
pub fn percent_decode(raw: &[u8], plus_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        match b {
            b'%' => match (raw.get(i + 1).copied().and_then(hex_value), raw.get(i + 2).copied().and_then(hex_value)) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 3;
                    continue;
                }
                _ => out.push(b),
            },
            b'+' if plus_is_space => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    out
}

/// Percent-encodes all but RFC 3986's unreserved characters.
pub fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from_digit(u32::from(b >> 4), 16).unwrap_or('0').to_ascii_uppercase());
            out.push(char::from_digit(u32::from(b & 0xf), 16).unwrap_or('0').to_ascii_uppercase());
        }
    }
    out
}

fn lookup(names: &HashMap<String, usize>, name: &[u8]) -> Option<usize> {
    if names.is_empty() {
        return None;
    }
    crate::config::lookup_lower(names, &String::from_utf8_lossy(name))
}

/// Sanitizes a `&`-separated list, matching names against `names`. Returns
/// the new text, or `None` when nothing changed.
pub fn sanitize_pairs(raw: &[u8], names: &HashMap<String, usize>, r: &mut Redactor) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut changed = false;
    let mut wrote_any = false;
    for pair in raw.split(|&b| b == b'&') {
        let (raw_name, raw_value) = match pair.iter().position(|&b| b == b'=') {
            Some(eq) => (pair.get(..eq).unwrap_or_default(), pair.get(eq + 1..)),
            None => (pair, None),
        };
        let name = percent_decode(raw_name, true);
        let value = raw_value.map(|v| percent_decode(v, true));
        let value_text = value.as_deref().map(String::from_utf8_lossy);
        // A name no rule selects is free text too (`?jane@example.com`).
        let rule = lookup(names, &name);
        let new_name = if rule.is_none() { r.detect(&String::from_utf8_lossy(&name)) } else { None };
        let replacement = match rule {
            Some(rule) => Some(r.select(rule, value_text.as_deref().unwrap_or_default())),
            None => match (value_text.as_deref().and_then(|v| r.detect(v)), &new_name, &value_text) {
                (Some(v), _, _) => Some(Replacement::Text(v)),
                (None, Some(_), Some(v)) => Some(Replacement::Text(v.to_string())),
                (None, Some(_), None) => Some(Replacement::Text(String::new())),
                (None, None, _) => None,
            },
        };
        match replacement {
            Some(Replacement::Remove) => changed = true,
            Some(Replacement::Text(t)) => {
                changed = true;
                if wrote_any {
                    out.push(b'&');
                }
                wrote_any = true;
                match &new_name {
                    Some(n) => out.extend_from_slice(percent_encode(n).as_bytes()),
                    None => out.extend_from_slice(raw_name),
                }
                if raw_value.is_some() || new_name.is_none() {
                    out.push(b'=');
                    out.extend_from_slice(percent_encode(&t).as_bytes());
                }
            }
            None => {
                if wrote_any {
                    out.push(b'&');
                }
                wrote_any = true;
                out.extend_from_slice(pair);
            }
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn policy() -> Policy {
        let json = br#"{"rules":[{"name":"uid","fields":["user_id"],"mode":"hash"},{"name":"name","fields":["full name"],"mode":"mask","keepLast":2}],
                        "hashKey":{"value":"0123456789abcdef-key"}}"#;
        Policy::parse(Some(json), &|_| None).unwrap()
    }

    fn run(raw: &str) -> Option<String> {
        let p = policy();
        let mut r = Redactor::new(&p);
        sanitize_pairs(raw.as_bytes(), &p.form_fields, &mut r).map(|v| String::from_utf8(v).unwrap())
    }

    #[test]
    fn names_are_decoded_before_matching() {
        assert_eq!(run("a=1&pass%77ord=hunter2&b=2").as_deref(), Some("a=1&b=2"));
        assert_eq!(run("PASSWORD=x").as_deref(), Some(""));
        assert_eq!(run("full+name=Jane+Doe").as_deref(), Some("full+name=REDACTEDoe"));
        let hashed = run("user_id=42&x=1").unwrap();
        assert!(hashed.starts_with("user_id=hmac-") && hashed.ends_with("&x=1"), "{hashed}");
    }

    #[test]
    fn values_are_decoded_before_detection() {
        assert_eq!(run("to=jane%40example.com&n=1").as_deref(), Some("to=REDACTED&n=1"));
        assert_eq!(run("card=4111+1111+1111+1111").as_deref(), Some("card=REDACTED"));
        assert_eq!(run("q=hello&n=1"), None, "untouched pairs are not rewritten");
        assert_eq!(run("jane%40example.com&n=1").as_deref(), Some("REDACTED&n=1"), "names are free text too");
        assert_eq!(run("jane%40example.com=1").as_deref(), Some("REDACTED=1"));
    }

    #[test]
    fn odd_input_is_kept_not_lost() {
        assert_eq!(run("&&a&=b&%zz=1"), None);
        assert_eq!(run("&password=1&a").as_deref(), Some("&a"));
        assert_eq!(percent_decode(b"%4", false), b"%4");
        assert_eq!(percent_decode(b"%41%e2%82%ac+", false), "A€+".as_bytes());
        assert_eq!(percent_encode("a b/ü"), "a%20b%2F%C3%BC");
    }
}
