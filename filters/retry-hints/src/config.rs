//! The plugin configuration: ordered rules of Istio `HTTPMatchRequest`
//! blocks with an Istio `HTTPRetry` and a timeout, the safety settings and
//! the budget, compiled once into ready header values. Every error names its
//! field (`rules[0].retry.retryOn: unknown retry condition "5xxx" …`).

use crate::budget::BudgetConfig;
use crate::duration::parse_millis;
use crate::retry_on::{RetryOn, ISTIO_DEFAULT};
use filter_common::http_match::{check_header_name, strip_spiffe};
use filter_common::{parse_json, ConfigError, FieldPath, HttpMatch, HttpMatchSpec};
use serde::Deserialize;

/// Retries a rule may ask for: Envoy has no limit, but more than this turns
/// one failure into a storm however the budget is set.
pub const MAX_ATTEMPTS: i64 = 10;
const DEFAULT_IDEMPOTENCY_KEY: &str = "idempotency-key";
/// RFC 9110's idempotent methods.
const DEFAULT_METHODS: [&str; 6] = ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"];
/// Methods an idempotency key makes safe to retry.
pub const KEYED_METHODS: [&str; 2] = ["POST", "PATCH"];
const DEFAULT_MAX_BODY: u64 = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HintsSpec {
    #[serde(default)]
    rules: Vec<RuleSpec>,
    idempotency_key_header: Option<String>,
    idempotent_methods: Option<Vec<String>>,
    max_retry_body_bytes: Option<u64>,
    #[serde(default)]
    trusted_principals: Vec<String>,
    budget: Option<BudgetSpec>,
    retry_after: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleSpec {
    name: Option<String>,
    #[serde(default, rename = "match")]
    matches: Vec<HttpMatchSpec>,
    /// Istio's VirtualService calls it `retries`; both are read.
    #[serde(alias = "retries")]
    retry: Option<RetrySpec>,
    timeout: Option<String>,
    /// For this rule only, e.g. `[POST]` for a gRPC service whose methods
    /// are all idempotent.
    idempotent_methods: Option<Vec<String>>,
}

/// Istio's `HTTPRetry`, plus Envoy's retriable codes, headers and hedging.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RetrySpec {
    attempts: Option<i64>,
    per_try_timeout: Option<String>,
    retry_on: Option<String>,
    retry_remote_localities: Option<bool>,
    retry_ignore_previous_hosts: Option<bool>,
    backoff: Option<String>,
    #[serde(default)]
    retriable_status_codes: Vec<i64>,
    #[serde(default)]
    retriable_headers: Vec<String>,
    hedge_on_per_try_timeout: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct BudgetSpec {
    retry_ratio: Option<f64>,
    min_retries_per_second: Option<u64>,
    window: Option<String>,
}

/// A rule's retry policy as the header values Envoy reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    /// Retries (Istio `attempts`, Envoy `num_retries`).
    pub attempts: u32,
    /// `x-envoy-retry-on`, if any HTTP condition applies.
    pub retry_on: Option<String>,
    /// `x-envoy-retry-grpc-on`, for gRPC requests.
    pub grpc_retry_on: Option<String>,
    pub per_try_timeout_ms: Option<u64>,
    /// `x-envoy-retriable-status-codes`.
    pub status_codes: Option<String>,
    /// `x-envoy-retriable-header-names`.
    pub header_names: Option<String>,
    pub hedge_on_per_try_timeout: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    /// ORed; empty means every request.
    pub matches: Vec<HttpMatch>,
    pub retry: Option<Retry>,
    pub timeout_ms: Option<u64>,
    /// Replaces the top-level `idempotentMethods` for this rule.
    pub idempotent_methods: Option<Vec<String>>,
    /// The shared-data key of this rule's budget.
    pub budget_key: String,
    pub texts: HeaderTexts,
}

