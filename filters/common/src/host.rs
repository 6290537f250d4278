//! Host access that never panics: every host call's status comes back as a
//! value. Filters talk to the host through the [`Host`] trait; [`AbiHost`] is
//! the real one, [`crate::mock::MockHost`] stands in for native tests.

use crate::codec::{self, Header, HeaderPairs};
use std::fmt;

/// Which header map a call addresses (ABI `MapType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MapType {
    RequestHeaders = 0,
    RequestTrailers = 1,
    ResponseHeaders = 2,
    ResponseTrailers = 3,
    GrpcInitialMetadata = 4,
    GrpcTrailingMetadata = 5,
    HttpCallResponseHeaders = 6,
    HttpCallResponseTrailers = 7,
}

/// Which buffer a call addresses (ABI `BufferType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BufferType {
    RequestBody = 0,
    ResponseBody = 1,
    HttpCallResponseBody = 4,
    GrpcReceiveBuffer = 5,
    VmConfiguration = 6,
    PluginConfiguration = 7,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    pub fn from_abi(level: u32) -> Self {
        match level {
            0 => Self::Trace,
            1 => Self::Debug,
            2 => Self::Info,
            3 => Self::Warn,
            4 => Self::Error,
            _ => Self::Critical,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricType {
    Counter = 0,
    Gauge = 1,
    Histogram = 2,
}

/// A host call that did not succeed: which call, and the status it returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostError {
    pub call: &'static str,
    pub status: u32,
}

impl HostError {
    pub fn new(call: &'static str, status: u32) -> Self {
        Self { call, status }
    }

    /// True when the host refused a shared-data write because the value
    /// changed since it was read (compare-and-swap lost).
    pub fn is_cas_mismatch(&self) -> bool {
        self.status == crate::abi::status::CAS_MISMATCH
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = crate::abi::status::name(self.status);
        write!(f, "{} returned {} ({})", self.call, name, self.status)
    }
}

impl std::error::Error for HostError {}

pub type HostResult<T> = Result<T, HostError>;

/// A header map as the host serialized it.
pub struct HeaderBlock {
    pub(crate) bytes: Vec<u8>,
}

impl HeaderBlock {
    /// The entries whose name `keep` accepts, borrowed in order (see
    /// [`codec::pairs_where`]); a map that does not hold together is the
    /// host call's serialization failure.
    pub fn pairs_where(&self, keep: impl Fn(&[u8]) -> bool) -> HostResult<Vec<Header<'_>>> {
        codec::pairs_where(&self.bytes, keep).map_err(|_| HostError::new("proxy_get_header_map_pairs", crate::abi::status::SERIALIZATION_FAILURE))
    }
}

/// Everything a filter asks of its host. Lookups return `Ok(None)` when the
/// host says the thing is absent; any other non-Ok status is an `Err`.
pub trait Host {
    fn log(&self, level: LogLevel, message: &str);
    /// The level below which the host drops log lines: filters check it
    /// once, not per request, before formatting debug lines.
    fn log_level(&self) -> HostResult<LogLevel>;
    fn current_time_nanos(&self) -> HostResult<u64>;

    fn header(&self, map: MapType, name: &str) -> HostResult<Option<Vec<u8>>>;
    fn headers(&self, map: MapType) -> HostResult<HeaderPairs>;
    /// The map as the host serialized it, for [`HeaderBlock::pairs_where`]:
    /// one host call like [`Host::headers`], without a copy of any header.
    fn header_block(&self, map: MapType) -> HostResult<HeaderBlock>;
    fn set_headers(&self, map: MapType, pairs: &[(&str, &[u8])]) -> HostResult<()>;
    /// Sets `name` to the single value `value`, replacing any it had.
    fn replace_header(&self, map: MapType, name: &str, value: &[u8]) -> HostResult<()>;
    /// Appends a value, keeping any the header already had.
    fn add_header(&self, map: MapType, name: &str, value: &[u8]) -> HostResult<()>;
    fn remove_header(&self, map: MapType, name: &str) -> HostResult<()>;

