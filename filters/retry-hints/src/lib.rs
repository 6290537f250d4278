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

#[cfg(all(target_arch = "wasm32", not(test)))]
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| Box::<filter::RetryRoot>::default());
}}
