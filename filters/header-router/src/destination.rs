//! Decides where a request goes: the first route with a matching block
//! (Istio's order), then, for a split, the side a stable hash of the user's
//! key falls on. Pure logic over the request's headers and identity.

use crate::config::{Route, Router, Sticky, Target};
use filter_common::codec::Header;
use filter_common::MatchRequest;
use std::borrow::Cow;

/// What the decision reads of a request.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The request's header map in order, pseudo-headers included.
    pub headers: &'a [Header<'a>],
    /// The peer certificate's URI SAN (`spiffe://…`), if the caller had one.
    pub principal: Option<&'a str>,
    /// The port the request arrived on.
    pub port: Option<u32>,
    /// Used for an unkeyed split when the request has no `x-request-id`.
    pub fallback_entropy: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision<'r> {
    /// A trusted caller sent its own routing header: it stands.
    Trusted,
    /// Route `route` matched; `target` is the side of its split.
    Route { route: usize, target: usize, value: &'r str },
    /// Nothing matched; the configured default applies.
    Default(&'r str),
    /// Nothing matched and there is no default.
    Unrouted,
}

impl Decision<'_> {
    /// The routing header value to set, if any.
    pub fn value(&self) -> Option<&str> {
        match self {
            Decision::Route { value, .. } | Decision::Default(value) => Some(value),
            _ => None,
        }
    }
}

impl<'a> RequestView<'a> {
    /// What the shared `HTTPMatchRequest` blocks read of the request.
    fn for_matching(&self) -> MatchRequest<'a> {
        MatchRequest { headers: self.headers, principal: self.principal, port: self.port }
    }

    /// All values of a header joined with `,`, as Envoy's header matchers see
    /// a repeated header.
    pub fn header(&self, name: &str) -> Option<Cow<'a, str>> {
        self.for_matching().header(name)
    }
}

/// A stable 64-bit hash (FNV-1a, then a finalizer that spreads low bits), so
/// the same user key lands on the same side in every proxy and every run.
pub fn stable_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// The side of a split that a hash falls on: buckets 0..100 by weight.
pub fn pick(targets: &[Target], hash: u64) -> usize {
    let bucket = (hash % 100) as u32;
    let mut upper = 0;
    for (i, t) in targets.iter().enumerate() {
        upper += t.weight;
        if bucket < upper {
            return i;
        }
    }
    targets.len().saturating_sub(1)
}

fn cookie<'v>(header: &'v str, name: &str) -> Option<&'v str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

impl Router {
    /// The key that keeps a user on one side: the sticky header or cookie;
    /// without one, the request id, so unkeyed requests split uniformly.
    fn split_hash(&self, view: &RequestView<'_>) -> u64 {
        let sticky = match &self.sticky {
            Some(Sticky::Header(name)) => view.header(name).map(Cow::into_owned),
            Some(Sticky::Cookie(name)) => view.header("cookie").and_then(|c| cookie(&c, name).map(str::to_string)),
            None => None,
        };
        match sticky.or_else(|| view.header("x-request-id").map(Cow::into_owned)) {
            Some(key) => stable_hash(key.as_bytes()),
            None => stable_hash(&view.fallback_entropy.to_le_bytes()),
        }
    }

