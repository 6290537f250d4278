//! The plugin configuration: which requests are shadow copies, the redaction
//! rules (each a set of selectors and a mode), the body limit and what to do
//! with a body that cannot be sanitized. Compiled once into a `Policy`;
//! every error names its field (`rules[2].pathSegments[0]: …`).

use crate::descriptor::Schema;
use crate::detect::{scan_profiled, Builtin, Detector, Profile};
use crate::names::{verdict_by_words, Allowlist, NameKind, NameSelector, NameVerdict, Selection, DEFAULT_ALLOWED_HEADERS};
use crate::vocabulary::{Vocabulary, CREDENTIAL, IDENTIFIER, PERSONAL};
use crate::mode::{Mode, Pseudonymizer};
use crate::template::Template;
use crate::clean_values::CleanValues;
use crate::text::{lookup_lower, FnvBuild, DEFAULT_PLACEHOLDER};
use std::cell::RefCell;
use filter_common::{parse_json, ConfigError, FieldPath};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};

pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
pub const DEFAULT_SHADOW_SUFFIX: &str = "-shadow";
/// Shortest HMAC key accepted: shorter keys make pseudonyms guessable.
const MIN_KEY_BYTES: usize = 16;

/// Headers the built-in rules remove (the `cookie` header's cookies are
/// removed one by one, so a user rule can keep or hash single cookies).
pub const DEFAULT_HEADERS: [&str; 9] = [
    "authorization",
    "proxy-authorization",
    "x-api-key",
    "x-auth-token",
    "x-access-token",
    "x-csrf-token",
    "x-xsrf-token",
    "x-amz-security-token",
    "x-forwarded-client-cert",
];

