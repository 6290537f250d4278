//! Answers to the module's own HTTP and gRPC calls, from the clusters the
//! plugin was configured with, delivered through the ABI's call callbacks.

use crate::plugin::Plugin;
use crate::state::{CallResponse, HeaderMap};
use crate::vm::Trap;

fn bytes_map(pairs: &[(String, String)]) -> HeaderMap {
    pairs.iter().map(|(k, v)| (k.clone(), v.clone().into_bytes())).collect()
}

/// Delivers the answer to call `token`, made by context `fallback_context`
/// unless the call recorded its own.
pub fn answer(plugin: &mut Plugin, fallback_context: u32, token: u32, grpc: bool) -> Result<(), Trap> {
    let state = plugin.vm.store.data();
    let (context, cluster, streaming) = if grpc {
        match state.grpc_calls.iter().find(|c| c.token == token) {
            Some(c) => (c.context_id, c.cluster.clone(), c.streaming),
            None => return Ok(()),
        }
    } else {
        match state.http_calls.iter().find(|c| c.token == token) {
            Some(c) => (c.context_id, c.cluster.clone(), false),
            None => return Ok(()),
        }
    };
    let context = if context == 0 { fallback_context } else { context } as i32;
    let Some(reply) = state.clusters.get(&cluster).cloned() else { return Ok(()) };
    let token = token as i32;
    let vm = &mut plugin.vm;

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
