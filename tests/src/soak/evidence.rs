//! What a soak run leaves to judge: every request's kind and outcome, what
//! each backend saw of it, Envoy's stats at the end, the memory samples and
//! Envoy's log.

use crate::soak::backend::Attempts;
use crate::soak::load::{Load, Outcome};
use crate::soak::memory::Sample;
use crate::soak::traffic::Kind;
use std::collections::HashMap;
use std::time::Duration;

pub struct Evidence {
    pub load: Load,
    /// How long sending took.
    pub elapsed: Duration,
    /// By request number: what it was and what came of it.
    pub requests: Vec<(Kind, Outcome)>,
    /// Which callers the policy lets in, by caller index.
    pub caller_allowed: Vec<bool>,
    /// Attempts the primary backends saw, by request number, with the backend's name.
    pub primary: HashMap<u64, (String, Attempts)>,
    /// Copies the shadow backend saw, by request number.
    pub shadow: HashMap<u64, Attempts>,
    /// Attempts without a request number (primary, shadow).
    pub anonymous: (u64, u64),
    /// Copies that carried a secret: (request number, the secret).
    pub leaks: Vec<(u64, String)>,
    /// Envoy's counters and gauges by name, at the end.
    pub stats: HashMap<String, u64>,
    pub samples: Vec<Sample>,
    pub log: String,
}

impl Evidence {
    pub fn stat(&self, name: &str) -> u64 {
        self.stats.get(name).copied().unwrap_or(0)
    }

    /// A filter metric by the name it defined.
    pub fn metric(&self, name: &str) -> u64 {
        self.stat(&format!("wasmcustom.{name}"))
    }

    pub fn allowed(&self, kind: &Kind) -> bool {
        kind.allowed(&self.caller_allowed)
    }

    /// Requests that match `pred`.
    pub fn count(&self, pred: impl Fn(&Kind, &Outcome) -> bool) -> u64 {
        self.requests.iter().filter(|(k, o)| pred(k, o)).count() as u64
    }
}
