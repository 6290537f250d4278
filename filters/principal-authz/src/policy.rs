//! The decision, as Istio makes it: any matching DENY policy denies; with no
//! ALLOW policy the request is allowed; a matching ALLOW policy allows;
//! otherwise it is denied. AUDIT policies change nothing and are reported;
//! so do policies in dry run. DENY and AUDIT conditions on the path and the
//! method match under any of the request's readings (see `readings`), ALLOW
//! conditions under the canonical one only.
//! Pure logic over a [`RequestView`]; the glue gathers the view.

use crate::identity::Identity;
use crate::ip::IpBlock;
use crate::jwt::Token;
use crate::readings::{fold, Reading, Readings};
use crate::template::PathMatch;
use filter_common::codec::Header;
use filter_common::IstioMatch;
use std::borrow::Cow;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Allow,
    Deny,
    Audit,
}

#[derive(Debug, Clone)]
pub struct Policy {
    pub name: String,
    pub action: Action,
    /// Evaluated and reported, never enforced (Istio's `istio.io/dry-run`).
    pub dry_run: bool,
    /// None matching means the policy does not apply; an empty rule applies
    /// to every request.
    pub rules: Vec<Rule>,
}

/// One `from`, one `to` and every `when` must match (an empty list is no
/// constraint).
#[derive(Debug, Clone, Default)]
pub struct Rule {
    pub from: Vec<Source>,
    pub to: Vec<Operation>,
    pub when: Vec<Condition>,
}

/// A field and its `not` twin: the values are ORed, the field holds when one
/// of `values` matches (if any are set) and none of `not_values` does. Both
/// empty: the field is not set.
#[derive(Debug, Clone)]
pub struct Field<M> {
    pub values: Vec<M>,
    pub not_values: Vec<M>,
}

impl<M> Default for Field<M> {
    fn default() -> Self {
        Self { values: Vec::new(), not_values: Vec::new() }
    }
}

impl<M> Field<M> {
    pub fn is_set(&self) -> bool {
        !self.values.is_empty() || !self.not_values.is_empty()
    }

    fn holds_for<T: Copy>(&self, value: T, matches: impl Fn(&M, T) -> bool) -> bool {
        (self.values.is_empty() || self.values.iter().any(|m| matches(m, value)))
            && !self.not_values.iter().any(|m| matches(m, value))
    }

    /// For what only an authenticated peer has (principal, namespace) and
    /// for addresses: with no value, neither the field nor its negation
    /// matches. A plaintext caller is not "not billing"; it is no one
    /// (ISTIO-SECURITY-2021-004).
    fn holds_for_known<T: Copy>(&self, value: Option<T>, matches: impl Fn(&M, T) -> bool) -> bool {
        !self.is_set() || value.is_some_and(|v| self.holds_for(v, matches))
    }

    /// For request attributes: with no value, only a negation holds (as
    /// Envoy's inverted header matcher does).
    fn holds_for_request<T: Copy>(&self, value: Option<T>, matches: impl Fn(&M, T) -> bool) -> bool {
        match value {
            Some(v) => self.holds_for(v, matches),
            None => self.values.is_empty(),
        }
    }
}

impl Field<IstioMatch> {
    /// For a verified token's list claim: one element must match `values`,
    /// none `not_values`; without a token, nothing holds (as for identities).
    fn holds_for_any_of(&self, elements: Option<&[String]>) -> bool {
        let Some(elements) = elements else { return !self.is_set() };
        let any = |set: &[IstioMatch]| elements.iter().any(|e| set.iter().any(|m| m.matches(Some(e))));
        (self.values.is_empty() || any(&self.values)) && !any(&self.not_values)
    }
}

#[derive(Debug, Clone, Default)]
pub struct Source {
    pub principals: Field<IstioMatch>,
    /// `<iss>/<sub>` of the verified JWT.
    pub request_principals: Field<IstioMatch>,
    pub namespaces: Field<IstioMatch>,
    pub ip_blocks: Field<IpBlock>,
    pub remote_ip_blocks: Field<IpBlock>,
}

#[derive(Debug, Clone, Default)]
pub struct Operation {
    /// Lower-cased, without port or trailing dot.
    pub hosts: Field<IstioMatch>,
    pub ports: Field<u16>,
    pub methods: Field<IstioMatch>,
    pub paths: Field<PathMatch>,
    /// `paths` case-folded, for the case-folded reading of a DENY or AUDIT
    /// rule; None when folding changes no value.
    pub folded_paths: Option<Field<PathMatch>>,
}

