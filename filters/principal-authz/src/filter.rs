//! The proxy-wasm glue: the root context compiles the policies and defines
//! the metrics once; each request's context reads the header map and the
//! peer's URI SAN (two host calls; addresses, port, SNI and the verified JWT
//! only when a policy needs them), reads the path and method (`request::read`),
//! asks `policy::decide`, and then sends the normalized path upstream or
//! answers the denial. Whatever it cannot read, it denies.

use crate::config::Config;
use crate::identity::{forwarded_uri, Identity};
use crate::ip::address_ip;
use crate::jwt::Token;
use crate::path::UnsafePath;
use crate::policy::{decide, Action as PolicyAction, Condition, Decision, Matched, RequestView, Verdict};
use crate::request::{read, Refusal};
use filter_common::codec::Header;
use filter_common::metrics::name_part;
use filter_common::{count, load_config, AbiHost, Host, HostError, LogLevel, MapType, Metric, NameSet};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::rc::Rc;

const XFCC: &str = "x-forwarded-client-cert";
/// Where Envoy's JWT filter puts `payload_in_metadata`.
const JWT_FILTER: &str = "envoy.filters.http.jwt_authn";

/// Defined at configure time so requests only increment.
struct Metrics {
    allowed: Option<Metric>,
    denied: Option<Metric>,
    dry_run_denied: Option<Metric>,
    audited: Option<Metric>,
    path_normalized: Option<Metric>,
    path_rejected: Option<Metric>,
    path_invalid_utf8: Option<Metric>,
    method_rejected: Option<Metric>,
    errors: Option<Metric>,
    policies: Vec<PolicyMetrics>,
}

/// Per policy: what its action does (`allowed`, `denied`, `dry_run_denied`
/// under the whole-filter dry run, or `audited`); for a policy in dry run,
/// what it would have decided.
#[derive(Default)]
struct PolicyMetrics {
    decided: Option<Metric>,
    dry_run_allowed: Option<Metric>,
    dry_run_denied: Option<Metric>,
}

impl Metrics {
    fn define(host: &dyn Host, config: &Config) -> Self {
        let counter = |name: String| Metric::counter(host, &name).ok();
        let policies = config
            .policies
            .iter()
            .map(|p| {
                let prefix = format!("principal_authz.policy.{}", name_part(&p.name));
                if p.dry_run {
                    return PolicyMetrics {
                        decided: None,
                        dry_run_allowed: counter(format!("{prefix}.dry_run_allowed")),
                        dry_run_denied: counter(format!("{prefix}.dry_run_denied")),
                    };
                }
                let outcome = match p.action {
                    PolicyAction::Allow => "allowed",
                    PolicyAction::Deny if config.dry_run => "dry_run_denied",
                    PolicyAction::Deny => "denied",
                    PolicyAction::Audit => "audited",
                };
                PolicyMetrics { decided: counter(format!("{prefix}.{outcome}")), ..PolicyMetrics::default() }
            })
            .collect();
        Self {
            allowed: counter("principal_authz.allowed".into()),
            denied: counter("principal_authz.denied".into()),
            dry_run_denied: counter("principal_authz.dry_run_denied".into()),
            audited: counter("principal_authz.audited".into()),
            path_normalized: counter("principal_authz.path_normalized".into()),
            path_rejected: counter("principal_authz.path_rejected".into()),
            path_invalid_utf8: counter("principal_authz.path_invalid_utf8".into()),
            method_rejected: counter("principal_authz.method_rejected".into()),
            errors: counter("principal_authz.errors".into()),
            policies,
        }
    }

    fn policy(&self, index: usize) -> Option<&Metric> {
        self.policies.get(index).and_then(|p| p.decided.as_ref())
    }

    fn dry_run(&self, index: usize, would_deny: bool) -> Option<&Metric> {
        let p = self.policies.get(index)?;
        if would_deny {
            p.dry_run_denied.as_ref()
        } else {
            p.dry_run_allowed.as_ref()
        }
    }

    fn count_refusal(&self, host: &dyn Host, why: &Refusal) {
        match why.unsafe_path() {
            Some(path) => {
                count(host, self.path_rejected.as_ref());
                if *path == UnsafePath::InvalidUtf8 {
                    count(host, self.path_invalid_utf8.as_ref());
                }
            }
            None => count(host, self.method_rejected.as_ref()),
        }
    }
}

struct Shared {
    config: Config,
    metrics: Metrics,
    /// The request headers anything reads: the only ones copied out of the map.
    reads: NameSet,
    debug: bool,
}

/// The pseudo-headers and headers the filter reads, and every header a
/// `when` condition names.
fn headers_read(config: &Config) -> NameSet {
    let mut names = NameSet::new([":path", ":method", ":authority", "x-request-id", XFCC]);
    for condition in config.policies.iter().flat_map(|p| p.rules.iter().flat_map(|r| r.when.iter())) {
        if let Condition::Header(name, _) = condition {
            names.insert(name);
        }
    }
    names
}

