//! One request's redaction work: applies the rule a selector picked, the
//! allowlist's mask, or the detectors to free text (after offering it to
//! the nested-document opener), and counts what each rule redacted.

use crate::config::{Known, Policy};
use crate::detect::{scan_into, Detector, Profile, Span};
use crate::mode::{Mode, Replacement};
use crate::sha256x4::MAX_SHORT;
use crate::name_memo::NameMemo;
use crate::names::{NameKind, NameVerdict};
use crate::text::{is_uuid, DEFAULT_PLACEHOLDER};
use crate::vocabulary::looks_secret;

/// What the nested-document opener made of a free-text value.
pub enum Opened {
    /// A document, sanitized: its new text.
    Changed(String),
    /// A document with nothing to redact.
    Unchanged,
    /// Not a document: the detectors read it as text.
    NotDocument,
}

/// Opens a value that holds a document of its own (see `nested`).
pub type Opener = fn(&str, &Profile, &mut Redactor) -> Opened;

pub struct Redactor<'a> {
    pub policy: &'a Policy,
    /// Redactions per rule, in the policy's rule order.
    pub counts: Vec<u32>,
    /// How many documents deep the value being read is nested.
    pub nesting: usize,
    opener: Option<Opener>,
    /// The built-in detectors the policy runs (`Builtin::bit` mask).
    builtins: u16,
    /// The policy has regex detectors, which no profile rules out.
    patterns: bool,
    names: NameMemo,
    /// Scratch for the detectors, kept from one text to the next.
    found: Vec<(usize, usize)>,
    spans: Vec<Span>,
}

impl<'a> Redactor<'a> {
    /// A redactor that reads values as text only.
    pub fn new(policy: &'a Policy) -> Self {
        let builtins = policy.detectors.iter().fold(0, |m, (d, _)| if let Detector::Builtin(b) = d { m | b.bit() } else { m });
        let patterns = policy.detectors.iter().any(|(d, _)| matches!(d, Detector::Pattern(_)));
        Self { policy, counts: vec![0; policy.rules.len()], nesting: 0, opener: None, builtins, patterns, names: NameMemo::default(), found: Vec::new(), spans: Vec::new() }
    }

    /// A redactor that first offers each free-text value to `opener`.
    pub fn with_opener(policy: &'a Policy, opener: Opener) -> Self {
        Self { opener: Some(opener), ..Self::new(policy) }
    }

    fn hit(&mut self, rule: usize) {
        if let Some(c) = self.counts.get_mut(rule) {
            *c = c.saturating_add(1);
        }
    }

    /// The verdict on a name (cached for the request).
    pub fn name(&mut self, kind: NameKind, name: &str) -> NameVerdict {
        self.known(kind, name).verdict
    }

    fn known(&mut self, kind: NameKind, name: &str) -> Known {
        let policy = self.policy;
        // A request names each header, cookie and query parameter about
        // once: the memo (64 slots to set up and drop) would only cost.
        // Documents repeat their keys.
        if matches!(kind, NameKind::Header | NameKind::Cookie | NameKind::Query) {
            return policy.known(kind, name);
        }
        self.names.get_or(kind, name, || policy.known(kind, name))
    }

    /// The verdict on a name and, when the name itself holds something a
    /// detector finds (a map keyed by e-mail address), its redacted form.
    pub fn name_and_text(&mut self, kind: NameKind, name: &str) -> (NameVerdict, Option<String>) {
        let known = self.known(kind, name);
        let text = if known.clean { None } else { self.detect_profiled(name, &Profile::of(name.as_bytes())) };
        (known.verdict, text)
    }

    /// What a value under a name becomes: its rule's redaction, the
    /// allowlist's mask, or `None` (free text, for the detectors).
    pub fn named(&mut self, verdict: NameVerdict, value: &str) -> Option<Replacement> {
        if let Some(s) = verdict.selection {
            if !s.weak || looks_secret(value) {
                return Some(self.select(s.rule, value));
            }
        }
        (!verdict.allowed).then(|| Replacement::Text(self.unlisted()))
    }

    /// The allowlist's mask for a value whose name it does not list.
    pub fn unlisted(&mut self) -> String {
        let rule = self.policy.allowlist.as_ref().map_or(usize::MAX, |a| a.rule);
        self.select_text(rule, "")
    }

    /// The mask for a document nested deeper than the readers go.
    pub fn too_deep(&mut self) -> String {
        // Counted under the detectors' rule when there is one.
        let rule = self.policy.detectors.first().map_or(usize::MAX, |(_, rule)| *rule);
        match self.policy.rules.get(rule).map(|r| &r.mode) {
            Some(crate::mode::Mode::Mask { placeholder, .. }) => {
                self.hit(rule);
                placeholder.clone()
            }
            _ => DEFAULT_PLACEHOLDER.to_string(),
        }
    }

