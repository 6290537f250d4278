//! The plugin configuration: a list of policies with the fields of Istio's
//! AuthorizationPolicy spec, plus the filter's own switches, compiled once
//! into ready [`Policy`] values. Every error names the field
//! (`policies[0].rules[1].to[0].operation.paths[2]: …`). Where Istio ignores
//! what it cannot enforce, this filter refuses to start.

use crate::ip::IpBlock;
use crate::policy::{Action, Condition, Field, Operation, Policy, Rule, Source};
use crate::readings::{fold, Reading};
use crate::template::PathMatch;
use filter_common::{parse_json, ConfigError, FieldPath, IstioMatch};
use serde::Deserialize;

const DEFAULT_DENY_BODY: &str = "RBAC: access denied";
const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConfigSpec {
    #[serde(default)]
    policies: Vec<PolicySpec>,
    #[serde(default)]
    dry_run: bool,
    deny_status: Option<u32>,
    deny_body: Option<String>,
    xfcc: Option<XfccSpec>,
    jwt: Option<JwtSpec>,
    /// Readings that DENY rules do not consider (all are on by default).
    #[serde(default)]
    disabled_readings: Vec<ReadingName>,
    /// Accept `%25` followed by two hex digits in a path (refused by default).
    #[serde(default)]
    allow_double_encoding: bool,
    /// Istio's mesh `trustDomain` and `trustDomainAliases`.
    trust_domain: Option<String>,
    #[serde(default)]
    trust_domain_aliases: Vec<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
enum ReadingName {
    DecodedAgain,
    CaseFolded,
    ParametersRemoved,
    MethodCaseFolded,
}

impl ReadingName {
    fn reading(self) -> Reading {
        match self {
            Self::DecodedAgain => Reading::DECODED_AGAIN,
            Self::CaseFolded => Reading::CASE_FOLDED,
            Self::ParametersRemoved => Reading::PARAMETERS_REMOVED,
            Self::MethodCaseFolded => Reading::METHOD_CASE_FOLDED,
        }
    }
}

/// Where Envoy's JWT filter leaves verified payloads: its
/// `payload_in_metadata` names (Istio uses each jwtRule's issuer).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct JwtSpec {
    payload_in_metadata: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct XfccSpec {
    trusted_proxies: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicySpec {
    name: String,
    #[serde(default)]
    action: ActionSpec,
    #[serde(default)]
    rules: Vec<RuleSpec>,
    #[serde(default)]
    dry_run: bool,
}

/// Istio's default action is ALLOW.
#[derive(Debug, Default, Clone, Copy, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
enum ActionSpec {
    #[default]
    Allow,
    Deny,
    Audit,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleSpec {
    #[serde(default)]
    from: Vec<FromSpec>,
    #[serde(default)]
    to: Vec<ToSpec>,
    #[serde(default)]
    when: Vec<ConditionSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FromSpec {
    source: SourceSpec,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ToSpec {
    operation: OperationSpec,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SourceSpec {
    #[serde(default)]
    principals: Vec<String>,
    #[serde(default)]
    not_principals: Vec<String>,
    #[serde(default)]
    request_principals: Vec<String>,
    #[serde(default)]
    not_request_principals: Vec<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    not_namespaces: Vec<String>,
    #[serde(default)]
    ip_blocks: Vec<String>,
    #[serde(default)]
    not_ip_blocks: Vec<String>,
    #[serde(default)]
    remote_ip_blocks: Vec<String>,
    #[serde(default)]
    not_remote_ip_blocks: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct OperationSpec {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    not_hosts: Vec<String>,
    #[serde(default)]
    ports: Vec<String>,
    #[serde(default)]
    not_ports: Vec<String>,
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    not_methods: Vec<String>,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    not_paths: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ConditionSpec {
    key: String,
    #[serde(default)]
    values: Vec<String>,
    #[serde(default)]
    not_values: Vec<String>,
}

/// The compiled configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub policies: Vec<Policy>,
    /// Evaluate, log and count, never deny.
    pub dry_run: bool,
    pub deny_status: u32,
    pub deny_body: String,
    /// Principals of proxies whose `x-forwarded-client-cert` element names
    /// the caller; empty: XFCC is never read.
    pub trusted_proxies: Vec<IstioMatch>,
    /// Metadata keys of verified JWT payloads, tried in order.
    pub jwt_payload_keys: Vec<String>,
    /// The readings DENY and AUDIT rules consider besides the canonical one.
    pub readings: Reading,
    /// `%25` and two hex digits accepted in a path.
    pub allow_double_encoding: bool,
    /// What the policies read beyond headers and the peer identity; each
    /// costs a host call per request, so only when a policy needs it.
    pub needs: Needs,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    pub source_address: bool,
    pub destination_address: bool,
    pub destination_port: bool,
    pub sni: bool,
    pub jwt: bool,
    /// An operation matches `hosts` or `notHosts`.
    pub host: bool,
    /// A DENY or AUDIT rule reads the path or the method: the request's
    /// other readings are computed.
    pub readings: bool,
}

impl Config {
    pub fn parse(bytes: Option<&[u8]>) -> Result<Self, ConfigError> {
        let spec: ConfigSpec = parse_json(bytes)?;
        let root = FieldPath::root();
        let readings = spec.disabled_readings.iter().fold(Reading::ALL, |on, name| on.without(name.reading()));
        let trust_domains = trust_domains(&spec, &root)?;
        let mut needs = Needs::default();
        let mut policies = Vec::with_capacity(spec.policies.len());
        for (i, p) in spec.policies.iter().enumerate() {
            let at = root.field("policies").index(i);
            if p.name.trim().is_empty() {
                return Err(at.field("name").error("a policy needs a name (it labels logs and metrics)"));
            }
            if policies.iter().any(|q: &Policy| q.name == p.name) {
                return Err(at.field("name").error(format!("`{}` names two policies", p.name)));
            }
            let action = match p.action {
                ActionSpec::Allow => Action::Allow,
                ActionSpec::Deny => Action::Deny,
                ActionSpec::Audit => Action::Audit,
            };
            if p.dry_run && action == Action::Audit {
                return Err(at.field("dryRun").error("an AUDIT policy never enforces; a dry run changes nothing"));
            }
            let mut compiler = Compiler { action, trust_domains: &trust_domains, needs: &mut needs };
            let rules = p
                .rules
                .iter()
                .enumerate()
                .map(|(j, r)| compiler.rule(r, &at.field("rules").index(j)))
                .collect::<Result<_, _>>()?;
            policies.push(Policy { name: p.name.clone(), action, dry_run: p.dry_run, rules });
        }
        let deny_status = match spec.deny_status {
            None => 403,
            Some(s @ 200..=599) => s,
            Some(s) => return Err(root.field("denyStatus").error(format!("{s} is not an HTTP status (200 to 599)"))),
        };
        let trusted_proxies = match &spec.xfcc {
            None => Vec::new(),
            Some(x) if x.trusted_proxies.is_empty() => {
                return Err(root.field("xfcc").field("trustedProxies").error("name at least one proxy, or remove `xfcc`"))
            }
            Some(x) => principal_values(&x.trusted_proxies, &root.field("xfcc").field("trustedProxies"))?,
        };
        let jwt_payload_keys = spec.jwt.map(|j| j.payload_in_metadata).unwrap_or_default();
        if let Some((i, _)) = jwt_payload_keys.iter().enumerate().find(|(_, k)| k.is_empty()) {
            return Err(root.field("jwt").field("payloadInMetadata").index(i).error("an empty name"));
        }
        if needs.jwt && jwt_payload_keys.is_empty() {
            return Err(root.field("jwt").error(
                "policies match JWT claims: name where Envoy's JWT filter puts verified payloads (`payloadInMetadata`, in Istio each jwtRule's issuer)",
            ));
        }
        needs.readings &= readings != Reading::CANONICAL;
        Ok(Self {
            jwt_payload_keys,
            readings,
            allow_double_encoding: spec.allow_double_encoding,
            policies,
            dry_run: spec.dry_run,
            deny_status,
            deny_body: spec.deny_body.unwrap_or_else(|| DEFAULT_DENY_BODY.to_string()),
            trusted_proxies,
            needs,
        })
    }
}

/// The trust domain and its aliases, when aliases are configured: a
/// principal written for one of them is compiled for each.
fn trust_domains(spec: &ConfigSpec, root: &FieldPath) -> Result<Vec<String>, ConfigError> {
    let check = |d: &str, at: FieldPath| {
        if d.is_empty() || d.contains('/') || d.contains('*') || d.contains(':') {
            Err(at.error(format!("`{d}` is not a trust domain (a name such as cluster.local, without spiffe:// or /)")))
        } else {
            Ok(d.to_string())
        }
    };
    let own = check(spec.trust_domain.as_deref().unwrap_or(DEFAULT_TRUST_DOMAIN), root.field("trustDomain"))?;
    if spec.trust_domain_aliases.is_empty() {
        return Ok(Vec::new());
    }
    let mut domains = vec![own];
    for (i, alias) in spec.trust_domain_aliases.iter().enumerate() {
        let alias = check(alias, root.field("trustDomainAliases").index(i))?;
        if !domains.contains(&alias) {
            domains.push(alias);
        }
    }
    Ok(domains)
}

/// `cluster.local/ns/a/sa/b` with aliases `td2`: also `td2/ns/a/sa/b`.
/// Values whose trust domain is not literal (`*`, `*/ns/a/sa/b`) or not one
/// of `domains` stay as they are.
fn with_trust_domain_aliases(values: &[String], domains: &[String]) -> Vec<String> {
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        out.push(v.clone());
        if let Some((td, rest)) = v.split_once('/') {
            if domains.iter().any(|d| d == td) {
                out.extend(domains.iter().filter(|d| *d != td).map(|d| format!("{d}/{rest}")));
            }
        }
    }
    out
}

/// Compiles one policy's rules: what its action changes (case-folded paths
/// for DENY and AUDIT) and what the requests must supply.
struct Compiler<'a> {
    action: Action,
    trust_domains: &'a [String],
    needs: &'a mut Needs,
}

impl Compiler<'_> {
    fn rule(&mut self, spec: &RuleSpec, at: &FieldPath) -> Result<Rule, ConfigError> {
        let from = spec
            .from
            .iter()
            .enumerate()
            .map(|(i, f)| self.source(&f.source, &at.field("from").index(i).field("source")))
            .collect::<Result<_, _>>()?;
        let to = spec
            .to
            .iter()
            .enumerate()
            .map(|(i, t)| self.operation(&t.operation, &at.field("to").index(i).field("operation")))
            .collect::<Result<_, _>>()?;
        let when = spec
            .when
            .iter()
            .enumerate()
            .map(|(i, c)| self.condition(c, &at.field("when").index(i)))
            .collect::<Result<_, _>>()?;
        Ok(Rule { from, to, when })
    }

    /// Principals (or their `not` twin), checked as written, compiled with
    /// the trust domain aliases.
    fn principals(
        &self,
        values: &[String],
        not_values: &[String],
        at: &FieldPath,
        name: &str,
        not_name: &str,
    ) -> Result<Field<IstioMatch>, ConfigError> {
        let written = field(values, not_values, at, name, not_name, principal_value)?;
        if self.trust_domains.is_empty() {
            return Ok(written);
        }
        let (values, not_values) =
            (with_trust_domain_aliases(values, self.trust_domains), with_trust_domain_aliases(not_values, self.trust_domains));
        field(&values, &not_values, at, name, not_name, principal_value)
    }
}

/// Compiles a field and its `not` twin with one value parser.
fn field<M>(
    values: &[String],
    not_values: &[String],
    at: &FieldPath,
    name: &str,
    not_name: &str,
    parse: impl Fn(&str) -> Result<M, String>,
) -> Result<Field<M>, ConfigError> {
    let compile = |list: &[String], name: &str| {
        list.iter()
            .enumerate()
            .map(|(i, v)| parse(v).map_err(|e| at.field(name).index(i).error(e)))
            .collect::<Result<Vec<M>, _>>()
    };
    Ok(Field { values: compile(values, name)?, not_values: compile(not_values, not_name)? })
}

fn string_value(v: &str) -> Result<IstioMatch, String> {
    if v.is_empty() {
        return Err("an empty value matches nothing; remove it or write `*`".into());
    }
    Ok(IstioMatch::parse(v))
}

fn principal_value(v: &str) -> Result<IstioMatch, String> {
    if v.starts_with("spiffe://") {
        return Err("write principals as Istio does, without `spiffe://` (`cluster.local/ns/billing/sa/billing`)".into());
    }
    string_value(v)
}

fn principal_values(values: &[String], at: &FieldPath) -> Result<Vec<IstioMatch>, ConfigError> {
    values.iter().enumerate().map(|(i, v)| principal_value(v).map_err(|e| at.index(i).error(e))).collect()
}

fn host_value(v: &str) -> Result<IstioMatch, String> {
    let host = v.strip_suffix('.').unwrap_or(v);
    let without_brackets = host.rsplit_once(']').map_or(host, |(_, after)| after);
    if without_brackets.contains(':') {
        return Err("hosts are matched without their port; match the port with `ports`".into());
    }
    // Lower-cased here; requests' hosts are lower-cased before matching.
    string_value(&host.to_ascii_lowercase())
}

fn port_value(v: &str) -> Result<u16, String> {
    match v.parse::<u16>() {
        Ok(p) if p > 0 && v.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(format!("`{v}` is not a port (1 to 65535)")),
    }
}

fn method_value(v: &str) -> Result<IstioMatch, String> {
    if v.bytes().any(|b| b.is_ascii_lowercase()) {
        // Methods are case-sensitive on the wire; a lower-case method in a
        // policy is almost always a typo that would silently match nothing.
        return Err(format!("`{v}`: methods are case-sensitive; write it in upper case"));
    }
    string_value(v)
}

impl Compiler<'_> {
    fn source(&mut self, spec: &SourceSpec, at: &FieldPath) -> Result<Source, ConfigError> {
        let source = Source {
            principals: self.principals(&spec.principals, &spec.not_principals, at, "principals", "notPrincipals")?,
            request_principals: field(
                &spec.request_principals,
                &spec.not_request_principals,
                at,
                "requestPrincipals",
                "notRequestPrincipals",
                string_value,
            )?,
            namespaces: field(&spec.namespaces, &spec.not_namespaces, at, "namespaces", "notNamespaces", string_value)?,
            ip_blocks: field(&spec.ip_blocks, &spec.not_ip_blocks, at, "ipBlocks", "notIpBlocks", IpBlock::parse)?,
            remote_ip_blocks: field(
                &spec.remote_ip_blocks,
                &spec.not_remote_ip_blocks,
                at,
                "remoteIpBlocks",
                "notRemoteIpBlocks",
                IpBlock::parse,
            )?,
        };
        if !(source.principals.is_set()
            || source.request_principals.is_set()
            || source.namespaces.is_set()
            || source.ip_blocks.is_set()
            || source.remote_ip_blocks.is_set())
        {
            return Err(at.error("a source must set at least one field"));
        }
        self.needs.source_address |= source.ip_blocks.is_set() || source.remote_ip_blocks.is_set();
        self.needs.jwt |= source.request_principals.is_set();
        Ok(source)
    }

    fn operation(&mut self, spec: &OperationSpec, at: &FieldPath) -> Result<Operation, ConfigError> {
        let paths = field(&spec.paths, &spec.not_paths, at, "paths", "notPaths", PathMatch::parse)?;
        // DENY and AUDIT rules also match a path case-folded: their values are
        // folded once here.
        let folded_paths = if self.action == Action::Allow {
            None
        } else {
            let fold_all = |list: &[String]| list.iter().map(|v| fold(v).into_owned()).collect::<Vec<_>>();
            let (values, not_values) = (fold_all(&spec.paths), fold_all(&spec.not_paths));
            let changed = values != spec.paths || not_values != spec.not_paths;
            changed.then(|| field(&values, &not_values, at, "paths", "notPaths", PathMatch::parse)).transpose()?
        };
        let op = Operation {
            hosts: field(&spec.hosts, &spec.not_hosts, at, "hosts", "notHosts", host_value)?,
            ports: field(&spec.ports, &spec.not_ports, at, "ports", "notPorts", port_value)?,
            methods: field(&spec.methods, &spec.not_methods, at, "methods", "notMethods", method_value)?,
            paths,
            folded_paths,
        };
        if !(op.hosts.is_set() || op.ports.is_set() || op.methods.is_set() || op.paths.is_set()) {
            return Err(at.error("an operation must set at least one field"));
        }
        self.needs.destination_port |= op.ports.is_set();
        self.needs.host |= op.hosts.is_set();
        self.needs.readings |= self.action != Action::Allow && (op.paths.is_set() || op.methods.is_set());
        Ok(op)
    }

    fn condition(&mut self, spec: &ConditionSpec, at: &FieldPath) -> Result<Condition, ConfigError> {
        let needs = &mut *self.needs;
        if spec.values.is_empty() && spec.not_values.is_empty() {
            return Err(at.error("a condition needs `values` or `notValues`"));
        }
        let key = spec.key.as_str();
        let strings = |parse: fn(&str) -> Result<IstioMatch, String>| {
            field(&spec.values, &spec.not_values, at, "values", "notValues", parse)
        };
        let ips = || field(&spec.values, &spec.not_values, at, "values", "notValues", IpBlock::parse);
        let condition = if let Some(name) = key.strip_prefix("request.headers[").and_then(|k| k.strip_suffix(']')) {
            if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace() || b == b'[' || b == b']') {
                return Err(at.field("key").error(format!("`{key}`: name a header, as in request.headers[User-Agent]")));
            }
            Condition::Header(name.to_ascii_lowercase(), strings(string_value)?)
        } else {
            match key {
                "source.ip" => {
                    needs.source_address = true;
                    Condition::SourceIp(ips()?)
                }
                "remote.ip" => {
                    needs.source_address = true;
                    Condition::RemoteIp(ips()?)
                }
                "source.namespace" => Condition::SourceNamespace(strings(string_value)?),
                "source.principal" => {
                    let expanded = with_trust_domain_aliases(&spec.values, self.trust_domains);
                    let not_expanded = with_trust_domain_aliases(&spec.not_values, self.trust_domains);
                    strings(principal_value)?;
                    Condition::SourcePrincipal(field(&expanded, &not_expanded, at, "values", "notValues", principal_value)?)
                }
                "destination.ip" => {
                    needs.destination_address = true;
                    Condition::DestinationIp(ips()?)
                }
                "destination.port" => {
                    needs.destination_port = true;
                    Condition::DestinationPort(field(&spec.values, &spec.not_values, at, "values", "notValues", port_value)?)
                }
                "connection.sni" => {
                    needs.sni = true;
                    Condition::Sni(strings(string_value)?)
                }
                "request.auth.principal" => {
                    needs.jwt = true;
                    Condition::RequestPrincipal(strings(string_value)?)
                }
                "request.auth.audiences" => {
                    needs.jwt = true;
                    Condition::Claim(vec!["aud".to_string()], strings(string_value)?)
                }
                "request.auth.presenter" => {
                    needs.jwt = true;
                    Condition::Claim(vec!["azp".to_string()], strings(string_value)?)
                }
                k if k.starts_with("request.auth.claims") => {
                    let path = claim_path(k).map_err(|e| at.field("key").error(format!("`{k}`: {e}")))?;
                    needs.jwt = true;
                    Condition::Claim(path, strings(string_value)?)
                }
                k => {
                    return Err(at.field("key").error(format!(
                        "`{k}` is not a key this filter evaluates (request.headers[…], source.ip, remote.ip, source.namespace, source.principal, destination.ip, destination.port, connection.sni, request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[…])"
                    )))
                }
            }
        };
        Ok(condition)
    }
}

/// `request.auth.claims[groups]` → `["groups"]`, `…[a][b]` → `["a", "b"]`.
fn claim_path(key: &str) -> Result<Vec<String>, String> {
    let mut rest = key.strip_prefix("request.auth.claims").unwrap_or_default();
    let mut path = Vec::new();
    while !rest.is_empty() {
        let Some((name, after)) = rest.strip_prefix('[').and_then(|r| r.split_once(']')) else {
            return Err("name the claim in brackets, as in request.auth.claims[groups] or [nested][claim]".into());
        };
        if name.is_empty() || name.contains('[') {
            return Err("an empty or malformed claim name".into());
        }
        path.push(name.to_string());
        rest = after;
    }
    if path.is_empty() {
        return Err("name the claim in brackets, as in request.auth.claims[groups]".into());
    }
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn error(config: serde_json::Value) -> String {
        Config::parse(Some(config.to_string().as_bytes())).unwrap_err().to_string()
    }

    fn policy(rules: serde_json::Value) -> serde_json::Value {
        json!({ "policies": [{ "name": "p", "action": "ALLOW", "rules": rules }] })
    }

    #[test]
    fn the_payments_policy_compiles() {
        let c = Config::parse(Some(
            br#"{"policies":[{"name":"payments-to-billing","action":"ALLOW","rules":[{"from":[{"source":{"principals":["cluster.local/ns/billing/sa/billing"]}}]}]}]}"#,
        ))
        .unwrap();
        assert_eq!(c.policies.len(), 1);
        assert_eq!(c.deny_status, 403);
        assert_eq!(c.deny_body, "RBAC: access denied");
        assert_eq!(c.needs, Needs::default(), "principals need no extra host call");
    }

    #[test]
    fn no_configuration_is_no_policy() {
        let c = Config::parse(None).unwrap();
        assert!(c.policies.is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (policy(json!([{ "to": [{ "operation": { "paths": ["/ok", "/foo/{*}.txt"] } }] }])), "policies[0].rules[0].to[0].operation.paths[1]: "),
            (policy(json!([{ "to": [{ "operation": { "notPaths": ["/a/*/b"] } }] }])), "policies[0].rules[0].to[0].operation.notPaths[0]: "),
            (policy(json!([{ "to": [{ "operation": { "paths": ["/foo/{**}/bar"] } }] }])), "operation.paths[0]: {**} must be the last"),
            (policy(json!([{ "from": [{ "source": { "principals": [""] } }] }])), "policies[0].rules[0].from[0].source.principals[0]: an empty value"),
            (policy(json!([{ "from": [{ "source": { "principals": ["spiffe://cluster.local/ns/a/sa/b"] } }] }])), "source.principals[0]: write principals as Istio does"),
            (policy(json!([{ "from": [{ "source": { "principal": ["a"] } }] }])), "policies[0].rules[0].from[0].source.principal: unknown field"),
            (policy(json!([{ "from": [{ "source": {} }] }])), "policies[0].rules[0].from[0].source: a source must set"),
            (policy(json!([{ "from": [{ "source": { "ipBlocks": ["10.0.0.0/33"] } }] }])), "source.ipBlocks[0]: `10.0.0.0/33`"),
            (policy(json!([{ "from": [{ "source": { "requestPrincipals": ["*"] } }] }])), "jwt: policies match JWT claims"),
            (policy(json!([{ "when": [{ "key": "request.auth.claims", "values": ["a"] }] }])), "when[0].key: `request.auth.claims`: name the claim"),
            (policy(json!([{ "when": [{ "key": "request.auth.claims[a]x", "values": ["a"] }] }])), "when[0].key: `request.auth.claims[a]x`: name the claim"),
            (policy(json!([{ "when": [{ "key": "request.auth.claims[]", "values": ["a"] }] }])), "when[0].key: `request.auth.claims[]`: an empty"),
            (json!({ "jwt": { "payloadInMetadata": [""] } }), "jwt.payloadInMetadata[0]: an empty name"),
            (policy(json!([{ "to": [{ "operation": { "methods": ["get"] } }] }])), "operation.methods[0]: `get`: methods are case-sensitive"),
            (policy(json!([{ "to": [{ "operation": { "ports": ["http"] } }] }])), "operation.ports[0]: `http` is not a port"),
            (policy(json!([{ "to": [{ "operation": { "hosts": ["a.example:8080"] } }] }])), "operation.hosts[0]: hosts are matched without their port"),
            (policy(json!([{ "to": [{ "operation": {} }] }])), "operation: an operation must set"),
            (policy(json!([{ "when": [{ "key": "request.regex.headers[x]", "values": ["a"] }] }])), "policies[0].rules[0].when[0].key: `request.regex.headers[x]` is not a key"),
            (policy(json!([{ "when": [{ "key": "request.auth.type", "values": ["a"] }] }])), "when[0].key: `request.auth.type` is not a key"),
            (policy(json!([{ "when": [{ "key": "request.headers[]", "values": ["a"] }] }])), "when[0].key: `request.headers[]`"),
            (policy(json!([{ "when": [{ "key": "source.ip" }] }])), "when[0]: a condition needs"),
            (policy(json!([{ "when": [{ "key": "destination.port", "values": ["0"] }] }])), "when[0].values[0]: `0` is not a port"),
            (json!({ "policies": [{ "name": "p", "action": "CUSTOM" }] }), "policies[0].action: unknown variant `CUSTOM`"),
            (json!({ "policies": [{ "name": "" }] }), "policies[0].name: a policy needs a name"),
            (json!({ "policies": [{ "name": "a" }, { "name": "a" }] }), "policies[1].name: `a` names two policies"),
            (json!({ "policies": [{ "name": "a", "selector": {} }] }), "policies[0].selector: unknown field"),
            (json!({ "denyStatus": 42 }), "denyStatus: 42 is not an HTTP status"),
            (json!({ "xfcc": { "trustedProxies": [] } }), "xfcc.trustedProxies: name at least one"),
            (json!({ "dryrun": true }), "dryrun: unknown field"),
            (json!({ "disabledReadings": ["caseFolding"] }), "disabledReadings[0]: unknown variant `caseFolding`"),
            (json!({ "trustDomainAliases": ["spiffe://td2"] }), "trustDomainAliases[0]: `spiffe://td2` is not a trust domain"),
            (json!({ "trustDomain": "", "trustDomainAliases": ["td2"] }), "trustDomain: `` is not a trust domain"),
            (json!({ "policies": [{ "name": "a", "action": "AUDIT", "dryRun": true }] }), "policies[0].dryRun: an AUDIT policy never enforces"),
            (json!({ "policies": [{ "name": "a", "dryrun": true }] }), "policies[0].dryrun: unknown field"),
            (json!({ "allowDoubleEncoding": "yes" }), "allowDoubleEncoding: invalid type"),
        ];
        for (config, want) in cases {
            let got = error(config.clone());
            assert!(got.contains(want), "{config}\n  got:  {got}\n  want: {want}");
        }
    }

    #[test]
    fn needs_follow_the_policies() {
        let c = Config::parse(Some(
            policy(json!([
                { "from": [{ "source": { "ipBlocks": ["10.0.0.0/8"] } }], "to": [{ "operation": { "ports": ["8080"] } }] },
                { "when": [{ "key": "connection.sni", "values": ["a"] }, { "key": "destination.ip", "values": ["10.0.0.1"] }] }
            ]))
            .to_string()
            .as_bytes(),
        ))
        .unwrap();
        assert_eq!(
            c.needs,
            Needs { source_address: true, destination_address: true, destination_port: true, sni: true, jwt: false, host: false, readings: false }
        );
        let j = Config::parse(Some(
            json!({ "jwt": { "payloadInMetadata": ["https://issuer.example"] }, "policies": [{ "name": "p", "rules": [
                { "when": [{ "key": "request.auth.claims[realm][roles]", "values": ["admin"] }] }] }] })
            .to_string()
            .as_bytes(),
        ))
        .unwrap();
        assert!(j.needs.jwt);
        let h = Config::parse(Some(policy(json!([{ "to": [{ "operation": { "notHosts": ["a.example"] } }] }])).to_string().as_bytes())).unwrap();
        assert!(h.needs.host, "notHosts reads the host too");
        assert_eq!(j.jwt_payload_keys, vec!["https://issuer.example"]);
    }
}
