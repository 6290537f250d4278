//! Header maps and body buffers: Envoy's access rules (a map is readable
//! only in the phase that owns it, else BadArgument), its lower-casing, and
//! its buffer start/length/replace semantics.

use super::memory::{code, hand_over, read, read_string, write_u32, Ctx, Status};
use crate::abi::{status, BufferKind, MapKind};
pub use crate::access::Access;
use crate::state::{HeaderMap, HostState};
use filter_common::codec::{decode_pairs, encode_pairs};
use wasmtime::Linker;

fn map_mut(state: &mut HostState, kind: MapKind) -> Status<&mut HeaderMap> {
    let call = state.call_response.as_mut();
    match kind {
        MapKind::HttpCallResponseHeaders | MapKind::GrpcInitialMetadata => {
            return call.map(|c| &mut c.headers).ok_or(status::NOT_FOUND)
        }
        MapKind::HttpCallResponseTrailers | MapKind::GrpcTrailingMetadata => {
            return call.map(|c| &mut c.trailers).ok_or(status::NOT_FOUND)
        }
        _ => {}
    }
    let access = state.access;
    let stream = state.stream.as_mut().ok_or(status::BAD_ARGUMENT)?;
    let (allowed, map) = match kind {
        MapKind::RequestHeaders => (access.request_headers, &mut stream.request_headers),
        MapKind::RequestTrailers => (access.request_trailers, &mut stream.request_trailers),
        MapKind::ResponseHeaders => (access.response_headers, &mut stream.response_headers),
        MapKind::ResponseTrailers => (access.response_trailers, &mut stream.response_trailers),
        _ => return Err(status::BAD_ARGUMENT),
    };
    if allowed {
        Ok(map)
    } else {
        Err(status::BAD_ARGUMENT)
    }
}

fn kind(v: i32) -> Status<MapKind> {
    MapKind::from_abi(v).ok_or(status::BAD_ARGUMENT)
}

/// Records that the request headers changed: with ABI 0.2.1 Envoy then
/// clears the route cache, so routing sees the change.
fn changed(state: &mut HostState, kind: MapKind) {
    if kind == MapKind::RequestHeaders {
        if let Some(stream) = state.stream.as_mut() {
            if stream.routing {
                stream.route_cache_cleared = true;
            }
        }
    }
}

pub fn get_value(map: &HeaderMap, key: &str) -> Option<Vec<u8>> {
    // Envoy hands over the first value of a repeated header.
    map.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
}