/// A `when` condition, by key.
#[derive(Debug, Clone)]
pub enum Condition {
    /// `request.headers[name]`, name lower-cased.
    Header(String, Field<IstioMatch>),
    SourceIp(Field<IpBlock>),
    RemoteIp(Field<IpBlock>),
    SourceNamespace(Field<IstioMatch>),
    SourcePrincipal(Field<IstioMatch>),
    DestinationIp(Field<IpBlock>),
    DestinationPort(Field<u16>),
    Sni(Field<IstioMatch>),
    /// `request.auth.principal`: `<iss>/<sub>`.
    RequestPrincipal(Field<IstioMatch>),
    /// `request.auth.claims[a][b]`: a string or list claim, by path; also
    /// `request.auth.audiences` (`aud`) and `request.auth.presenter` (`azp`).
    Claim(Vec<String>, Field<IstioMatch>),
}

/// What the policies look at, gathered by the glue.
#[derive(Debug, Clone, Default)]
pub struct RequestView<'a> {
    pub identity: Option<&'a Identity>,
    /// `:authority` lower-cased, without port or trailing dot.
    pub host: Option<&'a str>,
    pub method: Option<&'a str>,
    /// Normalized (see `path::normalize`), without the query.
    pub path: &'a str,
    /// The request headers the policies read, in order, repeated names included.
    pub headers: &'a [Header<'a>],
    /// Envoy's `source.address`: the downstream peer, or the client that
    /// Envoy's trusted X-Forwarded-For hops name.
    pub source_ip: Option<IpAddr>,
    pub destination_ip: Option<IpAddr>,
    pub destination_port: Option<u16>,
    pub sni: Option<&'a str>,
    /// The verified JWT's payload, if the request carried one.
    pub token: Option<&'a Token>,
    /// Its `<iss>/<sub>`.
    pub request_principal: Option<&'a str>,
    /// The path's and method's other readings, for DENY and AUDIT rules;
    /// None: the canonical reading only.
    pub readings: Option<&'a Readings>,
}

/// Which policy and rule matched (indexes into the configured lists), and
/// under which reading of the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched {
    pub policy: usize,
    pub rule: usize,
    pub reading: Reading,
}

/// What a policy in dry run would have decided on its own: an ALLOW policy
/// allows what it matches and denies the rest, a DENY policy the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DryRun {
    pub policy: usize,
    pub matched: Option<Matched>,
    pub would_deny: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A DENY policy matched.
    DeniedBy(Matched),
    /// ALLOW policies exist and none matched.
    NoAllowMatched,
    AllowedBy(Matched),
    /// No ALLOW policy exists and no DENY policy matched.
    NoAllowPolicy,
}

impl Verdict {
    pub fn allows(&self) -> bool {
        matches!(self, Self::AllowedBy(_) | Self::NoAllowPolicy)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    /// AUDIT policies that matched (first matching rule of each).
    pub audits: Vec<Matched>,
    /// Every ALLOW and DENY policy in dry run, in order.
    pub dry_runs: Vec<DryRun>,
}

/// Evaluates the policies on a request.
pub fn decide(policies: &[Policy], view: &RequestView<'_>) -> Decision {
    let enforced = |action: Action| policies.iter().enumerate().filter(move |(_, p)| p.action == action && !p.dry_run);
    let first_match = |action: Action| enforced(action).find_map(|(i, p)| p.first_match(i, view));
    let verdict = if let Some(m) = first_match(Action::Deny) {
        Verdict::DeniedBy(m)
    } else if enforced(Action::Allow).next().is_none() {
        Verdict::NoAllowPolicy
    } else if let Some(m) = first_match(Action::Allow) {
        Verdict::AllowedBy(m)
    } else {
        Verdict::NoAllowMatched
    };
    let audits = policies
        .iter()
        .enumerate()
        .filter(|(_, p)| p.action == Action::Audit)
        .filter_map(|(i, p)| p.first_match(i, view))
        .collect();
    let dry_runs = policies
        .iter()
        .enumerate()
        .filter(|(_, p)| p.dry_run && p.action != Action::Audit)
        .map(|(i, p)| {
            let matched = p.first_match(i, view);
            DryRun { policy: i, matched, would_deny: matched.is_some() == (p.action == Action::Deny) }
        })
        .collect();
    Decision { verdict, audits, dry_runs }
}

impl Policy {
    fn first_match(&self, index: usize, view: &RequestView<'_>) -> Option<Matched> {
        self.rules
            .iter()
            .enumerate()
            .find_map(|(rule, r)| r.matches(view, self.action).map(|reading| Matched { policy: index, rule, reading }))
    }
}

impl Rule {
    /// `action` decides how a repeated header counts, and which readings
    /// count: for ALLOW every value of a header must satisfy a condition and
    /// only the canonical reading counts; for DENY and AUDIT one value, or one
    /// reading, is enough. So neither a second header line nor a backend's
    /// own reading of the path can widen an ALLOW or dodge a DENY.
    fn matches(&self, view: &RequestView<'_>, action: Action) -> Option<Reading> {
        let readings = if action == Action::Allow { None } else { view.readings };
        if !(self.from.is_empty() || self.from.iter().any(|s| s.matches(view))) || !self.when.iter().all(|c| c.matches(view, action)) {
            return None;
        }
        if self.to.is_empty() {
            return Some(Reading::CANONICAL);
        }
        self.to.iter().find_map(|o| o.matches(view, readings))
    }
}

fn istio(m: &IstioMatch, v: &str) -> bool {
    m.matches(Some(v))
}

fn ip(block: &IpBlock, ip: IpAddr) -> bool {
    block.contains(ip)
}

fn port(want: &u16, got: u16) -> bool {
    *want == got
}

impl Source {
    fn matches(&self, view: &RequestView<'_>) -> bool {
        let principal = view.identity.map(|id| id.principal.as_str());
        let namespace = view.identity.and_then(|id| id.namespace.as_deref());
        self.principals.holds_for_known(principal, istio)
            && self.request_principals.holds_for_known(view.request_principal, istio)
            && self.namespaces.holds_for_known(namespace, istio)
            && self.ip_blocks.holds_for_known(view.source_ip, ip)
            && self.remote_ip_blocks.holds_for_known(view.source_ip, ip)
    }
}

fn path(m: &PathMatch, p: &str) -> bool {
    m.matches(p)
}

impl Operation {
    /// The reading under which the operation matches; with no readings
    /// given, only the canonical one.
    fn matches(&self, view: &RequestView<'_>, readings: Option<&Readings>) -> Option<Reading> {
        if !(self.hosts.holds_for_request(view.host, istio) && self.ports.holds_for_request(view.destination_port, port)) {
            return None;
        }
        let method = if self.methods.holds_for_request(view.method, istio) {
            Reading::CANONICAL
        } else {
            let upper = readings.and_then(|r| r.method.as_deref())?;
            self.methods.holds_for(upper, istio).then_some(Reading::METHOD_CASE_FOLDED)?
        };
        Some(method.with(self.path_reading(view.path, readings)?))
    }

