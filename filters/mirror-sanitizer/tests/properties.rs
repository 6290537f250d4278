//! Property tests with a fixed seed (a small in-tree PRNG, so every run is
//! the same and `make test` runs them): the body, path, header and config
//! parsers never panic on any input; generated JSON with planted secrets
//! comes out valid and without them; the JSON reader accepts exactly what
//! serde_json accepts (numbers beyond f64 aside).

#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)] // tests fail by panicking

use mirror_sanitizer::body::{classify, sanitize_body, BodyKind};
use mirror_sanitizer::config::Policy;
use mirror_sanitizer::json::sanitize_json;
use mirror_sanitizer::path::sanitize_path;
use mirror_sanitizer::nested::redactor;
use mirror_sanitizer::request::sanitize_headers;
use serde_json::{json, Value};

/// xorshift64*: tiny, deterministic, good enough to pick test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const SEED: u64 = 0x5EED_2026_0000_0001;

fn policy() -> Policy {
    let config = json!({
        "rules": [
            { "name": "uid", "fields": ["user_id"], "pathSegments": ["/users/{id}"], "cookies": ["uid"], "mode": "hash" },
            { "name": "ptr", "jsonPointers": ["/a/0/b", "/customer/ssn"], "mode": "mask", "keepLast": 2 },
            { "name": "emp", "patterns": ["EMP-[0-9]{6}"] },
        ],
        "hashKey": { "value": "property-key-0123456789" },
    });
    Policy::parse(Some(config.to_string().as_bytes()), &|_| None).unwrap()
}

/// Secrets the generator plants, each found by a rule of `policy()`.
const SECRETS: [&str; 8] = [
    "4111 1111 1111 1111",
    "jane.doe@example.com",
    "AKIAIOSFODNN7EXAMPLE",
    "DE89370400440532013000",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJl",
    "+44 20 7946 0958",
    "EMP-123456",
    "Bearer opaque-tok-999",
];
const SENSITIVE_KEYS: [&str; 5] = ["password", "Token", "user_id", "SECRET", "api_key"];
const PLAIN_KEYS: [&str; 6] = ["name", "items", "a", "b", "qty", "note"];
const WORDS: [&str; 6] = ["hello", "x", "", "ünïcode ✓", "quote\"and\\slash", "line\nbreak"];

/// A random JSON value; the secrets it plants go into `planted`.
fn gen_value(rng: &mut Rng, depth: usize, planted: &mut Vec<String>) -> Value {
    let leaf = depth >= 5 || rng.chance(35);
    if leaf {
        return match rng.below(6) {
            0 => json!(rng.below(1000)),
            1 => json!(rng.chance(50)),
            2 => Value::Null,
            3 => {
                let s = *rng.pick(&SECRETS);
                planted.push(s.to_string());
                json!(format!("{} {s} {}", rng.pick(&WORDS), rng.pick(&WORDS)))
            }
            4 => json!(-1.5e3),
            _ => json!(rng.pick(&WORDS)),
        };
    }
    if rng.chance(40) {
        Value::Array((0..rng.below(4)).map(|_| gen_value(rng, depth + 1, planted)).collect())
    } else {
        let mut map = serde_json::Map::new();
        for _ in 0..rng.below(5) {
            if rng.chance(25) {
                // A sensitive key: its value is removed or hashed whole.
                let key = rng.pick(&SENSITIVE_KEYS).to_string();
                let secret = format!("sv-{}-{}", rng.below(1_000_000), "z");
                planted.push(secret.clone());
                map.insert(key, json!(secret));
            } else {
                let key = rng.pick(&PLAIN_KEYS).to_string();
                map.insert(key, gen_value(rng, depth + 1, planted));
            }
        }
        Value::Object(map)
    }
}

