//! What a rule does to a value it selected: remove it, mask it with a fixed
//! placeholder (optionally keeping its last characters), or replace it with
//! a keyed HMAC-SHA-256 pseudonym that is the same for the same value on
//! every request, so analysts can still join on it.

use crate::sha256x4::KeyedHmac;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The pseudonym's prefix: says what the value is and never occurs in a
/// secret a detector would match again.
pub const HASH_PREFIX: &str = "hmac-";
/// Bytes of the HMAC kept in a pseudonym (128 bits, 32 hex digits).
const HASH_BYTES: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    Remove,
    /// `placeholder`, then the value's last `keep_last` characters (never
    /// more than half of the value).
    Mask { placeholder: String, keep_last: usize },
    Hash,
}

/// What a selected value becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replacement {
    Remove,
    Text(String),
}

/// Bytes of a pseudonym: the prefix and 32 hex digits.
pub const PSEUDONYM_LEN: usize = HASH_PREFIX.len() + HASH_BYTES * 2;

/// The keyed HMAC, initialised once from the configured key: RustCrypto's
/// for any value, and the four-lane one for short values hashed in bulk.
#[derive(Clone)]
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
    lanes: KeyedHmac,
}

impl std::fmt::Debug for Pseudonymizer {
    // The key must never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer(<key hidden>)")
    }
}

impl Pseudonymizer {
    pub fn new(key: &[u8]) -> Option<Self> {
        Hmac::<Sha256>::new_from_slice(key).ok().map(|mac| Self { mac, lanes: KeyedHmac::new(key) })
    }

    /// `hmac-` and the first 128 bits of HMAC-SHA-256(key, value) in hex.
    pub fn pseudonym(&self, value: &[u8]) -> String {
        // ASCII throughout.
        String::from_utf8(self.pseudonym_bytes(value).to_vec()).unwrap_or_default()
    }

    fn pseudonym_bytes(&self, value: &[u8]) -> [u8; PSEUDONYM_LEN] {
        let mut mac = self.mac.clone();
        mac.update(value);
        render(&mac.finalize().into_bytes())
    }

    /// The pseudonyms of up to four values at once (as `pseudonym` writes
    /// them, in bytes): short values share the four lanes, a longer one is
    /// hashed alone.
    pub fn pseudonyms4(&self, values: &[&[u8]]) -> [[u8; PSEUDONYM_LEN]; 4] {
        let macs = self.lanes.macs(values);
        let mut out = [[0u8; PSEUDONYM_LEN]; 4];
        for ((o, mac), v) in out.iter_mut().zip(macs).zip(values) {
            *o = match mac {
                Some(mac) => render(&mac),
                None => self.pseudonym_bytes(v),
            };
        }
        out
    }
}

/// A pseudonym's text from its HMAC.
fn render(mac: &[u8]) -> [u8; PSEUDONYM_LEN] {
    let mut out = [0u8; PSEUDONYM_LEN];
    let (prefix, digits) = out.split_at_mut(HASH_PREFIX.len());
    prefix.copy_from_slice(HASH_PREFIX.as_bytes());
    for (pair, b) in digits.chunks_exact_mut(2).zip(mac.iter().take(HASH_BYTES)) {
        pair.copy_from_slice(&[hex_digit(b >> 4), hex_digit(b & 0xf)]);
    }
    out
}

fn hex_digit(n: u8) -> u8 {
    b"0123456789abcdef".get(usize::from(n)).copied().unwrap_or(b'0')
}

/// The masked form of `value`.
pub fn mask(value: &str, placeholder: &str, keep_last: usize) -> String {
    let mut out = String::with_capacity(placeholder.len() + keep_last * 4);
    mask_into(value, placeholder, keep_last, &mut out);
    out
}