    fn buffer(&self, buffer: BufferType, start: usize, max: usize) -> HostResult<Option<Vec<u8>>>;
    /// Replaces `size` bytes at `start` with `data` (Envoy: start 0 and size
    /// at least the buffer's length replaces the whole buffer).
    fn set_buffer(&self, buffer: BufferType, start: usize, size: usize, data: &[u8])
        -> HostResult<()>;

    fn property(&self, path: &[&str]) -> HostResult<Option<Vec<u8>>>;

    /// A property Envoy hands over as an 8-byte little-endian integer
    /// (`destination.port`, `upstream.request_attempt_count`); None if
    /// absent or shorter.
    fn int_property(&self, path: &[&str]) -> HostResult<Option<i64>> {
        Ok(self.property(path)?.and_then(|v| v.get(..8).and_then(|b| b.try_into().ok())).map(i64::from_le_bytes))
    }
    fn set_property(&self, path: &[&str], value: &[u8]) -> HostResult<()>;

    /// The value under `key` and its CAS version (0 when absent).
    fn shared_data(&self, key: &str) -> HostResult<(Option<Vec<u8>>, u32)>;
    /// Writes `value` if the version is still `cas` (0 writes unconditionally).
    fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> HostResult<()>;

    fn send_local_response(
        &self,
        status: u32,
        details: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
    ) -> HostResult<()>;

    fn call_foreign_function(&self, name: &str, args: &[u8]) -> HostResult<Option<Vec<u8>>>;

    fn define_metric(&self, kind: MetricType, name: &str) -> HostResult<u32>;
    fn increment_metric(&self, id: u32, delta: i64) -> HostResult<()>;
    fn record_metric(&self, id: u32, value: u64) -> HostResult<()>;
    fn metric(&self, id: u32) -> HostResult<u64>;

    /// The whole plugin configuration (Istio's `pluginConfig` as JSON).
    fn plugin_configuration(&self) -> HostResult<Option<Vec<u8>>> {
        self.buffer(BufferType::PluginConfiguration, 0, usize::MAX)
    }

    /// Makes Envoy pick the route again after the filter changed what routes
    /// match on. ABI 0.2.1 modules also get this from any request-header
    /// change; calling it explicitly keeps working on newer ABIs.
    fn clear_route_cache(&self) -> HostResult<()> {
        self.call_foreign_function("clear_route_cache", &[]).map(|_| ())
    }
}

/// The real host, through the ABI imports. Host-allocated results are
/// returned through the module's `proxy_on_memory_allocate` export, which the
/// proxy-wasm SDK provides; the module must link the SDK.
#[derive(Debug, Default, Clone, Copy)]
pub struct AbiHost;

mod abi_host {
    use super::*;
    use crate::abi::{self, status};
    use std::ptr::null_mut;

    /// Takes ownership of a host-written buffer, allocated by the module's
    /// `proxy_on_memory_allocate` (a `Vec<u8>` of exactly `size` capacity).
    unsafe fn take(data: *mut u8, size: usize) -> Vec<u8> {
        if data.is_null() || size == 0 {
            Vec::new()
        } else {
            // SAFETY: the host wrote `size` bytes into a buffer it obtained
            // from proxy_on_memory_allocate(size) and handed its ownership to us.
            unsafe { Vec::from_raw_parts(data, size, size) }
        }
    }

    fn unit(call: &'static str, code: u32) -> HostResult<()> {
        match code {
            status::OK => Ok(()),
            other => Err(HostError::new(call, other)),
        }
    }

    /// Maps a lookup's status to a value: Ok → Some, NotFound/Empty → None.
    fn lookup(call: &'static str, code: u32, data: *mut u8, size: usize) -> HostResult<Option<Vec<u8>>> {
        match code {
            // SAFETY: on Ok the host handed us the buffer it allocated.
            status::OK => Ok(Some(unsafe { take(data, size) })),
            status::NOT_FOUND | status::EMPTY => Ok(None),
            other => Err(HostError::new(call, other)),
        }
    }

