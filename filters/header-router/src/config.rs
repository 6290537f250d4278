//! The plugin configuration: serde types in the shape of Istio's
//! VirtualService `http` routes, compiled once into a ready `Router`. Every
//! error names the field (`routes[1].match[0].headers.user-agent.regex: …`).

use filter_common::http_match::{check_header_name, strip_spiffe};
use filter_common::{parse_json, ConfigError, FieldPath, HttpMatchSpec};
use serde::Deserialize;

/// One `HTTPMatchRequest` block, compiled (shared with the other filters).
pub use filter_common::HttpMatch as Match;

const DEFAULT_HEADER: &str = "x-route-destination";

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Mode {
    /// The value is matched by Envoy route entries on the routing header.
    #[default]
    RouteHeader,
    /// The value names an Envoy cluster, for a route with `cluster_header`.
    ClusterHeader,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RouterSpec {
    header: Option<String>,
    #[serde(default)]
    mode: Mode,
    #[serde(default)]
    routes: Vec<RouteSpec>,
    default: Option<String>,
    sticky: Option<StickySpec>,
    #[serde(default)]
    trusted_principals: Vec<String>,
    response_header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RouteSpec {
    name: Option<String>,
    #[serde(default, rename = "match")]
    matches: Vec<HttpMatchSpec>,
    #[serde(default)]
    route: Vec<TargetSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TargetSpec {
    value: String,
    weight: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
enum StickySpec {
    Header(String),
    Cookie(String),
}

/// Where the key that keeps a user on one side of a split comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sticky {
    Header(String),
    Cookie(String),
}

/// One destination value and its share of a split (all 100 if alone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub value: String,
    pub weight: u32,
}

#[derive(Debug, Clone)]
pub struct Route {
    pub name: String,
    /// ORed: the route applies if any block matches.
    pub matches: Vec<Match>,
    pub targets: Vec<Target>,
}

/// The compiled configuration.
#[derive(Debug, Clone)]
pub struct Router {
    pub header: String,
    pub mode: Mode,
    pub routes: Vec<Route>,
    pub default: Option<String>,
    pub sticky: Option<Sticky>,
    /// Callers (Istio principal form) whose own routing header is honoured.
    pub trusted_principals: Vec<String>,
    pub response_header: Option<String>,
    /// Some route matches on the caller's identity.
    pub needs_identity: bool,
    /// Some route matches on the destination port.
    pub needs_port: bool,
}

impl Router {
    pub fn parse(bytes: Option<&[u8]>) -> Result<Self, ConfigError> {
        let spec: RouterSpec = parse_json(bytes)?;
        compile(spec)
    }
}

/// A value Envoy can carry in a header (and, in cluster mode, a cluster name).
fn check_value(path: &FieldPath, value: &str, mode: Mode) -> Result<(), ConfigError> {
    if value.is_empty() {
        return Err(path.error("must not be empty"));
    }
    if value.bytes().any(|b| b.is_ascii_control() || b == b' ' && mode == Mode::ClusterHeader) {
        return Err(path.error(format!("{value:?} cannot be sent as a header value{}", if mode == Mode::ClusterHeader { " naming a cluster" } else { "" })));
    }
    Ok(())
}

fn compile(spec: RouterSpec) -> Result<Router, ConfigError> {
    let root = FieldPath::root();
    let header = spec.header.unwrap_or_else(|| DEFAULT_HEADER.to_string());
    check_header_name(&root.field("header"), &header)?;
    if header.starts_with(':') || header == "host" {
        return Err(root.field("header").error("cannot be a pseudo-header or host"));
    }
    if spec.routes.is_empty() && spec.default.is_none() {
        return Err(root.field("routes").error("no routes and no default: the filter would do nothing"));
    }
    let mut routes = Vec::with_capacity(spec.routes.len());
    for (i, route) in spec.routes.into_iter().enumerate() {
        routes.push(compile_route(&root.field("routes").index(i), i, route, spec.mode)?);
    }
    if let Some(default) = &spec.default {
        check_value(&root.field("default"), default, spec.mode)?;
    }
    let sticky = match spec.sticky {
        Some(StickySpec::Header(name)) => {
            check_header_name(&root.field("sticky").field("header"), &name)?;
            Some(Sticky::Header(name))
        }
        Some(StickySpec::Cookie(name)) if name.is_empty() => {
            return Err(root.field("sticky").field("cookie").error("must not be empty"));
        }
        Some(StickySpec::Cookie(name)) => Some(Sticky::Cookie(name)),
        None => None,
    };
    for (i, p) in spec.trusted_principals.iter().enumerate() {
        if strip_spiffe(p).is_empty() {
            return Err(root.field("trustedPrincipals").index(i).error("must not be empty"));
        }
    }
    if let Some(name) = &spec.response_header {
        check_header_name(&root.field("responseHeader"), name)?;
    }
    let needs_identity = routes.iter().flat_map(|r| &r.matches).any(Match::needs_identity);
    let needs_port = routes.iter().flat_map(|r| &r.matches).any(|m| m.port.is_some());
    Ok(Router {
        header,
        mode: spec.mode,
        routes,
        default: spec.default,
        sticky,
        trusted_principals: spec.trusted_principals.iter().map(|p| strip_spiffe(p)).collect(),
        response_header: spec.response_header,
        needs_identity,
        needs_port,
    })
}

fn compile_route(path: &FieldPath, index: usize, spec: RouteSpec, mode: Mode) -> Result<Route, ConfigError> {
    let name = spec.name.unwrap_or_else(|| format!("route-{index}"));
    if name.is_empty() {
        return Err(path.field("name").error("must not be empty"));
    }
    if spec.matches.is_empty() {
        return Err(path.field("match").error("a route needs at least one match block; requests nothing matches go to `default`"));
    }
    let matches = spec
        .matches
        .into_iter()
        .enumerate()
        .map(|(i, m)| compile_match(&path.field("match").index(i), m))
        .collect::<Result<Vec<_>, _>>()?;
    let targets = compile_targets(&path.field("route"), spec.route, mode)?;
    Ok(Route { name, matches, targets })
}

fn compile_targets(path: &FieldPath, specs: Vec<TargetSpec>, mode: Mode) -> Result<Vec<Target>, ConfigError> {
    if specs.is_empty() {
        return Err(path.error("needs at least one destination value"));
    }
    let single = specs.len() == 1;
    let mut targets = Vec::with_capacity(specs.len());
    for (i, t) in specs.into_iter().enumerate() {
        let at = path.index(i);
        check_value(&at.field("value"), &t.value, mode)?;
        let weight = match (t.weight, single) {
            (Some(w), _) => w,
            (None, true) => 100,
            (None, false) => return Err(at.field("weight").error("required when a route has several destinations")),
        };
        targets.push(Target { value: t.value, weight });
    }
    let total: u64 = targets.iter().map(|t| u64::from(t.weight)).sum();
    if total != 100 {
        return Err(path.error(format!("weights sum to {total}, not 100")));
    }
    Ok(targets)
}

fn compile_match(path: &FieldPath, spec: HttpMatchSpec) -> Result<Match, ConfigError> {
    let compiled = spec.compile(path)?;
    if compiled.is_empty() {
        return Err(path.error("an empty match block matches everything; use `default` for that"));
    }
    Ok(compiled)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn parse(json: &str) -> Result<Router, String> {
        Router::parse(Some(json.as_bytes())).map_err(|e| e.to_string())
    }

    #[test]
    fn the_users_scenarios_compile() {
        let router = parse(
            r#"{
              "routes": [
                { "name": "mobile", "match": [{ "headers": { "user-agent": { "regex": ".*Mobile.*" } } }], "route": [{ "value": "my-service-mobile" }] },
                { "name": "desktop", "match": [{ "headers": { "user-agent": { "regex": ".*Desktop.*" } } }], "route": [{ "value": "my-service-desktop" }] },
                { "name": "api", "match": [{ "uri": { "prefix": "/api" } }], "route": [{ "value": "api-service" }] },
                { "name": "payments", "match": [{ "authority": { "exact": "payments" } }],
                  "route": [{ "value": "v1", "weight": 90 }, { "value": "v2", "weight": 10 }] }
              ],
              "default": "frontend",
              "sticky": { "header": "x-user-id" }
            }"#,
        )
        .unwrap();
        assert_eq!(router.header, "x-route-destination");
        assert_eq!(router.routes.len(), 4);
        assert_eq!(router.routes[3].targets[1], Target { value: "v2".into(), weight: 10 });
        assert_eq!(router.sticky, Some(Sticky::Header("x-user-id".into())));
        assert!(!router.needs_identity && !router.needs_port);
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            (r#"{"routes":[{"match":[{"headers":{"ua":{"regex":"(x"}}}],"route":[{"value":"a"}]}]}"#, "routes[0].match[0].headers.ua.regex: invalid regex"),
            (r#"{"routes":[{"match":[{"uri":{"prefix":"/"}}],"route":[{"value":"a","weight":90},{"value":"b","weight":20}]}]}"#, "routes[0].route: weights sum to 110, not 100"),
            (r#"{"routes":[{"match":[{"uri":{"prefix":"/"}}],"route":[{"value":"a","weight":90},{"value":"b"}]}]}"#, "routes[0].route[1].weight: required"),
            (r#"{"routes":[{"match":[],"route":[{"value":"a"}]}]}"#, "routes[0].match: a route needs at least one match block"),
            (r#"{"routes":[{"match":[{}],"route":[{"value":"a"}]}]}"#, "routes[0].match[0]: an empty match block matches everything"),
            (r#"{"routes":[{"match":[{"uri":{"prefix":"/"}}],"route":[{"value":"a"}],"timeout":"1s"}]}"#, "routes[0].timeout: unknown field"),
            (r#"{"routes":[{"match":[{"headers":{"User-Agent":{"exact":"x"}}}],"route":[{"value":"a"}]}]}"#, "routes[0].match[0].headers.User-Agent: \"User-Agent\" is not a lower-case header name"),
            (r#"{"routes":[{"match":[{"queryParams":{"q":{"prefix":"x"}}}],"route":[{"value":"a"}]}]}"#, "routes[0].match[0].queryParams.q.prefix: Istio does not support prefix"),
            (r#"{"routes":[{"match":[{"headers":{"uri":{"exact":"/"}}}],"route":[{"value":"a"}]}]}"#, "routes[0].match[0].headers.uri: match uri with its own field"),
            (r#"{"routes":[{"match":[{"port":70000}],"route":[{"value":"a"}]}]}"#, "routes[0].match[0].port: 70000 is not a port"),
            (r#"{"routes":[{"match":[{"uri":{"exact":"/","prefix":"/"}}],"route":[{"value":"a"}]}]}"#, "routes[0].match[0].uri: set only one of exact, prefix, regex"),
            (r#"{"header":":path","default":"x"}"#, "header: \":path\" is not a lower-case header name"),
            (r#"{"mode":"clusterHeader","default":"bad cluster"}"#, "default: \"bad cluster\" cannot be sent as a header value naming a cluster"),
            (r#"{"default":"a\nb"}"#, "default: \"a\\nb\" cannot be sent"),
            (r#"{}"#, "routes: no routes and no default"),
            (r#"{"default":"x","sticky":{"cookie":""}}"#, "sticky.cookie: must not be empty"),
        ];
        for (json, want) in cases {
            let err = parse(json).unwrap_err();
            assert!(err.starts_with(want), "{json}\n  got:  {err}\n  want: {want}…");
        }
    }

    #[test]
    fn identity_and_port_are_read_only_when_routes_use_them() {
        let r = parse(r#"{"routes":[{"match":[{"sourcePrincipal":"spiffe://cluster.local/ns/a/sa/b"}],"route":[{"value":"x"}]},{"match":[{"port":8080}],"route":[{"value":"y"}]}]}"#).unwrap();
        assert!(r.needs_identity && r.needs_port);
        assert_eq!(r.routes[0].matches[0].source_principal.as_deref(), Some("cluster.local/ns/a/sa/b"));
    }
}
