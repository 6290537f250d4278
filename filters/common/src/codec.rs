//! The byte layouts the proxy-wasm ABI uses for header maps and property paths.
//!
//! Decoding never trusts the host: every length is bounds-checked, so a
//! malformed buffer is an error value, never a trap.

use std::fmt;

/// A header map as pairs in wire order: lower-case names, raw value bytes
/// (values need not be UTF-8).
pub type HeaderPairs = Vec<(String, Vec<u8>)>;

/// A serialized header map that does not hold together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed header map: {}", self.0)
    }
}

impl std::error::Error for DecodeError {}

/// Serializes pairs as the ABI wants them: a u32 count, a (key length, value
/// length) u32 pair per entry, then each key and value followed by a NUL.
pub fn encode_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    let data: usize = pairs
        .iter()
        .map(|(k, v)| k.as_ref().len() + v.as_ref().len() + 2)
        .sum();
    let mut out = Vec::with_capacity(4 + pairs.len() * 8 + data);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.as_ref().len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.as_ref().len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_ref());
        out.push(0);
        out.extend_from_slice(v.as_ref());
        out.push(0);
    }
    out
}

/// Reads a little-endian u32 at `at`, if the bytes are there.
fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let b: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(b) as usize)
}

/// Header bytes as text, invalid UTF-8 replaced: borrowed when they are
/// UTF-8, checked a word at a time (`String::from_utf8_lossy` goes byte by
/// byte, so it only takes what is not UTF-8).
#[inline]
pub fn lossy(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    std::str::from_utf8(bytes).map_or_else(|_| String::from_utf8_lossy(bytes), std::borrow::Cow::Borrowed)
}

/// The value of one hex digit (`%XX` escapes in paths, queries, forms).
pub fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Takes `len` bytes at `*at` followed by a NUL, advancing `*at` past the NUL.
fn take_field<'a>(bytes: &'a [u8], at: &mut usize, len: usize) -> Result<&'a [u8], DecodeError> {
    let end = at.checked_add(len).ok_or(DecodeError("length overflows"))?;
    let field = bytes.get(*at..end).ok_or(DecodeError("entry runs past the end"))?;
    if bytes.get(end) != Some(&0) {
        return Err(DecodeError("entry is not NUL-terminated"));
    }
    *at = end + 1;
    Ok(field)
}

/// One header read in place from a serialized map: name and raw value bytes.
pub type Header<'a> = (&'a str, &'a [u8]);

/// One entry of a serialized map, name and value, or why it does not hold together.
type RawEntry<'a> = Result<(&'a [u8], &'a [u8]), DecodeError>;

/// Walks a serialized header map's entries, checking every length: a
/// malformed entry is an error item, where its reader stops.
fn entries(bytes: &[u8]) -> Result<impl Iterator<Item = RawEntry<'_>>, DecodeError> {
    let count = if bytes.is_empty() { 0 } else { read_u32(bytes, 0).ok_or(DecodeError("too short for the entry count"))? };
    // Each entry needs at least 8 bytes of lengths and 2 NULs: refuse counts
    // the buffer cannot hold before allocating for them.
    if count > bytes.len() / 10 {
        return Err(DecodeError("entry count larger than the buffer can hold"));
    }
    let mut at = 4 + count * 8;
    Ok((0..count).map(move |i| {
        let key_len = read_u32(bytes, 4 + i * 8).ok_or(DecodeError("lengths cut short"))?;
        let value_len = read_u32(bytes, 8 + i * 8).ok_or(DecodeError("lengths cut short"))?;
        let key = take_field(bytes, &mut at, key_len)?;
        let value = take_field(bytes, &mut at, value_len)?;
        Ok((key, value))
    }))
}

/// Parses the ABI's serialized header map into owned pairs. Names are kept
/// as the host gave them (Envoy lower-cases them); a name that is not UTF-8
/// is replaced lossily since no matcher could name it anyway.
pub fn decode_pairs(bytes: &[u8]) -> Result<HeaderPairs, DecodeError> {
    entries(bytes)?.map(|e| e.map(|(key, value)| (String::from_utf8_lossy(key).into_owned(), value.to_vec()))).collect()
}

