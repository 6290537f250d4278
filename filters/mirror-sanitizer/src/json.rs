//! JSON bodies, sanitized in one pass: a strict parser walks the document
//! once, matching each member's key (escapes decoded, any case) and JSON
//! pointer against the rules and running the detectors over every string
//! (and every integer, for card numbers). A member selected by name is
//! redacted whole, whatever its type; under the allowlist posture, values of
//! unlisted names are masked with their type kept (strings become the
//! placeholder, numbers 0, booleans false) and containers are walked, so
//! keys and array lengths stay. Anything that is not valid JSON is an
//! error, so an unreadable body is never passed on.

use crate::detect::{plain_run, Builtin, Detector, Profile};
use crate::hash_batch::HashBatch;
use crate::mode::Replacement;
use crate::names::NameKind;
use crate::redact::Redactor;
use crate::vocabulary::looks_secret;
use std::borrow::Cow;

/// Deeper documents are refused rather than risk the VM's stack.
pub const MAX_DEPTH: usize = 128;

/// Sanitizes a JSON document: `Ok(None)` when nothing changed, `Err` (with
/// what and where, never the data) when it does not parse.
pub fn sanitize_json(input: &[u8], r: &mut Redactor) -> Result<Option<Vec<u8>>, String> {
    let track_path = !r.policy.json_pointers.is_empty();
    let cards_in_numbers = r.policy.detectors.iter().any(|(d, _)| matches!(d, Detector::Builtin(Builtin::CardNumber)));
    let mut w = Walker { input, utf8: utf8_prefix(input), pos: 0, out: Vec::with_capacity(input.len()), changed: false, path: Vec::new(), track_path, cards_in_numbers, hashes: HashBatch::default(), r };
    w.ws();
    let masked = w.r.policy.allowlist.is_some();
    w.value(0, true, masked)?;
    w.ws();
    if w.pos != input.len() {
        return Err(w.error("data after the document"));
    }
    if let Some(hasher) = &w.r.policy.hasher {
        w.hashes.flush(&mut w.out, hasher);
    }
    Ok(w.changed.then_some(w.out))
}

/// The longest prefix of `input` that is UTF-8.
fn utf8_prefix(input: &[u8]) -> &str {
    match std::str::from_utf8(input) {
        Ok(text) => text,
        Err(e) => std::str::from_utf8(input.get(..e.valid_up_to()).unwrap_or_default()).unwrap_or_default(),
    }
}

struct Walker<'a, 'r, 'p> {
    input: &'a [u8],
    /// The longest prefix of `input` that is UTF-8.
    utf8: &'a str,
    pos: usize,
    out: Vec<u8>,
    changed: bool,
    /// The current JSON pointer's tokens, kept only when rules use pointers.
    path: Vec<String>,
    track_path: bool,
    cards_in_numbers: bool,
    /// Pseudonyms not yet written.
    hashes: HashBatch,
    r: &'r mut Redactor<'p>,
}

/// What a value selected by its name becomes.
enum Redacted<'a> {
    Removed,
    Text(String),
    /// Its pseudonym, written with others (`HashBatch`).
    Hashed(Cow<'a, str>),
}

impl<'a> Walker<'a, '_, '_> {
    fn peek(&self) -> u8 {
        self.input.get(self.pos).copied().unwrap_or(0)
    }

    fn peek_byte(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    /// The text of `start..end`, inside a string: a slice of the document's
    /// UTF-8, checked once for the whole document.
    fn text(&self, start: usize, end: usize) -> Result<&'a str, String> {
        match self.utf8.get(start..end) {
            Some(text) => Ok(text),
            None => std::str::from_utf8(self.raw(start, end)).map_err(|_| self.error("invalid UTF-8")),
        }
    }

    #[cold]
    fn error(&self, what: &str) -> String {
        format!("JSON does not parse: {what} at byte {}", self.pos)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
    }

