//! An in-memory [`Host`] for native unit tests of filter glue: it records
//! what the filter did so tests check outcomes, not call order.

use crate::abi::status;
use crate::codec::{encode_pairs, HeaderPairs};
use crate::host::{BufferType, HeaderBlock, Host, HostError, HostResult, LogLevel, MapType, MetricType};
use std::cell::RefCell;
use std::collections::HashMap;

/// A local response the filter sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u32,
    pub details: String,
    pub headers: HeaderPairs,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub struct MockHost {
    pub maps: RefCell<HashMap<MapType, HeaderPairs>>,
    pub buffers: RefCell<HashMap<BufferType, Vec<u8>>>,
    pub properties: RefCell<HashMap<Vec<String>, Vec<u8>>>,
    pub shared: RefCell<HashMap<String, (Vec<u8>, u32)>>,
    /// (type, name, value) per defined metric, indexed by id.
    pub metrics: RefCell<Vec<(MetricType, String, u64)>>,
    pub logs: RefCell<Vec<(LogLevel, String)>>,
    pub local_response: RefCell<Option<LocalResponse>>,
    pub foreign_calls: RefCell<Vec<String>>,
    pub now_nanos: u64,
    pub log_level: LogLevel,
}

impl Default for MockHost {
    fn default() -> Self {
        Self {
            maps: Default::default(),
            buffers: Default::default(),
            properties: Default::default(),
            shared: Default::default(),
            metrics: Default::default(),
            logs: Default::default(),
            local_response: Default::default(),
            foreign_calls: Default::default(),
            now_nanos: 0,
            log_level: LogLevel::Info,
        }
    }
}

impl MockHost {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_headers(self, map: MapType, pairs: &[(&str, &str)]) -> Self {
        let pairs = pairs.iter().map(|(k, v)| (k.to_string(), v.as_bytes().to_vec())).collect();
        self.maps.borrow_mut().insert(map, pairs);
        self
    }

    pub fn with_property(self, path: &[&str], value: &[u8]) -> Self {
        let key = path.iter().map(|s| s.to_string()).collect();
        self.properties.borrow_mut().insert(key, value.to_vec());
        self
    }

    pub fn with_buffer(self, buffer: BufferType, data: &[u8]) -> Self {
        self.buffers.borrow_mut().insert(buffer, data.to_vec());
        self
    }

    /// The value of a metric by name, if defined.
    pub fn metric_value(&self, name: &str) -> Option<u64> {
        self.metrics.borrow().iter().find(|(_, n, _)| n == name).map(|(_, _, v)| *v)
    }

    /// The header's values joined as Envoy's getter joins repeats (`,`).
    pub fn header_str(&self, map: MapType, name: &str) -> Option<String> {
        self.header(map, name).ok().flatten().map(|v| String::from_utf8_lossy(&v).into_owned())
    }

    fn metric_mut<R>(&self, id: u32, f: impl FnOnce(&mut (MetricType, String, u64)) -> R) -> HostResult<R> {
        let mut metrics = self.metrics.borrow_mut();
        let entry = metrics
            .get_mut(id as usize)
            .ok_or(HostError::new("proxy_get_metric", status::NOT_FOUND))?;
        Ok(f(entry))
    }
}

impl Host for MockHost {
    fn log(&self, level: LogLevel, message: &str) {
        self.logs.borrow_mut().push((level, message.to_string()));
    }

    fn log_level(&self) -> HostResult<LogLevel> {
        Ok(self.log_level)
    }

    fn current_time_nanos(&self) -> HostResult<u64> {
        Ok(self.now_nanos)
    }

    fn header(&self, map: MapType, name: &str) -> HostResult<Option<Vec<u8>>> {
        let maps = self.maps.borrow();
        let values: Vec<&[u8]> = maps
            .get(&map)
            .into_iter()
            .flatten()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect();
        Ok((!values.is_empty()).then(|| values.join(&b","[..])))
    }

    fn headers(&self, map: MapType) -> HostResult<HeaderPairs> {
        Ok(self.maps.borrow().get(&map).cloned().unwrap_or_default())
    }

    fn header_block(&self, map: MapType) -> HostResult<HeaderBlock> {
        Ok(HeaderBlock { bytes: encode_pairs(&self.headers(map)?) })
    }

