//! What the host keeps: per VM (`HostState`, the wasmtime store's data) and
//! per process (`SharedState`: shared data, queues and metrics, which Envoy
//! shares between all VMs of a proxy).

use crate::abi::{LogLevel, MetricKind};
use crate::call_reply::CallReply;
use crate::property_path::PropertyValue;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use wasmtime::{Memory, TypedFunc};

/// A header map: lower-case names, raw values, in order.
pub type HeaderMap = Vec<(String, Vec<u8>)>;

/// Locks a mutex, recovering the data if another test thread panicked with it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Shared-data entries: (vm_id, key) → (value, CAS version).
pub type SharedData = HashMap<(String, String), (Vec<u8>, u32)>;

/// Process-wide state, shared by the VMs of every plugin run against it.
#[derive(Debug, Default)]
pub struct SharedState {
    pub data: Mutex<SharedData>,
    pub queues: Mutex<Vec<Queue>>,
    pub metrics: Mutex<Vec<Metric>>,
    /// Enqueued items waiting to be announced: (owner VM, its root context, queue token).
    pub queue_ready: Mutex<Vec<(u64, u32, u32)>>,
    /// VMs created on this state so far: numbers them, and seeds their
    /// random bytes, the same way on every run.
    pub vms_created: AtomicU64,
    /// Virtual time that has passed (nanoseconds), added to every VM's
    /// clock: call delays and scenario steps advance it, nothing waits.
    pub virtual_nanos: AtomicU64,
    /// Streams sent on this state so far: numbers their generated request ids.
    pub streams_sent: AtomicU64,
}

#[derive(Debug)]
pub struct Queue {
    pub vm_id: String,
    pub name: String,
    pub items: VecDeque<Vec<u8>>,
    /// The VM that registered the queue, and its root context, which get
    /// `proxy_on_queue_ready`.
    pub owner_vm: u64,
    pub owner_context: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub kind: MetricKind,
    pub name: String,
    /// Counter or gauge value; for a histogram, the number of samples.
    pub value: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<u64>,
}

impl SharedState {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Every metric by name: counters and gauges by value, histograms by
    /// sample count.
    pub fn next_vm_serial(&self) -> u64 {
        self.vms_created.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Virtual time passed so far.
    pub fn elapsed(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(self.virtual_nanos.load(Ordering::Relaxed))
    }

    /// Moves virtual time forward to at least `nanos` since the start.
    pub fn advance_to(&self, nanos: u64) {
        self.virtual_nanos.fetch_max(nanos, Ordering::Relaxed);
    }

    pub fn metrics(&self) -> BTreeMap<String, i64> {
        lock(&self.metrics).iter().map(|m| (m.name.clone(), m.value)).collect()
    }

    pub fn metric(&self, name: &str) -> Option<Metric> {
        lock(&self.metrics).iter().find(|m| m.name == name).cloned()
    }

    pub fn shared_data(&self, vm_id: &str, key: &str) -> Option<(Vec<u8>, u32)> {
        lock(&self.data).get(&(vm_id.to_string(), key.to_string())).cloned()
    }
}

/// One line the module logged (through `proxy_log` or WASI stdout/stderr).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogRecord {
    pub level: LogLevel,
    pub message: String,
    /// Logged by a stream (HTTP) context; false for the root context, whose
    /// lines Envoy prints without the plugin's name.
    #[serde(default)]
    pub from_stream: bool,
}

impl LogRecord {
    /// A line the host itself reports (a failed reload, ...).
    pub fn host(level: LogLevel, message: String) -> Self {
        Self { level, message, from_stream: false }
    }
}

/// Who the plugin is and what it was given, as Envoy would pass it.
#[derive(Debug, Clone, Default)]
pub struct PluginInfo {
    pub name: String,
    pub root_id: String,
    pub vm_id: String,
    pub plugin_configuration: Vec<u8>,
    pub vm_configuration: Vec<u8>,
    /// WASI environment (Envoy: `vm_config.environment_variables`).
    pub env: Vec<(String, String)>,
}

