//! WASI preview 1 as Envoy's host (proxy-wasm-cpp-host) provides it: every
//! function but `proc_raise`, most as stubs with its error codes. Writes to
//! stdout and stderr are logged (info and error), each write one record;
//! clocks, random bytes and the environment from the VM config are real; there
//! are no files, sockets or arguments.

use crate::abi::LogLevel;
use super::memory::{read, write, write_u32, write_u64, Ctx};
use crate::state::HostState;
use wasmtime::Linker;

const SUCCESS: i32 = 0;
const EBADF: i32 = 8;
const ENOTDIR: i32 = 20;
const EFAULT: i32 = 21;
const EINVAL: i32 = 28;
const ENOENT: i32 = 44;
const ENOSYS: i32 = 52;
const ENOTSUP: i32 = 58;

/// Largest `random_get` Envoy serves.
const RANDOM_MAX: i32 = 64 * 1024;

/// Module names WASI functions are imported under.
const MODULES: [&str; 2] = ["wasi_snapshot_preview1", "wasi_unstable"];

fn errno(result: Result<(), i32>) -> i32 {
    match result {
        Ok(()) => SUCCESS,
        Err(_) => EFAULT,
    }
}

fn is_stdio(fd: i32) -> bool {
    fd == 1 || fd == 2
}

/// Gathers an iovec list and logs it as one record (stdout at info, stderr
/// at error), less one trailing newline. Returns the bytes written.
fn write_iovecs(c: &mut Ctx<'_>, fd: i32, iovs: i32, count: i32) -> Result<u32, i32> {
    let level = match fd {
        1 => LogLevel::Info,
        2 => LogLevel::Error,
        _ => return Err(EBADF),
    };
    let mut text = Vec::new();
    for i in 0..count {
        let entry = read(c, iovs.wrapping_add(i.wrapping_mul(8)), 8).map_err(|_| EFAULT)?;
        let field = |at: usize| entry.get(at..at + 4).and_then(|b| b.try_into().ok()).map(i32::from_le_bytes);
        let (Some(ptr), Some(len)) = (field(0), field(4)) else { return Err(EFAULT) };
        if len != 0 {
            text.extend(read(c, ptr, len).map_err(|_| EFAULT)?);
        }
    }
    let written = text.len() as u32;
    if !text.is_empty() {
        let line = text.strip_suffix(b"\n").unwrap_or(&text);
        c.data_mut().log(level, String::from_utf8_lossy(line).into_owned());
    }
    Ok(written)
}

fn next_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Registers a function under both module names.
macro_rules! wasi {
    ($linker:expr, $name:literal, |$c:ident $(, $arg:ident : $ty:ty)*| $body:block) => {
        for module in MODULES {
            $linker.func_wrap(module, $name, |mut $c: Ctx<'_> $(, $arg: $ty)*| -> i32 {
                $c.data_mut().count($name);
                $body
            })?;
        }
    };
}

