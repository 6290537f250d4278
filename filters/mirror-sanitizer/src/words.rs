//! The words of a name (a header, cookie, query parameter, form field,
//! multipart part or JSON key): percent-decoded, split at camelCase, at
//! letter/digit changes and at every character that is not a letter or a
//! digit (`_`, `-`, `.`, `[`, `]`, spaces, …), and case-folded.
//! `account%5Bpass%5D` → `account pass`, `X-Goog-Signature` → `x goog
//! signature`, `newPassword` → `new password`, `APIKey` → `api key`.

use crate::text::percent_decode;

/// Names longer than this are classified by their first bytes only: no
/// real name is longer, and the cost stays bounded.
pub const MAX_NAME_BYTES: usize = 256;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Lower,
    Upper,
    Digit,
    Other,
}

fn kind(c: char) -> Kind {
    if c.is_ascii_digit() {
        Kind::Digit
    } else if c.is_uppercase() {
        Kind::Upper
    } else if c.is_alphanumeric() {
        Kind::Lower
    } else {
        Kind::Other
    }
}

/// The words of `name`, lower-case, in order.
pub fn words(name: &str) -> Vec<String> {
    let mut end = MAX_NAME_BYTES.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let bounded = name.get(..end).unwrap_or(name);
    // Encoded names (`account%5Bpass%5D`), also encoded twice.
    let mut text = std::borrow::Cow::Borrowed(bounded);
    for _ in 0..2 {
        if !text.contains('%') {
            break;
        }
        let decoded = String::from_utf8_lossy(&percent_decode(text.as_bytes(), false)).into_owned();
        if decoded == *text {
            break;
        }
        text = std::borrow::Cow::Owned(decoded);
    }
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut word = String::new();
    for (i, &c) in chars.iter().enumerate() {
        let k = kind(c);
        if k == Kind::Other {
            flush(&mut word, &mut out);
            continue;
        }
        let prev = i.checked_sub(1).and_then(|j| chars.get(j)).map_or(Kind::Other, |&p| kind(p));
        let next = chars.get(i + 1).map_or(Kind::Other, |&n| kind(n));
        let boundary = match (prev, k) {
            (Kind::Lower, Kind::Upper) => true,
            // `APIKey`: the last capital of a run starts the next word.
            (Kind::Upper, Kind::Upper) => next == Kind::Lower,
            (Kind::Digit, Kind::Lower | Kind::Upper) | (Kind::Lower | Kind::Upper, Kind::Digit) => true,
            _ => false,
        };
        if boundary {
            flush(&mut word, &mut out);
        }
        word.extend(c.to_lowercase());
    }
    flush(&mut word, &mut out);
    out
}

fn flush(word: &mut String, out: &mut Vec<String>) {
    if !word.is_empty() {
        out.push(std::mem::take(word));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn names_split_into_words() {
        let cases: [(&str, &[&str]); 12] = [
            ("account[pass]", &["account", "pass"]),
            ("account%5Bpass%5D", &["account", "pass"]),
            ("account%255Bpass%255D", &["account", "pass"]),
            ("gcp_private_key_id", &["gcp", "private", "key", "id"]),
            ("X-Goog-Signature", &["x", "goog", "signature"]),
            ("cardPin", &["card", "pin"]),
            ("newPassword", &["new", "password"]),
            ("db.password", &["db", "password"]),
            ("APIKey", &["api", "key"]),
            ("userID2", &["user", "id", "2"]),
            ("user[address][street]", &["user", "address", "street"]),
            ("Größe-Straße", &["größe", "straße"]),
        ];
        for (name, want) in cases {
            assert_eq!(words(name), want, "{name}");
        }
        assert!(words("").is_empty() && words("--[]").is_empty());
        assert_eq!(words(&"a".repeat(1000)).concat().len(), MAX_NAME_BYTES);
    }
}