/// An outgoing HTTP call the module dispatched.
#[derive(Debug, Clone, Serialize)]
pub struct HttpCall {
    pub token: u32,
    pub context_id: u32,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub trailers: Vec<(String, String)>,
    pub timeout_ms: u32,
    /// The headers as the cluster receives them, after Envoy's async client
    /// added its own (`x-envoy-internal`, the timeout header).
    pub received_headers: Vec<(String, String)>,
}

/// An outgoing gRPC call or stream the module opened.
#[derive(Debug, Clone, Serialize)]
pub struct GrpcCall {
    pub token: u32,
    pub context_id: u32,
    pub cluster: String,
    pub service: String,
    pub method: String,
    pub initial_metadata: Vec<(String, String)>,
    /// Messages sent: the call's one message, or each `proxy_grpc_send`.
    pub messages: Vec<Vec<u8>>,
    pub streaming: bool,
    pub cancelled: bool,
    pub closed: bool,
}

/// How a dispatched call will be answered, and when (virtual time).
#[derive(Debug, Clone)]
pub struct CallPlan {
    pub reply: CallReply,
    /// The call's timeout; 0: none.
    pub timeout_ms: u32,
    /// Virtual time at dispatch, nanoseconds since the start.
    pub dispatched_at: u64,
}

impl CallPlan {
    /// The call times out before its answer arrives.
    pub fn times_out(&self) -> bool {
        self.timeout_ms > 0 && self.reply.delay >= std::time::Duration::from_millis(u64::from(self.timeout_ms))
    }

    /// When the module learns the outcome: the answer's arrival, or the timeout.
    pub fn due(&self) -> u64 {
        let wait = if self.times_out() { std::time::Duration::from_millis(u64::from(self.timeout_ms)) } else { self.reply.delay };
        self.dispatched_at.saturating_add(wait.as_nanos() as u64)
    }
}

/// The response to a call being delivered: what the module may read through
/// the call-response maps and buffers while its callback runs.
#[derive(Debug, Clone, Default)]
pub struct CallResponse {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
}

/// A local response a filter sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LocalResponse {
    pub status: u32,
    pub details: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub grpc_status: i32,
}

/// The HTTP stream whose callback is running, as the module can see it.
#[derive(Debug, Default)]
pub struct StreamView {
    pub context_id: u32,
    pub request_headers: HeaderMap,
    pub request_trailers: HeaderMap,
    pub response_headers: HeaderMap,
    pub response_trailers: HeaderMap,
    /// The body visible to the running body callback (all of it buffered so far).
    pub request_body: Vec<u8>,
    pub response_body: Vec<u8>,
    /// Properties the test set for this request, by path segments.
    pub properties: HashMap<Vec<String>, PropertyValue>,
    /// Answers scripted for the calls made during this request, by cluster,
    /// taken in order before the plugin's own cluster answers.
    pub call_script: HashMap<String, VecDeque<CallReply>>,
    /// Values the filter stored with `proxy_set_property`.
    pub filter_state: HashMap<Vec<String>, Vec<u8>>,
    /// True while the request headers may still change the route.
    pub routing: bool,
    pub route_cache_cleared: bool,
    /// The request header map was replaced whole before routing. Envoy
    /// 1.40 then finds no route (seen: 404 even with the same pseudo-headers).
    pub request_map_replaced: bool,
    pub local_response: Option<LocalResponse>,
    pub resume_request: bool,
    pub resume_response: bool,
    pub close_request: bool,
    pub close_response: bool,
    /// Set once the response has started (response callbacks run).
    pub response_started: bool,
    /// Upstream attempts the router made (0 until it forwarded the request).
    pub upstream_attempts: u32,
}

