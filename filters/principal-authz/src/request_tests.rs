//! Requests read and decided end to end (`read` then `decide`): a DENY holds
//! under every reading, an ALLOW only under the canonical one; per class of
//! trick, then for random paths against a naive model of the readings.

use super::*;
use crate::identity::Identity;
use crate::policy::{decide, Decision, RequestView, Verdict};
use serde_json::{json, Value};
#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

const BILLING: &str = "spiffe://cluster.local/ns/billing/sa/billing";

fn config(extra: Value) -> Config {
    let mut c = json!({ "policies": [
        { "name": "api", "action": "ALLOW", "rules": [{ "to": [{ "operation": { "paths": ["/api/*"] } }] }] },
        { "name": "no-admin", "action": "DENY", "rules": [
            { "to": [{ "operation": { "paths": ["/api/admin", "/api/admin/*"] } }] },
            { "to": [{ "operation": { "methods": ["DELETE"] } }] }] },
    ] });
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    Config::parse(Some(c.to_string().as_bytes())).unwrap()
}

/// The decision on a request from billing, or why it was refused.
fn outcome(c: &Config, method: &str, path: &str) -> Result<Decision, Refusal> {
    let id = Identity::from_uri(BILLING);
    let r = read(c, path, Some(method))?;
    let view = RequestView {
        identity: id.as_ref(),
        method: Some(method),
        path: &r.path.path,
        readings: r.readings.as_ref(),
        ..RequestView::default()
    };
    Ok(decide(&c.policies, &view))
}

/// "allowed", "refused", or the reading under which a DENY matched.
fn verdict(c: &Config, method: &str, path: &str) -> String {
    match outcome(c, method, path) {
        Err(_) => "refused".into(),
        Ok(d) => match d.verdict {
            Verdict::DeniedBy(m) => m.reading.to_string(),
            Verdict::NoAllowMatched => "no allow".into(),
            Verdict::AllowedBy(_) | Verdict::NoAllowPolicy => "allowed".into(),
        },
    }
}

#[test]
fn each_reading_keeps_the_deny() {
    let c = config(json!({ "allowDoubleEncoding": true }));
    let cases = [
        ("/api/admin", "canonical"),
        ("/api/%61dmin", "canonical"),
        ("/api/orders/%252e%252e/admin", "decoded again"),
        ("/api/%2561dmin", "decoded again"),
        ("/api/admin%252Fkeys", "decoded again"),
        ("/api/Admin", "case-folded"),
        ("/API/ADMIN/keys", "case-folded"),
        ("/api/ADMIN/keys", "case-folded"),
        ("/api/admin.", "parameters removed"),
        ("/api/admin%20", "parameters removed"),
        ("/api/admin.%20./keys", "parameters removed"),
        ("/api/admin%3Bjsessionid=1", "decoded again + parameters removed"),
        ("/api/orders/..%3B/admin", "decoded again + parameters removed"),
        ("/api/Admin%2e", "parameters removed + case-folded"),
        ("/api/%2541DMIN.", "decoded again + parameters removed + case-folded"),
    ];
    for (path, want) in cases {
        assert_eq!(verdict(&c, "GET", path), want, "{path}");
    }
}

#[test]
fn allow_sees_only_the_canonical_reading() {
    let c = config(json!({ "allowDoubleEncoding": true }));
    // Under `/api/*` only if case-folded or decoded again: not allowed.
    for path in ["/API/orders", "/%2561pi/orders", "/api%2E/orders"] {
        assert_eq!(verdict(&c, "GET", path), "no allow", "{path}");
    }
    for path in ["/api/orders", "/api/Orders", "/api/orders.json", "/api/a%3Ab", "/api/100%25", "/api/caf%C3%A9"] {
        assert_eq!(verdict(&c, "GET", path), "allowed", "{path}");
    }
}

#[test]
fn double_encoding_is_refused_by_default() {
    let c = config(json!({}));
    for path in ["/api/orders/%252e%252e/admin", "/api/%2561dmin", "/api/orders%252F", "/api/%25%32%65"] {
        assert_eq!(outcome(&c, "GET", path).err(), Some(Refusal::Path(UnsafePath::DoubleEncoding)), "{path}");
    }
    // With the opt-out, a path unsafe once decoded again is refused.
    let opt_out = config(json!({ "allowDoubleEncoding": true }));
    assert_eq!(outcome(&opt_out, "GET", "/api/%2500").err(), Some(Refusal::DecodedAgain(UnsafePath::EncodedNul)));
    assert_eq!(
        outcome(&opt_out, "GET", "/api/%25c0%25ae%25c0%25ae/admin").err(),
        Some(Refusal::DecodedAgain(UnsafePath::InvalidUtf8))
    );
    assert_eq!(verdict(&opt_out, "GET", "/api/100%2541"), "allowed");
}