/// A rule's numeric header values as text, written once at configure time
/// rather than formatted per request.
#[derive(Debug, Clone, Default)]
pub struct HeaderTexts {
    pub timeout: Option<String>,
    pub per_try_timeout: Option<String>,
    /// `x-envoy-max-retries` for each grant from 0 to `attempts`.
    pub max_retries: Vec<String>,
}

impl HeaderTexts {
    fn of(timeout_ms: Option<u64>, retry: Option<&Retry>) -> Self {
        Self {
            timeout: timeout_ms.map(|ms| ms.to_string()),
            per_try_timeout: retry.and_then(|r| r.per_try_timeout_ms).map(|ms| ms.to_string()),
            max_retries: (0..=retry.map_or(0, |r| r.attempts)).map(|n| n.to_string()).collect(),
        }
    }
}

/// The compiled configuration.
#[derive(Debug, Clone)]
pub struct Hints {
    pub rules: Vec<Rule>,
    pub idempotency_key_header: String,
    pub idempotent_methods: Vec<String>,
    pub max_retry_body_bytes: u64,
    /// Callers (Istio principal form) whose own retry headers stand.
    pub trusted_principals: Vec<String>,
    pub budget: BudgetConfig,
    /// `retry-after` value, in seconds.
    pub retry_after_secs: u64,
    /// The same wait for gRPC clients (`grpc-retry-pushback-ms`), exact.
    pub grpc_retry_pushback_ms: u64,
    /// Some rule matches on the caller's identity.
    pub needs_identity: bool,
    /// Some rule matches on the destination port.
    pub needs_port: bool,
    /// Settings accepted but without effect, to log at start.
    pub warnings: Vec<String>,
}

impl Hints {
    pub fn parse(bytes: Option<&[u8]>) -> Result<Self, ConfigError> {
        let spec: HintsSpec = parse_json(bytes)?;
        compile(spec)
    }
}

fn duration(path: &FieldPath, text: &str) -> Result<u64, ConfigError> {
    parse_millis(text).map_err(|e| path.error(e))
}

fn compile(spec: HintsSpec) -> Result<Hints, ConfigError> {
    let root = FieldPath::root();
    if spec.rules.is_empty() {
        return Err(root.field("rules").error("no rules: the filter would only remove client retry headers"));
    }
    let mut warnings = Vec::new();
    let mut rules: Vec<Rule> = Vec::with_capacity(spec.rules.len());
    for (i, rule) in spec.rules.into_iter().enumerate() {
        let path = root.field("rules").index(i);
        let rule = compile_rule(&path, i, rule, &mut warnings)?;
        if rules.iter().any(|r| r.name == rule.name) {
            return Err(path.field("name").error(format!("{:?} is used by another rule (names key the budgets)", rule.name)));
        }
        rules.push(rule);
    }
    let idempotency_key_header = spec.idempotency_key_header.unwrap_or_else(|| DEFAULT_IDEMPOTENCY_KEY.to_string());
    check_header_name(&root.field("idempotencyKeyHeader"), &idempotency_key_header)?;
    let idempotent_methods = match spec.idempotent_methods {
        None => DEFAULT_METHODS.iter().map(|m| m.to_string()).collect(),
        Some(methods) => check_methods(&root.field("idempotentMethods"), methods)?,
    };
    for (i, p) in spec.trusted_principals.iter().enumerate() {
        if strip_spiffe(p).is_empty() {
            return Err(root.field("trustedPrincipals").index(i).error("must not be empty"));
        }
    }
    let budget = compile_budget(&root.field("budget"), spec.budget)?;
    let retry_after_path = root.field("retryAfter");
    let retry_after_ms = duration(&retry_after_path, spec.retry_after.as_deref().unwrap_or("1s"))?;
    if retry_after_ms == 0 {
        return Err(retry_after_path.error("must be at least 1s (retry-after counts whole seconds)"));
    }
    let needs_identity = rules.iter().flat_map(|r| &r.matches).any(HttpMatch::needs_identity);
    let needs_port = rules.iter().flat_map(|r| &r.matches).any(|m| m.port.is_some());
    Ok(Hints {
        rules,
        idempotency_key_header,
        idempotent_methods,
        max_retry_body_bytes: spec.max_retry_body_bytes.unwrap_or(DEFAULT_MAX_BODY),
        trusted_principals: spec.trusted_principals.iter().map(|p| strip_spiffe(p)).collect(),
        budget,
        retry_after_secs: retry_after_ms.div_ceil(1000),
        grpc_retry_pushback_ms: retry_after_ms,
        needs_identity,
        needs_port,
        warnings,
    })
}