/// Field names (JSON keys at any depth, form fields, query parameters) the
/// built-in rules remove.
pub const DEFAULT_FIELDS: [&str; 14] = [
    "password",
    "passwd",
    "pwd",
    "secret",
    "client_secret",
    "token",
    "access_token",
    "refresh_token",
    "id_token",
    "api_key",
    "apikey",
    "private_key",
    "otp",
    "cvv",
];

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
enum ShadowMatchName {
    #[default]
    HostSuffix,
    Header,
    All,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ShadowSpec {
    #[serde(default, rename = "match")]
    match_: ShadowMatchName,
    suffix: Option<String>,
    header: Option<String>,
    remove_header: Option<bool>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnUnsanitizable {
    /// The shadow request goes on with its sanitized headers and an empty body.
    #[default]
    DropBody,
    /// The shadow request is answered locally and never reaches its upstream.
    Reject,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
enum ModeName {
    Remove,
    #[default]
    Mask,
    Hash,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct HashKeySpec {
    /// The name of a VM environment variable that holds the key.
    env: Option<String>,
    /// The key itself (visible to anyone who can read the config).
    value: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RuleSpec {
    name: Option<String>,
    #[serde(default)]
    mode: ModeName,
    placeholder: Option<String>,
    keep_last: Option<usize>,
    #[serde(default)]
    headers: Vec<String>,
    #[serde(default)]
    header_patterns: Vec<String>,
    #[serde(default)]
    cookies: Vec<String>,
    #[serde(default)]
    query_params: Vec<String>,
    #[serde(default)]
    path_segments: Vec<String>,
    #[serde(default)]
    json_keys: Vec<String>,
    #[serde(default)]
    json_pointers: Vec<String>,
    #[serde(default)]
    form_fields: Vec<String>,
    /// JSON keys, form fields and query parameters at once.
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    detectors: Vec<DetectorName>,
    #[serde(default)]
    patterns: Vec<String>,
    /// Names of every kind whose words fall in these vocabulary classes.
    #[serde(default)]
    classes: Vec<ClassName>,
    /// Names of every kind whose words contain one of these phrases.
    #[serde(default)]
    words: Vec<String>,
}

/// A class of the sensitive vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
enum ClassName {
    Credential,
    Identifier,
    Personal,
}

impl ClassName {
    fn bits(self) -> u8 {
        match self {
            ClassName::Credential => CREDENTIAL,
            ClassName::Identifier => IDENTIFIER,
            ClassName::Personal => PERSONAL,
        }
    }
}

/// Words the user adds to the vocabulary's classes, and names exempted.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct VocabularySpec {
    #[serde(default)]
    credential: Vec<String>,
    #[serde(default)]
    identifier: Vec<String>,
    #[serde(default)]
    personal: Vec<String>,
    #[serde(default)]
    exempt: Vec<String>,
}

/// The allowlist posture: only these names keep their values.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct AllowlistSpec {
    #[serde(default)]
    names: Vec<String>,
    /// Header names kept besides the default ones.
    #[serde(default)]
    headers: Vec<String>,
    placeholder: Option<String>,
}

/// A built-in detector by name, or `all` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
enum DetectorName {
    All,
    CardNumber,
    Email,
    Jwt,
    BearerToken,
    AwsAccessKeyId,
    Iban,
    Phone,
    Ssn,
    AwsSecretKey,
    PrivateKey,
    ProviderToken,
    CredentialParam,
}

impl DetectorName {
    fn builtins(self) -> &'static [Builtin] {
        match self {
            DetectorName::All => &Builtin::ALL,
            DetectorName::CardNumber => &[Builtin::CardNumber],
            DetectorName::Email => &[Builtin::Email],
            DetectorName::Jwt => &[Builtin::Jwt],
            DetectorName::BearerToken => &[Builtin::BearerToken],
            DetectorName::AwsAccessKeyId => &[Builtin::AwsAccessKeyId],
            DetectorName::Iban => &[Builtin::Iban],
            DetectorName::Phone => &[Builtin::Phone],
            DetectorName::Ssn => &[Builtin::Ssn],
            DetectorName::AwsSecretKey => &[Builtin::AwsSecretKey],
            DetectorName::PrivateKey => &[Builtin::PrivateKey],
            DetectorName::ProviderToken => &[Builtin::ProviderToken],
            DetectorName::CredentialParam => &[Builtin::CredentialParam],
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicySpec {
    #[serde(default)]
    shadow: ShadowSpec,
    #[serde(default)]
    rules: Vec<RuleSpec>,
    builtin_rules: Option<bool>,
    max_body_bytes: Option<u64>,
    #[serde(default)]
    on_unsanitizable: OnUnsanitizable,
    hash_key: Option<HashKeySpec>,
    vocabulary: Option<VocabularySpec>,
    allowlist: Option<AllowlistSpec>,
    /// A serialized `FileDescriptorSet`, base64 (Envoy's gRPC-JSON
    /// transcoder calls its field `proto_descriptor_bin`).
    proto_descriptor_bin: Option<String>,
}

/// How the filter tells a shadow copy from the primary request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShadowMatch {
    /// The authority's host part (before any port) ends with the suffix.
    HostSuffix(String),
    /// The header is present (a marker the mirror policy adds); removed
    /// before the request leaves when `remove` is set.
    Header { name: String, remove: bool },
    /// Every request (a listener that carries only mirrored traffic).
    All,
}

#[derive(Debug, Clone)]
pub struct Rule {
    pub name: String,
    pub mode: Mode,
}

/// The compiled configuration: selectors point at the rule that owns them;
/// where several rules select the same thing, the first rule wins.
#[derive(Debug, Clone)]
pub struct Policy {
    pub shadow: ShadowMatch,
    pub max_body_bytes: usize,
    pub on_unsanitizable: OnUnsanitizable,
    pub rules: Vec<Rule>,
    pub headers: HashMap<String, usize>,
    pub header_patterns: Vec<(regex_lite::Regex, usize)>,
    pub cookies: HashMap<String, usize>,
    /// A rule for every cookie (`cookies: ["*"]`).
    pub all_cookies: Option<usize>,
    /// Lower-case names.
    pub query_params: HashMap<String, usize>,
    pub path_templates: Vec<(Template, usize)>,
    /// Lower-case keys.
    pub json_keys: HashMap<String, usize>,
    /// Bit n set: some key in `json_keys` is n bytes long (n < 128), so
    /// most keys are ruled out without hashing.
    pub json_key_lengths: u128,
    pub json_pointers: Vec<(Vec<String>, usize)>,
    /// Lower-case names.
    pub form_fields: HashMap<String, usize>,
    pub detectors: Vec<(Detector, usize)>,
    pub hasher: Option<Pseudonymizer>,
    pub vocabulary: Vocabulary,
    /// Rules that select names by their words, in rule order.
    pub name_selectors: Vec<(NameSelector, usize)>,
    pub allowlist: Option<Allowlist>,
    /// The protobuf schema of gRPC calls (`protoDescriptorBin`): their
    /// messages are sanitized by field; without it they are dropped.
    pub schema: Option<Schema>,
    /// Names seen before, per kind (bounded): names repeat across requests.
    known: [RefCell<HashMap<String, Known, FnvBuild>>; NameKind::COUNT],
    /// Header values seen before in which the detectors found nothing.
    pub clean_header_values: CleanValues,
}

/// What the policy makes of a name, remembered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub verdict: NameVerdict,
    /// The name itself holds nothing a detector finds.
    pub clean: bool,
}

/// Names remembered per kind; beyond that, names are classified afresh.
const KNOWN_NAMES: usize = 4096;

impl Policy {
    /// Parses and compiles the configuration; `env` reads a VM environment
    /// variable (for the hash key).
    pub fn parse(bytes: Option<&[u8]>, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let spec: PolicySpec = parse_json(bytes)?;
        compile(spec, env)
    }

    /// The rule a JSON key selects (case-insensitive).
    pub fn json_key_rule(&self, key: &str) -> Option<usize> {
        if self.json_keys.is_empty() {
            return None;
        }
        // ASCII keys keep their length when lower-cased.
        if key.is_ascii() && key.len() < 128 && self.json_key_lengths & (1u128 << key.len()) == 0 {
            return None;
        }
        lookup_lower(&self.json_keys, key)
    }

    /// The rule a name's exact spelling selects in its kind's lists.
    fn exact_rule(&self, kind: NameKind, name: &str) -> Option<usize> {
        match kind {
            NameKind::Header => {
                let by_name = self.headers.get(name).copied();
                let by_pattern = self.header_patterns.iter().filter(|(re, _)| re.is_match(name)).map(|(_, i)| *i).min();
                min_rule(by_name, by_pattern)
            }
            NameKind::Cookie => min_rule(self.cookies.get(name).copied(), self.all_cookies),
            NameKind::Query => lookup_lower(&self.query_params, name),
            NameKind::Form => lookup_lower(&self.form_fields, name),
            NameKind::Json => self.json_key_rule(name),
        }
    }

    /// The verdict on a name and whether the name itself is clean of
    /// detector matches, remembered for later requests.
    pub fn known(&self, kind: NameKind, name: &str) -> Known {
        let cache = self.known.get(kind.index());
        if let Some(k) = cache.and_then(|c| c.try_borrow().ok().and_then(|m| m.get(name).copied())) {
            return k;
        }
        let clean = self.detectors.is_empty() || name.is_empty() || scan_profiled(name, &Profile::of(name.as_bytes()), &self.detectors).is_empty();
        let known = Known { verdict: self.name_verdict(kind, name), clean };
        if let Some(mut m) = cache.and_then(|c| c.try_borrow_mut().ok()) {
            if m.len() < KNOWN_NAMES {
                m.insert(name.to_string(), known);
            }
        }
        known
    }

    /// What becomes of a value under this name: the first rule that selects
    /// it by its spelling or by its words, and whether the allowlist keeps it.
    pub fn name_verdict(&self, kind: NameKind, name: &str) -> NameVerdict {
        let exact = self.exact_rule(kind, name);
        // The cookie header is sanitized cookie by cookie, not as a name.
        if kind == NameKind::Header && name == "cookie" {
            return NameVerdict { selection: exact.map(|rule| Selection { rule, weak: false }), allowed: true };
        }
        let mut verdict = verdict_by_words(name, &self.vocabulary, &self.name_selectors, self.allowlist.as_ref());
        if kind == NameKind::Header {
            verdict.allowed = self.allowlist.as_ref().is_none_or(|a| a.headers.contains(name));
        }
        verdict.selection = match (exact, verdict.selection) {
            (Some(e), Some(w)) if w.rule < e => Some(w),
            (Some(e), _) => Some(Selection { rule: e, weak: false }),
            (None, w) => w,
        };
        verdict
    }
}

fn min_rule(a: Option<usize>, b: Option<usize>) -> Option<usize> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn builtin_rules(hash: bool) -> Vec<RuleSpec> {
    vec![
        RuleSpec {
            name: Some("builtin-headers".into()),
            mode: ModeName::Remove,
            headers: DEFAULT_HEADERS.iter().map(|s| s.to_string()).collect(),
            ..RuleSpec::default()
        },
        RuleSpec { name: Some("builtin-cookies".into()), mode: ModeName::Remove, cookies: vec!["*".into()], ..RuleSpec::default() },
        RuleSpec {
            name: Some("builtin-fields".into()),
            mode: ModeName::Remove,
            fields: DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect(),
            classes: vec![ClassName::Credential],
            ..RuleSpec::default()
        },
        RuleSpec {
            name: Some("builtin-identifiers".into()),
            // Pseudonyms keep identifiers joinable where there is a key.
            mode: if hash { ModeName::Hash } else { ModeName::Mask },
            classes: vec![ClassName::Identifier],
            ..RuleSpec::default()
        },
        RuleSpec { name: Some("builtin-personal".into()), mode: ModeName::Mask, classes: vec![ClassName::Personal], ..RuleSpec::default() },
        RuleSpec {
            name: Some("builtin-detectors".into()),
            mode: ModeName::Mask,
            detectors: vec![DetectorName::All],
            ..RuleSpec::default()
        },
    ]
}

fn check_header_name(path: &FieldPath, name: &str) -> Result<(), ConfigError> {
    let token = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(path.error(format!("{name:?} is not a lower-case header name")));
    }
    if name == "host" {
        return Err(path.error("the authority cannot be redacted"));
    }
    Ok(())
}

fn check_placeholder(path: &FieldPath, text: &str) -> Result<(), ConfigError> {
    // The placeholder goes into headers, paths and multipart bodies as is.
    if text.bytes().any(|b| b.is_ascii_control()) {
        return Err(path.error("must not contain control characters"));
    }
    Ok(())
}

fn compile(spec: PolicySpec, env: &dyn Fn(&str) -> Option<String>) -> Result<Policy, ConfigError> {
    let root = FieldPath::root();
    let shadow = compile_shadow(&root.field("shadow"), spec.shadow)?;
    let max_body_bytes = match spec.max_body_bytes {
        None => DEFAULT_MAX_BODY_BYTES,
        Some(0) => return Err(root.field("maxBodyBytes").error("must be at least 1")),
        Some(n) => usize::try_from(n).map_err(|_| root.field("maxBodyBytes").error(format!("{n} is too large")))?,
    };
    let hasher = match spec.hash_key {
        None => None,
        Some(key) => Some(compile_key(&root.field("hashKey"), key, env)?),
    };
    let user_rules = spec.rules.len();
    let mut specs = spec.rules;
    if spec.builtin_rules.unwrap_or(true) {
        specs.extend(builtin_rules(hasher.is_some()));
    }
    if specs.is_empty() && spec.allowlist.is_none() {
        return Err(root.field("rules").error("no rules and builtinRules is false: nothing would be redacted"));
    }
    let mut policy = Policy {
        shadow,
        max_body_bytes,
        on_unsanitizable: spec.on_unsanitizable,
        rules: Vec::with_capacity(specs.len()),
        headers: HashMap::new(),
        header_patterns: Vec::new(),
        cookies: HashMap::new(),
        all_cookies: None,
        query_params: HashMap::new(),
        path_templates: Vec::new(),
        json_keys: HashMap::new(),
        json_key_lengths: 0,
        json_pointers: Vec::new(),
        form_fields: HashMap::new(),
        detectors: Vec::new(),
        hasher,
        vocabulary: compile_vocabulary(&root.field("vocabulary"), spec.vocabulary.unwrap_or_default())?,
        name_selectors: Vec::new(),
        allowlist: None,
        schema: match spec.proto_descriptor_bin {
            None => None,
            Some(text) => Some(compile_schema(&root.field("protoDescriptorBin"), &text)?),
        },
        known: Default::default(),
        clean_header_values: CleanValues::default(),
    };
    for (i, rule) in specs.into_iter().enumerate() {
        // Built-in rules have no field of their own in the user's config.
        let path = if i < user_rules { root.field("rules").index(i) } else { root.field("builtinRules") };
        compile_rule(&path, i, rule, &mut policy)?;
    }
    if let Some(allow) = spec.allowlist {
        compile_allowlist(&root.field("allowlist"), allow, &mut policy)?;
    }
    for key in policy.json_keys.keys() {
        policy.json_key_lengths |= 1u128.checked_shl(u32::try_from(key.len()).unwrap_or(u32::MAX)).unwrap_or(0);
    }
    let mut seen = std::collections::HashSet::new();
    for (i, r) in policy.rules.iter().enumerate() {
        if !seen.insert(r.name.as_str()) {
            return Err(root.field("rules").index(i).field("name").error(format!("{:?} names two rules; metrics are per rule", r.name)));
        }
    }
    Ok(policy)
}

fn compile_schema(path: &FieldPath, text: &str) -> Result<Schema, ConfigError> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| path.error(format!("not base64 ({e}); give the bytes of protoc --include_imports --descriptor_set_out in base64")))?;
    let schema = Schema::decode(&bytes).map_err(|e| path.error(format!("not a FileDescriptorSet: {e}")))?;
    if schema.methods.is_empty() {
        return Err(path.error("the descriptor set declares no service method: no gRPC call could be read by it"));
    }
    Ok(schema)
}

