//! Shared data (with compare-and-swap versions) and shared queues, shared by
//! every VM of the process, keyed by VM id as Envoy keys them.

use super::memory::{code, hand_over, read, read_string, write_u32, Ctx};
use crate::abi::status;
use crate::state::{lock, HostState, Queue};
use wasmtime::Linker;

pub fn link(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    linker.func_wrap("env", "proxy_get_shared_data", |mut c: Ctx<'_>, kp: i32, ks: i32, rp: i32, rs: i32, rc: i32| -> i32 {
        c.data_mut().count("proxy_get_shared_data");
        code((|| {
            let key = read_string(&c, kp, ks)?;
            let state = c.data();
            let entry = state.shared.shared_data(&state.plugin.vm_id, &key).ok_or(status::NOT_FOUND)?;
            hand_over(&mut c, &entry.0, rp, rs)?;
            write_u32(&mut c, rc, entry.1)
        })())
    })?;
    linker.func_wrap("env", "proxy_set_shared_data", |mut c: Ctx<'_>, kp: i32, ks: i32, vp: i32, vs: i32, cas: i32| -> i32 {
        c.data_mut().count("proxy_set_shared_data");
        code((|| {
            let key = read_string(&c, kp, ks)?;
            let value = read(&c, vp, vs)?;
            let state = c.data();
            let mut data = lock(&state.shared.data);
            let entry = data.entry((state.plugin.vm_id.clone(), key)).or_insert((Vec::new(), 0));
            // cas 0 writes unconditionally; otherwise the version must match.
            if cas != 0 && cas as u32 != entry.1 {
                return Err(status::CAS_MISMATCH);
            }
            *entry = (value, entry.1.wrapping_add(1).max(1));
            Ok(())
        })())
    })?;
    linker.func_wrap("env", "proxy_register_shared_queue", |mut c: Ctx<'_>, np: i32, ns: i32, rt: i32| -> i32 {
        c.data_mut().count("proxy_register_shared_queue");
        code((|| {
            let name = read_string(&c, np, ns)?;
            let state = c.data();
            // Queue notifications go to the root context, wherever the queue was registered.
            let owner_context = state.root_context_id;
            let mut queues = lock(&state.shared.queues);
            let vm_id = state.plugin.vm_id.clone();
            let token = match queues.iter().position(|q| q.vm_id == vm_id && q.name == name) {
                Some(i) => {
                    if let Some(q) = queues.get_mut(i) {
                        q.owner_vm = state.vm_serial;
                        q.owner_context = owner_context;
                    }
                    i + 1
                }
                None => {
                    queues.push(Queue { vm_id, name, items: Default::default(), owner_vm: state.vm_serial, owner_context });
                    queues.len()
                }
            };
            drop(queues);
            write_u32(&mut c, rt, token as u32)
        })())
    })?;
    linker.func_wrap("env", "proxy_resolve_shared_queue", |mut c: Ctx<'_>, vp: i32, vs: i32, np: i32, ns: i32, rt: i32| -> i32 {
        c.data_mut().count("proxy_resolve_shared_queue");
        code((|| {
            let vm_id = read_string(&c, vp, vs)?;
            let name = read_string(&c, np, ns)?;
            let state = c.data();
            let vm_id = if vm_id.is_empty() { state.plugin.vm_id.clone() } else { vm_id };
            let token = lock(&state.shared.queues)
                .iter()
                .position(|q| q.vm_id == vm_id && q.name == name)
                .ok_or(status::NOT_FOUND)?;
            write_u32(&mut c, rt, token as u32 + 1)
        })())
    })?;
    linker.func_wrap("env", "proxy_dequeue_shared_queue", |mut c: Ctx<'_>, token: i32, rp: i32, rs: i32| -> i32 {
        c.data_mut().count("proxy_dequeue_shared_queue");
        code((|| {
            let item = {
                let mut queues = lock(&c.data().shared.queues);
                let queue = queues.get_mut((token as u32 as usize).wrapping_sub(1)).ok_or(status::NOT_FOUND)?;
                queue.items.pop_front().ok_or(status::EMPTY)?
            };
            hand_over(&mut c, &item, rp, rs)
        })())
    })?;
    linker.func_wrap("env", "proxy_enqueue_shared_queue", |mut c: Ctx<'_>, token: i32, vp: i32, vs: i32| -> i32 {
        c.data_mut().count("proxy_enqueue_shared_queue");
        code((|| {
            let value = read(&c, vp, vs)?;
            let state = c.data();
            let mut queues = lock(&state.shared.queues);
            let index = (token as u32 as usize).wrapping_sub(1);
            let queue = queues.get_mut(index).ok_or(status::NOT_FOUND)?;
            queue.items.push_back(value);
            let notice = (queue.owner_vm, queue.owner_context, token as u32);
            drop(queues);
            lock(&state.shared.queue_ready).push(notice);
            Ok(())
        })())
    })?;
    Ok(())
}