/// Everything one VM's host functions read and write.
pub struct HostState {
    pub plugin: Arc<PluginInfo>,
    pub shared: Arc<SharedState>,
    /// Unique per VM, to route queue notifications.
    pub vm_serial: u64,
    pub memory: Option<Memory>,
    pub allocate: Option<TypedFunc<i32, i32>>,
    pub log_level: LogLevel,
    pub logs: Vec<LogRecord>,
    /// Host calls made, by function name.
    pub host_calls: BTreeMap<&'static str, u64>,
    /// Fixed clock (nanoseconds since the epoch); the system clock if None.
    pub now_nanos: Option<u64>,
    pub tick_period_ms: u32,
    /// When the timer fires next (virtual nanoseconds since the start).
    pub next_tick_at: u64,
    pub root_context_id: u32,
    /// The context whose callback is running (or the effective one the
    /// module chose with `proxy_set_effective_context`).
    pub current_context: u32,
    /// Properties the test set for the plugin (apply to every request).
    pub properties: HashMap<Vec<String>, PropertyValue>,
    pub root_filter_state: HashMap<Vec<String>, Vec<u8>>,
    pub stream: Option<StreamView>,
    /// Which stream maps the running callback may touch.
    pub access: crate::access::Access,
    pub next_token: u32,
    pub http_calls: Vec<HttpCall>,
    pub grpc_calls: Vec<GrpcCall>,
    /// Calls dispatched and not yet answered: (token, is_grpc).
    pub pending_calls: Vec<(u32, bool)>,
    /// How each call made will be answered, by token: chosen at dispatch.
    pub call_plans: HashMap<u32, CallPlan>,
    pub call_response: Option<CallResponse>,
    pub grpc_status: Option<(u32, String)>,
    /// Clusters the module may call, and how each answers.
    pub clusters: Arc<HashMap<String, CallReply>>,
    /// The root context's `proxy_on_done` returned false: it will call
    /// `proxy_done` when it has finished.
    pub done_pending: bool,
    pub done_called: bool,
    /// State of the WASI random generator (seeded per VM, advanced per call).
    pub random_state: u64,
    /// `proxy_on_configure` is running: the plugin configuration is readable.
    pub configuring: bool,
    /// Set by `proc_exit`: the module asked to stop.
    pub exit_code: Option<i32>,
}

impl HostState {
    pub fn new(plugin: Arc<PluginInfo>, shared: Arc<SharedState>, vm_serial: u64) -> Self {
        Self {
            plugin,
            shared,
            vm_serial,
            memory: None,
            allocate: None,
            log_level: LogLevel::Trace,
            logs: Vec::new(),
            host_calls: BTreeMap::new(),
            now_nanos: None,
            tick_period_ms: 0,
            next_tick_at: 0,
            root_context_id: 0,
            current_context: 0,
            properties: HashMap::new(),
            root_filter_state: HashMap::new(),
            stream: None,
            access: Default::default(),
            next_token: 1,
            http_calls: Vec::new(),
            grpc_calls: Vec::new(),
            pending_calls: Vec::new(),
            call_plans: HashMap::new(),
            call_response: None,
            grpc_status: None,
            clusters: Arc::new(HashMap::new()),
            done_pending: false,
            done_called: false,
            random_state: vm_serial.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            configuring: false,
            exit_code: None,
        }
    }

    pub fn count(&mut self, call: &'static str) {
        *self.host_calls.entry(call).or_default() += 1;
    }

    pub fn log(&mut self, level: LogLevel, message: String) {
        let from_stream = self.current_context != 0 && self.current_context != self.root_context_id;
        self.logs.push(LogRecord { level, message, from_stream });
    }

    /// The clock the module reads: the fixed or system clock, plus the
    /// virtual time that has passed.
    pub fn now(&self) -> u64 {
        let base = self.now_nanos.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or_default()
        });
        base.saturating_add(self.shared.virtual_nanos.load(Ordering::Relaxed))
    }

    /// The answer for a call to `cluster`: the request's script first, then
    /// the plugin's cluster. None: Envoy knows no such cluster.
    pub fn plan_call(&mut self, cluster: &str, timeout_ms: u32) -> Option<CallPlan> {
        let scripted = self.stream.as_mut().and_then(|s| s.call_script.get_mut(cluster)).and_then(VecDeque::pop_front);
        let reply = scripted.or_else(|| self.clusters.get(cluster).cloned())?;
        Some(CallPlan { reply, timeout_ms, dispatched_at: self.shared.virtual_nanos.load(Ordering::Relaxed) })
    }

    /// True if a call to `cluster` may be made (the plugin or the request knows it).
    pub fn knows_cluster(&self, cluster: &str) -> bool {
        self.clusters.contains_key(cluster) || self.stream.as_ref().is_some_and(|s| s.call_script.contains_key(cluster))
    }

    pub fn take_token(&mut self) -> u32 {
        let token = self.next_token;
        self.next_token += 1;
        token
    }
}