/// Bytes that look like the inputs: a real document, then damaged.
fn mutate(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    const NASTY: &[u8] = b"{}[]\":,\\u0aZ\x00\xff\xc3\x28 \r\n-+.eE";
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len() + 1);
        match rng.below(5) {
            0 if !bytes.is_empty() => {
                let i = at.min(bytes.len() - 1);
                bytes[i] = *rng.pick(NASTY);
            }
            1 => bytes.insert(at, *rng.pick(NASTY)),
            2 => bytes.truncate(at),
            3 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => {
                let extra: Vec<u8> = (0..rng.below(8)).map(|_| rng.next() as u8).collect();
                bytes.splice(at..at, extra);
            }
        }
    }
    bytes
}

#[test]
fn generated_json_comes_out_valid_and_without_its_secrets() {
    let p = policy();
    let mut rng = Rng(SEED);
    for i in 0..1500 {
        let mut planted = Vec::new();
        let doc = gen_value(&mut rng, 0, &mut planted);
        let text = if rng.chance(50) { doc.to_string() } else { serde_json::to_string_pretty(&doc).unwrap() };
        let mut r = redactor(&p);
        let out = sanitize_json(text.as_bytes(), &mut r).unwrap_or_else(|e| panic!("case {i}: {e}\n{text}"));
        let out = out.map(|o| String::from_utf8(o).unwrap()).unwrap_or(text.clone());
        let reparsed: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("case {i}: output is not JSON ({e}):\n{out}"));
        let flat = reparsed.to_string();
        for secret in &planted {
            assert!(!out.contains(secret.as_str()) && !flat.contains(secret.as_str()), "case {i}: {secret:?} survived:\n{text}\n->\n{out}");
        }
    }
}

#[test]
fn the_json_reader_accepts_exactly_what_serde_json_accepts() {
    let p = policy();
    let mut rng = Rng(SEED ^ 1);
    let mut rejected = 0;
    for i in 0..4000 {
        let mut planted = Vec::new();
        let doc = gen_value(&mut rng, 0, &mut planted).to_string().into_bytes();
        let input = mutate(&mut rng, doc);
        let ours = sanitize_json(&input, &mut redactor(&p));
        let theirs = serde_json::from_slice::<Value>(&input);
        // JSON has no number range; serde_json's f64 does. Such a body is
        // valid JSON and is sanitized like any other.
        if theirs.as_ref().is_err_and(|e| e.to_string().starts_with("number out of range")) {
            assert!(ours.is_ok(), "case {i}");
            continue;
        }
        assert_eq!(ours.is_ok(), theirs.is_ok(), "case {i}: we say {:?}, serde_json says {:?} for {:?}", ours.as_ref().err(), theirs.as_ref().err(), String::from_utf8_lossy(&input));
        rejected += usize::from(ours.is_err());
        if let Ok(Some(out)) = ours {
            serde_json::from_slice::<Value>(&out).unwrap_or_else(|e| panic!("case {i}: output is not JSON: {e}"));
        }
    }
    assert!(rejected > 1000, "the mutations should break many documents ({rejected})");
}

#[test]
fn no_body_reader_panics_on_any_bytes() {
    let p = policy();
    let mut rng = Rng(SEED ^ 2);
    let kinds = [BodyKind::Json, BodyKind::Form, BodyKind::Multipart { boundary: "bb".into() }];
    let seeds: [&[u8]; 4] = [
        b"--bb\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nx\r\n--bb\r\nContent-Type: application/json\r\n\r\n{\"a\":1}\r\n--bb--",
        b"a=1&password=2&user_id=3&%41=%zz&email=a%40b.io",
        b"{\"a\":[{\"b\":\"c\"}],\"token\":\"t\"}",
        b"",
    ];
    for _ in 0..6000 {
        let base = rng.pick(&seeds).to_vec();
        let input = if rng.chance(20) { (0..rng.below(200)).map(|_| rng.next() as u8).collect() } else { mutate(&mut rng, base) };
        for kind in &kinds {
            let _ = sanitize_body(kind, &input, &mut redactor(&p));
        }
        let text = String::from_utf8_lossy(&input);
        let _ = sanitize_path(&format!("/users/{text}?{text}"), &mut redactor(&p));
        let headers = [("cookie", input.as_slice()), ("x-note", input.as_slice()), (":path", input.as_slice())];
        let _ = sanitize_headers(&headers, &p.shadow, &mut redactor(&p));
        let _ = classify(Some(&text), Some(&text));
    }
}

