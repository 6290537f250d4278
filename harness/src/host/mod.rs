//! The proxy-wasm ABI 0.2.x host functions, registered on a wasmtime linker.

pub mod basics;
pub mod calls;
pub mod maps;
pub mod memory;
pub mod metrics;
pub mod shared;

use crate::state::HostState;
use wasmtime::Linker;

/// Registers every host function (ABI and WASI) on `linker`.
pub fn link_all(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    basics::link(linker)?;
    calls::link(linker)?;
    maps::link(linker)?;
    metrics::link(linker)?;
    shared::link(linker)?;
    crate::wasi::link(linker)?;
    Ok(())
}
