//! What Envoy's router and codecs add to a message after the filters have
//! run, where no filter sees it: the router's timeout header on the
//! upstream request, the framing header a body without `content-length`
//! needs over HTTP/1 (none over HTTP/2), `connection: close`, the body a
//! `HEAD` response never carries, and gRPC's form of a local reply.

/// The route timeout when the route sets none (Envoy's default, 15 s).
pub const DEFAULT_ROUTE_TIMEOUT_MS: u32 = 15_000;

fn has(headers: &[(String, String)], name: &str) -> bool {
    headers.iter().any(|(k, _)| k == name)
}

/// The upstream request's regular headers as the upstream receives them:
/// the router's `x-envoy-expected-rq-timeout-ms` (unless the timeout is 0,
/// disabled), then, over HTTP/1, for a body without `content-length`,
/// chunked framing (HTTP/2 frames a body by its DATA frames).
pub fn upstream_request(mut headers: Vec<(String, String)>, has_body: bool, route_timeout_ms: u32, http2: bool) -> Vec<(String, String)> {
    if route_timeout_ms > 0 && !has(&headers, "x-envoy-expected-rq-timeout-ms") {
        headers.push(("x-envoy-expected-rq-timeout-ms".into(), route_timeout_ms.to_string()));
    }
    if !http2 && has_body && !has(&headers, "content-length") && !has(&headers, "transfer-encoding") {
        headers.push(("transfer-encoding".into(), "chunked".into()));
    }
    headers
}

/// The headers of a call the module made (`proxy_http_call`) as the
/// cluster receives them: Envoy's async client marks the request internal
/// and, with a timeout, adds the timeout header; a body without
/// `content-length` gets one.
pub fn call_request(mut headers: Vec<(String, String)>, body_len: usize, timeout_ms: u32) -> Vec<(String, String)> {
    if body_len > 0 && !has(&headers, "content-length") {
        headers.push(("content-length".into(), body_len.to_string()));
    }
    if !has(&headers, "x-envoy-internal") {
        headers.push(("x-envoy-internal".into(), "true".into()));
    }
    if timeout_ms > 0 && !has(&headers, "x-envoy-expected-rq-timeout-ms") {
        headers.push(("x-envoy-expected-rq-timeout-ms".into(), timeout_ms.to_string()));
    }
    headers
}

/// How the client's side of the stream ended, for the response's framing.
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientSide {
    /// The request was `HEAD`: the response carries no body.
    pub head: bool,
    /// The client sent `connection: close`.
    pub close: bool,
    /// The response was sent before the request body had been read
    /// (a local reply in the request path): Envoy cannot reuse the connection.
    pub body_unread: bool,
    /// The client speaks HTTP/2: no framing or connection headers.
    pub http2: bool,
    /// The request is a gRPC call (`content-type: application/grpc…`): a
    /// local reply takes gRPC's form.
    pub grpc: bool,
}

/// Envoy's test for a gRPC request: `application/grpc`, alone or followed
/// by `+` or `;` (`application/grpc+proto`; not gRPC-Web).
pub fn is_grpc_content_type(content_type: &str) -> bool {
    content_type.strip_prefix("application/grpc").is_some_and(|rest| rest.is_empty() || rest.starts_with('+') || rest.starts_with(';'))
}

/// Envoy's mapping of a local reply's HTTP status to a gRPC status
/// (`Grpc::Utility::httpToGrpcStatus`).
pub fn http_to_grpc_status(status: u32) -> u32 {
    match status {
        400 => 13,
        401 => 16,
        403 => 7,
        404 => 12,
        429 | 502 | 503 | 504 => 14,
        _ => 2,
    }
}

/// A local reply to a gRPC request as Envoy sends it: `200`, the filter's
/// headers, `content-type: application/grpc`, `grpc-status` (the filter's,
/// or mapped from the HTTP status), and the body as `grpc-message`
/// (percent-encoded as gRPC wants, a last newline included: seen in Envoy
/// 1.40) instead of a body. The headers end the stream (trailers-only).
pub fn grpc_local_reply(status: u32, headers: &[(String, String)], grpc_status: Option<u32>, body: &[u8], head: bool) -> Vec<(String, Vec<u8>)> {
    let mut map: Vec<(String, Vec<u8>)> = vec![(":status".into(), b"200".to_vec())];
    for (k, v) in headers {
        map.push((k.to_ascii_lowercase(), v.clone().into_bytes()));
    }
    let set = |map: &mut Vec<(String, Vec<u8>)>, name: &str, value: Vec<u8>| match map.iter_mut().find(|(k, _)| k == name) {
        Some((_, v)) => *v = value,
        None => map.push((name.to_string(), value)),
    };
    set(&mut map, "content-type", b"application/grpc".to_vec());
    if !map.iter().any(|(k, _)| k == "grpc-status") {
        let code = grpc_status.unwrap_or_else(|| http_to_grpc_status(status));
        map.push(("grpc-status".into(), code.to_string().into_bytes()));
    }
    if !body.is_empty() && !head {
        set(&mut map, "grpc-message", percent_encode(body));
    }
    map.retain(|(k, _)| k != "content-length");
    map
}

