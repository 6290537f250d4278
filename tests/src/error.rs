//! The kit's one error type: what failed, with the evidence (Envoy's own log
//! when Envoy is the cause).

use std::fmt;

#[derive(Debug)]
pub enum KitError {
    Io { what: String, source: std::io::Error },
    /// Envoy exited before it was ready; `log` is what it printed.
    EnvoyExited { status: String, log: String },
    /// Something did not happen in time.
    Timeout { what: String, log: String },
    /// A peer spoke broken HTTP, or an answer was not what the kit expects.
    Protocol(String),
    /// A file the kit needs is missing: says how to make it.
    Missing(String),
}

impl KitError {
    /// For `map_err`: wraps an I/O error with what was being done.
    pub fn io(what: &str) -> impl FnOnce(std::io::Error) -> KitError + '_ {
        move |source| KitError::Io { what: what.to_string(), source }
    }
}

impl fmt::Display for KitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { what, source } => write!(f, "{what}: {source}"),
            Self::EnvoyExited { status, log } => write!(f, "envoy exited ({status}) before it was ready; its log:\n{log}"),
            Self::Timeout { what, log } if log.is_empty() => write!(f, "timed out: {what}"),
            Self::Timeout { what, log } => write!(f, "timed out: {what}; envoy's log:\n{log}"),
            Self::Protocol(m) | Self::Missing(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for KitError {}
