//! header-router: chooses a destination from a request's headers, path,
//! method, query and caller identity with Istio VirtualService matching
//! (first route wins, weighted splits with sticky users), and steers Envoy's
//! routing by setting a header its routes match on.

pub mod config;
pub mod destination;
// The glue exists only in the module; unit tests (native, or wasm32 under
// Node) test the logic without a proxy-wasm host.
#[cfg(all(target_arch = "wasm32", not(test)))]
mod filter;

/// The filter's root context, for a module that carries several filters.
#[cfg(all(target_arch = "wasm32", not(test)))]
pub fn root_context() -> Box<dyn proxy_wasm::traits::RootContext> {
    Box::<filter::RouterRoot>::default()
}

// The module's entry point, left out where another module links this one.
#[cfg(all(target_arch = "wasm32", not(test), feature = "module"))]
proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| root_context());
}}
