//! principal-authz: allows or denies each request by the caller's mTLS
//! identity (SPIFFE ID), namespace, host, port, method, path and headers,
//! with Istio AuthorizationPolicy semantics (DENY before ALLOW, AUDIT logged),
//! on a path normalized so that encodings cannot dodge a rule, and with DENY
//! rules that hold under every reading a backend may give the request.

pub mod config;
pub mod identity;
pub mod ip;
pub mod jwt;
pub mod method;
pub mod path;
pub mod policy;
pub mod readings;
pub mod request;
pub mod template;
// The glue exists only in the module; unit tests (native, or wasm32 under
// Node) test the logic without a proxy-wasm host.
#[cfg(all(target_arch = "wasm32", not(test)))]
mod filter;

/// The filter's root context, for a module that carries several filters.
#[cfg(all(target_arch = "wasm32", not(test)))]
pub fn root_context() -> Box<dyn proxy_wasm::traits::RootContext> {
    Box::<filter::AuthzRoot>::default()
}

// The module's entry point, left out where another module links this one.
#[cfg(all(target_arch = "wasm32", not(test), feature = "module"))]
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| root_context());
}}
