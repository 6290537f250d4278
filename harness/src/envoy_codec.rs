//! What Envoy's router and HTTP/1 codec add to a message after the filters
//! have run, where no filter sees it: the router's timeout header on the
//! upstream request, the framing header a body without `content-length`
//! needs, `connection: close`, and the body a `HEAD` response never carries.

/// The route timeout when the route sets none (Envoy's default, 15 s).
pub const DEFAULT_ROUTE_TIMEOUT_MS: u32 = 15_000;

fn has(headers: &[(String, String)], name: &str) -> bool {
    headers.iter().any(|(k, _)| k == name)
}

/// The upstream request's regular headers as the upstream receives them:
/// the router's `x-envoy-expected-rq-timeout-ms` (unless the timeout is 0,
/// disabled), then, for a body without `content-length`, chunked framing.
pub fn upstream_request(mut headers: Vec<(String, String)>, has_body: bool, route_timeout_ms: u32) -> Vec<(String, String)> {
    if route_timeout_ms > 0 && !has(&headers, "x-envoy-expected-rq-timeout-ms") {
        headers.push(("x-envoy-expected-rq-timeout-ms".into(), route_timeout_ms.to_string()));
    }
    if has_body && !has(&headers, "content-length") && !has(&headers, "transfer-encoding") {
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
}

/// The response as the client receives it over HTTP/1.1: a body without
/// `content-length` goes chunked (so does a `HEAD` response whose length
/// was removed, which then has no body), a response with no body at all
/// gets `content-length: 0`, and `connection: close` when the connection
/// will close. Returns the headers and the body.
pub fn client_response(status: u16, mut headers: Vec<(String, String)>, body: Vec<u8>, client: ClientSide) -> (Vec<(String, String)>, Vec<u8>) {
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
        let out = upstream_request(pairs(&[("a", "1")]), true, DEFAULT_ROUTE_TIMEOUT_MS);
        assert_eq!(out, pairs(&[("a", "1"), ("x-envoy-expected-rq-timeout-ms", "15000"), ("transfer-encoding", "chunked")]));
        let out = upstream_request(pairs(&[("content-length", "3")]), true, 0);
        assert_eq!(out, pairs(&[("content-length", "3")]));
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