#[test]
fn invalid_utf8_is_refused_with_its_own_reason() {
    let c = config(json!({}));
    for path in ["/api/%c0%ae%c0%ae/admin", "/api/admin%c0%af", "/api/%ed%a0%80", "/api/%80", "/api/%e2%82"] {
        assert_eq!(outcome(&c, "GET", path).err(), Some(Refusal::Path(UnsafePath::InvalidUtf8)), "{path}");
    }
}

#[test]
fn methods_are_case_folded_for_deny_and_must_be_tokens() {
    let c = config(json!({}));
    assert_eq!(verdict(&c, "delete", "/api/orders"), "method case-folded");
    assert_eq!(verdict(&c, "Delete", "/api/orders"), "method case-folded");
    assert_eq!(verdict(&c, "DELETE", "/api/orders"), "canonical");
    assert_eq!(verdict(&c, "get", "/api/orders"), "allowed", "the ALLOW has no method: any method");
    for m in ["DEL ETE", "", "GET\r", "DELETE/"] {
        assert_eq!(outcome(&c, m, "/api/orders").err(), Some(Refusal::Method), "{m:?}");
    }
    let allow_get = Config::parse(Some(
        json!({ "policies": [{ "name": "get", "rules": [{ "to": [{ "operation": { "methods": ["GET"] } }] }] }] }).to_string().as_bytes(),
    ))
    .unwrap();
    assert_eq!(verdict(&allow_get, "get", "/"), "no allow", "an ALLOW compares the method as sent");
}

#[test]
fn readings_can_be_switched_off() {
    let c = config(json!({ "allowDoubleEncoding": true,
        "disabledReadings": ["decodedAgain", "caseFolded", "parametersRemoved", "methodCaseFolded"] }));
    for (method, path) in [("GET", "/api/%2561dmin"), ("GET", "/api/Admin"), ("GET", "/api/admin."), ("delete", "/api/x")] {
        assert_eq!(verdict(&c, method, path), "allowed", "{method} {path}");
    }
    assert_eq!(verdict(&c, "GET", "/api/admin"), "canonical");
    assert!(!c.needs.readings, "with every reading off, none is computed");
    let only_case = config(json!({ "disabledReadings": ["caseFolded"] }));
    assert_eq!(verdict(&only_case, "GET", "/api/Admin"), "allowed");
    assert_eq!(verdict(&only_case, "GET", "/api/admin."), "parameters removed");
}

#[test]
fn a_deny_value_written_in_another_case_also_matches() {
    let c = Config::parse(Some(
        json!({ "policies": [{ "name": "d", "action": "DENY", "rules": [{ "to": [{ "operation": { "paths": ["/Reports/{*}/Raw"] } }] }] }] })
            .to_string()
            .as_bytes(),
    ))
    .unwrap();
    assert_eq!(verdict(&c, "GET", "/reports/7/raw"), "case-folded");
    assert_eq!(verdict(&c, "GET", "/Reports/7/Raw"), "canonical");
    assert_eq!(verdict(&c, "GET", "/reports/7/8/raw"), "allowed");
}

#[test]
fn not_paths_in_a_deny_hold_if_any_reading_escapes_them() {
    let c = Config::parse(Some(
        json!({ "policies": [{ "name": "only-public", "action": "DENY", "rules": [{ "to": [{ "operation": { "notPaths": ["/public/*"] } }] }] }] })
            .to_string()
            .as_bytes(),
    ))
    .unwrap();
    assert_eq!(verdict(&c, "GET", "/public/a"), "allowed");
    assert_eq!(verdict(&c, "GET", "/Public/a"), "canonical");
    assert_eq!(verdict(&c, "GET", "/public/..%3B/admin"), "decoded again + parameters removed");
}

#[test]
fn a_clean_request_computes_no_other_reading() {
    let c = config(json!({}));
    let r = read(&c, "/api/orders?id=7", Some("GET")).unwrap();
    let readings = r.readings.unwrap();
    assert!(readings.paths.is_empty() && readings.method.is_none());
    let allow_only = Config::parse(Some(
        json!({ "policies": [{ "name": "a", "rules": [{ "to": [{ "operation": { "paths": ["/api/*"] } }] }] }] }).to_string().as_bytes(),
    ))
    .unwrap();
    assert!(read(&allow_only, "/api/Admin.", Some("get")).unwrap().readings.is_none(), "no DENY rule reads the path");
}

// ---- the property test ----

