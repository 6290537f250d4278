//! The mirror-sanitizer corpus (`tests/corpus/mirror-sanitizer/*.json`):
//! loads its requests byte for byte, and searches what a shadow upstream
//! received for each secret and each string that must survive, in every
//! reading a receiver could give it: as it came, percent-decoded,
//! JSON-decoded (strings inside strings too), base64-decoded and gunzipped.

use e2e::{Received, Request};
use serde::Deserialize;
use serde_json::Value;
use std::io::Read;

/// One request of the corpus and what it must and must not leave behind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    #[serde(rename = "bodyBase64")]
    pub body_base64: Option<String>,
    /// Strings (or numbers) that must not reach the shadow in any reading.
    pub secrets: Vec<Value>,
    /// Strings that must reach the shadow in some reading.
    pub survive: Vec<String>,
}

impl Case {
    /// The request as the corpus spells it, marked with its index.
    pub fn request(&self, id: usize) -> Request {
        let mut r = Request::new(&self.method, &self.path);
        r.headers = self.headers.clone();
        r.headers.push(("x-case".into(), id.to_string()));
        r.body = match (&self.body, &self.body_base64) {
            (Some(b), _) => b.clone().into_bytes(),
            (None, Some(b)) => decode_base64(b).unwrap_or_else(|| panic!("{}: bodyBase64 is not base64", self.name)),
            (None, None) => Vec::new(),
        };
        r
    }

    pub fn secrets(&self) -> Vec<String> {
        self.secrets.iter().map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)).collect()
    }
}

/// Every case of every corpus file, `(file, case)`, in file order.
pub fn load() -> Vec<(String, Case)> {
    let dir = e2e::workspace_root().join("tests/corpus/mirror-sanitizer");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "json")).collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let place = file.file_stem().unwrap().to_string_lossy().into_owned();
        let cases: Vec<Case> = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        out.extend(cases.into_iter().map(|c| (place.clone(), c)));
    }
    out
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    use base64::engine::DecodePaddingMode;
    use base64::Engine;
    let config = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent).with_decode_allow_trailing_bits(true);
    let alphabet = if text.contains(['-', '_']) { &base64::alphabet::URL_SAFE } else { &base64::alphabet::STANDARD };
    GeneralPurpose::new(alphabet, config).decode(text.trim_end_matches('=')).ok()
}

fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' if plus_is_space => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Strings, keys and numbers of a JSON document, and of JSON documents in
/// its strings.
fn json_texts(v: &Value, out: &mut Vec<String>, depth: usize) {
    match v {
        Value::String(s) => {
            out.push(s.clone());
            if depth < 6 {
                if let Ok(inner) = serde_json::from_str::<Value>(s) {
                    json_texts(&inner, out, depth + 1);
                }
            }
        }
        Value::Number(n) => out.push(n.to_string()),
        Value::Array(items) => items.iter().for_each(|i| json_texts(i, out, depth + 1)),
        Value::Object(map) => {
            for (k, v) in map {
                out.push(k.clone());
                json_texts(v, out, depth + 1);
            }
        }
        _ => {}
    }
}

/// Every reading of a received request that a receiver could make.
pub fn readings(r: &Received) -> Vec<String> {
    let mut body = r.body.clone();
    if body.starts_with(&[0x1f, 0x8b]) {
        let mut plain = Vec::new();
        if flate2::read::GzDecoder::new(body.as_slice()).read_to_end(&mut plain).is_ok() {
            body = plain;
        }
    }
    let mut wire = format!("{} {}\n", r.method, r.path);
    for (k, v) in &r.headers {
        wire.push_str(&format!("{k}: {v}\n"));
    }
    wire.push_str(&String::from_utf8_lossy(&body));
    let mut texts = vec![wire];
    let mut at = 0;
    // Each new text is read again, a few rounds deep.
    for _ in 0..4 {
        let end = texts.len();
        let mut new = Vec::new();
        for text in &texts[at..end] {
            new.push(percent_decode(text, true));
            new.push(percent_decode(text, false));
            let trimmed = text.trim();
            if let Ok(v) = serde_json::from_str::<Value>(trimmed) {
                json_texts(&v, &mut new, 0);
            }
            // A JSON body inside the wire text, and base64 tokens anywhere.
            if let Some(start) = text.find(['{', '[']) {
                if let Ok(v) = serde_json::from_str::<Value>(text[start..].trim()) {
                    json_texts(&v, &mut new, 0);
                }
            }
            for token in text.split(|c: char| !(c.is_ascii_alphanumeric() || "+/=-_".contains(c))) {
                // `name=<base64>`: the token whole, and each piece around an `=`.
                for piece in std::iter::once(token).chain(token.split('=')) {
                    if piece.len() >= 12 {
                        if let Some(decoded) = decode_base64(piece).and_then(|b| String::from_utf8(b).ok()) {
                            new.push(decoded);
                        }
                    }
                }
            }
        }
        at = end;
        for n in new {
            if !texts.contains(&n) {
                texts.push(n);
            }
        }
        if at == texts.len() {
            break;
        }
    }
    texts
}

/// `needle` in `text` as a whole token: not inside a longer run of letters
/// and digits (so `7373` is not found inside a pseudonym's hex).
fn contains_token(text: &str, needle: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    text.match_indices(needle).any(|(i, _)| {
        let first = needle.chars().next();
        let last = needle.chars().last();
        (!alnum(first) || !alnum(text[..i].chars().last())) && (!alnum(last) || !alnum(text[i + needle.len()..].chars().next()))
    })
}

/// Whether any reading holds `needle`.
pub fn found(readings: &[String], needle: &str) -> bool {
    readings.iter().any(|t| contains_token(t, needle))
}
