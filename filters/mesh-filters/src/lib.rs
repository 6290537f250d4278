//! mesh-filters: all four filters in one module. Envoy creates one root
//! context per plugin; each reads its plugin's root id and becomes that
//! filter's root (`header-router`, `principal-authz`, `retry-hints`,
//! `mirror-sanitizer`). Plugins that name this module with the same
//! `vm_config` (same `vm_id`) share one VM per worker, so the four cost one
//! VM's memory instead of four.

#[cfg(all(target_arch = "wasm32", not(test)))]
mod entry {
    use filter_common::{AbiHost, Host, LogLevel};
    use proxy_wasm::traits::{Context, RootContext};

    /// The filter a root id names.
    fn root_for(root_id: &str) -> Option<Box<dyn RootContext>> {
        match root_id {
            "header-router" => Some(header_router::root_context()),
            "principal-authz" => Some(principal_authz::root_context()),
            "retry-hints" => Some(retry_hints::root_context()),
            "mirror-sanitizer" => Some(mirror_sanitizer::root_context()),
            _ => None,
        }
    }

    /// A plugin whose root id names no filter: it refuses to start, so the
    /// mistake shows at configure time instead of as a filter that does nothing.
    struct Unknown(String);

    impl Context for Unknown {}

    impl RootContext for Unknown {
        fn on_configure(&mut self, _size: usize) -> bool {
            AbiHost.log(
                LogLevel::Error,
                &format!("mesh-filters: root_id {:?} names no filter (header-router, principal-authz, retry-hints, mirror-sanitizer)", self.0),
            );
            false
        }
    }

    fn create(_context_id: u32) -> Box<dyn RootContext> {
        let root_id = match AbiHost.property(&["plugin_root_id"]) {
            Ok(Some(id)) => String::from_utf8_lossy(&id).into_owned(),
            _ => String::new(),
        };
        root_for(&root_id).unwrap_or_else(|| Box::new(Unknown(root_id)))
    }

    proxy_wasm::main! {{
        proxy_wasm::set_root_context(create);
    }}
}
