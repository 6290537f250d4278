//! Reading and writing the module's linear memory, and handing it buffers
//! allocated through its own allocator, as proxy-wasm-cpp-host does. A bad
//! pointer is a status (InvalidMemoryAccess), never a host crash.

use crate::abi::status;
use crate::state::HostState;
use wasmtime::Caller;

pub type Ctx<'a> = Caller<'a, HostState>;

/// A host-call result: Ok, or the status to return to the module.
pub type Status<T = ()> = Result<T, i32>;

pub fn code(result: Status) -> i32 {
    match result {
        Ok(()) => status::OK,
        Err(code) => code,
    }
}

fn range(ptr: i32, len: i32) -> Status<std::ops::Range<usize>> {
    let start = ptr as u32 as usize;
    let end = start.checked_add(len as u32 as usize).ok_or(status::INVALID_MEMORY_ACCESS)?;
    Ok(start..end)
}

pub fn read(caller: &Ctx<'_>, ptr: i32, len: i32) -> Status<Vec<u8>> {
    let memory = caller.data().memory.ok_or(status::INVALID_MEMORY_ACCESS)?;
    let data = memory.data(caller);
    data.get(range(ptr, len)?).map(<[u8]>::to_vec).ok_or(status::INVALID_MEMORY_ACCESS)
}

pub fn read_string(caller: &Ctx<'_>, ptr: i32, len: i32) -> Status<String> {
    Ok(String::from_utf8_lossy(&read(caller, ptr, len)?).into_owned())
}

pub fn write(caller: &mut Ctx<'_>, ptr: i32, bytes: &[u8]) -> Status {
    let memory = caller.data().memory.ok_or(status::INVALID_MEMORY_ACCESS)?;
    let len = i32::try_from(bytes.len()).map_err(|_| status::INVALID_MEMORY_ACCESS)?;
    let target = memory.data_mut(caller).get_mut(range(ptr, len)?).ok_or(status::INVALID_MEMORY_ACCESS)?;
    target.copy_from_slice(bytes);
    Ok(())
}

pub fn write_u32(caller: &mut Ctx<'_>, ptr: i32, value: u32) -> Status {
    write(caller, ptr, &value.to_le_bytes())
}

pub fn write_u64(caller: &mut Ctx<'_>, ptr: i32, value: u64) -> Status {
    write(caller, ptr, &value.to_le_bytes())
}

/// Copies `bytes` into memory the module allocates, then writes the pointer
/// and size to `ptr_ptr` / `size_ptr`. Empty data is handed over as a null
/// pointer and size 0, as Envoy does (SDKs read that as "no value").
pub fn hand_over(caller: &mut Ctx<'_>, bytes: &[u8], ptr_ptr: i32, size_ptr: i32) -> Status {
    let size = i32::try_from(bytes.len()).map_err(|_| status::INVALID_MEMORY_ACCESS)?;
    let mut pointer = 0;
    if size > 0 {
        let allocate = caller.data().allocate.clone().ok_or(status::INVALID_MEMORY_ACCESS)?;
        // A trap inside the allocator is reported when the callback returns.
        pointer = allocate.call(&mut *caller, size).map_err(|_| status::INVALID_MEMORY_ACCESS)?;
        if pointer == 0 {
            return Err(status::INVALID_MEMORY_ACCESS);
        }
        write(caller, pointer, bytes)?;
    }
    write_u32(caller, ptr_ptr, pointer as u32)?;
    write_u32(caller, size_ptr, size as u32)
}
