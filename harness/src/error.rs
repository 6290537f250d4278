//! The harness's errors, each saying what failed and where.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HarnessError {
    /// The module could not be loaded: not wasm, not proxy-wasm, an unknown import.
    Load(String),
    /// The plugin did not start: instantiation failed, a start callback
    /// trapped, or `proxy_on_vm_start` / `proxy_on_configure` returned false.
    Start(String),
    /// A scenario file that cannot be read or understood.
    Scenario(String),
}

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Load(m) => write!(f, "cannot load module: {m}"),
            Self::Start(m) => write!(f, "plugin did not start: {m}"),
            Self::Scenario(m) => write!(f, "bad scenario: {m}"),
        }
    }
}

impl std::error::Error for HarnessError {}
