//! Istio's `HTTPMatchRequest` (VirtualService `match` blocks), plus the
//! caller's mTLS identity: the serde form a filter's config embeds, compiled
//! once into an [`HttpMatch`] that checks a [`MatchRequest`].
//!
//! A block matches when every condition it sets holds; a list of blocks is
//! ORed by the filter that holds it.

use crate::codec::Header;
use crate::config_error::{ConfigError, FieldPath};
use crate::matcher::{CompiledStringMatch, StringMatchSpec};
use serde::Deserialize;
use std::borrow::Cow;
use std::collections::BTreeMap;

/// One `HTTPMatchRequest` as written in YAML/JSON.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HttpMatchSpec {
    /// Istio's name for the block; used in logs only.
    pub name: Option<String>,
    pub uri: Option<StringMatchSpec>,
    pub scheme: Option<StringMatchSpec>,
    pub method: Option<StringMatchSpec>,
    pub authority: Option<StringMatchSpec>,
    #[serde(default)]
    pub headers: BTreeMap<String, StringMatchSpec>,
    #[serde(default)]
    pub query_params: BTreeMap<String, StringMatchSpec>,
    #[serde(default)]
    pub without_headers: BTreeMap<String, StringMatchSpec>,
    #[serde(default)]
    pub ignore_uri_case: bool,
    pub port: Option<u32>,
    pub source_principal: Option<String>,
    pub source_namespace: Option<String>,
}

/// One compiled `HTTPMatchRequest`: every condition present must hold.
#[derive(Debug, Clone, Default)]
pub struct HttpMatch {
    pub uri: Option<CompiledStringMatch>,
    pub scheme: Option<CompiledStringMatch>,
    pub method: Option<CompiledStringMatch>,
    pub authority: Option<CompiledStringMatch>,
    pub headers: Vec<(String, CompiledStringMatch)>,
    pub query_params: Vec<(String, CompiledStringMatch)>,
    pub without_headers: Vec<(String, CompiledStringMatch)>,
    pub port: Option<u32>,
    /// Istio principal form: `<trust-domain>/ns/<ns>/sa/<sa>`.
    pub source_principal: Option<String>,
    pub source_namespace: Option<String>,
}

/// A header name a block can be matched on: lower-case token characters.
pub fn check_header_name(path: &FieldPath, name: &str) -> Result<(), ConfigError> {
    let token = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(path.error(format!("{name:?} is not a lower-case header name")));
    }
    Ok(())
}

/// A principal in Istio's form, without the `spiffe://` scheme.
pub fn strip_spiffe(principal: &str) -> String {
    principal.strip_prefix("spiffe://").unwrap_or(principal).to_string()
}

impl HttpMatchSpec {
    /// Compiles the block; `path` names it in error messages
    /// (`routes[1].match[0]`). An empty block compiles (it matches every
    /// request): whether that is allowed is the filter's call.
    pub fn compile(&self, path: &FieldPath) -> Result<HttpMatch, ConfigError> {
        let one = |field: &str, m: &Option<StringMatchSpec>, ignore_case: bool| -> Result<Option<CompiledStringMatch>, ConfigError> {
            m.as_ref().map(|m| m.compile(&path.field(field), ignore_case)).transpose()
        };
        let named = |field: &str, map: &BTreeMap<String, StringMatchSpec>, prefix_allowed: bool| -> Result<Vec<(String, CompiledStringMatch)>, ConfigError> {
            let mut out = Vec::with_capacity(map.len());
            for (name, m) in map {
                let at = path.field(field).field(name);
                if field != "queryParams" {
                    check_header_name(&at, name)?;
                    if matches!(name.as_str(), "uri" | "scheme" | "method" | "authority") || name.starts_with(':') {
                        return Err(at.error(format!("match {name} with its own field, not as a header (Istio ignores it here)")));
                    }
                }
                if !prefix_allowed && m.prefix.is_some() {
                    return Err(at.field("prefix").error("Istio does not support prefix matching of query parameters"));
                }
                out.push((name.clone(), m.compile(&at, false)?));
            }
            Ok(out)
        };
        let compiled = HttpMatch {
            uri: one("uri", &self.uri, self.ignore_uri_case)?,
            scheme: one("scheme", &self.scheme, false)?,
            method: one("method", &self.method, false)?,
            authority: one("authority", &self.authority, false)?,
            headers: named("headers", &self.headers, true)?,
            query_params: named("queryParams", &self.query_params, false)?,
            without_headers: named("withoutHeaders", &self.without_headers, true)?,
            port: self.port,
            source_principal: self.source_principal.as_deref().map(strip_spiffe),
            source_namespace: self.source_namespace.clone(),
        };
        if let Some(port) = compiled.port {
            if port == 0 || port > 65535 {
                return Err(path.field("port").error(format!("{port} is not a port")));
            }
        }
        if compiled.source_principal.as_deref() == Some("") {
            return Err(path.field("sourcePrincipal").error("must not be empty"));
        }
        if compiled.source_namespace.as_deref() == Some("") {
            return Err(path.field("sourceNamespace").error("must not be empty"));
        }
        Ok(compiled)
    }
}

