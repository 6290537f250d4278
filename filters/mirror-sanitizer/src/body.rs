//! What the sanitizer can do with a shadow request's body: which reader its
//! headers call for, and the sanitizing itself. A body it cannot read is an
//! `Unsanitizable` reason, never a pass.

use crate::form::sanitize_pairs;
use crate::json::sanitize_json;
use crate::multipart::{boundary, sanitize_multipart};
use crate::names::NameKind;
use crate::redact::Redactor;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyKind {
    Json,
    Form,
    Multipart { boundary: String },
}

/// Why a shadow body cannot go on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsanitizable {
    /// Larger than `maxBodyBytes` (by its content-length or as it arrived).
    Oversize { limit: usize },
    /// `content-encoding` other than identity.
    Encoded(String),
    /// A content type the sanitizer has no reader for (or none at all).
    UnknownType(String),
    /// The body does not parse as its type says.
    Malformed(String),
    /// Trailers ended a body whose request did not announce them (no
    /// `trailer` header): its chunks went on emptied as they came.
    UnannouncedTrailers,
}

impl Unsanitizable {
    pub fn is_oversize(&self) -> bool {
        matches!(self, Unsanitizable::Oversize { .. })
    }
}

impl fmt::Display for Unsanitizable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unsanitizable::Oversize { limit } => write!(f, "body larger than {limit} bytes"),
            Unsanitizable::Encoded(e) => write!(f, "body with content-encoding {e:?}"),
            Unsanitizable::UnknownType(t) if t.is_empty() => write!(f, "body without a content-type"),
            Unsanitizable::UnknownType(t) => write!(f, "body of content-type {t:?}"),
            Unsanitizable::Malformed(m) => f.write_str(m),
            Unsanitizable::UnannouncedTrailers => f.write_str("body ended by trailers the request did not announce in a trailer header"),
        }
    }
}

/// The reader for a body with these headers.
pub fn classify(content_type: Option<&str>, content_encoding: Option<&str>) -> Result<BodyKind, Unsanitizable> {
    if let Some(e) = content_encoding.map(str::trim).filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("identity")) {
        return Err(Unsanitizable::Encoded(printable(e)));
    }
    let content_type = content_type.unwrap_or_default();
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => Ok(BodyKind::Json),
        t if t.starts_with("application/") && t.ends_with("+json") => Ok(BodyKind::Json),
        "application/x-www-form-urlencoded" => Ok(BodyKind::Form),
        "multipart/form-data" => match boundary(content_type) {
            Some(boundary) => Ok(BodyKind::Multipart { boundary }),
            None => Err(Unsanitizable::Malformed("multipart/form-data without a boundary".into())),
        },
        _ => Err(Unsanitizable::UnknownType(printable(&essence))),
    }
}

/// Header text fit for a log line: short, printable.
fn printable(text: &str) -> String {
    text.chars().take(64).map(|c| if c.is_ascii_graphic() || c == ' ' { c } else { '?' }).collect()
}

/// Sanitizes a whole body: `Ok(None)` when nothing changed.
pub fn sanitize_body(kind: &BodyKind, body: &[u8], r: &mut Redactor) -> Result<Option<Vec<u8>>, Unsanitizable> {
    match kind {
        BodyKind::Json => sanitize_json(body, r).map_err(Unsanitizable::Malformed),
        BodyKind::Form => Ok(sanitize_pairs(body, NameKind::Form, r)),
        BodyKind::Multipart { boundary } => sanitize_multipart(body, boundary, r).map_err(Unsanitizable::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn content_types_pick_a_reader() {
        assert_eq!(classify(Some("application/json; charset=utf-8"), None), Ok(BodyKind::Json));
        assert_eq!(classify(Some("Application/Problem+JSON"), Some("identity")), Ok(BodyKind::Json));
        assert_eq!(classify(Some("application/x-www-form-urlencoded"), None), Ok(BodyKind::Form));
        assert_eq!(classify(Some("multipart/form-data; boundary=b"), None), Ok(BodyKind::Multipart { boundary: "b".into() }));
        assert_eq!(classify(Some("application/json"), Some("gzip")), Err(Unsanitizable::Encoded("gzip".into())));
        assert_eq!(classify(Some("text/plain"), None), Err(Unsanitizable::UnknownType("text/plain".into())));
        assert_eq!(classify(None, None).unwrap_err().to_string(), "body without a content-type");
        assert!(matches!(classify(Some("multipart/form-data"), None), Err(Unsanitizable::Malformed(_))));
    }
}