fn check_methods(path: &FieldPath, methods: Vec<String>) -> Result<Vec<String>, ConfigError> {
    for (i, m) in methods.iter().enumerate() {
        if m.is_empty() || !m.bytes().all(|b| b.is_ascii_uppercase() || b == b'-' || b == b'_') {
            return Err(path.index(i).error(format!("{m:?} is not an upper-case method name")));
        }
    }
    Ok(methods)
}

fn compile_rule(path: &FieldPath, index: usize, spec: RuleSpec, warnings: &mut Vec<String>) -> Result<Rule, ConfigError> {
    let name = spec.name.unwrap_or_else(|| format!("rule-{index}"));
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(path.field("name").error(format!("{name:?} must be letters, digits, '-' or '_' (it names metrics and the budget)")));
    }
    let mut matches = Vec::with_capacity(spec.matches.len());
    for (i, m) in spec.matches.iter().enumerate() {
        let at = path.field("match").index(i);
        let compiled = m.compile(&at)?;
        if compiled.is_empty() {
            return Err(at.error("an empty match block matches everything; leave `match` out for that"));
        }
        matches.push(compiled);
    }
    let timeout_ms = spec.timeout.as_deref().map(|t| duration(&path.field("timeout"), t)).transpose()?;
    let retry = spec.retry.map(|r| compile_retry(&path.field("retry"), r, warnings)).transpose()?;
    if retry.is_none() && timeout_ms.is_none() {
        return Err(path.error("needs `retry` or `timeout`: the rule would do nothing"));
    }
    let idempotent_methods = spec.idempotent_methods.map(|m| check_methods(&path.field("idempotentMethods"), m)).transpose()?;
    let texts = HeaderTexts::of(timeout_ms, retry.as_ref());
    Ok(Rule { budget_key: format!("retry_hints.budget.{name}"), name, matches, retry, timeout_ms, idempotent_methods, texts })
}