fn compile_vocabulary(path: &FieldPath, spec: VocabularySpec) -> Result<Vocabulary, ConfigError> {
    let mut v = Vocabulary::default();
    for (field, list, class) in [("credential", &spec.credential, CREDENTIAL), ("identifier", &spec.identifier, IDENTIFIER), ("personal", &spec.personal, PERSONAL)] {
        for (i, phrase) in list.iter().enumerate() {
            if !v.add(phrase, class) {
                return Err(path.field(field).index(i).error(format!("{phrase:?} has no words (letters or digits)")));
            }
        }
    }
    for (i, name) in spec.exempt.iter().enumerate() {
        if crate::words::words(name).is_empty() {
            return Err(path.field("exempt").index(i).error(format!("{name:?} has no words (letters or digits)")));
        }
        v.exempt(name);
    }
    Ok(v)
}

fn compile_allowlist(path: &FieldPath, spec: AllowlistSpec, p: &mut Policy) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for (i, name) in spec.names.iter().enumerate() {
        let words = crate::words::words(name);
        if words.is_empty() {
            return Err(path.field("names").index(i).error(format!("{name:?} has no words (letters or digits)")));
        }
        names.insert(words.join(" "));
    }
    let mut headers: HashSet<String> = DEFAULT_ALLOWED_HEADERS.iter().map(|h| h.to_string()).collect();
    for (i, h) in spec.headers.iter().enumerate() {
        check_header_name(&path.field("headers").index(i), h)?;
        headers.insert(h.clone());
    }
    let placeholder = spec.placeholder.unwrap_or_else(|| DEFAULT_PLACEHOLDER.to_string());
    check_placeholder(&path.field("placeholder"), &placeholder)?;
    if p.rules.iter().any(|r| r.name == "allowlist") {
        return Err(path.error("a rule is already named \"allowlist\" (the allowlist's metric)"));
    }
    let rule = p.rules.len();
    p.rules.push(Rule { name: "allowlist".into(), mode: Mode::Mask { placeholder, keep_last: 0 } });
    p.allowlist = Some(Allowlist { names, headers, rule });
    Ok(())
}