impl HttpMatch {
    /// True when the block sets no condition at all.
    pub fn is_empty(&self) -> bool {
        self.uri.is_none()
            && self.scheme.is_none()
            && self.method.is_none()
            && self.authority.is_none()
            && self.headers.is_empty()
            && self.query_params.is_empty()
            && self.without_headers.is_empty()
            && self.port.is_none()
            && self.source_principal.is_none()
            && self.source_namespace.is_none()
    }

    /// The request headers the block reads, pseudo-headers included (each
    /// name once), for a filter that fetches only those.
    pub fn headers_read(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        let fields = [
            (self.uri.is_some() || !self.query_params.is_empty(), ":path"),
            (self.method.is_some(), ":method"),
            (self.scheme.is_some(), ":scheme"),
            (self.authority.is_some(), ":authority"),
        ];
        for (read, name) in fields {
            if read && !names.contains(&name) {
                names.push(name);
            }
        }
        for (name, _) in self.headers.iter().chain(&self.without_headers) {
            if !names.contains(&name.as_str()) {
                names.push(name);
            }
        }
        names
    }

    /// True when the block reads the caller's identity.
    pub fn needs_identity(&self) -> bool {
        self.source_principal.is_some() || self.source_namespace.is_some()
    }

    /// True when every condition of the block holds.
    pub fn matches(&self, request: &MatchRequest<'_>) -> bool {
        // Each value is read only for a condition the block sets.
        let header = |m: &Option<CompiledStringMatch>, name: &str| m.as_ref().is_none_or(|m| m.matches(request.header(name).as_deref()));
        self.uri.as_ref().is_none_or(|m| m.matches(request.uri().as_deref()))
            && header(&self.method, ":method")
            && header(&self.scheme, ":scheme")
            && header(&self.authority, ":authority")
            && self.port.is_none_or(|p| request.port == Some(p))
            && self.source_principal.as_deref().is_none_or(|p| request.principal_istio_form() == Some(p))
            && self.source_namespace.as_deref().is_none_or(|ns| request.namespace() == Some(ns))
            && self.headers.iter().all(|(name, m)| m.matches(request.header(name).as_deref()))
            && self.query_params.iter().all(|(name, m)| m.matches(request.query_param(name).as_deref()))
            && self.without_headers.iter().all(|(name, m)| !m.matches(request.header(name).as_deref()))
    }
}

/// What a match block reads of a request.
#[derive(Debug, Clone, Copy)]
pub struct MatchRequest<'a> {
    /// The request's header map in order, pseudo-headers included.
    pub headers: &'a [Header<'a>],
    /// The peer certificate's URI SAN (`spiffe://…`), if the caller had one.
    pub principal: Option<&'a str>,
    /// The port the request arrived on.
    pub port: Option<u32>,
}

