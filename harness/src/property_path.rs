//! Property values a test sets and the paths that name them: a dotted name
//! as scenarios write it, or the NUL-separated path a module passes.

use filter_common::codec::encode_pairs;
use serde::{Deserialize, Serialize};

/// A property value a test sets (e.g. the peer principal).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PropertyValue {
    Bool(bool),
    Int(i64),
    String(String),
    /// A map property such as `request.headers`.
    Map(Vec<(String, String)>),
}

impl PropertyValue {
    /// The bytes Envoy hands a module for this value.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Self::Bool(b) => vec![u8::from(*b)],
            Self::Int(i) => i.to_le_bytes().to_vec(),
            Self::String(s) => s.as_bytes().to_vec(),
            Self::Map(pairs) => encode_pairs(pairs),
        }
    }
}

impl From<&str> for PropertyValue {
    fn from(s: &str) -> Self {
        Self::String(s.to_string())
    }
}

impl From<bool> for PropertyValue {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<i64> for PropertyValue {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

/// Splits a property name into path segments: dots separate segments
/// (`request.headers.x-id` is three), and a segment that contains dots is
/// written in brackets and quotes, as in CEL:
/// `metadata.filter_metadata["envoy.filters.http.lua"].key` is four.
/// A name that does not parse is taken as dotted segments.
pub fn split_path(name: &str) -> Vec<String> {
    parse_path(name).unwrap_or_else(|_| name.split('.').map(str::to_string).collect())
}

/// Like [`split_path`], but a malformed bracket is an error saying where.
pub fn parse_path(name: &str) -> Result<Vec<String>, String> {
    let mut segments = Vec::new();
    let mut current = String::new();
    let mut chars = name.char_indices().peekable();
    // True right after a bracketed segment: only `.` or `[` may follow.
    let mut closed = false;
    while let Some((at, c)) = chars.next() {
        match c {
            '.' => {
                if !closed {
                    segments.push(std::mem::take(&mut current));
                }
                closed = false;
            }
            '[' => {
                if !closed && !current.is_empty() {
                    segments.push(std::mem::take(&mut current));
                }
                let quote = match chars.next() {
                    Some((_, q @ ('"' | '\''))) => q,
                    _ => return Err(format!("{name}: `[` at {at} must be followed by a quoted name")),
                };
                let mut segment = String::new();
                loop {
                    match chars.next() {
                        Some((_, ch)) if ch == quote => break,
                        Some((_, ch)) => segment.push(ch),
                        None => return Err(format!("{name}: the quote opened at {} is not closed", at + 1)),
                    }
                }
                if chars.next().map(|(_, ch)| ch) != Some(']') {
                    return Err(format!("{name}: the bracket opened at {at} is not closed right after its quoted name"));
                }
                segments.push(segment);
                closed = true;
            }
            _ if closed => return Err(format!("{name}: expected `.` or `[` at {at}, after a bracketed name")),
            _ => current.push(c),
        }
    }
    if !closed {
        segments.push(current);
    }
    Ok(segments)
}

/// Decodes the ABI's NUL-separated path (the SDK ends each segment with NUL).
pub fn decode_path(bytes: &[u8]) -> Vec<String> {
    let trimmed = bytes.strip_suffix(&[0]).unwrap_or(bytes);
    trimmed.split(|b| *b == 0).map(|s| String::from_utf8_lossy(s).into_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brackets_keep_dots_inside_a_segment() {
        assert_eq!(split_path("connection.mtls"), vec!["connection", "mtls"]);
        assert_eq!(
            split_path(r#"metadata.filter_metadata["envoy.filters.http.lua"].key"#),
            vec!["metadata", "filter_metadata", "envoy.filters.http.lua", "key"]
        );
        assert_eq!(split_path("a['b.c']['d']"), vec!["a", "b.c", "d"]);
        assert_eq!(split_path(r#"["x.y"]"#), vec!["x.y"]);
    }

    #[test]
    fn malformed_brackets_are_errors() {
        assert!(parse_path("a[b]").is_err());
        assert!(parse_path("a[\"b").is_err());
        assert!(parse_path("a[\"b\"]c").is_err());
        assert!(parse_path("a[\"b\"").is_err());
    }
}