#[derive(Default)]
pub struct AuthzRoot {
    shared: Option<Rc<Shared>>,
}

impl Context for AuthzRoot {}

impl RootContext for AuthzRoot {
    fn on_configure(&mut self, _size: usize) -> bool {
        let host = AbiHost;
        let Some(config) = load_config(&host, "principal-authz", Config::parse) else { return false };
        let metrics = Metrics::define(&host, &config);
        let debug = host.log_level().is_ok_and(|l| l <= LogLevel::Debug);
        let reads = headers_read(&config);
        self.shared = Some(Rc::new(Shared { config, metrics, reads, debug }));
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let shared = Rc::clone(self.shared.as_ref()?);
        Some(Box::new(AuthzStream { shared }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct AuthzStream {
    shared: Rc<Shared>,
}

impl Context for AuthzStream {}

/// What the stream should do once the policies have spoken.
enum Outcome {
    Allow,
    Deny,
}

/// The request's own attributes, read from the header map.
struct Pseudo<'a> {
    path: Option<&'a str>,
    method: Option<&'a str>,
    authority: Option<&'a str>,
    request_id: &'a str,
    xfcc: Vec<&'a str>,
}

fn pseudo<'a>(headers: &[Header<'a>]) -> Pseudo<'a> {
    let text = |name: &str| headers.iter().find(|(k, _)| *k == name).and_then(|(_, v)| std::str::from_utf8(v).ok());
    Pseudo {
        path: text(":path"),
        method: text(":method"),
        authority: text(":authority"),
        request_id: text("x-request-id").unwrap_or("-"),
        xfcc: headers.iter().filter(|(k, _)| *k == XFCC).filter_map(|(_, v)| std::str::from_utf8(v).ok()).collect(),
    }
}

/// `Payments.Example.:8443` → `payments.example`, `[::1]:80` → `[::1]`.
fn host_of(authority: &str) -> String {
    let host = match authority.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => authority,
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    host.to_ascii_lowercase()
}

fn text_property(host: &dyn Host, path: &[&str]) -> Result<Option<String>, HostError> {
    Ok(host.property(path)?.and_then(|v| String::from_utf8(v).ok()))
}

/// The first verified JWT payload under one of `keys`.
fn verified_token(host: &dyn Host, keys: &[String]) -> Result<Option<Token>, HostError> {
    for key in keys {
        if let Some(bytes) = host.property(&["metadata", "filter_metadata", JWT_FILTER, key])? {
            return Ok(Token::from_property(&bytes));
        }
    }
    Ok(None)
}

impl AuthzStream {
    fn evaluate(&self, host: &dyn Host) -> Result<Outcome, HostError> {
        let shared = &*self.shared;
        let config = &shared.config;
        let metrics = &shared.metrics;
        let block = host.header_block(MapType::RequestHeaders)?;
        let headers = block.pairs_where(|name| shared.reads.contains(name))?;
        let req = pseudo(&headers);
        let peer_uri = text_property(host, &["connection", "uri_san_peer_certificate"])?;
        let peer = peer_uri.as_deref().and_then(Identity::from_uri);
        let forwarded = match (&peer, &peer_uri) {
            (Some(p), Some(uri)) if config.trusted_proxies.iter().any(|m| m.matches(Some(&p.principal))) => {
                forwarded_uri(&req.xfcc, uri).and_then(|u| Identity::from_uri(&u))
            }
            _ => None,
        };
        let identity = forwarded.as_ref().or(peer.as_ref());
        let principal = identity.map_or("-", |id| id.principal.as_str());

        let raw_path = req.path.unwrap_or_default();
        let read_request = match read(config, raw_path, req.method) {
            Ok(r) => r,
            Err(why) => {
                metrics.count_refusal(host, &why);
                host.log(
                    LogLevel::Info,
                    &format!("principal-authz: request {} from {principal:?} denied: {why}", req.request_id),
                );
                return Ok(self.refuse(host));
            }
        };
        let needs = config.needs;
        let source_ip = if needs.source_address {
            text_property(host, &["source", "address"])?.as_deref().and_then(address_ip)
        } else {
            None
        };
        let destination_ip = if needs.destination_address {
            text_property(host, &["destination", "address"])?.as_deref().and_then(address_ip)
        } else {
            None
        };
        let destination_port = if needs.destination_port {
            host.int_property(&["destination", "port"])?.and_then(|p| u16::try_from(p).ok())
        } else {
            None
        };
        let sni = if needs.sni { text_property(host, &["connection", "requested_server_name"])? } else { None };
        let token = if needs.jwt { verified_token(host, &config.jwt_payload_keys)? } else { None };
        let request_principal = token.as_ref().and_then(Token::principal);
        let host_name = if needs.host { req.authority.map(host_of) } else { None };
        let view = RequestView {
            identity,
            host: host_name.as_deref(),
            method: req.method,
            path: &read_request.path.path,
            headers: &headers,
            source_ip,
            destination_ip,
            destination_port,
            sni: sni.as_deref().filter(|s| !s.is_empty()),
            token: token.as_ref(),
            request_principal: request_principal.as_deref(),
            readings: read_request.readings.as_ref(),
        };
        let decision = decide(&config.policies, &view);
        self.report(host, &decision, req.request_id, principal);
        if !decision.verdict.allows() {
            return Ok(self.refuse(host));
        }
        // The upstream gets the path the rules saw.
        if !read_request.path.is_request_path(raw_path) {
            let request_path = read_request.path.to_request_path();
            host.replace_header(MapType::RequestHeaders, ":path", request_path.as_bytes())?;
            count(host, metrics.path_normalized.as_ref());
            // ABI 0.2.1 re-routes on the change by itself; later ABIs need the call.
            let _ = host.clear_route_cache();
        }
        Ok(Outcome::Allow)
    }