impl<'a> MatchRequest<'a> {
    /// All values of a header joined with `,`, as Envoy's header matchers see
    /// a repeated header.
    pub fn header(&self, name: &str) -> Option<Cow<'a, str>> {
        let mut values = self.headers.iter().filter(|(k, _)| *k == name).map(|(_, v)| *v);
        let first = values.next()?;
        match values.next() {
            None => Some(crate::codec::lossy(first)),
            Some(second) => {
                let mut joined = String::from_utf8_lossy(first).into_owned();
                for v in std::iter::once(second).chain(values) {
                    joined.push(',');
                    joined.push_str(&String::from_utf8_lossy(v));
                }
                Some(Cow::Owned(joined))
            }
        }
    }

    /// The path without its query string, as Envoy's route matching sees it.
    pub fn uri(&self) -> Option<Cow<'a, str>> {
        self.header(":path").map(|p| match p.find(['?', '#']) {
            Some(cut) => Cow::Owned(p.get(..cut).unwrap_or_default().to_string()),
            None => p,
        })
    }

    /// The first value of a query parameter, percent-decoded.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let path = self.header(":path")?;
        let query = path.split_once('?')?.1;
        let query = query.split('#').next().unwrap_or_default();
        query.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
    }

    /// The caller's principal without `spiffe://`.
    pub fn principal_istio_form(&self) -> Option<&'a str> {
        self.principal.map(|p| p.strip_prefix("spiffe://").unwrap_or(p))
    }

    /// The namespace in a principal `<trust-domain>/ns/<ns>/sa/<sa>`.
    pub fn namespace(&self) -> Option<&'a str> {
        let mut parts = self.principal_istio_form()?.split('/');
        parts.next()?;
        (parts.next()? == "ns").then(|| parts.next()).flatten()
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok()).and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn block(json: &str) -> Result<HttpMatch, String> {
        let spec: HttpMatchSpec = serde_json::from_str(json).map_err(|e| e.to_string())?;
        spec.compile(&FieldPath::root().field("match").index(0)).map_err(|e| e.to_string())
    }

    fn headers<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<Header<'a>> {
        pairs.iter().map(|(k, v)| (*k, v.as_bytes())).collect()
    }

    fn get<'a>(path: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<Header<'a>> {
        let mut h = headers(&[(":authority", "shop.local"), (":path", path), (":method", "GET"), (":scheme", "http")]);
        h.extend(headers(extra));
        h
    }

    fn matches(m: &HttpMatch, h: &[Header<'_>]) -> bool {
        m.matches(&MatchRequest { headers: h, principal: None, port: None })
    }

    #[test]
    fn every_condition_must_hold() {
        let m = block(r#"{"method":{"exact":"GET"},"uri":{"prefix":"/api"},"headers":{"x-tier":{"exact":"gold"}}}"#).unwrap();
        assert!(matches(&m, &get("/api/v1?x=1", &[("x-tier", "gold")])));
        assert!(!matches(&m, &get("/api/v1", &[])));
        assert!(!matches(&m, &get("/web", &[("x-tier", "gold")])));
    }

    #[test]
    fn query_params_are_decoded_and_without_headers_invert() {
        let m = block(r#"{"queryParams":{"beta":{"exact":"1"}},"withoutHeaders":{"x-internal":{}}}"#).unwrap();
        assert!(matches(&m, &get("/x?a=2&beta=%31", &[])));
        assert!(!matches(&m, &get("/x?beta=1", &[("x-internal", "")])));
        assert!(!matches(&m, &get("/x?beta=10", &[])));
    }

    #[test]
    fn identity_conditions_read_the_principal() {
        let m = block(r#"{"sourceNamespace":"ops"}"#).unwrap();
        assert!(m.needs_identity());
        let h = get("/", &[]);
        let at = |principal| m.matches(&MatchRequest { headers: &h, principal, port: None });
        assert!(at(Some("spiffe://cluster.local/ns/ops/sa/x")));
        assert!(!at(Some("spiffe://cluster.local/ns/opsx/sa/x")));
        assert!(!at(None));
    }

    #[test]
    fn a_block_names_the_headers_it_reads() {
        let m = block(r#"{"uri":{"prefix":"/a"},"queryParams":{"q":{"exact":"1"}},"headers":{"x-tier":{}},"withoutHeaders":{"x-tier":{},"x-internal":{}}}"#).unwrap();
        assert_eq!(m.headers_read(), vec![":path", "x-tier", "x-internal"]);
        assert!(block("{}").unwrap().headers_read().is_empty());
        let m = block(r#"{"method":{"exact":"GET"},"authority":{"prefix":"shop"},"scheme":{"exact":"https"}}"#).unwrap();
        assert_eq!(m.headers_read(), vec![":method", ":scheme", ":authority"]);
    }

    #[test]
    fn bad_blocks_name_the_field() {
        let cases = [
            (r#"{"port":0}"#, "match[0].port: 0 is not a port"),
            (r#"{"headers":{"X":{"exact":"a"}}}"#, "match[0].headers.X: \"X\" is not a lower-case header name"),
            (r#"{"queryParams":{"q":{"prefix":"a"}}}"#, "match[0].queryParams.q.prefix: Istio does not support prefix"),
            (r#"{"sourcePrincipal":"spiffe://"}"#, "match[0].sourcePrincipal: must not be empty"),
        ];
        for (json, want) in cases {
            let err = block(json).unwrap_err();
            assert!(err.starts_with(want), "{json}: {err}");
        }
        assert!(block(r#"{"sni":"x"}"#).unwrap_err().contains("unknown field"));
        assert!(block("{}").unwrap().is_empty());
    }
}