    impl Host for AbiHost {
        fn log(&self, level: LogLevel, message: &str) {
            // A failed log has nowhere to be reported; dropping it is the only safe choice.
            // SAFETY: pointer and length describe a live &str.
            let _ = unsafe { abi::proxy_log(level as u32, message.as_ptr(), message.len()) };
        }

        fn log_level(&self) -> HostResult<LogLevel> {
            let mut level = 0u32;
            // SAFETY: `level` outlives the call.
            let code = unsafe { abi::proxy_get_log_level(&mut level) };
            unit("proxy_get_log_level", code).map(|()| LogLevel::from_abi(level))
        }

        fn current_time_nanos(&self) -> HostResult<u64> {
            let mut t = 0u64;
            // SAFETY: `t` outlives the call.
            let code = unsafe { abi::proxy_get_current_time_nanoseconds(&mut t) };
            unit("proxy_get_current_time_nanoseconds", code).map(|()| t)
        }

        fn header(&self, map: MapType, name: &str) -> HostResult<Option<Vec<u8>>> {
            let (mut data, mut size) = (null_mut(), 0usize);
            // SAFETY: in-pointers describe live memory; out-pointers outlive the call.
            let code = unsafe {
                abi::proxy_get_header_map_value(map as u32, name.as_ptr(), name.len(), &mut data, &mut size)
            };
            lookup("proxy_get_header_map_value", code, data, size)
        }

        fn headers(&self, map: MapType) -> HostResult<HeaderPairs> {
            let (mut data, mut size) = (null_mut(), 0usize);
            // SAFETY: out-pointers outlive the call.
            let code = unsafe { abi::proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
            let bytes = lookup("proxy_get_header_map_pairs", code, data, size)?.unwrap_or_default();
            codec::decode_pairs(&bytes)
                .map_err(|_| HostError::new("proxy_get_header_map_pairs", status::SERIALIZATION_FAILURE))
        }

        fn header_block(&self, map: MapType) -> HostResult<HeaderBlock> {
            let (mut data, mut size) = (null_mut(), 0usize);
            // SAFETY: out-pointers outlive the call.
            let code = unsafe { abi::proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
            let bytes = lookup("proxy_get_header_map_pairs", code, data, size)?.unwrap_or_default();
            Ok(HeaderBlock { bytes })
        }

        fn set_headers(&self, map: MapType, pairs: &[(&str, &[u8])]) -> HostResult<()> {
            let bytes = codec::encode_pairs(pairs);
            // SAFETY: pointer and length describe a live Vec.
            let code = unsafe { abi::proxy_set_header_map_pairs(map as u32, bytes.as_ptr(), bytes.len()) };
            unit("proxy_set_header_map_pairs", code)
        }

        fn replace_header(&self, map: MapType, name: &str, value: &[u8]) -> HostResult<()> {
            // SAFETY: pointers and lengths describe live slices.
            let code = unsafe {
                abi::proxy_replace_header_map_value(map as u32, name.as_ptr(), name.len(), value.as_ptr(), value.len())
            };
            unit("proxy_replace_header_map_value", code)
        }

        fn add_header(&self, map: MapType, name: &str, value: &[u8]) -> HostResult<()> {
            // SAFETY: pointers and lengths describe live slices.
            let code = unsafe {
                abi::proxy_add_header_map_value(map as u32, name.as_ptr(), name.len(), value.as_ptr(), value.len())
            };
            unit("proxy_add_header_map_value", code)
        }

        fn remove_header(&self, map: MapType, name: &str) -> HostResult<()> {
            // SAFETY: pointer and length describe a live &str.
            let code = unsafe { abi::proxy_remove_header_map_value(map as u32, name.as_ptr(), name.len()) };
            unit("proxy_remove_header_map_value", code)
        }

        fn buffer(&self, buffer: BufferType, start: usize, max: usize) -> HostResult<Option<Vec<u8>>> {
            let (mut data, mut size) = (null_mut(), 0usize);
            // SAFETY: out-pointers outlive the call.
            let code = unsafe { abi::proxy_get_buffer_bytes(buffer as u32, start, max, &mut data, &mut size) };
            lookup("proxy_get_buffer_bytes", code, data, size)
        }

        fn set_buffer(&self, buffer: BufferType, start: usize, size: usize, data: &[u8]) -> HostResult<()> {
            // SAFETY: pointer and length describe a live slice.
            let code = unsafe { abi::proxy_set_buffer_bytes(buffer as u32, start, size, data.as_ptr(), data.len()) };
            unit("proxy_set_buffer_bytes", code)
        }

        fn property(&self, path: &[&str]) -> HostResult<Option<Vec<u8>>> {
            let key = codec::encode_path(path);
            let (mut data, mut size) = (null_mut(), 0usize);
            // SAFETY: in-pointers describe live memory; out-pointers outlive the call.
            let code = unsafe { abi::proxy_get_property(key.as_ptr(), key.len(), &mut data, &mut size) };
            lookup("proxy_get_property", code, data, size)
        }

        fn set_property(&self, path: &[&str], value: &[u8]) -> HostResult<()> {
            let key = codec::encode_path(path);
            // SAFETY: pointers and lengths describe live memory.
            let code = unsafe { abi::proxy_set_property(key.as_ptr(), key.len(), value.as_ptr(), value.len()) };
            unit("proxy_set_property", code)
        }

        fn shared_data(&self, key: &str) -> HostResult<(Option<Vec<u8>>, u32)> {
            let (mut data, mut size, mut cas) = (null_mut(), 0usize, 0u32);
            // SAFETY: in-pointers describe live memory; out-pointers outlive the call.
            let code = unsafe { abi::proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas) };
            lookup("proxy_get_shared_data", code, data, size).map(|v| (v, cas))
        }

        fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> HostResult<()> {
            // SAFETY: pointers and lengths describe live slices.
            let code = unsafe { abi::proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas) };
            unit("proxy_set_shared_data", code)
        }

