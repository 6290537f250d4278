//! Rules that select names by their words: a vocabulary class
//! (`credential`, `identifier`, `personal`) or the user's own phrases, and
//! the allowlist posture, where only listed names keep their values.

use crate::vocabulary::{Vocabulary, CREDENTIAL, WEAK};
use crate::words::words;
use std::collections::HashSet;

/// Where a name was found: each has its own exact lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameKind {
    Header,
    Cookie,
    Query,
    Form,
    Json,
}

impl NameKind {
    pub const COUNT: usize = 5;

    pub fn index(self) -> usize {
        self as usize
    }
}

/// A rule that picked a name. `weak`: the name holds only a weak word
/// (`key`, `code`), so the rule applies only to values that look secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selection {
    pub rule: usize,
    pub weak: bool,
}

/// What becomes of the value under a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameVerdict {
    pub selection: Option<Selection>,
    /// False under the allowlist posture for a name it does not list.
    pub allowed: bool,
}

/// The word selectors of one rule.
#[derive(Debug, Clone, Default)]
pub struct NameSelector {
    pub classes: u8,
    pub phrases: Vec<Vec<String>>,
}

impl NameSelector {
    /// `Some(weak)` when this selector picks a name of these words.
    pub fn selects(&self, words: &[String], classes: u8) -> Option<bool> {
        if self.classes & classes & !WEAK != 0 || self.phrases.iter().any(|p| contains_phrase(words, p)) {
            return Some(false);
        }
        (self.classes & CREDENTIAL != 0 && classes & WEAK != 0).then_some(true)
    }

    pub fn is_empty(&self) -> bool {
        self.classes == 0 && self.phrases.is_empty()
    }
}

fn contains_phrase(words: &[String], phrase: &[String]) -> bool {
    if phrase.is_empty() {
        return false;
    }
    words.windows(phrase.len()).any(|w| w == phrase) || (phrase.len() > 1 && words.iter().any(|w| *w == phrase.concat()))
}

/// The allowlist posture: only these names keep their values; every other
/// value is masked with its structure kept.
#[derive(Debug, Clone)]
pub struct Allowlist {
    /// Names as their words joined by single spaces.
    pub names: HashSet<String>,
    /// Lower-case header names that keep their values.
    pub headers: HashSet<String>,
    /// The rule that counts (and masks) what the allowlist masks.
    pub rule: usize,
}

/// Headers an allowlist keeps unless told otherwise: framing, content
/// negotiation, tracing and the proxy's own.
pub const DEFAULT_ALLOWED_HEADERS: &[&str] = &[
    "accept", "accept-encoding", "accept-language", "cache-control", "content-type", "content-encoding", "user-agent", "x-request-id",
    "x-forwarded-proto", "traceparent", "tracestate", "b3", "x-b3-traceid", "x-b3-spanid", "x-b3-parentspanid", "x-b3-sampled",
    "x-b3-flags", "x-envoy-expected-rq-timeout-ms", "x-envoy-attempt-count", "x-envoy-internal", "te", "pragma",
];

impl Allowlist {
    pub fn allows_words(&self, words: &[String]) -> bool {
        self.names.contains(&words.join(" "))
    }
}

/// The verdict on a name from its words: the first selector (by rule
/// order) that picks it, and whether the allowlist keeps it.
pub fn verdict_by_words(name: &str, vocabulary: &Vocabulary, selectors: &[(NameSelector, usize)], allowlist: Option<&Allowlist>) -> NameVerdict {
    let words = words(name);
    let classes = if selectors.is_empty() { 0 } else { vocabulary.classify(&words) };
    let mut selection: Option<Selection> = None;
    for (selector, rule) in selectors {
        if let Some(weak) = selector.selects(&words, classes) {
            selection = Some(Selection { rule: *rule, weak });
            break;
        }
    }
    let allowed = allowlist.is_none_or(|a| a.allows_words(&words));
    NameVerdict { selection, allowed }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocabulary::{IDENTIFIER, PERSONAL};
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn the_first_selector_that_picks_a_name_wins() {
        let v = Vocabulary::default();
        let selectors = vec![
            (NameSelector { classes: 0, phrases: vec![vec!["badge".into(), "number".into()]] }, 0),
            (NameSelector { classes: CREDENTIAL, phrases: vec![] }, 1),
            (NameSelector { classes: IDENTIFIER | PERSONAL, phrases: vec![] }, 2),
        ];
        let rule = |name: &str| verdict_by_words(name, &v, &selectors, None).selection;
        assert_eq!(rule("employeeBadgeNumber"), Some(Selection { rule: 0, weak: false }));
        assert_eq!(rule("badgenumber"), Some(Selection { rule: 0, weak: false }));
        assert_eq!(rule("newPassword"), Some(Selection { rule: 1, weak: false }));
        assert_eq!(rule("key"), Some(Selection { rule: 1, weak: true }));
        assert_eq!(rule("x-customer-id"), Some(Selection { rule: 2, weak: false }));
        assert_eq!(rule("page"), None);
    }

    #[test]
    fn the_allowlist_compares_words() {
        let v = Vocabulary::default();
        let a = Allowlist { names: ["order id".to_string(), "qty".to_string()].into_iter().collect(), headers: HashSet::new(), rule: 9 };
        assert!(verdict_by_words("orderId", &v, &[], Some(&a)).allowed);
        assert!(verdict_by_words("ORDER_ID", &v, &[], Some(&a)).allowed);
        assert!(!verdict_by_words("note", &v, &[], Some(&a)).allowed);
        assert!(verdict_by_words("note", &v, &[], None).allowed);
    }
}
