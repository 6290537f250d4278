//! Decides what a request gets: which rule applies (first match wins),
//! whether a retry is safe for it, which headers a client must not send,
//! and the Envoy headers that carry the rule's retries and timeouts. Pure
//! logic over the request's headers; the budget's grant comes in as a number.

use crate::config::{Hints, Rule, KEYED_METHODS};
use filter_common::codec::Header;
use filter_common::MatchRequest;
use std::borrow::Cow;

/// Headers only the proxy may set: with them a client would order Envoy's
/// router to retry (or wait) as it likes.
pub fn is_router_control(name: &str) -> bool {
    name.starts_with("x-envoy-retry-")
        || name.starts_with("x-envoy-retriable-")
        || matches!(
            name,
            "x-envoy-max-retries"
                | "x-envoy-upstream-rq-timeout-ms"
                | "x-envoy-upstream-rq-per-try-timeout-ms"
                | "x-envoy-upstream-rq-timeout-alt-response"
                | "x-envoy-hedge-on-per-try-timeout"
        )
}

/// The router-control headers a request carries, each name once.
pub fn router_control_headers<'a>(headers: &[Header<'a>]) -> Vec<&'a str> {
    let mut names: Vec<&str> = Vec::new();
    for &(name, _) in headers {
        if is_router_control(name) && !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Why a request gets no retries although a rule gives some.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsafe {
    /// Not an idempotent method, and no idempotency key.
    Method,
    /// A body whose `content-length` is over `maxRetryBodyBytes`.
    BodyTooLarge,
}

/// What the request looks like to the safety check.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    pub request: MatchRequest<'a>,
    /// The request ended with its headers: it has no body.
    pub end_of_stream: bool,
}

impl Hints {
    /// The first rule with a matching block (or without blocks).
    pub fn rule_for(&self, request: &MatchRequest<'_>) -> Option<(usize, &Rule)> {
        self.rules.iter().enumerate().find(|(_, r)| r.matches.is_empty() || r.matches.iter().any(|m| m.matches(request)))
    }

    /// Whether Envoy may send this request, matched by `rule`, more than once.
    pub fn safety(&self, rule: &Rule, view: &RequestView<'_>) -> Result<(), Unsafe> {
        let method = view.request.header(":method").unwrap_or_default();
        let methods = rule.idempotent_methods.as_ref().unwrap_or(&self.idempotent_methods);
        let idempotent = methods.iter().any(|m| *m == method);
        let keyed = KEYED_METHODS.contains(&method.as_ref())
            && view.request.header(&self.idempotency_key_header).is_some_and(|k| !k.trim().is_empty());
        if !idempotent && !keyed {
            return Err(Unsafe::Method);
        }
        if view.end_of_stream {
            return Ok(());
        }
        // A body of unknown length (HTTP/2 and gRPC streams, chunked bodies)
        // is Envoy's to judge: its router buffers the body for retries up to
        // the route's buffer limit and stops retrying past it. Refusing here
        // would know no more, and would switch off the route's own policy.
        match view.request.header("content-length").map(|l| l.trim().parse::<u64>()) {
            Some(Ok(length)) if length > self.max_retry_body_bytes => Err(Unsafe::BodyTooLarge),
            _ => Ok(()),
        }
    }
}

/// True for a gRPC request, whose retry conditions Envoy reads from
/// `x-envoy-retry-grpc-on`.
pub fn is_grpc(request: &MatchRequest<'_>) -> bool {
    request.header("content-type").is_some_and(|c| c.starts_with("application/grpc"))
}