/// The entries of a serialized header map whose name `keep` accepts
/// (compared as bytes), borrowed in order, repeats included: a filter that
/// reads two headers of twenty copies none of them. A map that does not
/// hold together is an error whatever is kept of it. A name that is not
/// UTF-8 (which no configured name can equal) is left out.
pub fn pairs_where(bytes: &[u8], keep: impl Fn(&[u8]) -> bool) -> Result<Vec<Header<'_>>, DecodeError> {
    let entries = entries(bytes)?;
    // One allocation, for the count `entries` checked.
    let mut pairs = Vec::with_capacity(entries.size_hint().0);
    for entry in entries {
        let (key, value) = entry?;
        if keep(key) {
            if let Ok(name) = std::str::from_utf8(key) {
                pairs.push((name, value));
            }
        }
    }
    Ok(pairs)
}

/// Serializes a property path (`["request", "headers", "x-id"]`) as the ABI
/// wants it: each segment followed by a NUL.
pub fn encode_path(path: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.iter().map(|s| s.len() + 1).sum());
    for segment in path {
        out.extend_from_slice(segment.as_bytes());
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn a_filtered_read_keeps_only_the_names_asked_for_in_order() {
        let pairs: Vec<(&str, &[u8])> = vec![(":path", b"/a"), ("x-dup", b"1"), ("user-agent", b"ua"), ("x-dup", b"2")];
        let bytes = encode_pairs(&pairs);
        let kept = pairs_where(&bytes, |name| name == b"x-dup" || name == b":path").unwrap();
        assert_eq!(kept, vec![(":path", &b"/a"[..]), ("x-dup", &b"1"[..]), ("x-dup", &b"2"[..])]);
        assert_eq!(pairs_where(&bytes, |_| true).unwrap(), pairs);
        assert!(pairs_where(&bytes[..bytes.len() - 1], |_| false).is_err(), "a malformed map is an error whatever is kept of it");
        assert!(pairs_where(&[], |_| true).unwrap().is_empty());
        let odd = encode_pairs(&[(&b"x-\xff"[..], &b"v"[..]), (&b"ok"[..], &b"w"[..])]);
        assert_eq!(pairs_where(&odd, |_| true).unwrap(), vec![("ok", &b"w"[..])], "a name no configuration can spell is left out");
    }

    #[test]
    fn pairs_round_trip_in_order_with_repeats_and_binary_values() {
        let pairs: Vec<(&str, &[u8])> = vec![
            (":path", b"/a?b=c"),
            ("x-dup", b"1"),
            ("x-dup", b"2"),
            ("x-bin", &[0xff, 0x00, 0x7f]),
            ("x-empty", b""),
        ];
        let decoded = decode_pairs(&encode_pairs(&pairs)).unwrap();
        let expected: HeaderPairs = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn empty_buffer_is_an_empty_map() {
        assert_eq!(decode_pairs(&[]).unwrap(), Vec::new());
        assert_eq!(decode_pairs(&encode_pairs::<&str, &str>(&[])).unwrap(), Vec::new());
    }

    #[test]
    fn every_truncation_of_a_valid_map_is_an_error_not_a_trap() {
        let bytes = encode_pairs(&[("a", "bb"), ("ccc", "")]);
        for cut in 1..bytes.len() {
            assert!(decode_pairs(&bytes[..cut]).is_err(), "cut at {cut}");
            assert!(pairs_where(&bytes[..cut], |_| true).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn hostile_lengths_are_refused() {
        // count says a billion entries
        assert!(decode_pairs(&[0, 0, 0, 0x40, 0, 0, 0, 0]).is_err());
        // one entry whose key length is u32::MAX
        let mut bytes = vec![1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        bytes.extend_from_slice(&[0; 8]);
        assert!(decode_pairs(&bytes).is_err());
        // right lengths, missing NUL terminator
        let mut bad = encode_pairs(&[("a", "b")]);
        let last = bad.len() - 1;
        bad[last] = b'x';
        assert_eq!(decode_pairs(&bad), Err(DecodeError("entry is not NUL-terminated")));
    }

    #[test]
    fn path_segments_end_in_nul() {
        assert_eq!(encode_path(&["request", "path"]), b"request\0path\0".to_vec());
        assert_eq!(encode_path(&[]), Vec::<u8>::new());
    }
}