/// gRPC's percent-encoding of `grpc-message`: bytes outside printable
/// ASCII, and `%`, as `%XX`.
fn percent_encode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    for &b in text {
        if (b' '..=b'~').contains(&b) && b != b'%' {
            out.push(b);
        } else {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        }
    }
    out
}

/// The response as the client receives it over HTTP/1.1: a body without
/// `content-length` goes chunked (so does a `HEAD` response whose length
/// was removed, which then has no body), a response with no body at all
/// gets `content-length: 0`, and `connection: close` when the connection
/// will close. Returns the headers and the body.
pub fn client_response(status: u16, mut headers: Vec<(String, String)>, body: Vec<u8>, client: ClientSide) -> (Vec<(String, String)>, Vec<u8>) {
    if client.http2 {
        // HTTP/2 has no connection-specific headers and frames the body itself.
        headers.retain(|(k, _)| k != "transfer-encoding" && k != "connection");
        return (headers, if client.head { Vec::new() } else { body });
    }
    // The connection manager's header goes into the map; the codec's
    // framing header is written after the whole map (an upstream's
    // `transfer-encoding`, which filters see, is framing too: seen in
    // Envoy 1.40 moved to the end).
    headers.retain(|(k, _)| k != "transfer-encoding");
    if (client.close || client.body_unread) && !has(&headers, "connection") {
        headers.push(("connection".into(), "close".into()));
    }
    let bodiless_status = status == 204 || status == 304 || (100..200).contains(&status);
    if !has(&headers, "content-length") && !bodiless_status {
        if body.is_empty() && !client.head {
            headers.push(("content-length".into(), "0".into()));
        } else {
            headers.push(("transfer-encoding".into(), "chunked".into()));
        }
    }
    let body = if client.head { Vec::new() } else { body };
    (headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn the_router_adds_its_timeout_and_chunked_framing() {
        let out = upstream_request(pairs(&[("a", "1")]), true, DEFAULT_ROUTE_TIMEOUT_MS, false);
        assert_eq!(out, pairs(&[("a", "1"), ("x-envoy-expected-rq-timeout-ms", "15000"), ("transfer-encoding", "chunked")]));
        let out = upstream_request(pairs(&[("content-length", "3")]), true, 0, false);
        assert_eq!(out, pairs(&[("content-length", "3")]));
        let out = upstream_request(pairs(&[("a", "1")]), true, 0, true);
        assert_eq!(out, pairs(&[("a", "1")]), "HTTP/2 frames the body itself");
    }

    #[test]
    fn a_grpc_local_reply_is_trailers_only() {
        let map = grpc_local_reply(403, &pairs(&[("x-why", "denied")]), None, b"access denied: 100%\n", false);
        let text: Vec<(String, String)> = map.iter().map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned())).collect();
        assert_eq!(text, pairs(&[(":status", "200"), ("x-why", "denied"), ("content-type", "application/grpc"), ("grpc-status", "7"), ("grpc-message", "access denied: 100%25%0A")]));
        let map = grpc_local_reply(503, &[], Some(4), b"", false);
        assert_eq!(map.iter().find(|(k, _)| k == "grpc-status").map(|(_, v)| v.as_slice()), Some(&b"4"[..]));
        assert!(is_grpc_content_type("application/grpc") && is_grpc_content_type("application/grpc+proto"));
        assert!(!is_grpc_content_type("application/grpc-web") && !is_grpc_content_type("application/grpcx") && !is_grpc_content_type("application/json"));
    }

    #[test]
    fn head_responses_lose_their_body_and_keep_their_length() {
        let (headers, body) = client_response(403, pairs(&[("content-length", "7")]), b"denied\n".to_vec(), ClientSide { head: true, ..ClientSide::default() });
        assert_eq!(headers, pairs(&[("content-length", "7")]));
        assert!(body.is_empty());
        let (headers, _) = client_response(200, Vec::new(), b"x".to_vec(), ClientSide { head: true, ..ClientSide::default() });
        assert_eq!(headers, pairs(&[("transfer-encoding", "chunked")]));
    }
}
