//! What the rules read of a request's path and method, before any policy
//! runs: the canonical path (the one the upstream receives) and, when a
//! DENY or AUDIT rule reads them, their other readings; or why the request
//! cannot be judged safely and is refused.

use crate::config::Config;
use crate::method::is_token;
use crate::path::{normalize_with, NormalizedPath, UnsafePath};
use crate::readings::Readings;
use std::fmt;

#[derive(Debug)]
pub struct ReadRequest {
    pub path: NormalizedPath,
    /// None when no DENY or AUDIT rule reads the path or method.
    pub readings: Option<Readings>,
}

/// Why a request is refused before the policies see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The path cannot be normalized safely.
    Path(UnsafePath),
    /// The path is unsafe once decoded again (only with `allowDoubleEncoding`).
    DecodedAgain(UnsafePath),
    /// The method is missing or not an RFC 9110 token.
    Method,
}

impl Refusal {
    /// The path problem, if the refusal is about the path.
    pub fn unsafe_path(&self) -> Option<&UnsafePath> {
        match self {
            Self::Path(why) | Self::DecodedAgain(why) => Some(why),
            Self::Method => None,
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(why) => write!(f, "{why}"),
            Self::DecodedAgain(why) => write!(f, "decoded again, {why}"),
            Self::Method => f.write_str("the method is not an HTTP token"),
        }
    }
}

pub fn read(config: &Config, raw_path: &str, method: Option<&str>) -> Result<ReadRequest, Refusal> {
    let path = normalize_with(raw_path, config.allow_double_encoding).map_err(Refusal::Path)?;
    if !method.is_some_and(is_token) {
        return Err(Refusal::Method);
    }
    let readings = if config.needs.readings {
        Some(Readings::of(&path.path, method, config.readings).map_err(Refusal::DecodedAgain)?)
    } else {
        None
    };
    Ok(ReadRequest { path, readings })
}

#[cfg(test)]
#[path = "request_tests.rs"]
mod tests;