    fn target<'r>(&self, route: &'r Route, view: &RequestView<'_>) -> (usize, &'r str) {
        let index = if route.targets.len() == 1 { 0 } else { pick(&route.targets, self.split_hash(view)) };
        (index, route.targets.get(index).map_or("", |t| t.value.as_str()))
    }

    /// True when the caller may choose its own route.
    fn trusted(&self, view: &RequestView<'_>) -> bool {
        !self.trusted_principals.is_empty()
            && view.for_matching().principal_istio_form().is_some_and(|p| self.trusted_principals.iter().any(|t| t == p))
            && view.header(&self.header).is_some()
    }

    pub fn decide(&self, view: &RequestView<'_>) -> Decision<'_> {
        if self.trusted(view) {
            return Decision::Trusted;
        }
        let request = view.for_matching();
        for (i, route) in self.routes.iter().enumerate() {
            if route.matches.iter().any(|m| m.matches(&request)) {
                let (target, value) = self.target(route, view);
                return Decision::Route { route: i, target, value };
            }
        }
        match &self.default {
            Some(value) => Decision::Default(value),
            None => Decision::Unrouted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn router(json: &str) -> Router {
        Router::parse(Some(json.as_bytes())).unwrap()
    }

    fn headers<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<Header<'a>> {
        pairs.iter().map(|(k, v)| (*k, v.as_bytes())).collect()
    }

    fn request<'a>(path: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<Header<'a>> {
        let mut h = headers(&[(":authority", "shop.local"), (":path", path), (":method", "GET"), (":scheme", "http")]);
        h.extend(headers(extra));
        h
    }

    fn decide_for(r: &Router, h: &[Header<'_>]) -> Option<String> {
        let view = RequestView { headers: h, principal: None, port: Some(8080), fallback_entropy: 0 };
        r.decide(&view).value().map(str::to_string)
    }

    const SCENARIOS: &str = r#"{
      "routes": [
        { "name": "mobile", "match": [{ "headers": { "user-agent": { "regex": ".*Mobile.*" } } }], "route": [{ "value": "my-service-mobile" }] },
        { "name": "desktop", "match": [{ "headers": { "user-agent": { "regex": ".*Desktop.*" } } }], "route": [{ "value": "my-service-desktop" }] },
        { "name": "api", "match": [{ "uri": { "prefix": "/api" } }], "route": [{ "value": "api-service" }] }
      ],
      "default": "frontend"
    }"#;

    #[test]
    fn the_users_scenarios_route_as_istio_would() {
        let r = router(SCENARIOS);
        let ua = |ua: &str, path: &str| decide_for(&r, &request(path, &[("user-agent", ua)]));
        assert_eq!(ua("Mozilla/5.0 (iPhone) Mobile/15E148", "/"), Some("my-service-mobile".into()));
        assert_eq!(ua("Desktop Chrome", "/api/x"), Some("my-service-desktop".into()), "first match wins");
        assert_eq!(ua("curl/8", "/api/orders?id=1"), Some("api-service".into()));
        assert_eq!(ua("curl/8", "/apix"), Some("api-service".into()), "prefix is a string prefix, as in Istio");
        assert_eq!(ua("curl/8", "/"), Some("frontend".into()));
        assert_eq!(decide_for(&r, &request("/", &[])), Some("frontend".into()), "no user-agent: the regex does not match");
    }

    #[test]
    fn every_condition_of_a_block_must_hold_and_any_block_may() {
        let r = router(
            r#"{"routes":[{"match":[
                {"method":{"exact":"POST"},"uri":{"exact":"/orders"}},
                {"queryParams":{"beta":{"exact":"1"}}}
              ],"route":[{"value":"v2"}]}]}"#,
        );
        let mut post = request("/orders", &[]);
        post[2].1 = b"POST";
        assert_eq!(decide_for(&r, &post), Some("v2".into()));
        assert_eq!(decide_for(&r, &request("/orders", &[])), None, "GET fails the first block");
        assert_eq!(decide_for(&r, &request("/x?a=2&beta=1", &[])), Some("v2".into()), "the second block matches");
        assert_eq!(decide_for(&r, &request("/x?beta=%31", &[])), Some("v2".into()), "query values are decoded");
        assert_eq!(decide_for(&r, &request("/x?beta=10", &[])), None);
    }

    #[test]
    fn uri_matching_ignores_the_query_and_can_ignore_case() {
        let r = router(r#"{"routes":[{"match":[{"uri":{"exact":"/Admin"},"ignoreUriCase":true}],"route":[{"value":"admin"}]}]}"#);
        assert_eq!(decide_for(&r, &request("/admin?x=/Admin", &[])), Some("admin".into()));
        assert_eq!(decide_for(&r, &request("/ADMIN", &[])), Some("admin".into()));
        assert_eq!(decide_for(&r, &request("/admin/", &[])), None);
    }

    #[test]
    fn repeated_headers_are_matched_joined_and_without_headers_inverts() {
        let r = router(
            r#"{"routes":[
                {"match":[{"headers":{"x-tier":{"exact":"gold,silver"}}}],"route":[{"value":"joined"}]},
                {"match":[{"withoutHeaders":{"x-internal":{}}}],"route":[{"value":"public"}]}
            ]}"#,
        );
        assert_eq!(decide_for(&r, &request("/", &[("x-tier", "gold"), ("x-tier", "silver")])), Some("joined".into()));
        assert_eq!(decide_for(&r, &request("/", &[])), Some("public".into()), "absent header: withoutHeaders holds");
        assert_eq!(decide_for(&r, &request("/", &[("x-internal", "")])), None, "present (even empty): it does not");
    }

    #[test]
    fn identity_and_port_conditions() {
        let r = router(
            r#"{"routes":[
                {"match":[{"sourcePrincipal":"cluster.local/ns/billing/sa/api"}],"route":[{"value":"billing"}]},
                {"match":[{"sourceNamespace":"ops"}],"route":[{"value":"ops"}]},
                {"match":[{"port":9090}],"route":[{"value":"admin-port"}]}
            ]}"#,
        );
        let h = request("/", &[]);
        let view = |principal, port| RequestView { headers: &h, principal, port, fallback_entropy: 0 };
        assert_eq!(r.decide(&view(Some("spiffe://cluster.local/ns/billing/sa/api"), None)).value(), Some("billing"));
        assert_eq!(r.decide(&view(Some("spiffe://cluster.local/ns/ops/sa/x"), None)).value(), Some("ops"));
        assert_eq!(r.decide(&view(Some("spiffe://cluster.local/ns/opsx/sa/x"), None)).value(), None);
        assert_eq!(r.decide(&view(None, Some(9090))).value(), Some("admin-port"));
        assert_eq!(r.decide(&view(None, None)).value(), None, "a plaintext caller has no principal or namespace");
    }

    #[test]
    fn only_trusted_callers_keep_their_own_routing_header() {
        let r = router(r#"{"default":"frontend","trustedPrincipals":["spiffe://cluster.local/ns/gw/sa/ingress"]}"#);
        let h = request("/", &[("x-route-destination", "v2")]);
        let view = |principal| RequestView { headers: &h, principal, port: None, fallback_entropy: 0 };
        assert_eq!(r.decide(&view(Some("spiffe://cluster.local/ns/gw/sa/ingress"))), Decision::Trusted);
        assert_eq!(r.decide(&view(Some("spiffe://cluster.local/ns/other/sa/x"))), Decision::Default("frontend"));
        assert_eq!(r.decide(&view(None)), Decision::Default("frontend"));
    }

    fn canary() -> Router {
        router(r#"{"routes":[{"name":"payments","match":[{"authority":{"exact":"payments"}}],"route":[{"value":"v1","weight":90},{"value":"v2","weight":10}]}],"sticky":{"cookie":"session"}}"#)
    }

    fn split_for(r: &Router, extra: &[(&str, &str)]) -> String {
        let mut h = request("/", extra);
        h[0].1 = b"payments";
        decide_for(r, &h).unwrap()
    }

    #[test]
    fn a_sticky_user_always_lands_on_one_side() {
        let r = canary();
        for user in 0..200 {
            let cookie = format!("theme=dark; session=user-{user}");
            let first = split_for(&r, &[("cookie", &cookie), ("x-request-id", "a")]);
            for id in ["b", "c", "d"] {
                assert_eq!(split_for(&r, &[("cookie", &cookie), ("x-request-id", id)]), first, "user-{user}");
            }
        }
    }

    #[test]
    fn splits_follow_the_weights() {
        let r = canary();
        let n = 20_000;
        let v2 = (0..n).filter(|i| split_for(&r, &[("cookie", &format!("session={i}"))]) == "v2").count();
        // 10% of 20,000 is 2,000 with a standard deviation of about 42.
        assert!((1_830..=2_170).contains(&v2), "v2 got {v2} of {n}");
        // Without a sticky key the request id spreads requests the same way.
        let unkeyed = (0..n).filter(|i| split_for(&r, &[("x-request-id", &format!("req-{i}"))]) == "v2").count();
        assert!((1_830..=2_170).contains(&unkeyed), "v2 got {unkeyed} of {n}");
    }

    #[test]
    fn the_hash_is_stable_and_spreads_sequential_keys() {
        // Pinned: a change here would move every sticky user to another side.
        assert_eq!(stable_hash(b"user-42"), 0xa395_32c7_ab05_1e8d);
        let mut buckets = [0u32; 10];
        for i in 0..10_000 {
            buckets[(stable_hash(format!("user-{i}").as_bytes()) % 10) as usize] += 1;
        }
        assert!(buckets.iter().all(|b| (850..=1150).contains(b)), "{buckets:?}");
    }

    #[test]
    fn zero_weights_never_win() {
        let t = vec![Target { value: "a".into(), weight: 0 }, Target { value: "b".into(), weight: 100 }];
        assert!((0..1000).all(|h| pick(&t, h) == 1));
    }
}
