//! One request's redaction work: applies the rule a selector picked, or the
//! detectors to free text, and counts what each rule redacted.

use crate::config::{Policy, DEFAULT_PLACEHOLDER};
use crate::detect::scan;
use crate::mode::Replacement;

pub struct Redactor<'a> {
    pub policy: &'a Policy,
    /// Redactions per rule, in the policy's rule order.
    pub counts: Vec<u32>,
}

impl<'a> Redactor<'a> {
    pub fn new(policy: &'a Policy) -> Self {
        Self { policy, counts: vec![0; policy.rules.len()] }
    }

    fn hit(&mut self, rule: usize) {
        if let Some(c) = self.counts.get_mut(rule) {
            *c = c.saturating_add(1);
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

    /// Like `select`, where the value cannot be removed (removal gives "").
    pub fn select_text(&mut self, rule: usize, value: &str) -> String {
        match self.select(rule, value) {
            Replacement::Remove => String::new(),
            Replacement::Text(t) => t,
        }
    }

    /// `text` with every detector match redacted, or `None` if nothing matched.
    pub fn detect(&mut self, text: &str) -> Option<String> {
        if self.policy.detectors.is_empty() || text.is_empty() {
            return None;
        }
        let spans = scan(text, &self.policy.detectors);
        if spans.is_empty() {
            return None;
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for s in spans {
            out.push_str(text.get(at..s.start).unwrap_or_default());
            let found = text.get(s.start..s.end).unwrap_or_default();
            out.push_str(&self.select_text(s.rule, found));
            at = s.end;
        }
        out.push_str(text.get(at..).unwrap_or_default());
        Some(out)
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }
}
