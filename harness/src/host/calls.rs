//! Outgoing HTTP and gRPC calls. The harness records each call and answers
//! it from the test's script once the callback that made it returns.

use super::memory::{code, read, read_string, write_u32, Ctx};
use crate::abi::status;
use crate::state::{GrpcCall, HostState, HttpCall};
use filter_common::codec::decode_pairs;
use wasmtime::Linker;

fn text_pairs(bytes: &[u8]) -> Result<Vec<(String, String)>, i32> {
    let pairs = decode_pairs(bytes).map_err(|_| status::SERIALIZATION_FAILURE)?;
    Ok(pairs.into_iter().map(|(k, v)| (k, String::from_utf8_lossy(&v).into_owned())).collect())
}

fn find_grpc(state: &mut HostState, token: i32) -> Result<&mut GrpcCall, i32> {
    state.grpc_calls.iter_mut().find(|g| g.token == token as u32).ok_or(status::NOT_FOUND)
}

/// Reads a gRPC call's cluster, service, method and initial metadata from
/// (pointer, size) pairs; the cluster must be one the plugin declared.
fn grpc_target(c: &Ctx<'_>, target: [i32; 8]) -> Result<GrpcCall, i32> {
    let [up, us, sp, ss, mp, ms, ip, is] = target;
    let cluster = read_string(c, up, us)?;
    if !c.data().knows_cluster(&cluster) {
        return Err(status::BAD_ARGUMENT);
    }
    Ok(GrpcCall {
        token: 0,
        // Envoy makes calls on the root context and answers them there.
        context_id: c.data().root_context_id,
        cluster,
        service: read_string(c, sp, ss)?,
        method: read_string(c, mp, ms)?,
        initial_metadata: text_pairs(&read(c, ip, is)?)?,
        messages: Vec::new(),
        streaming: false,
        cancelled: false,
        closed: false,
    })
}

/// Records a gRPC call under a new token, answered at once if `unary`.
fn open_grpc(state: &mut HostState, call: GrpcCall, unary: bool, timeout_ms: u32) -> u32 {
    let token = state.take_token();
    if let Some(plan) = state.plan_call(&call.cluster, timeout_ms) {
        state.call_plans.insert(token, plan);
    }
    state.grpc_calls.push(GrpcCall { token, ..call });
    if unary {
        state.pending_calls.push((token, true));
    }
    token
}

pub fn link(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: Ctx<'_>, up: i32, us: i32, hp: i32, hs: i32, bp: i32, bs: i32, tp: i32, ts: i32, timeout: i32, rt: i32| -> i32 {
            c.data_mut().count("proxy_http_call");
            code((|| {
                let cluster = read_string(&c, up, us)?;
                // Envoy refuses a call to a cluster it does not know.
                if !c.data().knows_cluster(&cluster) {
                    return Err(status::BAD_ARGUMENT);
                }
                let headers = text_pairs(&read(&c, hp, hs)?)?;
                // Envoy refuses a call without the pseudo-headers it needs.
                for required in [":method", ":path", ":authority"] {
                    if !headers.iter().any(|(k, _)| k == required) {
                        return Err(status::BAD_ARGUMENT);
                    }
                }
                let body = read(&c, bp, bs)?;
                let trailers = text_pairs(&read(&c, tp, ts)?)?;
                let state = c.data_mut();
                let token = state.take_token();
                if let Some(plan) = state.plan_call(&cluster, timeout as u32) {
                    state.call_plans.insert(token, plan);
                }
                // Envoy makes calls on the root context and answers them there.
                let context_id = state.root_context_id;
                let received_headers = crate::envoy_codec::call_request(headers.clone(), body.len(), timeout as u32);
                state.http_calls.push(HttpCall { token, context_id, cluster, headers, body, trailers, timeout_ms: timeout as u32, received_headers });
                state.pending_calls.push((token, false));
                write_u32(&mut c, rt, token)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_call",
        |mut c: Ctx<'_>, up: i32, us: i32, sp: i32, ss: i32, mp: i32, ms: i32, ip: i32, is: i32, dp: i32, ds: i32, timeout: i32, rt: i32| -> i32 {
            c.data_mut().count("proxy_grpc_call");
            code((|| {
                let target = [up, us, sp, ss, mp, ms, ip, is];
                let call = GrpcCall { messages: vec![read(&c, dp, ds)?], ..grpc_target(&c, target)? };
                let token = open_grpc(c.data_mut(), call, true, timeout as u32);
                write_u32(&mut c, rt, token)
            })())
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_stream",
        |mut c: Ctx<'_>, up: i32, us: i32, sp: i32, ss: i32, mp: i32, ms: i32, ip: i32, is: i32, rt: i32| -> i32 {
            c.data_mut().count("proxy_grpc_stream");
            code((|| {
                let call = GrpcCall { streaming: true, ..grpc_target(&c, [up, us, sp, ss, mp, ms, ip, is])? };
                // A stream is answered once the module closes its side.
                let token = open_grpc(c.data_mut(), call, false, 0);
                write_u32(&mut c, rt, token)
            })())
        },
    )?;
    linker.func_wrap("env", "proxy_grpc_send", |mut c: Ctx<'_>, token: i32, mp: i32, ms: i32, end: i32| -> i32 {
        c.data_mut().count("proxy_grpc_send");
        code((|| {
            let message = read(&c, mp, ms)?;
            let state = c.data_mut();
            let call = find_grpc(state, token)?;
            if call.closed || call.cancelled {
                return Err(status::BAD_ARGUMENT);
            }
            call.messages.push(message);
            if end != 0 {
                call.closed = true;
                state.pending_calls.push((token as u32, true));
            }
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_grpc_cancel", |mut c: Ctx<'_>, token: i32| -> i32 {
        c.data_mut().count("proxy_grpc_cancel");
        code((|| {
            let state = c.data_mut();
            find_grpc(state, token)?.cancelled = true;
            state.pending_calls.retain(|(t, _)| *t != token as u32);
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_grpc_close", |mut c: Ctx<'_>, token: i32| -> i32 {
        c.data_mut().count("proxy_grpc_close");
        code((|| {
            let state = c.data_mut();
            let call = find_grpc(state, token)?;
            let was_open = !call.closed;
            call.closed = true;
            if was_open && call.streaming && !state.pending_calls.iter().any(|(t, _)| *t == token as u32) {
                state.pending_calls.push((token as u32, true));
            }
            Ok(())
        })())
    })?;
    Ok(())
}
