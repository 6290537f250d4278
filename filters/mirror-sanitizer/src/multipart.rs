//! `multipart/form-data` bodies: each part's `name` is matched against the
//! form-field rules; the content of other parts is sanitized by its own type
//! (text, JSON, form). A part whose content cannot be read (binary files,
//! encoded content) makes the whole body unreadable: fail closed.

use crate::form::sanitize_pairs;
use crate::json::sanitize_json;
use crate::mode::Replacement;
use crate::names::NameKind;
use crate::redact::Redactor;

/// The `boundary` parameter of a multipart content type.
pub fn boundary(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (name, value) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
        (!value.is_empty() && value.len() <= 70).then(|| value.to_string())
    })
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

/// A parameter of a `content-disposition` header (`name`, `filename`).
fn disposition_param(value: &str, wanted: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|param| {
        let (name, v) = param.split_once('=')?;
        if !name.trim().eq_ignore_ascii_case(wanted) {
            return None;
        }
        let v = v.trim();
        Some(v.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(v).to_string())
    })
}

/// Sanitizes a multipart body: `Ok(None)` when nothing changed.
pub fn sanitize_multipart(body: &[u8], boundary: &str, r: &mut Redactor) -> Result<Option<Vec<u8>>, String> {
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    // The first delimiter opens the body (a preamble before it is dropped
    // only if something changes).
    let first = find(body, delimiter, 0).ok_or("multipart body without its boundary")?;
    if first != 0 && (first < 2 || body.get(first - 2..first) != Some(b"\r\n")) {
        return Err("multipart boundary not at a line start".into());
    }
    let mut out = Vec::with_capacity(body.len());
    out.extend_from_slice(body.get(..first).unwrap_or_default());
    let mut changed = false;
    let mut pos = first + delimiter.len();
    let next_delimiter = [b"\r\n".as_slice(), delimiter].concat();
    loop {
        // After a delimiter: `--` closes the body, CRLF opens a part.
        if body.get(pos..pos + 2) == Some(b"--") {
            out.extend_from_slice(delimiter);
            out.extend_from_slice(body.get(pos..).unwrap_or_default());
            break;
        }
        if body.get(pos..pos + 2) != Some(b"\r\n") {
            return Err("multipart delimiter not followed by CRLF".into());
        }
        let start = pos + 2;
        let end = find(body, &next_delimiter, start).ok_or("multipart body not closed")?;
        let part = body.get(start..end).unwrap_or_default();
        let (headers, content) = match find(part, b"\r\n\r\n", 0) {
            Some(split) => (part.get(..split).unwrap_or_default(), part.get(split + 4..).unwrap_or_default()),
            None if part.starts_with(b"\r\n") => (&[][..], part.get(2..).unwrap_or_default()),
            None => return Err("multipart part without a header end".into()),
        };
        let headers_text = std::str::from_utf8(headers).map_err(|_| "multipart part headers are not UTF-8".to_string())?;
        match sanitize_part(headers_text, content, r)? {
            PartOutcome::Keep => {
                out.extend_from_slice(delimiter);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(part);
                out.extend_from_slice(b"\r\n");
            }
            PartOutcome::Remove => changed = true,
            PartOutcome::Replace(new) => {
                changed = true;
                out.extend_from_slice(delimiter);
                out.extend_from_slice(b"\r\n");
                out.extend_from_slice(headers);
                out.extend_from_slice(b"\r\n\r\n");
                out.extend_from_slice(&new);
                out.extend_from_slice(b"\r\n");
            }
        }
        pos = end + next_delimiter.len();
    }
    Ok(changed.then_some(out))
}

enum PartOutcome {
    Keep,
    Remove,
    Replace(Vec<u8>),
}

fn sanitize_part(headers: &str, content: &[u8], r: &mut Redactor) -> Result<PartOutcome, String> {
    let mut name = None;
    let mut content_type = None;
    for line in headers.split("\r\n") {
        let Some((k, v)) = line.split_once(':') else { continue };
        let k = k.trim();
        if k.eq_ignore_ascii_case("content-disposition") {
            name = disposition_param(v, "name");
        } else if k.eq_ignore_ascii_case("content-type") {
            content_type = Some(v.trim().to_ascii_lowercase());
        } else if k.eq_ignore_ascii_case("content-transfer-encoding") && !matches!(v.trim().to_ascii_lowercase().as_str(), "7bit" | "8bit" | "binary") {
            return Err("multipart part with an encoded content".into());
        }
    }
    if let Some(name) = name.as_deref() {
        let verdict = r.name(NameKind::Form, name);
        let text = String::from_utf8_lossy(content);
        if let Some(replacement) = r.named(verdict, &text) {
            return Ok(match replacement {
                Replacement::Remove => PartOutcome::Remove,
                Replacement::Text(t) => PartOutcome::Replace(t.into_bytes()),
            });
        }
    }
    let essence = content_type.as_deref().map(|t| t.split(';').next().unwrap_or_default().trim().to_string());
    let new = match essence.as_deref() {
        None | Some("text/plain") => {
            let text = std::str::from_utf8(content).map_err(|_| "multipart text part is not UTF-8".to_string())?;
            r.detect(text).map(String::into_bytes)
        }
        Some("application/json") => sanitize_json(content, r)?,
        Some(t) if t.ends_with("+json") => sanitize_json(content, r)?,
        Some("application/x-www-form-urlencoded") => sanitize_pairs(content, NameKind::Form, r),
        Some(other) => return Err(format!("multipart part of type {other} cannot be sanitized")),
    };
    Ok(new.map_or(PartOutcome::Keep, PartOutcome::Replace))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Policy;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn run(body: &str) -> Result<Option<String>, String> {
        let p = Policy::parse(None, &|_| None).unwrap();
        let mut r = Redactor::new(&p);
        sanitize_multipart(body.as_bytes(), "XyZ", &mut r).map(|o| o.map(|v| String::from_utf8(v).unwrap()))
    }

    #[test]
    fn boundaries_are_read_quoted_or_not() {
        assert_eq!(boundary("multipart/form-data; boundary=XyZ").as_deref(), Some("XyZ"));
        assert_eq!(boundary("multipart/form-data; charset=utf-8; Boundary=\"a b\"").as_deref(), Some("a b"));
        assert_eq!(boundary("multipart/form-data"), None);
    }

    #[test]
    fn named_fields_are_removed_and_text_is_scanned() {
        let body = "--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\njane\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nmail jane@example.com\r\n\
                    --XyZ\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{\"token\":\"t\",\"a\":1}\r\n\
                    --XyZ--\r\n";
        let out = run(body).unwrap().unwrap();
        assert_eq!(
            out,
            "--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\njane\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nmail REDACTED\r\n\
             --XyZ\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{\"a\":1}\r\n\
             --XyZ--\r\n"
        );
        let clean = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--XyZ--";
        assert_eq!(run(clean).unwrap(), None);
    }

    #[test]
    fn unreadable_parts_and_broken_bodies_are_errors() {
        let file = "--XyZ\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\u{89}PNG\r\n--XyZ--";
        assert!(run(file).unwrap_err().contains("image/png"));
        assert!(run("no boundary here").is_err());
        assert!(run("--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated").is_err());
        assert!(run("--XyZ\r\nno header end\r\n--XyZ--").is_err());
        let b64 = "--XyZ\r\nContent-Disposition: form-data; name=\"a\"\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n--XyZ--";
        assert!(run(b64).is_err());
    }
}
