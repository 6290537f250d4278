//! Prometheus-visible metrics over `proxy_define_metric`: define once at
//! configure time, then bump from the request path without a lookup by name.

use crate::host::{Host, HostResult, MetricType};

/// A defined metric. Updates cannot fail the request: a host that refuses one
/// has nothing useful to tell the filter, so the error is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    id: u32,
    kind: MetricType,
}

impl Metric {
    /// Defines (or finds, if the VM already defined it) the metric `name`.
    /// Envoy shares a name's value across the plugin's VMs.
    pub fn define(host: &dyn Host, kind: MetricType, name: &str) -> HostResult<Self> {
        host.define_metric(kind, name).map(|id| Self { id, kind })
    }

    pub fn counter(host: &dyn Host, name: &str) -> HostResult<Self> {
        Self::define(host, MetricType::Counter, name)
    }

    pub fn gauge(host: &dyn Host, name: &str) -> HostResult<Self> {
        Self::define(host, MetricType::Gauge, name)
    }

    pub fn histogram(host: &dyn Host, name: &str) -> HostResult<Self> {
        Self::define(host, MetricType::Histogram, name)
    }

    pub fn kind(&self) -> MetricType {
        self.kind
    }

    /// Adds one to a counter or gauge.
    pub fn inc(&self, host: &dyn Host) {
        self.add(host, 1);
    }

    /// Adds `delta` (negative only makes sense for gauges).
    pub fn add(&self, host: &dyn Host, delta: i64) {
        let _ = host.increment_metric(self.id, delta);
    }

    /// Sets a gauge, or records one observation into a histogram.
    pub fn record(&self, host: &dyn Host, value: u64) {
        let _ = host.record_metric(self.id, value);
    }

    pub fn value(&self, host: &dyn Host) -> HostResult<u64> {
        host.metric(self.id)
    }
}

/// Counts one on a metric the filter may have failed to define (a host that
/// refused the definition): metrics never fail a request.
pub fn count(host: &dyn Host, metric: Option<&Metric>) {
    count_n(host, metric, 1);
}

/// Counts `n` (nothing for 0, or beyond `i64`).
pub fn count_n(host: &dyn Host, metric: Option<&Metric>, n: u64) {
    if let (Some(m), Ok(n)) = (metric, i64::try_from(n)) {
        if n > 0 {
            m.add(host, n);
        }
    }
}

/// A user-given name (route, policy) as part of a metric name: characters
/// Prometheus would not take once dots become underscores become `_`.
pub fn name_part(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock::MockHost;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn counters_count_and_redefinition_finds_the_same_metric() {
        let host = MockHost::new();
        let allowed = Metric::counter(&host, "authz.allowed").unwrap();
        let denied = Metric::counter(&host, "authz.denied").unwrap();
        allowed.inc(&host);
        allowed.add(&host, 2);
        denied.inc(&host);
        assert_eq!(allowed.value(&host).unwrap(), 3);
        assert_eq!(host.metric_value("authz.denied"), Some(1));
        let again = Metric::counter(&host, "authz.allowed").unwrap();
        assert_eq!(again, allowed);
    }

    #[test]
    fn optional_metrics_and_name_parts() {
        let host = MockHost::new();
        let m = Metric::counter(&host, "c").unwrap();
        count(&host, Some(&m));
        count_n(&host, Some(&m), 3);
        count_n(&host, Some(&m), 0);
        count(&host, None);
        assert_eq!(m.value(&host).unwrap(), 4);
        assert_eq!(name_part("payments to/billing.v2"), "payments_to_billing_v2");
    }

    #[test]
    fn gauges_are_set() {
        let host = MockHost::new();
        let g = Metric::gauge(&host, "budget.tokens").unwrap();
        g.record(&host, 7);
        g.add(&host, -2);
        assert_eq!(g.value(&host).unwrap(), 5);
        assert_eq!(g.kind(), MetricType::Gauge);
    }
}
