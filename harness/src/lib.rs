//! A proxy-wasm host on wasmtime that runs compiled filter modules the way
//! Envoy does: the whole ABI 0.2.x, Envoy's stream and context lifecycle, its
//! property names and encodings, and its failure policies. For tests of the
//! real `.wasm`, and for trying a filter without an Envoy.

pub mod abi;
pub mod access;
pub mod bench;
pub mod call_reply;
pub mod driver;
pub mod envoy_codec;
pub mod error;
pub mod expect;
pub mod host;
pub mod module;
pub mod plugin;
pub mod profile;
pub mod properties;
pub mod property_path;
pub mod replies;
pub mod report;
pub mod scenario;
pub mod state;
pub mod stream;
pub mod vm;

pub use error::HarnessError;
pub use module::Module;
pub use plugin::{FailurePolicy, Plugin, PluginConfig};
pub use state::SharedState;
pub use stream::{CallReply, Forwarded, Outcome, Request, Response, UpstreamResponse};

impl Plugin {
    /// Sends one request through this plugin alone.
    pub fn send(&mut self, request: &Request, upstream: &UpstreamResponse) -> Outcome {
        driver::run(std::slice::from_mut(self), request, upstream)
    }
}

/// Several plugins in order, like Envoy's HTTP filter chain: requests pass
/// them first to last, responses last to first.
pub struct Chain {
    pub plugins: Vec<Plugin>,
}

impl Chain {
    pub fn new(plugins: Vec<Plugin>) -> Self {
        Self { plugins }
    }

    pub fn send(&mut self, request: &Request, upstream: &UpstreamResponse) -> Outcome {
        driver::run(&mut self.plugins, request, upstream)
    }
}