#[test]
fn the_config_parser_never_panics_and_always_explains() {
    let mut rng = Rng(SEED ^ 3);
    let fields = [
        "shadow", "match", "suffix", "header", "removeHeader", "rules", "name", "mode", "placeholder", "keepLast", "headers", "headerPatterns",
        "cookies", "queryParams", "pathSegments", "jsonKeys", "jsonPointers", "formFields", "fields", "detectors", "patterns", "builtinRules",
        "maxBodyBytes", "onUnsanitizable", "hashKey", "env", "value",
    ];
    let values = [
        json!("hash"), json!("mask"), json!("remove"), json!("all"), json!("header"), json!("/users/{id}"), json!("/a~1b"), json!("(x"),
        json!(""), json!("*"), json!(-1), json!(0), json!(18446744073709551615u64), json!(true), json!(null), json!(["cardNumber"]),
        json!(["/x/{y}", "nope"]), json!("0123456789abcdef0123"), json!({}),
    ];
    fn gen(rng: &mut Rng, fields: &[&str], values: &[Value], depth: usize) -> Value {
        if depth > 3 || rng.chance(40) {
            return rng.pick(values).clone();
        }
        if rng.chance(30) {
            return Value::Array((0..rng.below(3)).map(|_| gen(rng, fields, values, depth + 1)).collect());
        }
        let mut map = serde_json::Map::new();
        for _ in 0..rng.below(5) {
            map.insert(rng.pick(fields).to_string(), gen(rng, fields, values, depth + 1));
        }
        Value::Object(map)
    }
    let mut accepted = 0;
    for _ in 0..4000 {
        let config = gen(&mut rng, &fields, &values, 0).to_string().into_bytes();
        let config = if rng.chance(30) { mutate(&mut rng, config) } else { config };
        let env = |_: &str| Some("environment-key-0123456789".to_string());
        match Policy::parse(Some(&config), &env) {
            Ok(_) => accepted += 1,
            Err(e) => assert!(!e.message.is_empty(), "{}", String::from_utf8_lossy(&config)),
        }
    }
    assert!(accepted > 0, "some generated configs should be valid");
}

/// A name for a sensitive word, in one of the spellings APIs use.
fn compound_name(rng: &mut Rng) -> String {
    const BEFORE: [&str; 8] = ["new", "old", "db", "user", "account", "gcp", "primary", "x"];
    const WORDS: [&[&str]; 14] = [
        &["password"], &["pass"], &["secret"], &["token"], &["api", "key"], &["private", "key"], &["signature"], &["pin"],
        &["ssn"], &["passport", "number"], &["iban"], &["email"], &["date", "of", "birth"], &["card", "number"],
    ];
    let mut words: Vec<String> = Vec::new();
    if rng.chance(70) {
        words.push(rng.pick(&BEFORE).to_string());
    }
    words.extend(rng.pick(&WORDS).iter().map(|w| w.to_string()));
    let cap = |w: &str| w[..1].to_uppercase() + &w[1..];
    match rng.below(7) {
        0 => words.iter().enumerate().map(|(i, w)| if i == 0 { w.clone() } else { cap(w) }).collect(),
        1 => words.join("_"),
        2 => words.join("-"),
        3 => words.join("."),
        4 => words.iter().map(|w| cap(w)).collect::<Vec<_>>().join("-"),
        5 if words.len() > 1 => format!("{}[{}]", words[0], words[1..].join("_")),
        _ => format!("{}%5B{}%5D", words[0], words[1..].join("_")),
    }
}

#[derive(Clone, Copy, Debug)]
enum Wrap {
    JsonString,
    Base64,
    Base64Url,
    Form,
}

