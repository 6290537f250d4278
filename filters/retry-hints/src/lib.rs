//! retry-hints: attaches Envoy's retry and timeout headers per route (Istio
//! `HTTPRetry` semantics), only to requests that are safe to retry, within a
//! retry budget that all of the proxy's workers share, and tells clients
//! when to come back once retrying is not an option.

pub mod budget;
pub mod config;
pub mod duration;
pub mod plan;
pub mod retry_on;
#[cfg(all(target_arch = "wasm32", not(test)))]
mod filter;

/// The filter's root context, for a module that carries several filters.
#[cfg(all(target_arch = "wasm32", not(test)))]
pub fn root_context() -> Box<dyn proxy_wasm::traits::RootContext> {
    Box::<filter::RetryRoot>::default()
}

// The module's entry point, left out where another module links this one.
#[cfg(all(target_arch = "wasm32", not(test), feature = "module"))]
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| root_context());
}}