/// The headers that carry `rule` for one request. `granted` is the retries
/// the request may make (`None` when the rule sets no retry policy, so the
/// route's own stands); with 0, only the timeouts and `x-envoy-max-retries: 0`.
pub fn headers_for<'a>(rule: &'a Rule, grpc: bool, granted: Option<u32>) -> Vec<(&'static str, Cow<'a, str>)> {
    let texts = &rule.texts;
    let borrowed = |v: &'a Option<String>| v.as_deref().map(Cow::Borrowed);
    let mut out = Vec::with_capacity(8);
    if let Some(ms) = borrowed(&texts.timeout) {
        out.push(("x-envoy-upstream-rq-timeout-ms", ms));
    }
    let (Some(retry), Some(granted)) = (&rule.retry, granted) else { return out };
    if let Some(ms) = borrowed(&texts.per_try_timeout) {
        out.push(("x-envoy-upstream-rq-per-try-timeout-ms", ms));
    }
    let retries = texts.max_retries.get(granted as usize).map_or_else(|| Cow::Owned(granted.to_string()), |n| Cow::Borrowed(n.as_str()));
    out.push(("x-envoy-max-retries", retries));
    if granted == 0 {
        return out;
    }
    let conditions = [
        ("x-envoy-retry-on", borrowed(&retry.retry_on)),
        ("x-envoy-retry-grpc-on", if grpc { borrowed(&retry.grpc_retry_on) } else { None }),
        ("x-envoy-retriable-status-codes", borrowed(&retry.status_codes)),
        ("x-envoy-retriable-header-names", borrowed(&retry.header_names)),
        ("x-envoy-hedge-on-per-try-timeout", retry.hedge_on_per_try_timeout.map(|h| Cow::Borrowed(if h { "true" } else { "false" }))),
    ];
    out.extend(conditions.into_iter().filter_map(|(name, value)| Some((name, value?))));
    out
}

/// Whether the client should be told when to come back: the answer is a
/// retriable failure, the proxy did not (or could not) retry it, and the
/// upstream did not say itself.
pub fn needs_retry_after(status: u16, upstream_said: bool, retries_withheld: bool) -> bool {
    matches!(status, 429 | 503) && retries_withheld && !upstream_said
}

/// gRPC's statuses for "try again later": UNAVAILABLE (14) and
/// RESOURCE_EXHAUSTED (8), as `grpc-status` carries them.
fn is_grpc_try_later(grpc_status: &[u8]) -> bool {
    matches!(grpc_status, b"14" | b"8")
}