fn compile_retry(path: &FieldPath, spec: RetrySpec, warnings: &mut Vec<String>) -> Result<Retry, ConfigError> {
    let attempts = spec.attempts.ok_or_else(|| path.field("attempts").error("required (the number of retries; 0 turns retries off)"))?;
    if !(0..=MAX_ATTEMPTS).contains(&attempts) {
        return Err(path.field("attempts").error(format!("{attempts} is out of range 0..={MAX_ATTEMPTS}")));
    }
    let attempts = u32::try_from(attempts).unwrap_or(0);
    let per_try_timeout_ms = match &spec.per_try_timeout {
        Some(t) => {
            let at = path.field("perTryTimeout");
            let ms = duration(&at, t)?;
            if ms == 0 {
                return Err(at.error("must be at least 1ms"));
            }
            Some(ms)
        }
        None => None,
    };
    let retry_on_text = spec.retry_on.as_deref().unwrap_or(ISTIO_DEFAULT);
    let mut retry_on = RetryOn::parse(retry_on_text).map_err(|e| path.field("retryOn").error(e))?;
    for (i, code) in spec.retriable_status_codes.iter().enumerate() {
        let code = u16::try_from(*code).ok().filter(|c| (100..=599).contains(c));
        let code = code.ok_or_else(|| path.field("retriableStatusCodes").index(i).error("is not an HTTP status code"))?;
        if !retry_on.status_codes.contains(&code) {
            retry_on.status_codes.push(code);
        }
    }
    for (i, name) in spec.retriable_headers.iter().enumerate() {
        check_header_name(&path.field("retriableHeaders").index(i), name)?;
    }
    let mut http = retry_on.http.clone();
    if !retry_on.status_codes.is_empty() && !http.contains(&"retriable-status-codes") {
        http.push("retriable-status-codes");
    }
    if !spec.retriable_headers.is_empty() && !http.contains(&"retriable-headers") {
        http.push("retriable-headers");
    }
    // Istio fields Envoy reads from the route only, never from a request
    // header: accepted (so a VirtualService's `retries` can be copied as it
    // is), checked, and reported at start.
    let route_only = |field: &str| format!("{}: Envoy has no request header for it; set it on the VirtualService's retries", path.field(field));
    if spec.retry_remote_localities == Some(true) {
        warnings.push(route_only("retryRemoteLocalities"));
    }
    if spec.retry_ignore_previous_hosts.is_some() {
        warnings.push(route_only("retryIgnorePreviousHosts"));
    }
    if let Some(backoff) = &spec.backoff {
        let at = path.field("backoff");
        if duration(&at, backoff)? == 0 {
            return Err(at.error("must be at least 1ms"));
        }
        warnings.push(route_only("backoff"));
    }
    let join = |items: Vec<String>| (!items.is_empty()).then(|| items.join(","));
    Ok(Retry {
        attempts,
        retry_on: join(http.iter().map(|w| w.to_string()).collect()),
        grpc_retry_on: join(retry_on.grpc.iter().map(|w| w.to_string()).collect()),
        per_try_timeout_ms,
        status_codes: join(retry_on.status_codes.iter().map(u16::to_string).collect()),
        header_names: join(spec.retriable_headers),
        hedge_on_per_try_timeout: spec.hedge_on_per_try_timeout,
    })
}