fn percent(text: &str) -> String {
    text.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn wrap(w: Wrap, inner: &str) -> String {
    use base64::Engine;
    match w {
        Wrap::JsonString => json!({ "d": inner }).to_string(),
        Wrap::Base64 => base64::engine::general_purpose::STANDARD.encode(inner),
        Wrap::Base64Url => base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(inner),
        Wrap::Form => format!("a=1&d={}", percent(inner)),
    }
}

fn unwrap_once(w: Wrap, outer: &str) -> String {
    use base64::engine::{general_purpose::GeneralPurpose, general_purpose::GeneralPurposeConfig, DecodePaddingMode};
    use base64::Engine;
    // Without `+`, `/` or `=` the two alphabets and paddings look alike; the
    // sanitizer writes such text unpadded.
    let lenient = GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    match w {
        Wrap::JsonString => serde_json::from_str::<Value>(outer).unwrap()["d"].as_str().unwrap().to_string(),
        Wrap::Base64 => String::from_utf8(GeneralPurpose::new(&base64::alphabet::STANDARD, lenient).decode(outer).unwrap()).unwrap(),
        Wrap::Base64Url => String::from_utf8(GeneralPurpose::new(&base64::alphabet::URL_SAFE, lenient).decode(outer).unwrap()).unwrap(),
        Wrap::Form => {
            let value = outer.split('&').find_map(|p| p.strip_prefix("d=")).unwrap();
            String::from_utf8(mirror_sanitizer::text::percent_decode(value.as_bytes(), true)).unwrap()
        }
    }
}

#[test]
fn secrets_under_generated_compound_names_and_nestings_come_out() {
    let p = Policy::parse(None, &|_| None).unwrap();
    let mut rng = Rng(SEED ^ 4);
    let wraps = [Wrap::JsonString, Wrap::Base64, Wrap::Base64Url, Wrap::Form];
    for i in 0..2000 {
        let name = compound_name(&mut rng);
        let secret = format!("sv{}q{}", rng.below(1_000_000), i);
        let keep = format!("keep-{i}");
        let value = if rng.chance(20) { json!(9_000_000 + i) } else { json!(secret) };
        let secret = value.as_str().map_or_else(|| value.to_string(), str::to_string);
        let mut doc = serde_json::Map::new();
        doc.insert(name.clone(), value);
        doc.insert("keep".into(), json!(keep));
        let chain: Vec<Wrap> = (0..rng.below(4)).map(|_| *rng.pick(&wraps)).collect();
        let mut text = Value::Object(doc).to_string();
        for &w in &chain {
            text = wrap(w, &text);
        }
        let object = matches!(chain.last(), Some(Wrap::JsonString) | None);
        let body = if object { text } else { json!({ "v": text }).to_string() };
        let out = sanitize_json(body.as_bytes(), &mut redactor(&p)).unwrap_or_else(|e| panic!("case {i}: {e}"));
        let out = out.map(|o| String::from_utf8(o).unwrap()).unwrap_or(body.clone());
        // Read the output back through the same encodings.
        let mut inner = if object {
            out.clone()
        } else {
            serde_json::from_str::<Value>(&out).unwrap()["v"].as_str().unwrap().to_string()
        };
        for &w in chain.iter().rev() {
            let outer = inner.clone();
            inner = std::panic::catch_unwind(|| unwrap_once(w, &outer))
                .unwrap_or_else(|_| panic!("case {i}: {name:?} in {chain:?}: not {w:?} any more:\n{body}\n->\n{out}"));
        }
        let v: Value = serde_json::from_str(&inner).unwrap_or_else(|e| panic!("case {i} {name:?} {chain:?}: {e}\n{inner}"));
        assert!(!inner.contains(&secret) && !out.contains(&secret), "case {i}: {secret:?} under {name:?} in {chain:?} survived:\n{body}\n->\n{out}");
        assert_eq!(v["keep"], json!(keep), "case {i}: {name:?} {chain:?}: the ordinary value was lost:\n{inner}");
    }
}