    #[inline]
    fn expect(&mut self, b: u8) -> Result<(), String> {
        if self.peek() == b {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.expected(b))
        }
    }

    #[cold]
    fn expected(&self, b: u8) -> String {
        self.error(&format!("expected '{}'", char::from(b)))
    }

    fn raw(&self, start: usize, end: usize) -> &'a [u8] {
        self.input.get(start..end).unwrap_or_default()
    }

    /// Parses one value; writes its sanitized form when `live`, masked
    /// with its type kept when `masked` (an unlisted name's value).
    fn value(&mut self, depth: usize, live: bool, masked: bool) -> Result<(), String> {
        if depth > MAX_DEPTH {
            return Err(self.error(&format!("nested deeper than {MAX_DEPTH}")));
        }
        match self.peek() {
            b'{' => self.object(depth, live),
            b'[' => self.array(depth, live, masked),
            b'"' => {
                let (start, end, text, profile) = self.string_profiled()?;
                if live && masked {
                    self.changed = true;
                    let mask = self.r.unlisted();
                    write_string(&mut self.out, &mask);
                } else if live {
                    let profile = profile.unwrap_or_else(|| Profile::of(text.as_bytes()));
                    match self.r.detect_with(&text, profile) {
                        Some(new) => {
                            self.changed = true;
                            write_string(&mut self.out, &new);
                        }
                        None => self.out.extend_from_slice(self.input.get(start..end).unwrap_or_default()),
                    }
                }
                Ok(())
            }
            b't' | b'f' if live && masked => {
                self.literal(if self.peek() == b't' { b"true" } else { b"false" }, false)?;
                self.masked_scalar(b"false");
                Ok(())
            }
            b'-' | b'0'..=b'9' if live && masked => {
                self.number(false)?;
                self.masked_scalar(b"0");
                Ok(())
            }
            b't' => self.literal(b"true", live),
            b'f' => self.literal(b"false", live),
            b'n' => self.literal(b"null", live),
            b'-' | b'0'..=b'9' => self.number(live),
            _ => Err(self.error("expected a value")),
        }
    }

    /// Writes the typed mask of an unlisted scalar, counted by the allowlist.
    fn masked_scalar(&mut self, mask: &[u8]) {
        self.changed = true;
        let _ = self.r.unlisted();
        self.out.extend_from_slice(mask);
    }

    fn literal(&mut self, word: &[u8], live: bool) -> Result<(), String> {
        if self.input.get(self.pos..self.pos + word.len()) != Some(word) {
            return Err(self.error("bad literal"));
        }
        self.pos += word.len();
        if live {
            self.out.extend_from_slice(word);
        }
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_ascii_digit() {
            self.pos += 1;
        }
        self.pos - start
    }

    fn number(&mut self, live: bool) -> Result<(), String> {
        let start = self.pos;
        if self.peek() == b'-' {
            self.pos += 1;
        }
        match self.peek() {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return Err(self.error("bad number")),
        }
        let integer = self.pos;
        if self.peek() == b'.' {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(self.error("bad number"));
            }
        }
        if matches!(self.peek(), b'e' | b'E') {
            self.pos += 1;
            if matches!(self.peek(), b'+' | b'-') {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(self.error("bad number"));
            }
        }
        if live {
            let end = self.pos;
            // A card number sent as a JSON integer.
            let detected = if self.cards_in_numbers && integer == end && (13..=19).contains(&(end - start)) {
                let text = String::from_utf8_lossy(self.raw(start, end)).into_owned();
                self.r.detect(&text)
            } else {
                None
            };
            match detected {
                Some(new) => {
                    self.changed = true;
                    write_string(&mut self.out, &new);
                }
                None => self.out.extend_from_slice(self.input.get(start..end).unwrap_or_default()),
            }
        }
        Ok(())
    }

    /// Parses a string at the cursor: its raw range (quotes included) and
    /// its decoded text.
    fn string(&mut self) -> Result<(usize, usize, Cow<'a, str>), String> {
        self.string_with(false).map(|(s, e, t, _)| (s, e, t))
    }

    /// `string`, with the detectors' profile of a string without escapes
    /// taken in the same pass.
    fn string_profiled(&mut self) -> Result<(usize, usize, Cow<'a, str>, Option<Profile>), String> {
        self.string_with(true)
    }

    fn string_with(&mut self, profiled: bool) -> Result<(usize, usize, Cow<'a, str>, Option<Profile>), String> {
        let start = self.pos;
        self.expect(b'"')?;
        let content = self.pos;
        // Fast path: a run of plain bytes, then the closing quote.
        let (end, classes) = plain_run(self.input, content);
        self.pos = end;
        match self.peek_byte() {
            Some(b'"') => {
                let text = self.text(content, end)?;
                self.pos += 1;
                let profile = profiled.then(|| Profile::from_classes(classes, text.as_bytes()));
                return Ok((start, self.pos, Cow::Borrowed(text), profile));
            }
            Some(b'\\') | None => {}
            Some(_) => return Err(self.error("control character in a string")),
        }
        let mut bytes = self.raw(content, self.pos).to_vec();
        loop {
            let Some(&b) = self.input.get(self.pos) else {
                return Err(self.error("unterminated string"));
            };
            self.pos += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let e = self.peek();
                    self.pos += 1;
                    match e {
                        b'"' | b'\\' | b'/' => bytes.push(e),
                        b'b' => bytes.push(8),
                        b'f' => bytes.push(12),
                        b'n' => bytes.push(b'\n'),
                        b'r' => bytes.push(b'\r'),
                        b't' => bytes.push(b'\t'),
                        b'u' => {
                            let c = self.unicode_escape()?;
                            let mut buf = [0u8; 4];
                            bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                        }
                        _ => return Err(self.error("bad escape")),
                    }
                }
                0..=0x1f => return Err(self.error("control character in a string")),
                _ => bytes.push(b),
            }
        }
        let text = String::from_utf8(bytes).map_err(|_| self.error("invalid UTF-8"))?;
        Ok((start, self.pos, Cow::Owned(text), None))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.raw(self.pos, self.pos + 4);
        let text = std::str::from_utf8(digits).ok().filter(|t| t.len() == 4 && t.bytes().all(|b| b.is_ascii_hexdigit()));
        let v = text.and_then(|t| u32::from_str_radix(t, 16).ok()).ok_or_else(|| self.error("bad \\u escape"))?;
        self.pos += 4;
        Ok(v)
    }

    fn unicode_escape(&mut self) -> Result<char, String> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.raw(self.pos, self.pos + 2) != b"\\u" {
                    return Err(self.error("lone surrogate"));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error("lone surrogate"));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error("lone surrogate")),
            c => c,
        };
        char::from_u32(code).ok_or_else(|| self.error("bad \\u escape"))
    }

    /// What the member `key` here gets: the first rule (by index) that
    /// selects it by name or pointer and whether that selection is weak (a
    /// rule only for secret-looking strings), and whether the allowlist
    /// keeps its value.
    fn member_rule(&mut self, key: &str) -> (Option<(usize, bool)>, bool, Option<String>) {
        let (verdict, new_key) = self.r.name_and_text(NameKind::Json, key);
        let by_name = verdict.selection.map(|s| (s.rule, s.weak));
        let by_pointer = if self.track_path { self.pointer_rule(key).map(|rule| (rule, false)) } else { None };
        let rule = match (by_name, by_pointer) {
            (Some(a), Some(b)) => Some(if b.0 <= a.0 { b } else { a }),
            (a, b) => a.or(b),
        };
        (rule, verdict.allowed, new_key)
    }

    /// A weakly selected member: redacted only if its value is a string
    /// that looks secret; otherwise the cursor is left where it was.
    fn redact_if_secret(&mut self, rule: usize) -> Result<Option<Redacted<'a>>, String> {
        if self.peek() != b'"' {
            return Ok(None);
        }
        let start = self.pos;
        let (_, _, text) = self.string()?;
        if !looks_secret(&text) {
            self.pos = start;
            return Ok(None);
        }
        Ok(Some(self.redaction(rule, text)))
    }

    /// What `rule` makes of a selected value's text.
    fn redaction(&mut self, rule: usize, text: Cow<'a, str>) -> Redacted<'a> {
        self.changed = true;
        if self.r.select_later(rule, text.len()) {
            return Redacted::Hashed(text);
        }
        match self.r.select(rule, &text) {
            Replacement::Remove => Redacted::Removed,
            Replacement::Text(t) => Redacted::Text(t),
        }
    }

    fn write_redacted(&mut self, redacted: Redacted<'_>) {
        match redacted {
            Redacted::Removed => {}
            Redacted::Text(text) => write_string(&mut self.out, &text),
            Redacted::Hashed(value) => match &self.r.policy.hasher {
                Some(hasher) => self.hashes.push(&mut self.out, value.as_bytes(), hasher),
                // `select_later` defers only where a key is set.
                None => write_string(&mut self.out, crate::text::DEFAULT_PLACEHOLDER),
            },
        }
    }

    fn pointer_rule(&self, token: &str) -> Option<usize> {
        let depth = self.path.len() + 1;
        self.r
            .policy
            .json_pointers
            .iter()
            .filter(|(p, _)| p.len() == depth && p.last().is_some_and(|t| t == token) && p.iter().zip(&self.path).all(|(a, b)| a == b))
            .map(|(_, rule)| *rule)
            .min()
    }

    /// Skips a selected value and writes what its rule makes of it; `false`
    /// when the rule removes it.
    fn redact_value(&mut self, depth: usize, rule: usize) -> Result<Redacted<'a>, String> {
        // The text a rule redacts: a string's decoded content, or any other
        // value's JSON text.
        let text = if self.peek() == b'"' && depth <= MAX_DEPTH {
            self.string()?.2
        } else {
            let start = self.pos;
            self.value(depth, false, false)?;
            String::from_utf8_lossy(self.raw(start, self.pos))
        };
        Ok(self.redaction(rule, text))
    }

    fn object(&mut self, depth: usize, live: bool) -> Result<(), String> {
        self.expect(b'{')?;
        if live {
            self.out.push(b'{');
        }
        self.ws();
        let mut wrote = false;
        if self.peek() == b'}' {
            self.pos += 1;
        } else {
            loop {
                self.ws();
                let (kstart, kend, key) = self.string()?;
                self.ws();
                self.expect(b':')?;
                self.ws();
                if !live {
                    self.value(depth + 1, false, false)?;
                } else {
                    let (rule, allowed, new_key) = self.member_rule(&key);
                    let replacement = match rule {
                        Some((rule, false)) => Some(self.redact_value(depth + 1, rule)?),
                        Some((rule, true)) => self.redact_if_secret(rule)?,
                        None => None,
                    };
                    if !matches!(replacement, Some(Redacted::Removed)) {
                        if wrote {
                            self.out.push(b',');
                        }
                        wrote = true;
                        // Keys are free text too (maps keyed by e-mail address).
                        match new_key {
                            Some(new_key) => {
                                self.changed = true;
                                write_string(&mut self.out, &new_key);
                            }
                            None => self.out.extend_from_slice(self.input.get(kstart..kend).unwrap_or_default()),
                        }
                        self.out.push(b':');
                    }
                    match replacement {
                        Some(redacted) => self.write_redacted(redacted),
                        None => {
                            if self.track_path {
                                self.path.push(key.into_owned());
                            }
                            self.value(depth + 1, true, !allowed)?;
                            if self.track_path {
                                self.path.pop();
                            }
                        }
                    }
                }
                self.ws();
                match self.peek() {
                    b',' => self.pos += 1,
                    b'}' => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.error("expected ',' or '}'")),
                }
            }
        }
        if live {
            self.out.push(b'}');
        }
        Ok(())
    }

    fn array(&mut self, depth: usize, live: bool, masked: bool) -> Result<(), String> {
        self.expect(b'[')?;
        if live {
            self.out.push(b'[');
        }
        self.ws();
        if self.peek() == b']' {
            self.pos += 1;
        } else {
            let mut index = 0usize;
            loop {
                self.ws();
                if index > 0 && live {
                    self.out.push(b',');
                }
                let rule = if live && self.track_path { self.pointer_rule(&index.to_string()) } else { None };
                match rule {
                    // A removed element becomes null: later indexes stay put.
                    Some(rule) => match self.redact_value(depth + 1, rule)? {
                        Redacted::Removed => self.out.extend_from_slice(b"null"),
                        redacted => self.write_redacted(redacted),
                    },
                    None => {
                        if live && self.track_path {
                            self.path.push(index.to_string());
                        }
                        self.value(depth + 1, live, masked)?;
                        if live && self.track_path {
                            self.path.pop();
                        }
                    }
                }
                index += 1;
                self.ws();
                match self.peek() {
                    b',' => self.pos += 1,
                    b']' => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(self.error("expected ',' or ']'")),
                }
            }
        }
        if live {
            self.out.push(b']');
        }
        Ok(())
    }
}