pub fn link(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    wasi!(linker, "fd_write", |c, fd: i32, iovs: i32, count: i32, written: i32| {
        match write_iovecs(&mut c, fd, iovs, count) {
            Ok(n) => errno(write_u32(&mut c, written, n)),
            Err(e) => e,
        }
    });
    wasi!(linker, "fd_pwrite", |c, fd: i32, iovs: i32, count: i32, _offset: i64, written: i32| {
        match write_iovecs(&mut c, fd, iovs, count) {
            Ok(n) => errno(write_u32(&mut c, written, n)),
            Err(e) => e,
        }
    });
    wasi!(linker, "fd_read", |c, _fd: i32, _iovs: i32, _count: i32, _read: i32| { ENOSYS });
    wasi!(linker, "fd_pread", |c, _fd: i32, _iovs: i32, _count: i32, _offset: i64, _read: i32| { ENOSYS });
    // Envoy logs these as errors and reports success.
    wasi!(linker, "fd_seek", |c, _fd: i32, _offset: i64, _whence: i32, _new: i32| {
        c.data_mut().log(LogLevel::Error, "wasi_unstable fd_seek".into());
        SUCCESS
    });
    wasi!(linker, "fd_close", |c, _fd: i32| {
        c.data_mut().log(LogLevel::Error, "wasi_unstable fd_close".into());
        SUCCESS
    });
    wasi!(linker, "fd_fdstat_get", |c, fd: i32, stat: i32| {
        if !is_stdio(fd) {
            return EBADF;
        }
        // filetype 0, flags 0, rights_base FD_WRITE (64), rights_inheriting 0.
        let mut bytes = vec![0u8; 8];
        bytes.extend_from_slice(&64u64.to_le_bytes());
        bytes.extend_from_slice(&[0u8; 8]);
        errno(write(&mut c, stat, &bytes))
    });
    wasi!(linker, "fd_fdstat_set_flags", |c, _fd: i32, _flags: i32| { ENOSYS });
    wasi!(linker, "fd_fdstat_set_rights", |c, fd: i32, _base: i64, _inheriting: i64| { if is_stdio(fd) { SUCCESS } else { EBADF } });
    wasi!(linker, "fd_prestat_get", |c, _fd: i32, _ptr: i32| { EBADF });
    wasi!(linker, "fd_prestat_dir_name", |c, _fd: i32, _ptr: i32, _len: i32| { ENOSYS });
    wasi!(linker, "fd_filestat_get", |c, _fd: i32, _ptr: i32| { EBADF });
    wasi!(linker, "fd_filestat_set_size", |c, fd: i32, _size: i64| { if is_stdio(fd) { SUCCESS } else { EBADF } });
    wasi!(linker, "fd_filestat_set_times", |c, fd: i32, _atim: i64, _mtim: i64, _flags: i32| { if is_stdio(fd) { SUCCESS } else { EBADF } });
    wasi!(linker, "fd_advise", |c, _fd: i32, _offset: i64, _len: i64, _advice: i32| { SUCCESS });
    wasi!(linker, "fd_allocate", |c, fd: i32, _offset: i64, _len: i64| { if is_stdio(fd) { SUCCESS } else { EBADF } });
    wasi!(linker, "fd_datasync", |c, fd: i32| { if is_stdio(fd) { SUCCESS } else { EBADF } });
    wasi!(linker, "fd_sync", |c, fd: i32| { if is_stdio(fd) { SUCCESS } else { EBADF } });
    wasi!(linker, "fd_renumber", |c, fd: i32, to: i32| { if is_stdio(fd) && is_stdio(to) { ENOTSUP } else { EBADF } });
    wasi!(linker, "fd_tell", |c, fd: i32, offset: i32| {
        if !is_stdio(fd) {
            return EBADF;
        }
        errno(write_u64(&mut c, offset, 0))
    });
    wasi!(linker, "fd_readdir", |c, _fd: i32, _buf: i32, _len: i32, _cookie: i64, used: i32| {
        match write_u32(&mut c, used, 0) {
            Ok(()) => ENOTDIR,
            Err(_) => EFAULT,
        }
    });
    wasi!(linker, "path_open", |c, _fd: i32, _dirflags: i32, _path: i32, _len: i32, _oflags: i32, _base: i64, _inheriting: i64, _fdflags: i32, _opened: i32| { ENOENT });
    wasi!(linker, "path_filestat_get", |c, _fd: i32, _flags: i32, _path: i32, _len: i32, _buf: i32| { ENOTSUP });
    wasi!(linker, "path_filestat_set_times", |c, _fd: i32, _flags: i32, _path: i32, _len: i32, _atim: i64, _mtim: i64, _fst: i32| { ENOTSUP });
    wasi!(linker, "path_create_directory", |c, _fd: i32, _path: i32, _len: i32| { ENOTSUP });
    wasi!(linker, "path_link", |c, _old_fd: i32, _flags: i32, _old: i32, _old_len: i32, _new_fd: i32, _new: i32, _new_len: i32| { ENOTSUP });
    wasi!(linker, "path_readlink", |c, _fd: i32, _path: i32, _len: i32, _buf: i32, _buf_len: i32, used: i32| {
        match write_u32(&mut c, used, 0) {
            Ok(()) => ENOTSUP,
            Err(_) => EFAULT,
        }
    });
    wasi!(linker, "path_remove_directory", |c, _fd: i32, _path: i32, _len: i32| { ENOTSUP });
    wasi!(linker, "path_rename", |c, _fd: i32, _old: i32, _old_len: i32, _new_fd: i32, _new: i32, _new_len: i32| { ENOTSUP });
    wasi!(linker, "path_symlink", |c, _old: i32, _old_len: i32, _fd: i32, _new: i32, _new_len: i32| { ENOTSUP });
    wasi!(linker, "path_unlink_file", |c, _fd: i32, _path: i32, _len: i32| { ENOTSUP });
    wasi!(linker, "sock_accept", |c, _fd: i32, _flags: i32, accepted: i32| {
        match write_u32(&mut c, accepted, 0) {
            Ok(()) => ENOTSUP,
            Err(_) => EFAULT,
        }
    });
    wasi!(linker, "sock_recv", |c, _fd: i32, _data: i32, _len: i32, _flags: i32, size: i32, out_flags: i32| {
        match write_u32(&mut c, size, 0).and_then(|()| write(&mut c, out_flags, &[0, 0])) {
            Ok(()) => ENOTSUP,
            Err(_) => EFAULT,
        }
    });
    wasi!(linker, "sock_send", |c, _fd: i32, _data: i32, _len: i32, _flags: i32, size: i32| {
        match write_u32(&mut c, size, 0) {
            Ok(()) => ENOTSUP,
            Err(_) => EFAULT,
        }
    });
    wasi!(linker, "sock_shutdown", |c, _fd: i32, _how: i32| { ENOTSUP });
    wasi!(linker, "environ_sizes_get", |c, count: i32, size: i32| {
        let env = env_strings(c.data());
        let total: usize = env.iter().map(Vec::len).sum();
        errno(write_u32(&mut c, count, env.len() as u32).and_then(|()| write_u32(&mut c, size, total as u32)))
    });
    wasi!(linker, "environ_get", |c, pointers: i32, buffer: i32| {
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
    });
    wasi!(linker, "args_sizes_get", |c, count: i32, size: i32| {
        errno(write_u32(&mut c, count, 0).and_then(|()| write_u32(&mut c, size, 0)))
    });
    wasi!(linker, "args_get", |c, _argv: i32, _buf: i32| { SUCCESS });
    wasi!(linker, "clock_time_get", |c, id: i32, _precision: i64, time: i32| {
        // Realtime and monotonic only; the CPU-time clocks are not supported.
        if !(0..=1).contains(&id) {
            return ENOTSUP;
        }
        let now = c.data().now();
        errno(write_u64(&mut c, time, now))
    });
    wasi!(linker, "clock_res_get", |c, id: i32, res: i32| {
        if !(0..=1).contains(&id) {
            return ENOTSUP;
        }
        errno(write_u64(&mut c, res, 1))
    });
    wasi!(linker, "random_get", |c, buf: i32, len: i32| {
        if !(0..=RANDOM_MAX).contains(&len) {
            return EINVAL;
        }
        // Deterministic per VM, fresh on every call: repeatable runs, no repeats.
        let state = &mut c.data_mut().random_state;
        let bytes: Vec<u8> = (0..len).map(|_| next_random(state) as u8).collect();
        errno(write(&mut c, buf, &bytes))
    });
    wasi!(linker, "sched_yield", |c| { SUCCESS });
    wasi!(linker, "poll_oneoff", |c, _in: i32, _out: i32, _n: i32, events: i32| {
        // No events, success: what Envoy answers (Go runtimes need it).
        errno(write_u32(&mut c, events, 0))
    });
    for module in MODULES {
        // Envoy logs proc_exit and returns to the module, whose code after
        // it (Rust: `-> !`) traps; the harness stops it at once.
        linker.func_wrap(module, "proc_exit", |mut c: Ctx<'_>, exit_code: i32| -> wasmtime::Result<()> {
            c.data_mut().count("proc_exit");
            c.data_mut().exit_code = Some(exit_code);
            Err(wasmtime::Error::msg(format!("module called proc_exit({exit_code})")))
        })?;
    }
    Ok(())
}

fn env_strings(state: &HostState) -> Vec<Vec<u8>> {
    state.plugin.env.iter().map(|(k, v)| format!("{k}={v}\0").into_bytes()).collect()
}