fn compile_shadow(path: &FieldPath, spec: ShadowSpec) -> Result<ShadowMatch, ConfigError> {
    match spec.match_ {
        ShadowMatchName::HostSuffix => {
            if spec.header.is_some() || spec.remove_header.is_some() {
                return Err(path.field("header").error("only for match: header"));
            }
            let suffix = spec.suffix.unwrap_or_else(|| DEFAULT_SHADOW_SUFFIX.to_string());
            if suffix.is_empty() || suffix.contains(':') {
                return Err(path.field("suffix").error("must be a non-empty host suffix without a port"));
            }
            Ok(ShadowMatch::HostSuffix(suffix.to_ascii_lowercase()))
        }
        ShadowMatchName::Header => {
            if spec.suffix.is_some() {
                return Err(path.field("suffix").error("only for match: hostSuffix"));
            }
            let name = spec.header.ok_or_else(|| path.field("header").error("required for match: header"))?;
            check_header_name(&path.field("header"), &name)?;
            Ok(ShadowMatch::Header { name, remove: spec.remove_header.unwrap_or(true) })
        }
        ShadowMatchName::All => {
            if spec.suffix.is_some() || spec.header.is_some() || spec.remove_header.is_some() {
                return Err(path.error("match: all takes no suffix or header"));
            }
            Ok(ShadowMatch::All)
        }
    }
}

