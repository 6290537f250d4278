//! Documents inside values: a string that is itself JSON, a form or query
//! string (also the query of a URL), or base64 / base64url of either, is
//! opened, sanitized by the same rules and written back in its own
//! encoding. Bounded: at most `MAX_NESTING` documents deep; a document
//! deeper than that is masked whole.

use crate::config::Policy;
use crate::detect::Profile;
use crate::form::sanitize_pairs;
use crate::json::sanitize_json;
use crate::names::NameKind;
use crate::redact::{Opened, Redactor};
use crate::text::{percent_decode, percent_encode};
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

/// Documents opened inside one another, at most.
pub const MAX_NESTING: usize = 4;

/// A redactor for a request: free-text values are offered to `open` first.
pub fn redactor(policy: &Policy) -> Redactor<'_> {
    Redactor::with_opener(policy, open)
}

/// Opens `text` if it is a document; see `Opened`.
pub fn open(text: &str, profile: &Profile, r: &mut Redactor) -> Opened {
    if r.nesting >= MAX_NESTING {
        // Fail closed: a document deeper than the bound is masked whole.
        let t = text.trim_ascii();
        return if looks_json(t) || (profile.has_equals() && looks_pairs(t)) { Opened::Changed(r.too_deep()) } else { Opened::NotDocument };
    }
    r.nesting += 1;
    let opened = open_document(text, profile, r);
    r.nesting -= 1;
    opened
}

fn open_document(text: &str, profile: &Profile, r: &mut Redactor) -> Opened {
    let trimmed = text.trim_ascii();
    if profile.has_open() && looks_json(trimmed) {
        match sanitize_json(text.as_bytes(), r) {
            Ok(Some(out)) => return String::from_utf8(out).map_or(Opened::NotDocument, Opened::Changed),
            Ok(None) => return Opened::Unchanged,
            Err(_) => {}
        }
    }
    // Base64 padding is not a pair's `=`: base64 is tried first.
    if profile.maybe_base64() && !(profile.has_equals() && text.trim_end_matches('=').as_bytes().contains(&b'=')) {
        match open_base64(text, profile, r) {
            Opened::NotDocument => {}
            opened => return opened,
        }
    }
    if profile.has_equals() {
        if let Some(opened) = open_pairs(text, r) {
            return opened;
        }
    }
    if profile.has_percent() {
        return open_percent(text, r);
    }
    Opened::NotDocument
}

/// Percent-encoded text (`-----BEGIN%20PRIVATE%20KEY…`, `%7B%22pin%22…`):
/// read decoded; where something is redacted, written back encoded.
fn open_percent(text: &str, r: &mut Redactor) -> Opened {
    let decoded = percent_decode(text.as_bytes(), false);
    if decoded.len() == text.len() {
        return Opened::NotDocument;
    }
    let Ok(decoded) = String::from_utf8(decoded) else { return Opened::NotDocument };
    match r.detect(&decoded) {
        Some(new) => Opened::Changed(percent_encode(&new)),
        None => Opened::NotDocument,
    }
}

fn looks_json(t: &str) -> bool {
    matches!((t.as_bytes().first(), t.as_bytes().last()), (Some(b'{'), Some(b'}')) | (Some(b'['), Some(b']')))
}

/// `a=1&b=2` (or `;`-separated): no spaces or quotes, and a first pair
/// with a name.
fn looks_pairs(t: &str) -> bool {
    let b = t.as_bytes();
    let first = b.iter().position(|&c| c == b'&' || c == b';').map_or(b, |end| b.get(..end).unwrap_or_default());
    let eq = first.iter().position(|&c| c == b'=');
    eq.is_some_and(|e| e > 0) && !b.iter().any(|&c| matches!(c, b' ' | b'"' | b'{' | b'}' | b'<' | b'>' | b'\n' | b'\r' | b'\t'))
}