/// A naive model of what backends read, written apart from the filter:
/// decode the path they receive 0, 1 or 2 times, each time splitting on `/` and `\`
/// and removing dot segments; optionally drop `;…` and trailing dots and
/// spaces from segments; optionally lower-case.
mod model {
    pub fn decode(s: &str) -> Option<String> {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if b[i] == b'%' && i + 2 < b.len() {
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        String::from_utf8(out).ok()
    }

    pub fn resolve(s: &str, strip: bool) -> String {
        let mut stack: Vec<String> = Vec::new();
        let parts: Vec<&str> = s.split(['/', '\\']).collect();
        let mut trailing = false;
        for part in parts.iter().skip(1) {
            let mut seg = part.to_string();
            if strip {
                if let Some(k) = seg.find(';') {
                    seg.truncate(k);
                }
                let no_space = seg.trim_end_matches(' ').to_string();
                seg = if no_space == "." || no_space == ".." { no_space } else { seg.trim_end_matches(['.', ' ']).to_string() };
            }
            trailing = false;
            match seg.as_str() {
                "" => trailing = true,
                "." => trailing = true,
                ".." => {
                    stack.pop();
                    trailing = true;
                }
                _ => stack.push(seg),
            }
        }
        let mut out: String = stack.iter().map(|s| format!("/{s}")).collect();
        if out.is_empty() || trailing {
            out.push('/');
        }
        out
    }

    /// Every reading, or None when some decoding yields bytes that are not
    /// UTF-8 or a NUL (a request the filter must refuse).
    pub fn readings(raw: &str) -> Option<Vec<String>> {
        let mut levels = vec![raw.to_string()];
        for _ in 0..2 {
            let next = decode(levels.last()?)?;
            if next.contains('\0') {
                return None;
            }
            levels.push(next);
        }
        let mut out = Vec::new();
        for level in &levels {
            for strip in [false, true] {
                let r = resolve(level, strip);
                out.push(r.to_lowercase());
                out.push(r);
            }
        }
        Some(out)
    }

    /// What the filter refuses by its documented rules: raw `;`, spaces
    /// and non-ASCII; escapes that decode to bytes that are not UTF-8 or to
    /// a NUL; in what reaches the upstream (the canonical path), with
    /// `strict` an escape left after decoding once (`%25` and two hex
    /// digits), and without it a second decoding that is unsafe.
    pub fn refused(raw: &str, strict: bool) -> bool {
        let has_escape = |s: &str| {
            let b = s.as_bytes();
            (0..b.len()).any(|i| b[i] == b'%' && b.get(i + 1).is_some_and(u8::is_ascii_hexdigit) && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
        };
        if raw.contains([';', ' ']) || !raw.is_ascii() || decode(raw).is_none_or(|d| d.contains('\0')) {
            return true;
        }
        match crate::path::normalize_with(raw, true) {
            Err(_) => true,
            Ok(n) => (strict && decode(&n.path).is_some_and(|once| has_escape(&once))) || readings(&n.path).is_none(),
        }
    }

    pub fn denied(path: &str) -> bool {
        path == "/api/admin" || path.starts_with("/api/admin/")
    }
}

#[test]
fn for_random_paths_any_denied_reading_denies_and_no_reading_no_denial() {
    const PIECES: [&str; 34] = [
        "/", "//", "\\", "api", "API", "Api", "admin", "ADMIN", "Admin", "%61dmin", "%41dmin", "%2561dmin", ".", "..", "%2e", "%2E%2e",
        "%252e", "%252e%252e", "%2f", "%252f", ";", ";x=1", "%3b", "%3Bv", ".", "%20", " ", "%c0%ae", "%c0%af", "%e0%80%ae", "x",
        "orders", "%25", "%c3%a9",
    ];
    let mut next = filter_common::test_rng::xorshift(0x2545_f491_4f6c_dd1d); // fixed seed: the same cases every run
    let strict_config = config(json!({}));
    let lenient = config(json!({ "allowDoubleEncoding": true }));
    let (mut denied_by_reading, mut allowed_clean, mut refused) = (0, 0, 0);
    for round in 0..30_000 {
        let mut raw = String::from("/api/");
        for _ in 0..(next() % 7) {
            raw.push_str(PIECES[(next() % PIECES.len() as u64) as usize]);
        }
        let strict = round % 2 == 0;
        let c = if strict { &strict_config } else { &lenient };
        let got = outcome(c, "GET", &raw);
        assert_eq!(got.is_err(), model::refused(&raw, strict), "{raw} (strict: {strict}): {got:?}");
        let Ok(decision) = got else {
            refused += 1;
            continue;
        };
        // The upstream receives the canonical path: backends read that.
        let canonical = read(c, &raw, Some("GET")).unwrap().path.path;
        let readings = model::readings(&canonical).unwrap();
        if let Some(r) = readings.iter().find(|r| model::denied(r)) {
            assert!(!decision.verdict.allows(), "{raw}: allowed although its reading {r} is denied");
            denied_by_reading += 1;
        } else if canonical.starts_with("/api/") {
            assert!(decision.verdict.allows(), "{raw}: allowed canonically, no reading denied, yet {:?}", decision.verdict);
            allowed_clean += 1;
        }
    }
    // The random paths cover all three outcomes in earnest.
    // (With this seed: 1736 denied by a reading, 13415 allowed, 14399 refused.)
    assert!(denied_by_reading > 1_000 && allowed_clean > 5_000 && refused > 5_000, "{denied_by_reading} {allowed_clean} {refused}");
}
