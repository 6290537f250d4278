//! What every filter in this project shares: host access that never panics,
//! Istio's string matching and `HTTPMatchRequest` blocks, configuration errors that name their field, and
//! Prometheus-visible metrics.

pub mod abi;
pub mod codec;
pub mod config_error;
pub mod configure;
pub mod host;
pub mod http_match;
pub mod matcher;
pub mod metrics;
pub mod mock;
pub mod name_set;
pub mod test_rng;

pub use config_error::{parse_json, ConfigError, FieldPath};
pub use host::{AbiHost, BufferType, Host, HostError, HostResult, LogLevel, MapType, MetricType};
pub use http_match::{HttpMatch, HttpMatchSpec, MatchRequest};
pub use matcher::{CompiledStringMatch, IstioMatch, StringMatch, StringMatchSpec};
pub use configure::load_config;
pub use metrics::{count, count_n, Metric};
pub use name_set::NameSet;