        fn send_local_response(&self, status: u32, details: &str, headers: &[(&str, &[u8])], body: &[u8]) -> HostResult<()> {
            let headers = codec::encode_pairs(headers);
            // SAFETY: pointers and lengths describe live memory.
            let code = unsafe {
                abi::proxy_send_local_response(
                    status, details.as_ptr(), details.len(), body.as_ptr(), body.len(),
                    headers.as_ptr(), headers.len(), -1,
                )
            };
            unit("proxy_send_local_response", code)
        }

        fn call_foreign_function(&self, name: &str, args: &[u8]) -> HostResult<Option<Vec<u8>>> {
            let (mut data, mut size) = (null_mut(), 0usize);
            // SAFETY: in-pointers describe live memory; out-pointers outlive the call.
            let code = unsafe {
                abi::proxy_call_foreign_function(name.as_ptr(), name.len(), args.as_ptr(), args.len(), &mut data, &mut size)
            };
            lookup("proxy_call_foreign_function", code, data, size)
        }

        fn define_metric(&self, kind: MetricType, name: &str) -> HostResult<u32> {
            let mut id = 0u32;
            // SAFETY: pointer and length describe a live &str; `id` outlives the call.
            let code = unsafe { abi::proxy_define_metric(kind as u32, name.as_ptr(), name.len(), &mut id) };
            unit("proxy_define_metric", code).map(|()| id)
        }

        fn increment_metric(&self, id: u32, delta: i64) -> HostResult<()> {
            // SAFETY: no pointers.
            unit("proxy_increment_metric", unsafe { abi::proxy_increment_metric(id, delta) })
        }

        fn record_metric(&self, id: u32, value: u64) -> HostResult<()> {
            // SAFETY: no pointers.
            unit("proxy_record_metric", unsafe { abi::proxy_record_metric(id, value) })
        }

        fn metric(&self, id: u32) -> HostResult<u64> {
            let mut value = 0u64;
            // SAFETY: `value` outlives the call.
            let code = unsafe { abi::proxy_get_metric(id, &mut value) };
            unit("proxy_get_metric", code).map(|()| value)
        }
    }
}
