//! Values with units, read from their text or a default: durations (`"30s"`), sizes
//! (`"512MiB"`) and http(s) URLs; an error names the key.

use super::{ConfigError, invalid};
use std::time::Duration;

pub(super) fn duration(
    key: &str,
    value: Option<String>,
    default: &str,
) -> Result<Duration, ConfigError> {
    let text = value.as_deref().unwrap_or(default);
    humantime::parse_duration(text).map_err(|e| {
        invalid(
            key,
            format!("{text:?} is not a duration like \"30s\" ({e})"),
        )
    })
}

pub(super) fn size(key: &str, value: Option<String>, default: &str) -> Result<u64, ConfigError> {
    let text = value.as_deref().unwrap_or(default);
    text.trim()
        .parse::<bytesize::ByteSize>()
        .map(|b| b.as_u64())
        .map_err(|e| invalid(key, format!("{text:?} is not a size like \"512MiB\" ({e})")))
}

pub(super) fn url(key: &str, value: Option<String>, default: &str) -> Result<String, ConfigError> {
    let text = value.unwrap_or_else(|| default.to_owned());
    let ok = (text.starts_with("https://") || text.starts_with("http://"))
        && text.parse::<hyper::Uri>().is_ok_and(|u| u.host().is_some());
    if !ok {
        return Err(invalid(key, format!("{text:?} is not an http(s) URL")));
    }
    Ok(text.trim_end_matches('/').to_owned())
}
