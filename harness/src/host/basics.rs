//! Logging, time, ticks, properties, stream control, local responses and
//! foreign functions.

use super::memory::{code, hand_over, read, read_string, write_u32, write_u64, Ctx, Status};
use crate::abi::{status, stream_type, LogLevel};
use crate::properties::{decode_path, lookup};
use crate::state::{HostState, LocalResponse};
use filter_common::codec::decode_pairs;
use wasmtime::Linker;

fn stream_flag(state: &mut HostState, which: i32, close: bool) -> Status {
    let stream = state.stream.as_mut().ok_or(status::BAD_ARGUMENT)?;
    match (which, close) {
        (stream_type::REQUEST, false) => stream.resume_request = true,
        (stream_type::RESPONSE, false) => stream.resume_response = true,
        (stream_type::REQUEST, true) => stream.close_request = true,
        (stream_type::RESPONSE, true) => stream.close_response = true,
        _ => return Err(status::BAD_ARGUMENT),
    }
    Ok(())
}

fn clear_route_cache(state: &mut HostState) -> Status {
    let stream = state.stream.as_mut().ok_or(status::BAD_ARGUMENT)?;
    stream.route_cache_cleared = true;
    Ok(())
}

/// `proxy_get_log_level` exists from ABI 0.2.1 on; Envoy does not offer it
/// to 0.2.0 modules.
pub fn link_log_level(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    linker.func_wrap("env", "proxy_get_log_level", |mut c: Ctx<'_>, rp: i32| -> i32 {
        c.data_mut().count("proxy_get_log_level");
        let level = c.data().log_level as u32;
        code(write_u32(&mut c, rp, level))
    })?;
    Ok(())
}

pub fn link(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    linker.func_wrap("env", "proxy_log", |mut c: Ctx<'_>, level: i32, p: i32, s: i32| -> i32 {
        c.data_mut().count("proxy_log");
        code((|| {
            let message = read_string(&c, p, s)?;
            c.data_mut().log(LogLevel::from_abi(level), message);
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_get_current_time_nanoseconds", |mut c: Ctx<'_>, rp: i32| -> i32 {
        c.data_mut().count("proxy_get_current_time_nanoseconds");
        let now = c.data().now();
        code(write_u64(&mut c, rp, now))
    })?;
    linker.func_wrap("env", "proxy_set_tick_period_milliseconds", |mut c: Ctx<'_>, period: i32| -> i32 {
        c.data_mut().count("proxy_set_tick_period_milliseconds");
        let state = c.data_mut();
        state.tick_period_ms = period as u32;
        // Envoy re-arms the timer: the first tick comes one period from now.
        let now = state.shared.virtual_nanos.load(std::sync::atomic::Ordering::Relaxed);
        state.next_tick_at = now.saturating_add(u64::from(period as u32) * 1_000_000);
        status::OK
    })?;
    linker.func_wrap("env", "proxy_get_property", |mut c: Ctx<'_>, p: i32, s: i32, rp: i32, rs: i32| -> i32 {
        c.data_mut().count("proxy_get_property");
        code((|| {
            let path = decode_path(&read(&c, p, s)?);
            let value = lookup(c.data(), &path).ok_or(status::NOT_FOUND)?;
            hand_over(&mut c, &value, rp, rs)
        })())
    })?;
    linker.func_wrap("env", "proxy_set_property", |mut c: Ctx<'_>, p: i32, s: i32, vp: i32, vs: i32| -> i32 {
        c.data_mut().count("proxy_set_property");
        code((|| {
            let path = decode_path(&read(&c, p, s)?);
            let value = read(&c, vp, vs)?;
            let state = c.data_mut();
            match state.stream.as_mut() {
                Some(stream) => stream.filter_state.insert(path, value),
                None => state.root_filter_state.insert(path, value),
            };
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_continue_stream", |mut c: Ctx<'_>, which: i32| -> i32 {
        c.data_mut().count("proxy_continue_stream");
        code(stream_flag(c.data_mut(), which, false))
    })?;
    linker.func_wrap("env", "proxy_close_stream", |mut c: Ctx<'_>, which: i32| -> i32 {
        c.data_mut().count("proxy_close_stream");
        code(stream_flag(c.data_mut(), which, true))
    })?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: Ctx<'_>, code_: i32, dp: i32, ds: i32, bp: i32, bs: i32, hp: i32, hs: i32, grpc: i32| -> i32 {
            c.data_mut().count("proxy_send_local_response");
            code((|| {
                let details = read_string(&c, dp, ds)?;
                let body = read(&c, bp, bs)?;
                let headers = decode_pairs(&read(&c, hp, hs)?).map_err(|_| status::SERIALIZATION_FAILURE)?;
                let headers = headers.into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned())).collect();
                let stream = c.data_mut().stream.as_mut().ok_or(status::BAD_ARGUMENT)?;
                stream.local_response = Some(LocalResponse { status: code_ as u32, details, headers, body, grpc_status: grpc });
                Ok(())
            })())
        },
    )?;
    linker.func_wrap("env", "proxy_get_status", |mut c: Ctx<'_>, cp: i32, mp: i32, ms: i32| -> i32 {
        c.data_mut().count("proxy_get_status");
        code((|| {
            let (grpc_code, message) = c.data().grpc_status.clone().ok_or(status::NOT_FOUND)?;
            write_u32(&mut c, cp, grpc_code)?;
            hand_over(&mut c, message.as_bytes(), mp, ms)
        })())
    })?;
    linker.func_wrap("env", "proxy_set_effective_context", |mut c: Ctx<'_>, id: i32| -> i32 {
        c.data_mut().count("proxy_set_effective_context");
        // Every host call acts on the stream or root context the harness is
        // running; the call only has to name one of them.
        let state = c.data();
        let id = id as u32;
        let known = id == state.root_context_id || state.stream.as_ref().is_some_and(|s| s.context_id == id);
        if known {
            c.data_mut().current_context = id;
            status::OK
        } else {
            status::BAD_ARGUMENT
        }
    })?;
    linker.func_wrap("env", "proxy_done", |mut c: Ctx<'_>| -> i32 {
        c.data_mut().count("proxy_done");
        // Only a root context that deferred its shutdown may say it is done.
        let state = c.data_mut();
        if !state.done_pending {
            return status::NOT_FOUND;
        }
        state.done_called = true;
        status::OK
    })?;
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |mut c: Ctx<'_>, np: i32, ns: i32, _ap: i32, _as: i32, _rp: i32, _rs: i32| -> i32 {
            c.data_mut().count("proxy_call_foreign_function");
            code((|| {
                let name = read_string(&c, np, ns)?;
                match name.as_str() {
                    "clear_route_cache" => clear_route_cache(c.data_mut()),
                    // Envoy answers an unregistered name with NotFound.
                    _ => Err(status::NOT_FOUND),
                }
            })())
        },
    )?;
    Ok(())
}
