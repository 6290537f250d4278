//! The WASI preview-1 functions proxy-wasm hosts provide (the set Envoy's
//! host registers): stdout/stderr go to the log, clocks, random bytes, the
//! environment from the VM config, no arguments, no files.

use crate::abi::LogLevel;
use crate::host::memory::{read, write, write_u32, write_u64, Ctx};
use crate::state::HostState;
use wasmtime::Linker;

const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const ENOSYS: i32 = 52;

/// Module names WASI functions are imported under.
const MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

fn errno(result: Result<(), i32>) -> i32 {
    match result {
        Ok(()) => SUCCESS,
        Err(_) => EFAULT,
    }
}

/// Appends to stdout (fd 1) or stderr (fd 2) and logs each complete line, as
/// Envoy logs a module's stdout at info and stderr at error.
fn write_stdio(state: &mut HostState, fd: i32, bytes: &[u8]) {
    let (index, level) = if fd == 1 { (0, LogLevel::Info) } else { (1, LogLevel::Error) };
    let Some(buffer) = state.stdio.get_mut(index) else { return };
    buffer.extend_from_slice(bytes);
    let mut lines = Vec::new();
    while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = buffer.drain(..=end).collect();
        lines.push(String::from_utf8_lossy(line.strip_suffix(b"\n").unwrap_or(&line)).into_owned());
    }
    for line in lines {
        state.log(level, line);
    }
}

fn env_strings(state: &HostState) -> Vec<Vec<u8>> {
    state.plugin.env.iter().map(|(k, v)| format!("{k}={v}\0").into_bytes()).collect()
}