/// Appends the masked form of `value` to `out`.
pub fn mask_into(value: &str, placeholder: &str, keep_last: usize, out: &mut String) {
    out.push_str(placeholder);
    if keep_last == 0 {
        return;
    }
    if value.is_ascii() {
        // A character is a byte: no counting.
        let keep = keep_last.min(value.len() / 2);
        out.push_str(value.get(value.len() - keep..).unwrap_or_default());
        return;
    }
    let chars = value.chars().count();
    let keep = keep_last.min(chars / 2);
    out.extend(value.chars().skip(chars - keep));
}

impl Mode {
    /// Applies the mode to a value. `Hash` without a key cannot happen
    /// (configuration refuses it); it masks rather than pass the value on.
    pub fn apply(&self, value: &str, hasher: Option<&Pseudonymizer>) -> Replacement {
        match self {
            Mode::Remove => Replacement::Remove,
            Mode::Mask { placeholder, keep_last } => Replacement::Text(mask(value, placeholder, *keep_last)),
            Mode::Hash => match hasher {
                Some(h) => Replacement::Text(h.pseudonym(value.as_bytes())),
                None => Replacement::Text(mask(value, crate::text::DEFAULT_PLACEHOLDER, 0)),
            },
        }
    }

    /// Like `apply`, but where a value cannot be removed (a path segment, a
    /// substring inside a JSON key) removal becomes the empty text.
    pub fn apply_text(&self, value: &str, hasher: Option<&Pseudonymizer>) -> String {
        match self.apply(value, hasher) {
            Replacement::Remove => String::new(),
            Replacement::Text(t) => t,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        // Key "Jefe", data "what do ya want for nothing?".
        let p = Pseudonymizer::new(b"Jefe").unwrap();
        assert_eq!(p.pseudonym(b"what do ya want for nothing?"), "hmac-5bdcc146bf60754e6a042426089575c7");
    }

    #[test]
    fn pseudonyms_are_stable_and_keyed() {
        let a = Pseudonymizer::new(b"key-one-0123456789").unwrap();
        let b = Pseudonymizer::new(b"key-two-0123456789").unwrap();
        assert_eq!(a.pseudonym(b"user-42"), a.pseudonym(b"user-42"));
        assert_ne!(a.pseudonym(b"user-42"), a.pseudonym(b"user-43"));
        assert_ne!(a.pseudonym(b"user-42"), b.pseudonym(b"user-42"));
        assert_eq!(format!("{a:?}"), "Pseudonymizer(<key hidden>)");
    }

    #[test]
    fn pseudonyms_in_bulk_are_the_pseudonyms_one_by_one() {
        // Keys shorter and longer than the block; values short and long.
        for key in [&b"k"[..], &[7u8; 64][..], &[9u8; 100][..]] {
            let p = Pseudonymizer::new(key).unwrap();
            let values: Vec<Vec<u8>> = [0usize, 1, 6, 55, 56, 200].iter().map(|&n| vec![b'v'; n]).collect();
            for group in values.chunks(4) {
                let refs: Vec<&[u8]> = group.iter().map(Vec::as_slice).collect();
                for (v, bulk) in group.iter().zip(p.pseudonyms4(&refs)) {
                    assert_eq!(std::str::from_utf8(&bulk).unwrap(), p.pseudonym(v), "key of {} bytes, value of {}", key.len(), v.len());
                }
            }
        }
    }

    #[test]
    fn masks_keep_at_most_half() {
        assert_eq!(mask("4111111111111111", "****", 4), "****1111");
        assert_eq!(mask("abc", "X", 4), "Xc");
        assert_eq!(mask("", "X", 4), "X");
        assert_eq!(mask("ünïcödé", "*", 2), "*dé");
        let m = Mode::Mask { placeholder: "REDACTED".into(), keep_last: 0 };
        assert_eq!(m.apply("secret", None), Replacement::Text("REDACTED".into()));
        assert_eq!(Mode::Remove.apply("x", None), Replacement::Remove);
        assert_eq!(Mode::Remove.apply_text("x", None), "");
    }
}