    /// Deny, unless the whole filter runs dry.
    fn refuse(&self, host: &dyn Host) -> Outcome {
        let metrics = &self.shared.metrics;
        if self.shared.config.dry_run {
            count(host, metrics.dry_run_denied.as_ref());
            Outcome::Allow
        } else {
            count(host, metrics.denied.as_ref());
            Outcome::Deny
        }
    }

    /// Counts and logs the decision: denials and audits at info, the rest at debug.
    fn report(&self, host: &dyn Host, decision: &Decision, request_id: &str, principal: &str) {
        let shared = &*self.shared;
        let name = |m: &Matched| shared.config.policies.get(m.policy).map_or("?", |p| p.name.as_str());
        for audit in &decision.audits {
            count(host, shared.metrics.audited.as_ref());
            count(host, shared.metrics.policy(audit.policy));
            host.log(
                LogLevel::Info,
                &format!(
                    "principal-authz: request {request_id} from {principal:?}: audited by policy {:?} rule {} (reading: {})",
                    name(audit),
                    audit.rule,
                    audit.reading
                ),
            );
        }
        for dry in &decision.dry_runs {
            count(host, shared.metrics.dry_run(dry.policy, dry.would_deny));
            if dry.would_deny || shared.debug {
                let policy = shared.config.policies.get(dry.policy).map_or("?", |p| p.name.as_str());
                let verb = if dry.would_deny { "deny" } else { "allow" };
                let how = match &dry.matched {
                    Some(m) => format!("rule {} (reading: {})", m.rule, m.reading),
                    None => "no rule matched".to_string(),
                };
                let level = if dry.would_deny { LogLevel::Info } else { LogLevel::Debug };
                host.log(
                    level,
                    &format!("principal-authz: request {request_id} from {principal:?}: policy {policy:?} in dry run would {verb}: {how}"),
                );
            }
        }
        let by = match &decision.verdict {
            Verdict::DeniedBy(m) | Verdict::AllowedBy(m) => Some(m),
            Verdict::NoAllowMatched | Verdict::NoAllowPolicy => None,
        };
        if let Some(m) = by {
            count(host, shared.metrics.policy(m.policy));
        }
        let allows = decision.verdict.allows();
        if allows {
            count(host, shared.metrics.allowed.as_ref());
        }
        // Formatted only when logged: an allowed request at info costs nothing here.
        if !allows || shared.debug {
            let why = match &decision.verdict {
                Verdict::DeniedBy(m) => format!("denied by policy {:?} rule {} (reading: {})", name(m), m.rule, m.reading),
                Verdict::NoAllowMatched => "denied: no ALLOW policy matched".to_string(),
                Verdict::AllowedBy(m) => format!("allowed by policy {:?} rule {}", name(m), m.rule),
                Verdict::NoAllowPolicy => "allowed: no ALLOW policy, no DENY matched".to_string(),
            };
            let dry = if !allows && shared.config.dry_run { " (dry run: let through)" } else { "" };
            let level = if allows { LogLevel::Debug } else { LogLevel::Info };
            host.log(level, &format!("principal-authz: request {request_id} from {principal:?} {why}{dry}"));
        }
    }

    fn deny(&self, host: &dyn Host) {
        let config = &self.shared.config;
        let headers: [(&str, &[u8]); 1] = [("content-type", b"text/plain")];
        if let Err(e) = host.send_local_response(config.deny_status, "principal_authz_denied", &headers, config.deny_body.as_bytes()) {
            // The stream stays paused: still closed to the caller.
            host.log(LogLevel::Error, &format!("principal-authz: cannot answer the denial: {e}"));
        }
    }
}

impl HttpContext for AuthzStream {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        let host = AbiHost;
        let outcome = self.evaluate(&host).unwrap_or_else(|e| {
            // Fail closed: a request the filter cannot judge (or rewrite) does not pass.
            count(&host, self.shared.metrics.errors.as_ref());
            host.log(LogLevel::Warn, &format!("principal-authz: cannot read the request ({e}): denying it"));
            self.refuse(&host)
        });
        match outcome {
            Outcome::Allow => Action::Continue,
            Outcome::Deny => {
                self.deny(&host);
                Action::Pause
            }
        }
    }
}
