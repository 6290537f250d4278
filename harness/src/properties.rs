//! `proxy_get_property` with Envoy's attribute names and encodings: strings
//! as bytes, integers as 8-byte little-endian, booleans as one byte,
//! timestamps as nanoseconds, maps as serialized header pairs.

use crate::state::{HeaderMap, HostState, StreamView};
use filter_common::codec::encode_pairs;
pub use crate::property_path::{decode_path, split_path, PropertyValue};

fn header<'a>(map: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    map.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_slice())
}

fn map_bytes(map: &HeaderMap) -> Vec<u8> {
    encode_pairs(map)
}

/// Looks a property up the way Envoy does: what the filter stored, then what
/// the test set, then attributes derived from the stream and the plugin.
pub fn lookup(state: &HostState, path: &[String]) -> Option<Vec<u8>> {
    if let Some(stream) = &state.stream {
        if let Some(v) = stream.filter_state.get(path) {
            return Some(v.clone());
        }
        if let Some(v) = stream.properties.get(path) {
            return Some(v.encode());
        }
    }
    if let Some(v) = state.root_filter_state.get(path) {
        return Some(v.clone());
    }
    if let Some(v) = state.properties.get(path) {
        return Some(v.encode());
    }
    let segments: Vec<&str> = path.iter().map(String::as_str).collect();
    match segments.as_slice() {
        ["plugin_name"] => Some(state.plugin.name.as_bytes().to_vec()),
        ["plugin_root_id"] => Some(state.plugin.root_id.as_bytes().to_vec()),
        ["plugin_vm_id"] => Some(state.plugin.vm_id.as_bytes().to_vec()),
        ["request", rest @ ..] => state.stream.as_ref().and_then(|s| request_attribute(s, state.now(), rest)),
        ["response", rest @ ..] => state.stream.as_ref().and_then(|s| response_attribute(s, rest)),
        // Envoy 1.40: 0 until the router forwarded the request (and for
        // local replies), then the attempts made, retries included.
        ["upstream", "request_attempt_count"] => state.stream.as_ref().map(|s| i64::from(s.upstream_attempts).to_le_bytes().to_vec()),
        ["connection", "mtls"] => Some(vec![0]),
        ["source", "address"] => Some(b"127.0.0.1:50000".to_vec()),
        ["source", "port"] => Some(50000i64.to_le_bytes().to_vec()),
        ["destination", "address"] => Some(b"127.0.0.1:10000".to_vec()),
        ["destination", "port"] => Some(10000i64.to_le_bytes().to_vec()),
        _ => None,
    }
}

fn request_attribute(stream: &StreamView, now: u64, rest: &[&str]) -> Option<Vec<u8>> {
    let h = &stream.request_headers;
    let path = header(h, ":path");
    Some(match rest {
        ["path"] => path?.to_vec(),
        ["url_path"] => {
            let p = path?;
            p.split(|b| *b == b'?').next().unwrap_or(p).to_vec()
        }
        ["query"] => {
            let p = path?;
            p.iter().position(|b| *b == b'?').map(|i| p.get(i + 1..).unwrap_or_default().to_vec()).unwrap_or_default()
        }
        ["host"] => header(h, ":authority")?.to_vec(),
        ["method"] => header(h, ":method")?.to_vec(),
        ["scheme"] => header(h, ":scheme")?.to_vec(),
        ["id"] => header(h, "x-request-id")?.to_vec(),
        ["referer"] => header(h, "referer")?.to_vec(),
        ["useragent"] => header(h, "user-agent")?.to_vec(),
        ["protocol"] => b"HTTP/1.1".to_vec(),
        ["time"] => (now as i64).to_le_bytes().to_vec(),
        ["headers"] => map_bytes(h),
        ["headers", name] => header(h, &name.to_ascii_lowercase())?.to_vec(),
        _ => return None,
    })
}

fn response_attribute(stream: &StreamView, rest: &[&str]) -> Option<Vec<u8>> {
    if !stream.response_started {
        return None;
    }
    let h = &stream.response_headers;
    Some(match rest {
        ["code"] => {
            let code: i64 = std::str::from_utf8(header(h, ":status")?).ok()?.parse().ok()?;
            code.to_le_bytes().to_vec()
        }
        ["headers"] => map_bytes(h),
        ["headers", name] => header(h, &name.to_ascii_lowercase())?.to_vec(),
        ["trailers"] => map_bytes(&stream.response_trailers),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_envoys() {
        assert_eq!(PropertyValue::Bool(true).encode(), vec![1]);
        assert_eq!(PropertyValue::Int(443).encode(), 443i64.to_le_bytes().to_vec());
        assert_eq!(PropertyValue::from("spiffe://a/b").encode(), b"spiffe://a/b".to_vec());
    }

    #[test]
    fn paths_decode_with_or_without_trailing_nul() {
        assert_eq!(decode_path(b"request\0path\0"), vec!["request", "path"]);
        assert_eq!(decode_path(b"request\0path"), vec!["request", "path"]);
        assert_eq!(split_path("connection.mtls"), vec!["connection", "mtls"]);
    }
}
