//! End-to-end kit: starts a real Envoy per test from a config the test
//! builds, runs recording upstream servers on loopback (HTTP/1.1, HTTP/2, a
//! gRPC service), sends requests (HTTP/1.1, HTTP/2, gRPC), and
//! validates Istio manifests against the CRD schemas. Also home of `demo`.

// Test tooling, not filter code: it reads JSON with serde_json's `value["key"]`,
// which yields Null for a missing key rather than panicking.
#![allow(clippy::indexing_slicing)]

pub mod bootstrap;
pub mod client;
pub mod crd;
pub mod differential;
pub mod ecds;
pub mod envoy;
pub mod error;
pub mod fault_upstream;
pub mod hostile;
pub mod grpc;
pub mod h2_client;
pub mod h2_upstream;
pub mod http;
pub mod istio_fetch;
pub mod istio_translate;
pub mod jwt;
pub mod lds;
pub mod loopback;
pub mod manifests;
pub mod oci;
pub mod pin;
pub mod registry;
pub mod schemas;
pub mod recorder;
pub mod tls;
pub mod mesh_router;
pub mod retry_hints_tour;
pub mod soak;
pub mod mirror_demo;
pub mod tour;
pub mod upstream;

pub use bootstrap::{Bootstrap, ListenerTls, Route, WasmFilter};
pub use client::{Request, Response};
pub use envoy::{wasm_module, workspace_root, Envoy};
pub use error::KitError;
pub use grpc::{Call, Customer, GrpcAnswer, GrpcClient, GrpcReceived, GrpcScript, GrpcService, Reply};
pub use h2_client::{H2Request, H2Response};
pub use h2_upstream::{H2Received, H2Upstream};
pub use tls::{Credential, Pki, TlsStream};
pub use upstream::{Framing, Received, Script, Upstream};
