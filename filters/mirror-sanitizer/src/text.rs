//! Text helpers every reader shares: percent-coding, case-insensitive name
//! lookup and the default mask. The bottom of the crate: it uses nothing of
//! the crate itself.

pub use filter_common::codec::lossy;
use filter_common::codec::hex_value;
use std::borrow::Cow;
use std::collections::HashMap;

/// The mask a rule writes unless it names its own.
pub const DEFAULT_PLACEHOLDER: &str = "REDACTED";

/// A UUID in its canonical text form (8-4-4-4-12 hex digits, either case),
/// as Envoy's `x-request-id` and most trace ids are.
pub fn is_uuid(text: &[u8]) -> bool {
    text.len() == 36 && text.iter().enumerate().all(|(i, &b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { b.is_ascii_hexdigit() })
}

/// Looks a name up case-insensitively without allocating when it is
/// already lower-case.
pub fn lookup_lower(map: &HashMap<String, usize>, name: &str) -> Option<usize> {
    if map.is_empty() {
        return None;
    }
    if name.bytes().any(|b| b.is_ascii_uppercase()) || !name.is_ascii() {
        map.get(&name.to_lowercase()).copied()
    } else {
        map.get(name).copied()
    }
}

/// FNV-1a: a hash for short names in per-request maps, far cheaper in wasm
/// than the default SipHash (the keys are not chosen to collide here: a
/// collision only costs a longer probe).
#[derive(Default, Clone, Copy)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 { 0xcbf2_9ce4_8422_2325 } else { self.0 };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

pub type FnvBuild = std::hash::BuildHasherDefault<Fnv>;

/// The byte at `i`, or 0 past the end.
pub fn at(text: &[u8], i: usize) -> u8 {
    text.get(i).copied().unwrap_or(0)
}

/// The byte before `i`, or 0 at the start.
pub fn before(text: &[u8], i: usize) -> u8 {
    i.checked_sub(1).map_or(0, |j| at(text, j))
}

/// `raw` percent-decoded (and `+` read as a space if `plus_is_space`) as
/// text, borrowed when there is nothing to decode.
pub fn decoded_text(raw: &[u8], plus_is_space: bool) -> Cow<'_, str> {
    if raw.iter().any(|&b| b == b'%' || (plus_is_space && b == b'+')) {
        Cow::Owned(String::from_utf8_lossy(&percent_decode(raw, plus_is_space)).into_owned())
    } else {
        lossy(raw)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn uuids_are_told_by_their_shape() {
        assert!(is_uuid(b"123e4567-e89b-42d3-A456-426614174000"));
        for not in [&b"123e4567e89b42d3a456426614174000"[..], b"123e4567-e89b-42d3-a456-42661417400", b"123e4567-e89b-42d3-a456-4266141740000", b"123e4567-e89b-42d3-a456_426614174000", b"g23e4567-e89b-42d3-a456-426614174000"] {
            assert!(!is_uuid(not), "{}", String::from_utf8_lossy(not));
        }
    }

    #[test]
    fn percent_coding_round_trips_and_stays_lenient() {
        assert_eq!(percent_decode(b"%4", false), b"%4");
        assert_eq!(percent_decode(b"%41%e2%82%ac+", false), "A€+".as_bytes());
        assert_eq!(percent_decode(b"a+b", true), b"a b");
        assert_eq!(percent_encode("a b/ü"), "a%20b%2F%C3%BC");
    }

    #[test]
    fn lookups_ignore_case() {
        let map: HashMap<String, usize> = [("password".to_string(), 3)].into_iter().collect();
        assert_eq!(lookup_lower(&map, "PassWord"), Some(3));
        assert_eq!(lookup_lower(&map, "password"), Some(3));
        assert_eq!(lookup_lower(&map, "pass"), None);
    }
}