    fn set_headers(&self, map: MapType, pairs: &[(&str, &[u8])]) -> HostResult<()> {
        let pairs = pairs.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.to_vec())).collect();
        self.maps.borrow_mut().insert(map, pairs);
        Ok(())
    }

    fn replace_header(&self, map: MapType, name: &str, value: &[u8]) -> HostResult<()> {
        self.remove_header(map, name)?;
        self.add_header(map, name, value)
    }

    fn add_header(&self, map: MapType, name: &str, value: &[u8]) -> HostResult<()> {
        let mut maps = self.maps.borrow_mut();
        maps.entry(map).or_default().push((name.to_ascii_lowercase(), value.to_vec()));
        Ok(())
    }

    fn remove_header(&self, map: MapType, name: &str) -> HostResult<()> {
        if let Some(pairs) = self.maps.borrow_mut().get_mut(&map) {
            pairs.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        }
        Ok(())
    }

    fn buffer(&self, buffer: BufferType, start: usize, max: usize) -> HostResult<Option<Vec<u8>>> {
        let buffers = self.buffers.borrow();
        let Some(data) = buffers.get(&buffer) else { return Ok(None) };
        let end = start.saturating_add(max).min(data.len());
        Ok(data.get(start..end).map(<[u8]>::to_vec))
    }

    fn set_buffer(&self, buffer: BufferType, start: usize, size: usize, data: &[u8]) -> HostResult<()> {
        let mut buffers = self.buffers.borrow_mut();
        let current = buffers.entry(buffer).or_default();
        let start = start.min(current.len());
        let end = start.saturating_add(size).min(current.len());
        current.splice(start..end, data.iter().copied());
        Ok(())
    }

    fn property(&self, path: &[&str]) -> HostResult<Option<Vec<u8>>> {
        let key: Vec<String> = path.iter().map(|s| s.to_string()).collect();
        Ok(self.properties.borrow().get(&key).cloned())
    }

    fn set_property(&self, path: &[&str], value: &[u8]) -> HostResult<()> {
        let key = path.iter().map(|s| s.to_string()).collect();
        self.properties.borrow_mut().insert(key, value.to_vec());
        Ok(())
    }

    fn shared_data(&self, key: &str) -> HostResult<(Option<Vec<u8>>, u32)> {
        Ok(match self.shared.borrow().get(key) {
            Some((value, cas)) => (Some(value.clone()), *cas),
            None => (None, 0),
        })
    }

    fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> HostResult<()> {
        let mut shared = self.shared.borrow_mut();
        let current = shared.get(key).map_or(0, |(_, c)| *c);
        if cas != 0 && cas != current {
            return Err(HostError::new("proxy_set_shared_data", status::CAS_MISMATCH));
        }
        shared.insert(key.to_string(), (value.to_vec(), current + 1));
        Ok(())
    }

    fn send_local_response(&self, status: u32, details: &str, headers: &[(&str, &[u8])], body: &[u8]) -> HostResult<()> {
        *self.local_response.borrow_mut() = Some(LocalResponse {
            status,
            details: details.to_string(),
            headers: headers.iter().map(|(k, v)| (k.to_string(), v.to_vec())).collect(),
            body: body.to_vec(),
        });
        Ok(())
    }

    fn call_foreign_function(&self, name: &str, _args: &[u8]) -> HostResult<Option<Vec<u8>>> {
        self.foreign_calls.borrow_mut().push(name.to_string());
        Ok(None)
    }

    fn define_metric(&self, kind: MetricType, name: &str) -> HostResult<u32> {
        let mut metrics = self.metrics.borrow_mut();
        if let Some(id) = metrics.iter().position(|(_, n, _)| n == name) {
            return Ok(id as u32);
        }
        metrics.push((kind, name.to_string(), 0));
        Ok(metrics.len() as u32 - 1)
    }

    fn increment_metric(&self, id: u32, delta: i64) -> HostResult<()> {
        self.metric_mut(id, |m| m.2 = m.2.saturating_add_signed(delta))
    }

    fn record_metric(&self, id: u32, value: u64) -> HostResult<()> {
        self.metric_mut(id, |m| m.2 = value)
    }

    fn metric(&self, id: u32) -> HostResult<u64> {
        self.metric_mut(id, |m| m.2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn integer_properties_read_as_envoy_encodes_them() {
        let host = MockHost::new()
            .with_property(&["destination", "port"], &8080i64.to_le_bytes())
            .with_property(&["short"], &[1, 2, 3]);
        assert_eq!(host.int_property(&["destination", "port"]), Ok(Some(8080)));
        assert_eq!(host.int_property(&["short"]), Ok(None));
        assert_eq!(host.int_property(&["absent"]), Ok(None));
    }
}
