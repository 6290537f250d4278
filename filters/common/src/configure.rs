//! `on_configure`'s common part: read the plugin configuration, compile it,
//! and on failure log the one line that names the field, so the plugin
//! refuses to start on a configuration it does not fully understand.

use crate::config_error::ConfigError;
use crate::host::{Host, LogLevel};

/// The compiled configuration, or None after logging why there is none.
pub fn load_config<T>(
    host: &dyn Host,
    filter: &str,
    compile: impl FnOnce(Option<&[u8]>) -> Result<T, ConfigError>,
) -> Option<T> {
    match host.plugin_configuration().map(|bytes| compile(bytes.as_deref())) {
        Ok(Ok(config)) => Some(config),
        Ok(Err(e)) => {
            host.log(LogLevel::Error, &format!("{filter}: invalid configuration: {e}"));
            None
        }
        Err(e) => {
            host.log(LogLevel::Error, &format!("{filter}: cannot read the configuration: {e}"));
            None
        }
    }
}