/// Whether a gRPC client should be told when to come back
/// (`grpc-retry-pushback-ms`, which gRPC clients read before retrying): the
/// call ended in a try-later status, the proxy withheld its retries, and the
/// upstream did not say itself.
pub fn needs_grpc_pushback(grpc_status: Option<&[u8]>, upstream_said: bool, retries_withheld: bool) -> bool {
    grpc_status.is_some_and(is_grpc_try_later) && retries_withheld && !upstream_said
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn hints(json: &str) -> Hints {
        Hints::parse(Some(json.as_bytes())).unwrap()
    }

    fn request<'a>(method: &'a str, path: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<Header<'a>> {
        [(":authority", "my-service"), (":path", path), (":method", method), (":scheme", "http")]
            .iter()
            .chain(extra)
            .map(|(k, v)| (*k, v.as_bytes()))
            .collect()
    }

    fn view<'a>(headers: &'a [Header<'a>], end_of_stream: bool) -> RequestView<'a> {
        RequestView { request: MatchRequest { headers, principal: None, port: None }, end_of_stream }
    }

    const USERS: &str = r#"{"rules":[
        {"name":"admin","match":[{"uri":{"prefix":"/admin"}}],"timeout":"30s"},
        {"name":"my-service","match":[{"authority":{"prefix":"my-service"}}],
         "retry":{"attempts":3,"perTryTimeout":"2s","retryOn":"5xx,connect-failure,refused-stream,unavailable"},"timeout":"10s"}]}"#;

    #[test]
    fn first_matching_rule_wins() {
        let h = hints(USERS);
        let r = |path: &str| {
            let headers = request("GET", path, &[]);
            h.rule_for(&view(&headers, true).request).map(|(_, r)| r.name.clone())
        };
        assert_eq!(r("/admin/users").as_deref(), Some("admin"));
        assert_eq!(r("/orders").as_deref(), Some("my-service"));
        let mut other = request("GET", "/", &[]);
        other[0].1 = b"billing";
        assert!(h.rule_for(&view(&other, true).request).is_none());
    }

    #[test]
    fn the_users_scenario_becomes_envoy_headers() {
        let h = hints(USERS);
        let rule = &h.rules[1];
        assert_eq!(
            headers_for(rule, false, Some(3)),
            [
                ("x-envoy-upstream-rq-timeout-ms", Cow::from("10000")),
                ("x-envoy-upstream-rq-per-try-timeout-ms", Cow::from("2000")),
                ("x-envoy-max-retries", Cow::from("3")),
                ("x-envoy-retry-on", Cow::from("5xx,connect-failure,refused-stream")),
            ]
        );
        let grpc = headers_for(rule, true, Some(2));
        assert!(grpc.contains(&("x-envoy-retry-grpc-on", Cow::from("unavailable"))));
        assert!(grpc.contains(&("x-envoy-max-retries", Cow::from("2"))), "the budget's grant, not the rule's attempts");
        assert_eq!(
            headers_for(rule, false, Some(0)),
            [
                ("x-envoy-upstream-rq-timeout-ms", Cow::from("10000")),
                ("x-envoy-upstream-rq-per-try-timeout-ms", Cow::from("2000")),
                ("x-envoy-max-retries", Cow::from("0")),
            ],
            "no retries: no conditions either"
        );
        assert_eq!(headers_for(&h.rules[0], false, None), [("x-envoy-upstream-rq-timeout-ms", Cow::from("30000"))]);
    }

    #[test]
    fn only_idempotent_or_keyed_requests_are_safe() {
        let h = hints(USERS);
        let safety = |method: &str, extra: &[(&str, &str)], eos: bool| h.safety(&h.rules[1], &view(&request(method, "/", extra), eos));
        for m in ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"] {
            assert_eq!(safety(m, &[], true), Ok(()), "{m}");
        }
        assert_eq!(safety("POST", &[("content-length", "2")], false), Err(Unsafe::Method));
        assert_eq!(safety("PATCH", &[], true), Err(Unsafe::Method));
        assert_eq!(safety("POST", &[("idempotency-key", "k-1"), ("content-length", "2")], false), Ok(()));
        assert_eq!(safety("PATCH", &[("idempotency-key", "k-1")], true), Ok(()));
        assert_eq!(safety("POST", &[("idempotency-key", " ")], true), Err(Unsafe::Method), "a blank key is no key");
        assert_eq!(safety("CONNECT", &[("idempotency-key", "k")], true), Err(Unsafe::Method), "a key makes only POST and PATCH safe");
        assert_eq!(safety("get", &[], true), Err(Unsafe::Method), "methods are case-sensitive");
    }

    #[test]
    fn a_rule_may_name_its_own_idempotent_methods() {
        let h = hints(r#"{"rules":[{"name":"grpc","match":[{"headers":{"content-type":{"prefix":"application/grpc"}}}],"retry":{"attempts":2},"idempotentMethods":["POST"]},{"retry":{"attempts":2}}]}"#);
        let call = request("POST", "/pkg.Svc/Get", &[("content-type", "application/grpc"), ("te", "trailers")]);
        let (_, rule) = h.rule_for(&view(&call, false).request).unwrap();
        assert_eq!(h.safety(rule, &view(&call, false)), Ok(()), "gRPC calls are POSTs");
        let get = request("GET", "/", &[]);
        assert_eq!(h.safety(rule, &view(&get, true)), Err(Unsafe::Method), "the rule's list replaces the default");
        let form = request("POST", "/form", &[("content-length", "5")]);
        let (_, other) = h.rule_for(&view(&form, false).request).unwrap();
        assert_eq!(h.safety(other, &view(&form, false)), Err(Unsafe::Method));
    }

    #[test]
    fn a_body_declared_too_large_is_not_retried() {
        let h = hints(&USERS.replace(r#"{"rules""#, r#"{"maxRetryBodyBytes":1000,"rules""#));
        let safety = |extra: &[(&str, &str)]| h.safety(&h.rules[1], &view(&request("PUT", "/", extra), false));
        assert_eq!(safety(&[("content-length", "1000")]), Ok(()));
        assert_eq!(safety(&[("content-length", "1001")]), Err(Unsafe::BodyTooLarge));
    }

    #[test]
    fn a_body_of_unknown_length_is_left_to_envoys_retry_buffer() {
        let h = hints(&USERS.replace(r#"{"rules""#, r#"{"maxRetryBodyBytes":1000,"rules""#));
        let safety = |method: &str, extra: &[(&str, &str)]| h.safety(&h.rules[1], &view(&request(method, "/", extra), false));
        assert_eq!(safety("PUT", &[]), Ok(()), "an HTTP/2 stream without content-length");
        assert_eq!(safety("PUT", &[("transfer-encoding", "chunked")]), Ok(()));
        assert_eq!(safety("PUT", &[("content-length", "-5")]), Ok(()), "Envoy itself refuses a bad length");
        assert_eq!(safety("POST", &[]), Err(Unsafe::Method), "the method is still checked");
    }

    #[test]
    fn a_grpc_call_as_real_clients_send_it_is_retried_under_a_rule_for_post() {
        // gRPC clients send no content-length: the body's length is unknown.
        let h = hints(r#"{"rules":[{"match":[{"headers":{"content-type":{"prefix":"application/grpc"}}}],"retry":{"attempts":2,"retryOn":"unavailable"},"idempotentMethods":["POST"]}]}"#);
        let call = request("POST", "/pkg.Svc/Get", &[("content-type", "application/grpc"), ("te", "trailers")]);
        let (_, rule) = h.rule_for(&view(&call, false).request).unwrap();
        assert_eq!(h.safety(rule, &view(&call, false)), Ok(()));
    }

    #[test]
    fn client_control_headers_are_found() {
        let h = request(
            "GET",
            "/",
            &[("x-envoy-max-retries", "10"), ("x-envoy-retry-on", "5xx"), ("x-envoy-max-retries", "9"), ("x-envoy-retriable-status-codes", "500"), ("x-envoy-expected-rq-timeout-ms", "5"), ("x-envoy-upstream-rq-timeout-ms", "1")],
        );
        assert_eq!(router_control_headers(&h), ["x-envoy-max-retries", "x-envoy-retry-on", "x-envoy-retriable-status-codes", "x-envoy-upstream-rq-timeout-ms"]);
        assert!(is_router_control("x-envoy-retry-grpc-on") && is_router_control("x-envoy-hedge-on-per-try-timeout"));
        assert!(!is_router_control("x-envoy-original-path") && !is_router_control("retry-after"));
    }

    #[test]
    fn grpc_is_told_by_its_content_type() {
        let h = request("POST", "/pkg.Svc/Call", &[("content-type", "application/grpc+proto")]);
        assert!(is_grpc(&view(&h, true).request));
        assert!(!is_grpc(&view(&request("GET", "/", &[("content-type", "application/json")]), true).request));
    }

    #[test]
    fn grpc_pushback_only_for_try_later_statuses_with_retries_withheld() {
        let status = |s: &'static str| Some(s.as_bytes());
        assert!(needs_grpc_pushback(status("14"), false, true), "UNAVAILABLE");
        assert!(needs_grpc_pushback(status("8"), false, true), "RESOURCE_EXHAUSTED");
        assert!(!needs_grpc_pushback(status("14"), true, true), "the upstream's own pushback stays");
        assert!(!needs_grpc_pushback(status("14"), false, false), "retries were allowed: nothing to add");
        for other in ["0", "2", "7", "13", "140", ""] {
            assert!(!needs_grpc_pushback(status(other), false, true), "{other:?}");
        }
        assert!(!needs_grpc_pushback(None, false, true), "no status yet");
    }

    #[test]
    fn retry_after_only_when_retries_were_withheld_and_the_upstream_said_nothing() {
        assert!(needs_retry_after(503, false, true));
        assert!(needs_retry_after(429, false, true));
        assert!(!needs_retry_after(503, true, true), "the upstream's own retry-after stays");
        assert!(!needs_retry_after(503, false, false), "retries were allowed: nothing to add");
        assert!(!needs_retry_after(500, false, true));
        assert!(!needs_retry_after(200, false, true));
    }
}