pub fn link(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    linker.func_wrap("env", "proxy_get_header_map_value", |mut c: Ctx<'_>, map: i32, kp: i32, ks: i32, rp: i32, rs: i32| -> i32 {
        c.data_mut().count("proxy_get_header_map_value");
        code((|| {
            let key = read_string(&c, kp, ks)?.to_ascii_lowercase();
            let value = get_value(map_mut(c.data_mut(), kind(map)?)?, &key).ok_or(status::NOT_FOUND)?;
            hand_over(&mut c, &value, rp, rs)
        })())
    })?;
    linker.func_wrap("env", "proxy_get_header_map_pairs", |mut c: Ctx<'_>, map: i32, rp: i32, rs: i32| -> i32 {
        c.data_mut().count("proxy_get_header_map_pairs");
        code((|| {
            let bytes = encode_pairs(map_mut(c.data_mut(), kind(map)?)?);
            hand_over(&mut c, &bytes, rp, rs)
        })())
    })?;
    linker.func_wrap("env", "proxy_set_header_map_pairs", |mut c: Ctx<'_>, map: i32, p: i32, s: i32| -> i32 {
        c.data_mut().count("proxy_set_header_map_pairs");
        code((|| {
            let pairs = decode_pairs(&read(&c, p, s)?).map_err(|_| status::SERIALIZATION_FAILURE)?;
            let k = kind(map)?;
            let target = map_mut(c.data_mut(), k)?;
            *target = pairs.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
            changed(c.data_mut(), k);
            if k == MapKind::RequestHeaders {
                if let Some(stream) = c.data_mut().stream.as_mut() {
                    stream.request_map_replaced |= stream.routing;
                }
            }
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_add_header_map_value", |mut c: Ctx<'_>, map: i32, kp: i32, ks: i32, vp: i32, vs: i32| -> i32 {
        c.data_mut().count("proxy_add_header_map_value");
        code((|| {
            let key = read_string(&c, kp, ks)?.to_ascii_lowercase();
            let value = read(&c, vp, vs)?;
            let k = kind(map)?;
            map_mut(c.data_mut(), k)?.push((key, value));
            changed(c.data_mut(), k);
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_replace_header_map_value", |mut c: Ctx<'_>, map: i32, kp: i32, ks: i32, vp: i32, vs: i32| -> i32 {
        c.data_mut().count("proxy_replace_header_map_value");
        code((|| {
            let key = read_string(&c, kp, ks)?.to_ascii_lowercase();
            let value = read(&c, vp, vs)?;
            let k = kind(map)?;
            replace(map_mut(c.data_mut(), k)?, key, value);
            changed(c.data_mut(), k);
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_remove_header_map_value", |mut c: Ctx<'_>, map: i32, kp: i32, ks: i32| -> i32 {
        c.data_mut().count("proxy_remove_header_map_value");
        code((|| {
            let key = read_string(&c, kp, ks)?.to_ascii_lowercase();
            let k = kind(map)?;
            map_mut(c.data_mut(), k)?.retain(|(name, _)| *name != key);
            changed(c.data_mut(), k);
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_get_header_map_size", |mut c: Ctx<'_>, map: i32, rs: i32| -> i32 {
        c.data_mut().count("proxy_get_header_map_size");
        code((|| {
            let size = map_mut(c.data_mut(), kind(map)?)?.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
            write_u32(&mut c, rs, size as u32)
        })())
    })?;
    linker.func_wrap("env", "proxy_get_buffer_bytes", |mut c: Ctx<'_>, buffer: i32, start: i32, max: i32, rp: i32, rs: i32| -> i32 {
        c.data_mut().count("proxy_get_buffer_bytes");
        code((|| {
            let data = buffer_ref(c.data_mut(), buffer)?;
            let (start, max) = (start as u32 as usize, max as u32 as usize);
            let end = start.saturating_add(max).min(data.len());
            let slice = data.get(start.min(end)..end).unwrap_or_default().to_vec();
            hand_over(&mut c, &slice, rp, rs)
        })())
    })?;
    linker.func_wrap("env", "proxy_set_buffer_bytes", |mut c: Ctx<'_>, buffer: i32, start: i32, size: i32, dp: i32, ds: i32| -> i32 {
        c.data_mut().count("proxy_set_buffer_bytes");
        code((|| {
            let bytes = read(&c, dp, ds)?;
            let data = buffer_mut(c.data_mut(), buffer)?;
            splice(data, start as u32 as usize, size as u32 as usize, &bytes)
        })())
    })?;
    linker.func_wrap("env", "proxy_get_buffer_status", |mut c: Ctx<'_>, buffer: i32, lp: i32, fp: i32| -> i32 {
        c.data_mut().count("proxy_get_buffer_status");
        code((|| {
            let len = buffer_ref(c.data_mut(), buffer)?.len();
            write_u32(&mut c, lp, len as u32)?;
            write_u32(&mut c, fp, 0)
        })())
    })?;
    Ok(())
}

/// Envoy's `setCopy`: every value of the header goes, and the new value is
/// added at the end of the map (seen in Envoy 1.40: a replaced header moves
/// to the end).
pub fn replace(map: &mut HeaderMap, key: String, value: Vec<u8>) {
    map.retain(|(k, _)| *k != key);
    map.push((key, value));
}

/// Envoy's buffer replace: start 0 drains `size` bytes and prepends the data;
/// a start at or past the end appends; anything else is BadArgument.
pub fn splice(data: &mut Vec<u8>, start: usize, size: usize, bytes: &[u8]) -> Status {
    if start == 0 {
        let drain = size.min(data.len());
        data.splice(0..drain, bytes.iter().copied());
        Ok(())
    } else if start >= data.len() {
        data.extend_from_slice(bytes);
        Ok(())
    } else {
        Err(status::BAD_ARGUMENT)
    }
}

fn buffer_ref(state: &mut HostState, buffer: i32) -> Status<Vec<u8>> {
    let kind = BufferKind::from_abi(buffer).ok_or(status::BAD_ARGUMENT)?;
    Ok(match kind {
        BufferKind::VmConfiguration => state.plugin.vm_configuration.clone(),
        // Seen in Envoy 1.40: readable in `proxy_on_configure` only.
        BufferKind::PluginConfiguration if state.configuring => state.plugin.plugin_configuration.clone(),
        BufferKind::PluginConfiguration => return Err(status::NOT_FOUND),
        _ => buffer_mut(state, buffer)?.clone(),
    })
}

fn buffer_mut(state: &mut HostState, buffer: i32) -> Status<&mut Vec<u8>> {
    let kind = BufferKind::from_abi(buffer).ok_or(status::BAD_ARGUMENT)?;
    match kind {
        BufferKind::RequestBody => state.stream.as_mut().map(|s| &mut s.request_body).ok_or(status::NOT_FOUND),
        BufferKind::ResponseBody => state.stream.as_mut().map(|s| &mut s.response_body).ok_or(status::NOT_FOUND),
        BufferKind::HttpCallResponseBody | BufferKind::GrpcReceiveBuffer => {
            state.call_response.as_mut().map(|c| &mut c.body).ok_or(status::NOT_FOUND)
        }
        _ => Err(status::NOT_FOUND),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_drops_every_value_and_appends() {
        let mut map: HeaderMap = vec![("x".into(), b"1".to_vec()), ("a".into(), b"1".to_vec()), ("x".into(), b"2".to_vec())];
        replace(&mut map, "x".into(), b"3".to_vec());
        assert_eq!(map, vec![("a".into(), b"1".to_vec()), ("x".into(), b"3".to_vec())]);
        replace(&mut map, "new".into(), b"v".to_vec());
        assert_eq!(map.last(), Some(&("new".to_string(), b"v".to_vec())));
    }

    #[test]
    fn splice_follows_envoy() {
        let mut body = b"hello world".to_vec();
        splice(&mut body, 0, 5, b"HELLO").unwrap();
        assert_eq!(body, b"HELLO world");
        splice(&mut body, 0, usize::MAX, b"new").unwrap();
        assert_eq!(body, b"new");
        splice(&mut body, 3, 0, b"!").unwrap();
        assert_eq!(body, b"new!");
        splice(&mut body, 0, 0, b">").unwrap();
        assert_eq!(body, b">new!");
        assert_eq!(splice(&mut body, 2, 1, b"x"), Err(status::BAD_ARGUMENT));
    }
}