    fn path_reading(&self, canonical: &str, readings: Option<&Readings>) -> Option<Reading> {
        if !self.paths.is_set() || self.paths.holds_for(canonical, path) {
            return Some(Reading::CANONICAL);
        }
        let readings = readings?;
        let others = readings.paths.iter().map(|(r, p)| (*r, p.as_str()));
        let mut all = std::iter::once((Reading::CANONICAL, canonical)).chain(others);
        if let Some((r, _)) = all.clone().skip(1).find(|(_, p)| self.paths.holds_for(*p, path)) {
            return Some(r);
        }
        if !readings.enabled.contains(Reading::CASE_FOLDED) {
            return None;
        }
        let folded_paths = self.folded_paths.as_ref();
        all.find_map(|(r, p)| {
            let folded = fold(p);
            // Unchanged on both sides: the same comparison as above.
            let same = matches!(folded, Cow::Borrowed(_)) && folded_paths.is_none();
            (!same && folded_paths.unwrap_or(&self.paths).holds_for(folded.as_ref(), path)).then_some(r.with(Reading::CASE_FOLDED))
        })
    }
}

impl Condition {
    fn matches(&self, view: &RequestView<'_>, action: Action) -> bool {
        let principal = view.identity.map(|id| id.principal.as_str());
        let namespace = view.identity.and_then(|id| id.namespace.as_deref());
        match self {
            Self::Header(name, field) => {
                let mut values = view
                    .headers
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| String::from_utf8_lossy(v))
                    .peekable();
                if values.peek().is_none() {
                    return field.holds_for_request(None::<&str>, istio);
                }
                let holds = |v: Cow<'_, str>| field.holds_for(v.as_ref(), istio);
                match action {
                    Action::Allow => values.all(holds),
                    Action::Deny | Action::Audit => values.any(holds),
                }
            }
            Self::SourceIp(f) | Self::RemoteIp(f) => f.holds_for_known(view.source_ip, ip),
            Self::SourceNamespace(f) => f.holds_for_known(namespace, istio),
            Self::SourcePrincipal(f) => f.holds_for_known(principal, istio),
            Self::DestinationIp(f) => f.holds_for_known(view.destination_ip, ip),
            Self::DestinationPort(f) => f.holds_for_request(view.destination_port, port),
            Self::Sni(f) => f.holds_for_request(view.sni, istio),
            Self::RequestPrincipal(f) => f.holds_for_known(view.request_principal, istio),
            Self::Claim(path, f) => f.holds_for_any_of(view.token.map(|t| t.claim_values(path)).as_deref()),
        }
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
