//! Answers to the module's own HTTP and gRPC calls, as planned when each was
//! made (the request's script, else the plugin's cluster), delivered through
//! the ABI's call callbacks; a call whose answer comes after its timeout
//! gets the failure Envoy reports for a timeout.

use crate::call_reply::CallReply;
use crate::state::{CallPlan, CallResponse, HeaderMap};
use crate::vm::{Trap, Vm};

/// What Envoy's async client delivers for a call that timed out: its
/// router's own 504 (seen in Envoy 1.40 for HTTP calls; a gRPC call then
/// closes with the status a 504 maps to, UNAVAILABLE).
fn timeout_reply() -> CallReply {
    let body = "upstream request timeout";
    CallReply::http(504, body)
        .header("content-length", &body.len().to_string())
        .header("content-type", "text/plain")
        .grpc_status(14, body)
}

fn bytes_map(pairs: &[(String, String)]) -> HeaderMap {
    pairs.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect()
}

/// Delivers the answer to call `token`, made by context `fallback_context`
/// unless the call recorded its own.
pub fn answer(vm: &mut Vm, fallback_context: u32, token: u32, grpc: bool) -> Result<(), Trap> {
    let state = vm.store.data();
    let (context, streaming) = if grpc {
        match state.grpc_calls.iter().find(|c| c.token == token) {
            Some(c) => (c.context_id, c.streaming),
            None => return Ok(()),
        }
    } else {
        match state.http_calls.iter().find(|c| c.token == token) {
            Some(c) => (c.context_id, false),
            None => return Ok(()),
        }
    };
    let context = if context == 0 { fallback_context } else { context } as i32;
    let Some(plan) = vm.store.data_mut().call_plans.remove(&token) else { return Ok(()) };
    let timed_out = plan.times_out();
    let mut reply = plan.reply;
    if timed_out {
        reply = timeout_reply();
    }
    let token = token as i32;

    if !grpc {
        let headers = if reply.fail {
            HeaderMap::new()
        } else {
            let mut h = vec![(":status".to_string(), reply.status.to_string().into_bytes())];
            h.extend(bytes_map(&reply.headers));
            h
        };
        let body = if reply.fail { Vec::new() } else { reply.body.clone() };
        let trailers = if reply.fail { HeaderMap::new() } else { bytes_map(&reply.trailers) };
        let counts = [headers.len() as i32, body.len() as i32, trailers.len() as i32];
        vm.store.data_mut().call_response = Some(CallResponse { headers, body, trailers });
        let result = vm.call("proxy_on_http_call_response", &[context, token, counts[0], counts[1], counts[2]]);
        vm.store.data_mut().call_response = None;
        return result.map(|_| ());
    }

    let ok = reply.grpc_status == 0 && !reply.fail;
    let code = if reply.fail { 14 } else { reply.grpc_status };
    vm.store.data_mut().grpc_status = Some((code, reply.grpc_message.clone()));
    vm.store.data_mut().call_response = Some(CallResponse {
        headers: bytes_map(&reply.headers),
        body: reply.body.clone(),
        trailers: bytes_map(&reply.trailers),
    });
    let result = (|| {
        if streaming && !reply.headers.is_empty() {
            vm.call("proxy_on_grpc_receive_initial_metadata", &[context, token, reply.headers.len() as i32])?;
        }
        // A unary call that succeeds gets only its message; one that fails
        // only its close, as Envoy's async client reports them.
        if ok && (!streaming || !reply.body.is_empty()) {
            vm.call("proxy_on_grpc_receive", &[context, token, reply.body.len() as i32])?;
        }
        if streaming && !reply.trailers.is_empty() {
            vm.call("proxy_on_grpc_receive_trailing_metadata", &[context, token, reply.trailers.len() as i32])?;
        }
        if streaming || !ok {
            vm.call("proxy_on_grpc_close", &[context, token, code as i32])?;
        }
        Ok(())
    })();
    vm.store.data_mut().call_response = None;
    result
}

/// Bound on call-response rounds per callback, against modules that keep
/// calling from their own call callbacks.
const MAX_CALL_ROUNDS: usize = 64;

/// Answers the calls a callback made (and announces queue items), through
/// the module's call callbacks, until nothing is pending. Answers arrive in
/// the order of their virtual arrival time; the clock moves to each one.
pub fn deliver_all(vm: &mut Vm, context: u32) -> Result<(), Trap> {
    for _ in 0..MAX_CALL_ROUNDS {
        let pending = std::mem::take(&mut vm.store.data_mut().pending_calls);
        let ready = {
            let state = vm.store.data();
            let mut queue = crate::state::lock(&state.shared.queue_ready);
            let (mine, others): (Vec<_>, Vec<_>) = queue.drain(..).partition(|(owner, _, _)| *owner == state.vm_serial);
            *queue = others;
            mine
        };
        if pending.is_empty() && ready.is_empty() {
            return Ok(());
        }
        for (_, root, token) in ready {
            vm.call("proxy_on_queue_ready", &[root as i32, token as i32])?;
        }
        let mut pending: Vec<(u64, u32, bool)> = {
            let plans = &vm.store.data().call_plans;
            pending.into_iter().map(|(token, grpc)| (plans.get(&token).map_or(0, CallPlan::due), token, grpc)).collect()
        };
        pending.sort_by_key(|(due, _, _)| *due);
        for (due, token, grpc) in pending {
            let shared = std::sync::Arc::clone(&vm.store.data().shared);
            shared.advance_to(due);
            answer(vm, context, token, grpc)?;
        }
    }
    Ok(())
}
