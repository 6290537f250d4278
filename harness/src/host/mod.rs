//! The proxy-wasm ABI 0.2.x host functions, registered on a wasmtime linker.

pub mod basics;
pub mod calls;
pub mod maps;
pub mod memory;
pub mod metrics;
pub mod shared;
pub mod wasi;

use crate::state::HostState;
use wasmtime::Linker;

/// Registers every host function (ABI and WASI) that Envoy offers a module
/// of ABI `abi_version` on `linker`.
pub fn link_all(linker: &mut Linker<HostState>, abi_version: &str) -> anyhow::Result<()> {
    basics::link(linker)?;
    if abi_version == "0.2.1" {
        basics::link_log_level(linker)?;
    }
    calls::link(linker)?;
    maps::link(linker)?;
    metrics::link(linker)?;
    shared::link(linker)?;
    wasi::link(linker)?;
    Ok(())
}
