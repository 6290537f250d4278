//! mirror-sanitizer: removes, masks or pseudonymizes secrets and personal
//! data in mirrored (shadow) requests (headers, cookies, path, query, JSON,
//! form and multipart bodies, and gRPC protobuf messages by their
//! descriptors) before they leave for a test or external service, and leaves the primary request exactly as it was. A shadow body
//! it cannot read is dropped (or the shadow request refused), never passed on.

pub mod body;
pub mod clean_values;
pub mod config;
pub mod descriptor;
pub mod detect;
pub mod form;
pub mod formats;
pub mod grpc_framing;
pub mod hash_batch;
pub mod json;
pub mod mode;
pub mod multipart;
pub mod name_memo;
pub mod names;
pub mod nested;
pub mod path;
pub mod protobuf;
pub mod protowire;
pub mod redact;
pub mod request;
pub mod sha256x4;
pub mod shadow;
pub mod template;
pub mod text;
pub mod vocabulary;
pub mod words;
// The glue exists only in the module; unit tests (native, or wasm32 under
// Node) test the logic without a proxy-wasm host.
#[cfg(all(target_arch = "wasm32", not(test)))]
mod filter;

/// The filter's root context, for a module that carries several filters.
#[cfg(all(target_arch = "wasm32", not(test)))]
pub fn root_context() -> Box<dyn proxy_wasm::traits::RootContext> {
    Box::<filter::SanitizerRoot>::default()
}

// The module's entry point, left out where another module links this one.
#[cfg(all(target_arch = "wasm32", not(test), feature = "module"))]
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| root_context());
}}