fn compile_key(path: &FieldPath, spec: HashKeySpec, env: &dyn Fn(&str) -> Option<String>) -> Result<Pseudonymizer, ConfigError> {
    let key = match (spec.env, spec.value) {
        (Some(name), None) => env(&name).filter(|v| !v.is_empty()).ok_or_else(|| {
            path.field("env").error(format!("the VM environment variable {name:?} is not set or empty"))
        })?,
        (None, Some(value)) => value,
        _ => return Err(path.error("set exactly one of env, value")),
    };
    if key.len() < MIN_KEY_BYTES {
        // Never echo the key, not even in part.
        return Err(path.error(format!("the key must be at least {MIN_KEY_BYTES} bytes")));
    }
    Pseudonymizer::new(key.as_bytes()).ok_or_else(|| path.error("unusable key"))
}

fn compile_rule(path: &FieldPath, index: usize, spec: RuleSpec, p: &mut Policy) -> Result<(), ConfigError> {
    let name = spec.name.unwrap_or_else(|| format!("rule-{index}"));
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(path.field("name").error(format!("{name:?}: use letters, digits, '-' and '_' (it names the rule's metric)")));
    }
    let mode = match spec.mode {
        ModeName::Remove | ModeName::Hash if spec.placeholder.is_some() || spec.keep_last.is_some() => {
            return Err(path.field(if spec.placeholder.is_some() { "placeholder" } else { "keepLast" }).error("only for mode: mask"));
        }
        ModeName::Remove => Mode::Remove,
        ModeName::Hash => {
            if p.hasher.is_none() {
                return Err(path.field("mode").error("hash needs hashKey"));
            }
            Mode::Hash
        }
        ModeName::Mask => {
            let placeholder = spec.placeholder.unwrap_or_else(|| DEFAULT_PLACEHOLDER.to_string());
            check_placeholder(&path.field("placeholder"), &placeholder)?;
            Mode::Mask { placeholder, keep_last: spec.keep_last.unwrap_or(0) }
        }
    };
    let selectors = spec.headers.len()
        + spec.header_patterns.len()
        + spec.cookies.len()
        + spec.query_params.len()
        + spec.path_segments.len()
        + spec.json_keys.len()
        + spec.json_pointers.len()
        + spec.form_fields.len()
        + spec.fields.len()
        + spec.detectors.len()
        + spec.patterns.len()
        + spec.classes.len()
        + spec.words.len();
    if selectors == 0 {
        return Err(path.error("selects nothing: give headers, cookies, queryParams, pathSegments, jsonKeys, jsonPointers, formFields, fields, classes, words, detectors or patterns"));
    }
    for (i, h) in spec.headers.iter().enumerate() {
        let at = path.field("headers").index(i);
        check_header_name(&at, h)?;
        if h == "cookie" && mode != Mode::Remove {
            return Err(at.error("mask or hash single cookies with `cookies`"));
        }
        p.headers.entry(h.clone()).or_insert(index);
    }
    for (i, re) in spec.header_patterns.iter().enumerate() {
        let compiled = regex_lite::Regex::new(re).map_err(|e| path.field("headerPatterns").index(i).error(format!("invalid regex: {e}")))?;
        p.header_patterns.push((compiled, index));
    }
    for (i, c) in spec.cookies.iter().enumerate() {
        if c.is_empty() {
            return Err(path.field("cookies").index(i).error("must not be empty"));
        }
        if c == "*" {
            p.all_cookies.get_or_insert(index);
        } else {
            p.cookies.entry(c.clone()).or_insert(index);
        }
    }
    let names = |field: &str, list: &[String]| -> Result<Vec<String>, ConfigError> {
        list.iter()
            .enumerate()
            .map(|(i, n)| if n.is_empty() { Err(path.field(field).index(i).error("must not be empty")) } else { Ok(n.to_lowercase()) })
            .collect()
    };
    for n in names("queryParams", &spec.query_params)?.into_iter().chain(names("fields", &spec.fields)?) {
        p.query_params.entry(n).or_insert(index);
    }
    for n in names("jsonKeys", &spec.json_keys)?.into_iter().chain(names("fields", &spec.fields)?) {
        p.json_keys.entry(n).or_insert(index);
    }
    for n in names("formFields", &spec.form_fields)?.into_iter().chain(names("fields", &spec.fields)?) {
        p.form_fields.entry(n).or_insert(index);
    }
    for (i, t) in spec.path_segments.iter().enumerate() {
        let at = path.field("pathSegments").index(i);
        if mode == Mode::Remove {
            return Err(at.error("a path segment cannot be removed; use mask or hash"));
        }
        p.path_templates.push((Template::parse(t).map_err(|e| at.error(e))?, index));
    }
    for (i, ptr) in spec.json_pointers.iter().enumerate() {
        p.json_pointers.push((parse_pointer(ptr).map_err(|e| path.field("jsonPointers").index(i).error(e))?, index));
    }
    for d in &spec.detectors {
        p.detectors.extend(d.builtins().iter().map(|&b| (Detector::Builtin(b), index)));
    }
    for (i, re) in spec.patterns.iter().enumerate() {
        let at = path.field("patterns").index(i);
        let compiled = regex_lite::Regex::new(re).map_err(|e| at.error(format!("invalid regex: {e}")))?;
        if compiled.is_match("") {
            return Err(at.error("matches the empty string"));
        }
        p.detectors.push((Detector::Pattern(compiled), index));
    }
    let mut selector = NameSelector { classes: spec.classes.iter().fold(0, |acc, c| acc | c.bits()), phrases: Vec::new() };
    for (i, phrase) in spec.words.iter().enumerate() {
        let words = crate::words::words(phrase);
        if words.is_empty() {
            return Err(path.field("words").index(i).error(format!("{phrase:?} has no words (letters or digits)")));
        }
        selector.phrases.push(words);
    }
    if !selector.is_empty() {
        p.name_selectors.push((selector, index));
    }
    p.rules.push(Rule { name, mode });
    Ok(())
}

