//! `[feed]`: the change feed (one follower per account, longpoll, webhooks).

use super::raw::RawFeed;
use super::units::duration;
use super::{ConfigError, invalid};
use std::time::Duration;

/// The change feed: one follower per account (a lease in the store), longpoll, webhooks.
#[derive(Debug, Clone)]
pub struct FeedConfig {
    /// Off: metadata is revalidated by TTL only, and webhooks are acknowledged and ignored.
    pub enabled: bool,
    /// `timeout` of each `list_folder/longpoll` (Dropbox takes 30 s to 480 s).
    pub longpoll_timeout: Duration,
    /// How long an instance's hold on an account's feed lasts unless renewed.
    pub lease_ttl: Duration,
}

impl TryFrom<RawFeed> for FeedConfig {
    type Error = ConfigError;

    fn try_from(f: RawFeed) -> Result<Self, ConfigError> {
        let feed = FeedConfig {
            enabled: f.enabled.unwrap_or(true),
            longpoll_timeout: duration("feed.longpoll_timeout", f.longpoll_timeout, "30s")?,
            lease_ttl: duration("feed.lease_ttl", f.lease_ttl, "15s")?,
        };
        if !(30..=480).contains(&feed.longpoll_timeout.as_secs()) {
            return Err(invalid(
                "feed.longpoll_timeout",
                "must be between 30s and 480s (Dropbox's range)",
            ));
        }
        if feed.lease_ttl < Duration::from_millis(300) {
            return Err(invalid("feed.lease_ttl", "must be at least 300ms"));
        }
        Ok(feed)
    }
}
