//! `name=value&...` lists: `application/x-www-form-urlencoded` bodies and
//! query strings. Names are percent-decoded (and `+` read as a space) before
//! they are matched; values are decoded before detectors look at them. Pairs
//! nothing touches are copied as they came.

use crate::mode::Replacement;
use crate::names::NameKind;
use crate::text::{decoded_text, percent_encode};
use crate::redact::Redactor;

/// Sanitizes a list of pairs separated by `&` or `;` (kept as they came),
/// matching names as `kind`. Returns the new text, or `None` when nothing
/// changed.
pub fn sanitize_pairs(raw: &[u8], kind: NameKind, r: &mut Redactor) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut changed = false;
    // The separator that came before the current pair.
    let mut before: Option<u8> = None;
    let mut wrote_any = false;
    let mut rest = raw;
    loop {
        let split = rest.iter().position(|&b| b == b'&' || b == b';');
        let (pair, sep) = match split {
            Some(i) => (rest.get(..i).unwrap_or_default(), rest.get(i).copied()),
            None => (rest, None),
        };
        let replacement = sanitize_pair(pair, kind, r);
        let separator = before.unwrap_or(b'&');
        match replacement {
            PairOutcome::Remove => changed = true,
            PairOutcome::Keep => {
                if wrote_any {
                    out.push(separator);
                }
                wrote_any = true;
                out.extend_from_slice(pair);
            }
            PairOutcome::Replace(bytes) => {
                changed = true;
                if wrote_any {
                    out.push(separator);
                }
                wrote_any = true;
                out.extend_from_slice(&bytes);
            }
        }
        before = sep;
        match split {
            Some(i) => rest = rest.get(i + 1..).unwrap_or_default(),
            None => break,
        }
    }
    changed.then_some(out)
}

enum PairOutcome {
    Keep,
    Remove,
    Replace(Vec<u8>),
}

fn sanitize_pair(pair: &[u8], kind: NameKind, r: &mut Redactor) -> PairOutcome {
    let (raw_name, raw_value) = match pair.iter().position(|&b| b == b'=') {
        Some(eq) => (pair.get(..eq).unwrap_or_default(), pair.get(eq + 1..)),
        None => (pair, None),
    };
    if raw_name.is_empty() && raw_value.is_none() {
        return PairOutcome::Keep;
    }
    let name = decoded_text(raw_name, true);
    let value = raw_value.map(|v| decoded_text(v, true));
    let (verdict, detected_name) = r.name_and_text(kind, &name);
    let named = match &value {
        Some(v) => r.named(verdict, v),
        // A bare name (`?flag`) carries no value for a rule to redact.
        None => None,
    };
    // A name no rule selects is free text too (`?jane@example.com`).
    let new_name = if verdict.selection.is_none() { detected_name } else { None };
    let replacement = match named {
        Some(rep) => Some(rep),
        None => match (value.as_deref().and_then(|v| r.detect(v)), &new_name, &value) {
            (Some(v), _, _) => Some(Replacement::Text(v)),
            (None, Some(_), Some(v)) => Some(Replacement::Text(v.to_string())),
            (None, Some(_), None) => Some(Replacement::Text(String::new())),
            (None, None, _) => None,
        },
    };
    match replacement {
        None => PairOutcome::Keep,
        Some(Replacement::Remove) => PairOutcome::Remove,
        Some(Replacement::Text(t)) => {
            let mut out = Vec::with_capacity(pair.len());
            match &new_name {
                Some(n) => out.extend_from_slice(percent_encode(n).as_bytes()),
                None => out.extend_from_slice(raw_name),
            }
            if raw_value.is_some() || new_name.is_none() {
                out.push(b'=');
                out.extend_from_slice(percent_encode(&t).as_bytes());
            }
            PairOutcome::Replace(out)
        }
    }
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
        sanitize_pairs(raw.as_bytes(), NameKind::Form, &mut r).map(|v| String::from_utf8(v).unwrap())
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
    }

    #[test]
    fn semicolons_separate_pairs_and_stay() {
        assert_eq!(run("a=1;password=x;b=2").as_deref(), Some("a=1;b=2"));
        assert_eq!(run("password=x;b=2&c=3").as_deref(), Some("b=2&c=3"));
        assert_eq!(run("a=1;b=2"), None);
    }

    #[test]
    fn bracketed_and_compound_names_are_read_by_their_words() {
        assert_eq!(run("account[pass]=hunter2&account[name]=jane").as_deref(), Some("account[name]=jane"));
        assert_eq!(run("account%5Bpass%5D=hunter2&page=2").as_deref(), Some("page=2"));
        assert_eq!(run("newPassword=x&sort=asc&view=grid&tokenizer=bpe").as_deref(), Some("sort=asc&view=grid&tokenizer=bpe"));
        assert_eq!(run("cardPin=1234").as_deref(), Some(""));
    }
}
