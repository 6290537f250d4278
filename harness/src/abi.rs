//! Numbers of the proxy-wasm ABI 0.2.x that the host side speaks.

/// `WasmResult` status codes.
pub mod status {
    pub const OK: i32 = 0;
    pub const NOT_FOUND: i32 = 1;
    pub const BAD_ARGUMENT: i32 = 2;
    pub const SERIALIZATION_FAILURE: i32 = 3;
    pub const INVALID_MEMORY_ACCESS: i32 = 6;
    pub const EMPTY: i32 = 7;
    pub const CAS_MISMATCH: i32 = 8;
    pub const INTERNAL_FAILURE: i32 = 10;
    pub const UNIMPLEMENTED: i32 = 12;
}

/// Header map kinds (`MapType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapKind {
    RequestHeaders,
    RequestTrailers,
    ResponseHeaders,
    ResponseTrailers,
    GrpcInitialMetadata,
    GrpcTrailingMetadata,
    HttpCallResponseHeaders,
    HttpCallResponseTrailers,
}

impl MapKind {
    pub fn from_abi(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::RequestHeaders,
            1 => Self::RequestTrailers,
            2 => Self::ResponseHeaders,
            3 => Self::ResponseTrailers,
            4 => Self::GrpcInitialMetadata,
            5 => Self::GrpcTrailingMetadata,
            6 => Self::HttpCallResponseHeaders,
            7 => Self::HttpCallResponseTrailers,
            _ => return None,
        })
    }

    pub fn is_request(self) -> bool {
        matches!(self, Self::RequestHeaders | Self::RequestTrailers)
    }
}

/// Buffer kinds (`BufferType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufferKind {
    RequestBody,
    ResponseBody,
    DownstreamData,
    UpstreamData,
    HttpCallResponseBody,
    GrpcReceiveBuffer,
    VmConfiguration,
    PluginConfiguration,
    CallData,
}

impl BufferKind {
    pub fn from_abi(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::RequestBody,
            1 => Self::ResponseBody,
            2 => Self::DownstreamData,
            3 => Self::UpstreamData,
            4 => Self::HttpCallResponseBody,
            5 => Self::GrpcReceiveBuffer,
            6 => Self::VmConfiguration,
            7 => Self::PluginConfiguration,
            8 => Self::CallData,
            _ => return None,
        })
    }
}

/// Stream directions for `proxy_continue_stream` / `proxy_close_stream`.
pub mod stream_type {
    pub const REQUEST: i32 = 0;
    pub const RESPONSE: i32 = 1;
}

/// What a header or body callback returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Continue,
    /// Headers: stop everything until the filter resumes. Body: buffer
    /// (StopIterationAndBuffer) and call again with the whole body so far.
    Pause,
}

impl Action {
    pub fn from_abi(v: i32) -> Self {
        if v == 0 {
            Self::Continue
        } else {
            Self::Pause
        }
    }
}

/// Log levels, as `proxy_log` numbers them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    #[default]
    Trace,
    Debug,
    Info,
    Warn,
    Error,
    Critical,
}

impl LogLevel {
    pub fn from_abi(v: i32) -> Self {
        match v {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            _ => Self::Critical,
        }
    }
}

/// Metric kinds (`MetricType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    pub fn from_abi(v: i32) -> Option<Self> {
        Some(match v {
            0 => Self::Counter,
            1 => Self::Gauge,
            2 => Self::Histogram,
            _ => return None,
        })
    }
}

/// The ABI versions a module may declare, by the export that declares it.
pub const ABI_VERSIONS: [(&str, &str); 3] = [
    ("proxy_abi_version_0_2_1", "0.2.1"),
    ("proxy_abi_version_0_2_0", "0.2.0"),
    ("proxy_abi_version_0_1_0", "0.1.0"),
];
