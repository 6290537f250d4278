//! End-to-end kit: starts a real Envoy per test from a config the test
//! builds, runs recording upstream servers on loopback, sends requests, and
//! validates Istio manifests against the CRD schemas. Also home of `demo`.

pub mod bootstrap;
pub mod client;
pub mod crd;
pub mod envoy;
pub mod error;
pub mod http;
pub mod manifests;
pub mod upstream;

pub use bootstrap::{Bootstrap, Route, WasmFilter};
pub use client::{Request, Response};
pub use envoy::{wasm_module, workspace_root, Envoy};
pub use error::KitError;
pub use upstream::{Received, Script, Upstream};