fn compile_budget(path: &FieldPath, spec: Option<BudgetSpec>) -> Result<BudgetConfig, ConfigError> {
    let spec = spec.unwrap_or(BudgetSpec { retry_ratio: None, min_retries_per_second: None, window: None });
    let ratio = spec.retry_ratio.unwrap_or(0.2);
    if !(0.0..=1.0).contains(&ratio) {
        return Err(path.field("retryRatio").error(format!("{ratio} is out of range 0..=1")));
    }
    let min_per_second = spec.min_retries_per_second.unwrap_or(10);
    if min_per_second > 100_000 {
        return Err(path.field("minRetriesPerSecond").error(format!("{min_per_second} is out of range 0..=100000")));
    }
    let window_path = path.field("window");
    let window_ms = duration(&window_path, spec.window.as_deref().unwrap_or("10s"))?;
    if !(1_000..=600_000).contains(&window_ms) {
        return Err(window_path.error("must be between 1s and 10m"));
    }
    Ok(BudgetConfig { ratio_permille: (ratio * 1000.0).round() as u64, min_per_second, window_ms })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn parse(json: &str) -> Result<Hints, String> {
        Hints::parse(Some(json.as_bytes())).map_err(|e| e.to_string())
    }

    const USERS: &str = r#"{"rules":[{"name":"my-service","match":[{"authority":{"prefix":"my-service"}}],
        "retry":{"attempts":3,"perTryTimeout":"2s","retryOn":"5xx,connect-failure,refused-stream"},"timeout":"10s"}]}"#;

    #[test]
    fn the_users_scenario_compiles_to_header_values() {
        let h = parse(USERS).unwrap();
        let rule = &h.rules[0];
        assert_eq!(rule.timeout_ms, Some(10_000));
        assert_eq!(rule.budget_key, "retry_hints.budget.my-service");
        let retry = rule.retry.as_ref().unwrap();
        assert_eq!(retry.attempts, 3);
        assert_eq!(retry.per_try_timeout_ms, Some(2000));
        assert_eq!(retry.retry_on.as_deref(), Some("5xx,connect-failure,refused-stream"));
        assert_eq!((retry.grpc_retry_on.as_ref(), retry.status_codes.as_ref(), retry.header_names.as_ref()), (None, None, None));
        assert_eq!(h.idempotency_key_header, "idempotency-key");
        assert_eq!(h.idempotent_methods, ["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);
        assert_eq!(h.budget, BudgetConfig { ratio_permille: 200, min_per_second: 10, window_ms: 10_000 });
        assert_eq!(h.retry_after_secs, 1);
        assert!(h.warnings.is_empty() && !h.needs_identity && !h.needs_port);
    }

    #[test]
    fn codes_headers_and_grpc_words_go_to_their_own_headers() {
        let h = parse(
            r#"{"rules":[{"retries":{"attempts":2,"retryOn":"gateway-error,503,unavailable","retriableStatusCodes":[429,503],
                "retriableHeaders":["x-retry-me"],"hedgeOnPerTryTimeout":true,"retryRemoteLocalities":true}}]}"#,
        )
        .unwrap();
        let retry = h.rules[0].retry.as_ref().unwrap();
        assert_eq!(retry.retry_on.as_deref(), Some("gateway-error,retriable-status-codes,retriable-headers"));
        assert_eq!(retry.grpc_retry_on.as_deref(), Some("unavailable"));
        assert_eq!(retry.status_codes.as_deref(), Some("503,429"));
        assert_eq!(retry.header_names.as_deref(), Some("x-retry-me"));
        assert_eq!(retry.hedge_on_per_try_timeout, Some(true));
        assert_eq!(h.rules[0].name, "rule-0");
        assert!(h.rules[0].matches.is_empty(), "no match: every request");
        assert!(h.warnings[0].starts_with("rules[0].retry.retryRemoteLocalities"), "{:?}", h.warnings);
        let copied = parse(r#"{"rules":[{"retries":{"attempts":2,"backoff":"25ms","retryIgnorePreviousHosts":true,"retryRemoteLocalities":false}}]}"#).unwrap();
        assert_eq!(copied.warnings.len(), 2, "route-only fields are reported: {:?}", copied.warnings);
    }

    #[test]
    fn without_retry_on_istios_default_applies() {
        let h = parse(r#"{"rules":[{"retry":{"attempts":2}}]}"#).unwrap();
        let retry = h.rules[0].retry.as_ref().unwrap();
        assert_eq!(retry.retry_on.as_deref(), Some("connect-failure,refused-stream,retriable-status-codes"));
        assert_eq!(retry.grpc_retry_on.as_deref(), Some("unavailable,cancelled"));
        assert_eq!(retry.status_codes.as_deref(), Some("503"));
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            (r#"{"rules":[{"retry":{"attempts":3,"perTryTimeout":"2"}}]}"#, "rules[0].retry.perTryTimeout: \"2\" has a number without a unit"),
            (r#"{"rules":[{"retry":{"attempts":3,"perTryTimeout":"0s"}}]}"#, "rules[0].retry.perTryTimeout: must be at least 1ms"),
            (r#"{"rules":[{"timeout":"ten seconds"}]}"#, "rules[0].timeout: \"ten seconds\""),
            (r#"{"rules":[{"retry":{"attempts":3,"retryOn":"5xx,sometimes"}}]}"#, "rules[0].retry.retryOn: unknown retry condition \"sometimes\""),
            (r#"{"rules":[{"retry":{"attempts":11}}]}"#, "rules[0].retry.attempts: 11 is out of range 0..=10"),
            (r#"{"rules":[{"retry":{"attempts":-1}}]}"#, "rules[0].retry.attempts: -1 is out of range"),
            (r#"{"rules":[{"retry":{"perTryTimeout":"1s"}}]}"#, "rules[0].retry.attempts: required"),
            (r#"{"rules":[{"retry":{"attempts":1,"jitter":"1s"}}]}"#, "rules[0].retry.jitter: unknown field"),
            (r#"{"rules":[{"retry":{"attempts":1,"backoff":"soon"}}]}"#, "rules[0].retry.backoff: \"soon\""),
            (r#"{"rules":[{"timeout":"1s","mirror":{}}]}"#, "rules[0].mirror: unknown field"),
            (r#"{"rules":[{"timeout":"1s"}],"budget":{"retryRatio":1.5}}"#, "budget.retryRatio: 1.5 is out of range"),
            (r#"{"rules":[{"timeout":"1s"}],"budget":{"window":"100ms"}}"#, "budget.window: must be between 1s and 10m"),
            (r#"{"rules":[{"timeout":"1s"}],"budget":{"ttl":"10s"}}"#, "budget.ttl: unknown field"),
            (r#"{"rules":[{"timeout":"1s"}],"retryAfter":"0s"}"#, "retryAfter: must be at least 1s"),
            (r#"{"rules":[{"name":"a"}]}"#, "rules[0]: needs `retry` or `timeout`"),
            (r#"{"rules":[{"name":"a","timeout":"1s"},{"name":"a","timeout":"2s"}]}"#, "rules[1].name: \"a\" is used by another rule"),
            (r#"{"rules":[{"name":"a b","timeout":"1s"}]}"#, "rules[0].name: \"a b\" must be"),
            (r#"{"rules":[{"match":[{}],"timeout":"1s"}]}"#, "rules[0].match[0]: an empty match block"),
            (r#"{"rules":[{"match":[{"uri":{"regex":"("}}],"timeout":"1s"}]}"#, "rules[0].match[0].uri.regex: invalid regex"),
            (r#"{"rules":[{"retry":{"attempts":1,"retriableStatusCodes":[700]}}]}"#, "rules[0].retry.retriableStatusCodes[0]: is not an HTTP status code"),
            (r#"{"rules":[{"retry":{"attempts":1,"retriableHeaders":["X-Retry"]}}]}"#, "rules[0].retry.retriableHeaders[0]: \"X-Retry\" is not a lower-case header name"),
            (r#"{"rules":[{"timeout":"1s"}],"idempotentMethods":["post"]}"#, "idempotentMethods[0]: \"post\" is not an upper-case method name"),
            (r#"{"rules":[{"timeout":"1s","idempotentMethods":["GET","get"]}]}"#, "rules[0].idempotentMethods[1]: \"get\" is not an upper-case method name"),
            (r#"{"rules":[{"timeout":"1s"}],"idempotencyKeyHeader":""}"#, "idempotencyKeyHeader: \"\" is not a lower-case header name"),
            (r#"{"rules":[]}"#, "rules: no rules"),
            (r#"{"rules":[{"timeout":"1s"}],"maxRetryBodyBytes":-1}"#, "maxRetryBodyBytes: invalid value"),
        ];
        for (json, want) in cases {
            let err = parse(json).unwrap_err();
            assert!(err.starts_with(want), "{json}\n  got:  {err}\n  want: {want}…");
        }
    }

    #[test]
    fn durations_and_identity() {
        let h = parse(r#"{"rules":[{"match":[{"sourceNamespace":"ops"}],"timeout":"0s"}],"retryAfter":"1500ms","budget":{"retryRatio":0.25,"minRetriesPerSecond":0,"window":"1m"}}"#).unwrap();
        assert_eq!(h.rules[0].timeout_ms, Some(0), "0s turns Envoy's timeout off, as in Istio");
        assert_eq!(h.retry_after_secs, 2, "rounded up to whole seconds");
        assert_eq!(h.grpc_retry_pushback_ms, 1500, "gRPC clients read milliseconds");
        assert_eq!(h.budget, BudgetConfig { ratio_permille: 250, min_per_second: 0, window_ms: 60_000 });
        assert!(h.needs_identity);
    }
}
