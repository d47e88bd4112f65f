//! `[log]`: the level (an `EnvFilter` directive list), text or JSON lines, the access log.

use super::raw::RawLog;
use super::{ConfigError, invalid};

/// A log level in `EnvFilter` syntax (`info`, `warn,dropcache=debug`), trimmed; why not.
pub fn parse_level(text: &str) -> Result<String, String> {
    let text = text.trim();
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    // A bare word must be a level (EnvFilter would take a misspelt one for a target name).
    if text.is_empty()
        || text
            .split(',')
            .any(|d| !d.contains('=') && !LEVELS.contains(&d.trim().to_lowercase().as_str()))
    {
        return Err(format!(
            "{text:?}: name a level (off, error, warn, info, debug, trace), optionally with \
             target=level directives, e.g. \"warn,dropcache=debug\""
        ));
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(text)
        .map(|_| text.to_owned())
        .map_err(|e| format!("{text:?} is not a level or filter: {e}"))
}

/// Logging: level (an `EnvFilter` directive list), text or JSON lines, the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    pub level: String,
    pub format: LogFormat,
    pub access_log: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
            access_log: true,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl TryFrom<RawLog> for LogConfig {
    type Error = ConfigError;

    fn try_from(raw: RawLog) -> Result<Self, ConfigError> {
        let defaults = LogConfig::default();
        let log = LogConfig {
            level: parse_level(raw.level.as_deref().unwrap_or(&defaults.level))
                .map_err(|why| invalid("log.level", why))?,
            format: match raw.format.as_deref() {
                None => defaults.format,
                Some("text") => LogFormat::Text,
                Some("json") => LogFormat::Json,
                Some(other) => {
                    return Err(invalid(
                        "log.format",
                        format!("{other:?} must be \"text\" or \"json\""),
                    ));
                }
            },
            access_log: raw.access_log.unwrap_or(defaults.access_log),
        };
        Ok(log)
    }
}