/// A small deterministic generator: the same module and inputs give the same
/// run, which keeps `harness bench` figures repeatable.
fn next_random(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

pub fn link(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    for module in MODULES {
        linker.func_wrap(module, "fd_write", |mut c: Ctx<'_>, fd: i32, iovs: i32, count: i32, written: i32| -> i32 {
            c.data_mut().count("fd_write");
            if fd != 1 && fd != 2 {
                return EBADF;
            }
            let result = (|| {
                let mut total = 0u32;
                for i in 0..count {
                    let entry = read(&c, iovs.wrapping_add(i.wrapping_mul(8)), 8)?;
                    let field = |at: usize| entry.get(at..at + 4).and_then(|b| b.try_into().ok()).map(i32::from_le_bytes);
                    let (Some(ptr), Some(len)) = (field(0), field(4)) else { return Err(EFAULT) };
                    let bytes = read(&c, ptr, len)?;
                    total = total.wrapping_add(bytes.len() as u32);
                    write_stdio(c.data_mut(), fd, &bytes);
                }
                write_u32(&mut c, written, total)
            })();
            errno(result)
        })?;
        linker.func_wrap(module, "fd_read", |mut c: Ctx<'_>, fd: i32, _iovs: i32, _count: i32, read_ptr: i32| -> i32 {
            c.data_mut().count("fd_read");
            if fd != 0 {
                return EBADF;
            }
            errno(write_u32(&mut c, read_ptr, 0))
        })?;
        linker.func_wrap(module, "fd_close", |mut c: Ctx<'_>, _fd: i32| -> i32 {
            c.data_mut().count("fd_close");
            EBADF
        })?;
        linker.func_wrap(module, "fd_seek", |mut c: Ctx<'_>, _fd: i32, _offset: i64, _whence: i32, _new: i32| -> i32 {
            c.data_mut().count("fd_seek");
            EBADF
        })?;
        linker.func_wrap(module, "fd_fdstat_get", |mut c: Ctx<'_>, fd: i32, stat: i32| -> i32 {
            c.data_mut().count("fd_fdstat_get");
            if !(0..=2).contains(&fd) {
                return EBADF;
            }
            // filetype character device, no flags, no rights.
            let bytes: Vec<u8> = std::iter::once(2).chain(std::iter::repeat_n(0, 23)).collect();
            errno(write(&mut c, stat, &bytes))
        })?;
        linker.func_wrap(module, "fd_fdstat_set_flags", |mut c: Ctx<'_>, _fd: i32, _flags: i32| -> i32 {
            c.data_mut().count("fd_fdstat_set_flags");
            ENOSYS
        })?;
        linker.func_wrap(module, "fd_prestat_get", |mut c: Ctx<'_>, _fd: i32, _ptr: i32| -> i32 {
            c.data_mut().count("fd_prestat_get");
            EBADF
        })?;
        linker.func_wrap(module, "fd_prestat_dir_name", |mut c: Ctx<'_>, _fd: i32, _ptr: i32, _len: i32| -> i32 {
            c.data_mut().count("fd_prestat_dir_name");
            EBADF
        })?;
        linker.func_wrap(module, "environ_sizes_get", |mut c: Ctx<'_>, count: i32, size: i32| -> i32 {
            c.data_mut().count("environ_sizes_get");
            let env = env_strings(c.data());
            let total: usize = env.iter().map(Vec::len).sum();
            errno(write_u32(&mut c, count, env.len() as u32).and_then(|()| write_u32(&mut c, size, total as u32)))
        })?;
        linker.func_wrap(module, "environ_get", |mut c: Ctx<'_>, pointers: i32, buffer: i32| -> i32 {
            c.data_mut().count("environ_get");
            let result = (|| {
                let mut at = buffer;
                for (i, entry) in env_strings(c.data()).iter().enumerate() {
                    write_u32(&mut c, pointers.wrapping_add(i as i32 * 4), at as u32)?;
                    write(&mut c, at, entry)?;
                    at = at.wrapping_add(entry.len() as i32);
                }
                Ok(())
            })();
            errno(result)
        })?;
        linker.func_wrap(module, "args_sizes_get", |mut c: Ctx<'_>, count: i32, size: i32| -> i32 {
            c.data_mut().count("args_sizes_get");
            errno(write_u32(&mut c, count, 0).and_then(|()| write_u32(&mut c, size, 0)))
        })?;
        linker.func_wrap(module, "args_get", |mut c: Ctx<'_>, _argv: i32, _buf: i32| -> i32 {
            c.data_mut().count("args_get");
            SUCCESS
        })?;
        linker.func_wrap(module, "clock_time_get", |mut c: Ctx<'_>, id: i32, _precision: i64, time: i32| -> i32 {
            c.data_mut().count("clock_time_get");
            if !(0..=3).contains(&id) {
                return EINVAL;
            }
            let now = c.data().now();
            errno(write_u64(&mut c, time, now))
        })?;
        linker.func_wrap(module, "clock_res_get", |mut c: Ctx<'_>, _id: i32, res: i32| -> i32 {
            c.data_mut().count("clock_res_get");
            errno(write_u64(&mut c, res, 1))
        })?;
        linker.func_wrap(module, "random_get", |mut c: Ctx<'_>, buf: i32, len: i32| -> i32 {
            c.data_mut().count("random_get");
            let mut seed = c.data().vm_serial.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let bytes: Vec<u8> = (0..len.max(0)).map(|_| next_random(&mut seed) as u8).collect();
            errno(write(&mut c, buf, &bytes))
        })?;
        linker.func_wrap(module, "sched_yield", |mut c: Ctx<'_>| -> i32 {
            c.data_mut().count("sched_yield");
            SUCCESS
        })?;
        linker.func_wrap(module, "poll_oneoff", |mut c: Ctx<'_>, _in: i32, _out: i32, _n: i32, _events: i32| -> i32 {
            c.data_mut().count("poll_oneoff");
            ENOSYS
        })?;
        linker.func_wrap(module, "proc_exit", |mut c: Ctx<'_>, exit_code: i32| -> wasmtime::Result<()> {
            c.data_mut().count("proc_exit");
            c.data_mut().exit_code = Some(exit_code);
            Err(wasmtime::Error::msg(format!("module called proc_exit({exit_code})")))
        })?;
    }
    Ok(())
}