/// Writes `text` as a JSON string: runs without a byte to escape are
/// copied whole.
pub fn write_string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    let bytes = text.as_bytes();
    let mut at = 0;
    loop {
        let (end, _) = plain_run(bytes, at);
        out.extend_from_slice(bytes.get(at..end).unwrap_or_default());
        let Some(&b) = bytes.get(end) else { break };
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            c => out.extend_from_slice(format!("\\u{:04x}", c).as_bytes()),
        }
        at = end + 1;
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    const KEY: &str = r#""hashKey":{"value":"0123456789abcdef-key"}"#;

    fn run_with(config: &str, body: &str) -> Result<Option<String>, String> {
        let p = Policy::parse(Some(config.as_bytes()), &|_| None).unwrap();
        let mut r = Redactor::new(&p);
        sanitize_json(body.as_bytes(), &mut r).map(|o| o.map(|v| String::from_utf8(v).unwrap()))
    }

    fn run(body: &str) -> String {
        run_with("{}", body).unwrap().unwrap_or_else(|| body.to_string())
    }

    #[test]
    fn keys_match_at_any_depth_in_any_case() {
        assert_eq!(run(r#"{"user":{"Password":"hunter2","name":"x"},"a":[{"TOKEN":1}]}"#), r#"{"user":{"name":"x"},"a":[{}]}"#);
        assert_eq!(run(r#"{"password":"a","b":1,"password":"c"}"#), r#"{"b":1}"#, "repeated keys are each removed");
    }

    #[test]
    fn escaped_keys_are_decoded_before_matching() {
        assert_eq!(run(r#"{"pass\u0077ord":"hunter2","ok":true}"#), r#"{"ok":true}"#);
        assert_eq!(run(r#"{"pa\u0053\u0053word":"x"}"#), "{}");
    }

    #[test]
    fn detectors_see_decoded_strings_and_integers() {
        assert_eq!(run(r#"{"note":"mail jane\u0040example.com now","n":4111111111111111,"m":1.5}"#), r#"{"note":"mail REDACTED now","n":"REDACTED","m":1.5}"#);
        assert_eq!(run(r#"["4111 1111 1111 1111","AKIAIOSFODNN7EXAMPLE"]"#), r#"["REDACTED","REDACTED"]"#);
        assert_eq!(run(r#"{"jane@example.com":{"plan":"pro"}}"#), r#"{"REDACTED":{"plan":"pro"}}"#, "keys are scanned too");
    }

    #[test]
    fn modes_apply_to_whole_values() {
        let config = format!(r#"{{"rules":[{{"name":"uid","jsonKeys":["userId"],"mode":"hash"}},{{"name":"ssn","jsonKeys":["ssn"],"keepLast":4,"placeholder":"***-**-"}},{{"name":"addr","jsonKeys":["address"],"mode":"mask"}}],{KEY}}}"#);
        let out = run_with(&config, r#"{"userId":"u-1","ssn":"123-45-6789","address":{"street":"Main"},"other":[1,2]}"#).unwrap().unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert!(v["userId"].as_str().unwrap().starts_with("hmac-"));
        assert_eq!(v["ssn"], "***-**-6789");
        assert_eq!(v["address"], "REDACTED");
        assert_eq!(v["other"], serde_json::json!([1, 2]));
        // The same user hashes the same in a number and a string.
        let again = run_with(&config, r#"{"userId":"u-1"}"#).unwrap().unwrap();
        assert!(again.contains(v["userId"].as_str().unwrap()));
    }

    #[test]
    fn pseudonyms_written_in_batches_are_each_values_own() {
        // Partial and full batches, escaped strings, other types, a value
        // too long for one block, in objects, arrays and a nested document.
        let config = format!(r#"{{"rules":[{{"name":"uid","jsonKeys":["userId"],"mode":"hash"}}],{KEY}}}"#);
        let p = Policy::parse(Some(config.as_bytes()), &|_| None).unwrap();
        let hasher = p.hasher.as_ref().unwrap();
        let long = "x".repeat(80);
        let values: Vec<serde_json::Value> = vec!["u-1".into(), "a\"b\\u00e9".into(), 42.into(), true.into(), long.as_str().into(), serde_json::json!({"k": [1, 2]}), "".into(), "é".into(), "u-9".into()];
        for n in 1..=values.len() {
            let records: Vec<serde_json::Value> = values.iter().take(n).map(|v| serde_json::json!({"userId": v, "keep": "me"})).collect();
            let body = serde_json::to_string(&serde_json::json!({"records": records, "nested": {"userId": "u-1"}})).unwrap();
            let out: serde_json::Value = serde_json::from_str(&run_with(&config, &body).unwrap().unwrap()).unwrap();
            for (record, v) in out["records"].as_array().unwrap().iter().zip(&values) {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                assert_eq!(record["userId"], hasher.pseudonym(text.as_bytes()), "{n} values, {v}");
                assert_eq!(record["keep"], "me");
            }
            assert_eq!(out["nested"]["userId"], hasher.pseudonym(b"u-1"));
        }
    }

    #[test]
    fn names_are_read_by_their_words_and_any_type_is_redacted() {
        let out = run(r#"{"newPassword":"x","cardPin":739184,"mfaEnabled":true,"auth":{"user":"u","pw":"p"},"apiKeys":["a","b"],"order_id":"ORD-1","sort":"asc","tokenizer":"bpe","token_type":"Bearer"}"#);
        assert_eq!(out, r#"{"mfaEnabled":true,"order_id":"ORD-1","sort":"asc","tokenizer":"bpe","token_type":"Bearer"}"#);
        let out = run(r#"{"ssn":219099999,"dateOfBirth":"1985-04-12","x-customer-id":"cus_1"}"#);
        assert_eq!(out, r#"{"ssn":"REDACTED","dateOfBirth":"REDACTED","x-customer-id":"REDACTED"}"#);
    }

    #[test]
    fn weak_names_take_only_secret_looking_strings() {
        assert_eq!(run(r#"{"key":"color","code":404,"nonce":"SplxlOBeZQQYbYS6WxSbIA"}"#), r#"{"key":"color","code":404}"#);
    }

    #[test]
    fn the_allowlist_keeps_structure_and_only_listed_values() {
        let config = r#"{"allowlist":{"names":["orderId","items","sku","qty"]},"builtinRules":false}"#;
        let out = run_with(config, r#"{"orderId":"ORD-1","note":"hi","items":[{"sku":"S-1","qty":2,"gift":true,"price":9.5}],"tags":["a","b"],"n":null}"#).unwrap().unwrap();
        assert_eq!(out, r#"{"orderId":"ORD-1","note":"REDACTED","items":[{"sku":"S-1","qty":2,"gift":false,"price":0}],"tags":["REDACTED","REDACTED"],"n":null}"#);
        assert_eq!(run_with(config, r#""top""#).unwrap().unwrap(), r#""REDACTED""#, "a value with no name is unlisted");
    }

    #[test]
    fn pointers_select_exact_places() {
        let config = r#"{"rules":[{"name":"p","jsonPointers":["/customer/id","/items/1","/a~1b"],"mode":"remove"}]}"#;
        assert_eq!(
            run_with(config, r#"{"customer":{"id":7,"name":"x"},"id":8,"items":["a","b","c"],"a/b":1}"#).unwrap().unwrap(),
            r#"{"customer":{"name":"x"},"id":8,"items":["a",null,"c"]}"#
        );
    }

    #[test]
    fn unchanged_documents_are_reported_unchanged() {
        assert_eq!(run_with("{}", r#" {"a": [1, 2.5e3, true, null, "x"]} "#).unwrap(), None);
    }

    #[test]
    fn broken_json_is_an_error_never_a_pass() {
        for bad in [
            "", " ", "{", r#"{"a":}"#, r#"{"a":1,}"#, "[1 2]", r#"{"a":1} x"#, r#""\x""#, r#""\ud800""#, r#""\udc00x""#, "01", "1.", "-", "tru",
            "{\"a\":\"\u{1}\"}", "[", r#"{"a" 1}"#, "{\"a\":\"b", r#""\u12""#, "{1:2}", "NaN",
        ] {
            assert!(run_with("{}", bad).is_err(), "{bad:?} was accepted");
        }
        assert!(sanitize_json(&[b'"', 0xff, b'"'], &mut Redactor::new(&Policy::parse(None, &|_| None).unwrap())).is_err());
        let deep = "[".repeat(MAX_DEPTH + 2) + &"]".repeat(MAX_DEPTH + 2);
        assert!(run_with("{}", &deep).unwrap_err().contains("nested deeper"));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(run_with("{}", &ok).is_ok());
    }

    #[test]
    fn written_strings_are_valid_json() {
        let mut out = Vec::new();
        write_string(&mut out, "a\"b\\c\n\u{1}é");
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "a\"b\\c\n\u{1}é");
    }
}