/// An RFC 6901 JSON pointer: `/a/b~1c/0` → `["a", "b/c", "0"]`.
fn parse_pointer(text: &str) -> Result<Vec<String>, String> {
    let Some(rest) = text.strip_prefix('/') else {
        return Err(format!("{text:?} is not a JSON pointer (it starts with '/')"));
    };
    rest.split('/')
        .map(|token| {
            let mut out = String::with_capacity(token.len());
            let mut chars = token.chars();
            while let Some(c) = chars.next() {
                match (c, c == '~') {
                    (_, false) => out.push(c),
                    (_, true) => match chars.next() {
                        Some('0') => out.push('~'),
                        Some('1') => out.push('/'),
                        _ => return Err(format!("{text:?}: '~' must be followed by 0 or 1")),
                    },
                }
            }
            Ok(out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(json: &str) -> Result<Policy, String> {
        Policy::parse(Some(json.as_bytes()), &no_env).map_err(|e| e.to_string())
    }

    #[test]
    fn an_empty_config_runs_the_builtin_rules_on_host_suffix() {
        let p = parse("{}").unwrap();
        assert_eq!(p.shadow, ShadowMatch::HostSuffix("-shadow".into()));
        assert_eq!(p.max_body_bytes, 1024 * 1024);
        assert_eq!(p.headers.get("authorization"), Some(&0));
        assert_eq!(p.all_cookies, Some(1));
        assert_eq!(p.json_key_rule("PassWord"), Some(2));
        assert_eq!(p.query_params.get("access_token"), Some(&2));
        assert_eq!(p.detectors.len(), 12);
        assert_eq!(
            p.rules.iter().map(|r| r.name.as_str()).collect::<Vec<_>>(),
            ["builtin-headers", "builtin-cookies", "builtin-fields", "builtin-identifiers", "builtin-personal", "builtin-detectors"]
        );
    }

    #[test]
    fn user_rules_come_before_the_builtin_ones() {
        let p = parse(r#"{"rules":[{"name":"session","cookies":["session"],"mode":"hash"},{"name":"pw","jsonKeys":["password"],"mode":"mask","keepLast":2}],
                          "hashKey":{"value":"0123456789abcdef0123"}}"#).unwrap();
        assert_eq!(p.cookies.get("session"), Some(&0));
        assert_eq!(p.all_cookies, Some(3));
        assert_eq!(p.json_key_rule("password"), Some(1));
        assert_eq!(p.rules[1].mode, Mode::Mask { placeholder: "REDACTED".into(), keep_last: 2 });
    }

    #[test]
    fn the_hash_key_comes_from_the_environment() {
        let env = |name: &str| (name == "MIRROR_KEY").then(|| "a-long-enough-secret-key".to_string());
        let json = br#"{"rules":[{"fields":["user_id"],"mode":"hash"}],"hashKey":{"env":"MIRROR_KEY"}}"#;
        let p = Policy::parse(Some(json), &env).unwrap();
        assert!(p.hasher.is_some());
        let err = Policy::parse(Some(br#"{"rules":[{"fields":["u"],"mode":"hash"}],"hashKey":{"env":"OTHER"}}"#), &env).unwrap_err();
        assert_eq!(err.to_string(), "hashKey.env: the VM environment variable \"OTHER\" is not set or empty");
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            (r#"{"rules":[{"fields":["u"],"mode":"hash"}]}"#, "rules[0].mode: hash needs hashKey"),
            (r#"{"hashKey":{"value":"short-key"}}"#, "hashKey: the key must be at least 16 bytes"),
            (r#"{"hashKey":{"value":"0123456789abcdef","env":"X"}}"#, "hashKey: set exactly one of env, value"),
            (r#"{"rules":[{"name":"x"}]}"#, "rules[0]: selects nothing"),
            (r#"{"rules":[{"headers":["Authorization"]}]}"#, "rules[0].headers[0]: \"Authorization\" is not a lower-case header name"),
            (r#"{"rules":[{"headers":["host"]}]}"#, "rules[0].headers[0]: the authority cannot be redacted"),
            (r#"{"rules":[{"headerPatterns":["x-("]}]}"#, "rules[0].headerPatterns[0]: invalid regex"),
            (r#"{"rules":[{"patterns":["a*"]}]}"#, "rules[0].patterns[0]: matches the empty string"),
            (r#"{"rules":[{"pathSegments":["/users/{id}"],"mode":"remove"}]}"#, "rules[0].pathSegments[0]: a path segment cannot be removed"),
            (r#"{"rules":[{"pathSegments":["users/{id}"]}]}"#, "rules[0].pathSegments[0]: \"users/{id}\" must start with '/'"),
            (r#"{"rules":[{"pathSegments":["/users/id"]}]}"#, "rules[0].pathSegments[0]: \"/users/id\" has no {placeholder} segment"),
            (r#"{"rules":[{"jsonPointers":["a/b"]}]}"#, "rules[0].jsonPointers[0]: \"a/b\" is not a JSON pointer"),
            (r#"{"rules":[{"jsonPointers":["/a~2"]}]}"#, "rules[0].jsonPointers[0]: \"/a~2\": '~' must be followed by 0 or 1"),
            (r#"{"rules":[{"detectors":["ssnumber"]}]}"#, "rules[0].detectors[0]: unknown variant `ssnumber`"),
            (r#"{"rules":[{"fields":["a"],"mode":"remove","keepLast":4}]}"#, "rules[0].keepLast: only for mode: mask"),
            (r#"{"rules":[{"name":"a b","fields":["a"]}]}"#, "rules[0].name: \"a b\": use letters"),
            (r#"{"rules":[{"name":"a","fields":["a"]},{"name":"a","fields":["b"]}]}"#, "rules[1].name: \"a\" names two rules"),
            (r#"{"rules":[{"fields":["a"],"placeholder":"x\ny"}]}"#, "rules[0].placeholder: must not contain control characters"),
            (r#"{"rules":[{"headers":["cookie"],"mode":"hash"}],"hashKey":{"value":"0123456789abcdef"}}"#, "rules[0].headers[0]: mask or hash single cookies"),
            (r#"{"shadow":{"match":"header"}}"#, "shadow.header: required for match: header"),
            (r#"{"shadow":{"match":"hostSuffix","suffix":"-shadow:80"}}"#, "shadow.suffix: must be a non-empty host suffix"),
            (r#"{"shadow":{"match":"all","suffix":"x"}}"#, "shadow: match: all takes no suffix or header"),
            (r#"{"shadow":{"match":"sometimes"}}"#, "shadow.match: unknown variant `sometimes`"),
            (r#"{"maxBodyBytes":0}"#, "maxBodyBytes: must be at least 1"),
            (r#"{"onUnsanitizable":"pass"}"#, "onUnsanitizable: unknown variant `pass`"),
            (r#"{"builtinRules":false}"#, "rules: no rules and builtinRules is false"),
            (r#"{"rules":[{"fields":["a"],"colour":"red"}]}"#, "rules[0].colour: unknown field"),
            (r#"{"rules":[{"words":["--"]}]}"#, "rules[0].words[0]: \"--\" has no words"),
            (r#"{"rules":[{"classes":["secretish"]}]}"#, "rules[0].classes[0]: unknown variant `secretish`"),
            (r#"{"vocabulary":{"personal":["ok","  "]}}"#, "vocabulary.personal[1]: \"  \" has no words"),
            (r#"{"vocabulary":{"exempt":["."]}}"#, "vocabulary.exempt[0]: \".\" has no words"),
            (r#"{"vocabulary":{"secret":["x"]}}"#, "vocabulary.secret: unknown field"),
            (r#"{"allowlist":{"names":["_"]}}"#, "allowlist.names[0]: \"_\" has no words"),
            (r#"{"allowlist":{"headers":["X-A"]}}"#, "allowlist.headers[0]: \"X-A\" is not a lower-case header name"),
            (r#"{"allowlist":{},"rules":[{"name":"allowlist","fields":["a"]}]}"#, "allowlist: a rule is already named \"allowlist\""),
            (r#"{"protoDescriptorBin":"%%%"}"#, "protoDescriptorBin: not base64"),
            (r#"{"protoDescriptorBin":""}"#, "protoDescriptorBin: not a FileDescriptorSet: holds no file"),
            // Base64 of a file whose message field names a type not in the set.
            (r#"{"protoDescriptorBin":"Ci8KB3AucHJvdG8SAXAiEwoBTRIOCgFhGAEgASgLMgMuWFgyDAoBUxIHCgFDEgIuTQ=="}"#, "protoDescriptorBin: not a FileDescriptorSet: message p.M: field a: type .XX is not in the set"),
            (r#"{"protoDescriptorBin":"CgkKB3AucHJvdG8="}"#, "protoDescriptorBin: the descriptor set declares no service method"),
            (r#"{"protoDescriptorBin":7}"#, "protoDescriptorBin: invalid type"),
        ];
        for (json, want) in cases {
            let err = parse(json).unwrap_err();
            assert!(err.starts_with(want), "{json}\n  got:  {err}\n  want: {want}…");
        }
    }

    #[test]
    fn a_config_error_never_shows_the_key() {
        let err = parse(r#"{"hashKey":{"value":"tiny-secret"}}"#).unwrap_err();
        assert!(!err.contains("tiny-secret"), "{err}");
    }

    #[test]
    fn a_descriptor_set_maps_methods_to_messages() {
        use base64::Engine as _;
        let set = base64::engine::general_purpose::STANDARD.encode(crate::descriptor::build::shop());
        let p = parse(&format!(r#"{{"protoDescriptorBin":"{set}"}}"#)).unwrap();
        let schema = p.schema.unwrap();
        let order = schema.input_of("/shop.Orders/Place").unwrap();
        assert_eq!(schema.messages[order].name, "shop.Order");
        assert!(parse("{}").unwrap().schema.is_none());
    }

    #[test]
    fn pointers_unescape() {
        assert_eq!(parse_pointer("/a~1b/c~0d/0").unwrap(), ["a/b", "c~d", "0"]);
        assert_eq!(parse_pointer("/").unwrap(), [""]);
    }
}