/// A form string, or a URL (or path) whose query is one.
fn open_pairs(text: &str, r: &mut Redactor) -> Option<Opened> {
    let (prefix, query, kind) = match text.split_once('?') {
        Some((p, q)) if !p.contains(['=', ' ', '&']) => (Some(p), q, NameKind::Query),
        _ => (None, text, NameKind::Form),
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    if !looks_pairs(query) {
        return None;
    }
    let new_prefix = prefix.and_then(|p| {
        let profile = Profile::of(p.as_bytes());
        r.detect_profiled(p, &profile)
    });
    let new_query = sanitize_pairs(query.as_bytes(), kind, r);
    if new_prefix.is_none() && new_query.is_none() {
        return Some(Opened::Unchanged);
    }
    let mut out = String::with_capacity(text.len());
    if let Some(p) = prefix {
        out.push_str(new_prefix.as_deref().unwrap_or(p));
    }
    let query = new_query.map_or_else(|| query.to_string(), |q| String::from_utf8_lossy(&q).into_owned());
    if prefix.is_some() && !query.is_empty() {
        out.push('?');
    }
    out.push_str(&query);
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    Some(Opened::Changed(out))
}

const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent).with_decode_allow_trailing_bits(true);

/// Base64 or base64url of a JSON or form document (or of base64 of one),
/// re-encoded in the same alphabet, with or without padding as it came.
fn open_base64(text: &str, profile: &Profile, r: &mut Redactor) -> Opened {
    let url = profile.has_url_signs();
    let standard = profile.has_standard_signs();
    if url && standard {
        return Opened::NotDocument;
    }
    let engine = GeneralPurpose::new(if url { &alphabet::URL_SAFE } else { &alphabet::STANDARD }, LENIENT);
    // Most base64 values are keys or hashes: their first bytes are binary.
    let head = text.get(..8).unwrap_or_default();
    match engine.decode(head) {
        Ok(bytes) if bytes.iter().all(|b| (0x20..0x7f).contains(b) || b.is_ascii_whitespace()) => {}
        _ => return Opened::NotDocument,
    }
    let Ok(decoded) = engine.decode(text.trim_end_matches('=')) else { return Opened::NotDocument };
    let Ok(inner) = String::from_utf8(decoded) else { return Opened::NotDocument };
    let trimmed = inner.trim_ascii();
    let profile = Profile::of(inner.as_bytes());
    // A document, or base64 again (a document encoded twice).
    if !(looks_json(trimmed) || looks_pairs(trimmed) || profile.maybe_base64()) {
        return Opened::NotDocument;
    }
    match open(&inner, &profile, r) {
        Opened::Changed(new) => {
            // Padded as it came; text with `+` or `/` came from a standard
            // encoder, which pads. Without either sign it is written unpadded.
            let padded = text.ends_with('=') || standard;
            let out = GeneralPurpose::new(
                if url { &alphabet::URL_SAFE } else { &alphabet::STANDARD },
                GeneralPurposeConfig::new().with_encode_padding(padded),
            )
            .encode(new.as_bytes());
            Opened::Changed(out)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn run(text: &str) -> Option<String> {
        let p = Policy::parse(None, &|_| None).unwrap();
        let mut r = redactor(&p);
        r.detect(text)
    }

    #[test]
    fn request_and_trace_ids_hold_nothing_to_find() {
        // What lets a header value in UUID form skip the detectors and the
        // opener (`Redactor::detect_header_value`). The ids are drawn mostly
        // from decimal digits, the detectors' worst case, in both cases.
        let mut next = filter_common::test_rng::xorshift(0x2545_F491_4F6C_DD1D);
        let p = Policy::parse(None, &|_| None).unwrap();
        for n in 0..100_000 {
            let id: String = (0..36)
                .map(|i| match i {
                    8 | 13 | 18 | 23 => '-',
                    _ if next() % 10 < 8 => char::from(b'0' + (next() % 10) as u8),
                    _ if n % 2 == 0 => char::from(b"abcdef"[(next() % 6) as usize]),
                    _ => char::from(b"ABCDEF"[(next() % 6) as usize]),
                })
                .collect();
            assert!(crate::text::is_uuid(id.as_bytes()));
            assert_eq!(redactor(&p).detect(&id), None, "{id}");
        }
        // The control: the detectors are on, and find what a string of the
        // same alphabet but not a UUID's shape holds.
        assert!(!crate::text::is_uuid(b"4111-1111-1111-1111-000000000000"));
        assert_eq!(run("4111-1111-1111-1111-000000000000").as_deref(), Some("REDACTED-000000000000"));
    }

    #[test]
    fn a_pattern_still_reads_header_values_in_uuid_form() {
        let config = r#"{"rules":[{"name":"tenant","patterns":["^[0-9a-f]{8}-"]}]}"#;
        let p = Policy::parse(Some(config.as_bytes()), &|_| None).unwrap();
        let mut r = redactor(&p);
        assert!(r.detect_header_value("123e4567-e89b-42d3-a456-426614174000").is_some());
        let defaults = Policy::parse(None, &|_| None).unwrap();
        assert_eq!(redactor(&defaults).detect_header_value("123e4567-e89b-42d3-a456-426614174000"), None);
    }

    #[test]
    fn json_inside_a_string_is_opened_and_written_back() {
        assert_eq!(run(r#"{"user":"jane","password":"pw-1"}"#).as_deref(), Some(r#"{"user":"jane"}"#));
        assert_eq!(run(r#"{"a":"{\"pin\":1234,\"b\":2}"}"#).as_deref(), Some(r#"{"a":"{\"b\":2}"}"#));
        assert_eq!(run(r#"{"a":1}"#), None);
        assert_eq!(run("[not json, jane@example.com]").as_deref(), Some("[not json, REDACTED]"));
    }

    #[test]
    fn forms_and_url_queries_are_opened() {
        assert_eq!(run("user=jane&password=pw-2;x=1").as_deref(), Some("user=jane;x=1"));
        assert_eq!(
            run("https://b.example.com/o?X-Amz-Signature=abc123&X-Amz-Date=20240101#top").as_deref(),
            Some("https://b.example.com/o?X-Amz-Date=20240101#top")
        );
        assert_eq!(run("https://example.com/?page=2"), None);
    }

    #[test]
    fn percent_encoded_text_is_read_decoded() {
        assert_eq!(run("mail%20jane%40example.com%20now").as_deref(), Some("mail%20REDACTED%20now"));
        assert_eq!(run("-----BEGIN%20PRIVATE%20KEY-----%0AMIIE%0A-----END%20PRIVATE%20KEY-----").as_deref(), Some("REDACTED"));
        assert_eq!(run("100%25%20sure"), None);
    }

    #[test]
    fn base64_documents_keep_their_encoding() {
        let b64 = STANDARD.encode(r#"{"token":"tok-123456","keep":"yes"}"#);
        let out = run(&b64).unwrap();
        assert_eq!(String::from_utf8(STANDARD.decode(&out).unwrap()).unwrap(), r#"{"keep":"yes"}"#);
        let url = URL_SAFE_NO_PAD.encode("user=jane&secret=s3cr3t-v4lue");
        let out = run(&url).unwrap();
        assert!(!out.contains('='), "no padding added");
        assert_eq!(String::from_utf8(URL_SAFE_NO_PAD.decode(&out).unwrap()).unwrap(), "user=jane");
        assert_eq!(run("wJalrXUtnFEMIK7MDENGbPxRfiCYEXAMPLE"), None, "not a document");
    }

    #[test]
    fn nesting_is_bounded() {
        let mut doc = r#"{"password":"deep-pw"}"#.to_string();
        for _ in 0..MAX_NESTING + 2 {
            doc = serde_json::to_string(&serde_json::json!({ "d": doc })).unwrap();
        }
        // Deeper than the bound, the innermost document is masked whole.
        let out = run(&doc).unwrap();
        assert!(!out.contains("deep-pw") && out.contains("REDACTED"), "{out}");
        let mut shallow = r#"{"password":"deep-pw"}"#.to_string();
        for _ in 0..MAX_NESTING - 1 {
            shallow = serde_json::to_string(&serde_json::json!({ "d": shallow })).unwrap();
        }
        assert!(!run(&shallow).unwrap().contains("deep-pw"));
    }
}
