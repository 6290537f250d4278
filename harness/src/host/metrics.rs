//! Metrics: defined by name (the same name gives the same metric across
//! VMs, as Envoy's stats store does), counters, gauges and histograms.

use super::memory::{code, read_string, write_u32, write_u64, Ctx};
use crate::abi::{status, MetricKind};
use crate::state::{lock, HostState, Metric};
use wasmtime::Linker;

fn with_metric<R>(state: &HostState, id: i32, f: impl FnOnce(&mut Metric) -> R) -> Result<R, i32> {
    let mut metrics = lock(&state.shared.metrics);
    let metric = metrics.get_mut((id as u32 as usize).wrapping_sub(1)).ok_or(status::NOT_FOUND)?;
    Ok(f(metric))
}

pub fn link(linker: &mut Linker<HostState>) -> anyhow::Result<()> {
    linker.func_wrap("env", "proxy_define_metric", |mut c: Ctx<'_>, kind: i32, np: i32, ns: i32, rid: i32| -> i32 {
        c.data_mut().count("proxy_define_metric");
        code((|| {
            let kind = MetricKind::from_abi(kind).ok_or(status::BAD_ARGUMENT)?;
            let name = read_string(&c, np, ns)?;
            let id = {
                let mut metrics = lock(&c.data().shared.metrics);
                match metrics.iter().position(|m| m.name == name) {
                    Some(i) if metrics.get(i).is_some_and(|m| m.kind != kind) => return Err(status::BAD_ARGUMENT),
                    Some(i) => i + 1,
                    None => {
                        metrics.push(Metric { kind, name, value: 0, samples: Vec::new() });
                        metrics.len()
                    }
                }
            };
            write_u32(&mut c, rid, id as u32)
        })())
    })?;
    linker.func_wrap("env", "proxy_increment_metric", |mut c: Ctx<'_>, id: i32, offset: i64| -> i32 {
        c.data_mut().count("proxy_increment_metric");
        code(with_metric(c.data(), id, |m| match m.kind {
            // Envoy refuses to decrement a counter.
            MetricKind::Counter if offset < 0 => Err(status::BAD_ARGUMENT),
            MetricKind::Histogram => Err(status::BAD_ARGUMENT),
            _ => {
                m.value = m.value.saturating_add(offset);
                Ok(())
            }
        })
        .and_then(|r| r))
    })?;
    linker.func_wrap("env", "proxy_record_metric", |mut c: Ctx<'_>, id: i32, value: i64| -> i32 {
        c.data_mut().count("proxy_record_metric");
        code(with_metric(c.data(), id, |m| match m.kind {
            MetricKind::Histogram => {
                m.samples.push(value as u64);
                m.value = m.samples.len() as i64;
            }
            _ => m.value = value,
        }))
    })?;
    linker.func_wrap("env", "proxy_get_metric", |mut c: Ctx<'_>, id: i32, rp: i32| -> i32 {
        c.data_mut().count("proxy_get_metric");
        code((|| {
            let value = with_metric(c.data(), id, |m| m.value)?;
            write_u64(&mut c, rp, value as u64)
        })())
    })?;
    Ok(())
}