    /// The value a selector of `rule` picked, redacted by the rule's mode.
    pub fn select(&mut self, rule: usize, value: &str) -> Replacement {
        self.hit(rule);
        match self.policy.rules.get(rule) {
            Some(r) => r.mode.apply(value, self.policy.hasher.as_ref()),
            None => Replacement::Text(DEFAULT_PLACEHOLDER.to_string()),
        }
    }

    /// Whether `rule` pseudonymizes a value of `len` bytes that can wait to
    /// be hashed with others (see `hash_batch`); if so it is counted now.
    pub fn select_later(&mut self, rule: usize, len: usize) -> bool {
        let later = len <= MAX_SHORT && self.policy.hasher.is_some() && self.policy.rules.get(rule).is_some_and(|r| r.mode == Mode::Hash);
        if later {
            self.hit(rule);
        }
        later
    }

    /// `select_text`, appended to `out`: a mask is written in place.
    fn select_into(&mut self, rule: usize, value: &str, out: &mut String) {
        match self.policy.rules.get(rule).map(|r| &r.mode) {
            Some(Mode::Mask { placeholder, keep_last }) => {
                self.hit(rule);
                crate::mode::mask_into(value, placeholder, *keep_last, out);
            }
            _ => out.push_str(&self.select_text(rule, value)),
        }
    }

    /// Like `select`, where the value cannot be removed (removal gives "").
    pub fn select_text(&mut self, rule: usize, value: &str) -> String {
        match self.select(rule, value) {
            Replacement::Remove => String::new(),
            Replacement::Text(t) => t,
        }
    }

    /// Free text sanitized: a nested document opened and sanitized in its
    /// own encoding, or else every detector match redacted. `None` if
    /// nothing changed.
    pub fn detect(&mut self, text: &str) -> Option<String> {
        self.detect_with(text, Profile::of(text.as_bytes()))
    }

    /// `detect` for a header value. A value in which the detectors found
    /// nothing before is not read again (see `clean_values`); the memo is
    /// only kept by redactors that open nested documents, as every header
    /// redactor of the filter does, so a value is remembered clean only
    /// after its documents were looked into.
    pub fn detect_header_value(&mut self, text: &str) -> Option<String> {
        if self.opener.is_none() {
            return self.detect(text);
        }
        // A request or trace id is new on every request, so the memo never
        // holds it; and no built-in detector finds anything in a UUID, nor
        // the opener a document (a test holds them to it). Patterns might.
        if !self.patterns && is_uuid(text.as_bytes()) {
            return None;
        }
        let policy = self.policy;
        let memo = &policy.clean_header_values;
        let (seen, hash) = memo.contains(text.as_bytes());
        if seen {
            return None;
        }
        let before = self.total();
        let out = self.detect(text);
        if out.is_none() && self.total() == before {
            memo.remember(text.as_bytes(), hash);
        }
        out
    }

    /// `detect`, with the text's profile already taken.
    pub fn detect_with(&mut self, text: &str, profile: Profile) -> Option<String> {
        if text.is_empty() {
            return None;
        }
        // Most values hold no sign of a document: the opener is not asked.
        if let Some(open) = self.opener.filter(|_| profile.maybe_document()) {
            match open(text, &profile, self) {
                Opened::Changed(t) => return Some(t),
                Opened::Unchanged => return None,
                Opened::NotDocument => {}
            }
        }
        self.detect_profiled(text, &profile)
    }

    /// The detectors alone over a text whose profile was taken.
    pub fn detect_profiled(&mut self, text: &str, profile: &Profile) -> Option<String> {
        let possible = if self.patterns { profile.possible() } else { profile.possible() & self.builtins };
        if possible == 0 && !self.patterns {
            return None;
        }
        let mut spans = std::mem::take(&mut self.spans);
        scan_into(text, possible, &self.policy.detectors, &mut self.found, &mut spans);
        let out = (!spans.is_empty()).then(|| {
            let mut out = String::with_capacity(text.len());
            let mut at = 0;
            for s in &spans {
                out.push_str(text.get(at..s.start).unwrap_or_default());
                let found = text.get(s.start..s.end).unwrap_or_default();
                self.select_into(s.rule, found, &mut out);
                at = s.end;
            }
            out.push_str(text.get(at..).unwrap_or_default());
            out
        });
        self.spans = spans;
        out
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }
}
