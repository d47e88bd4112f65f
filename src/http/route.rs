//! The proxy's URL namespace: every route it answers, as an enum. A route's template is its
//! bounded label in logs and metrics; the first segments of the proxy's own routes are the
//! aliases no account may take.

/// What a request path is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Healthz,
    Readyz,
    Webhook,
    Metrics,
    OauthStart,
    OauthCallback,
    AdminAccounts,
    AdminAccount,
    AdminPurge,
    AdminCache,
    AdminFeeds,
    AdminLog,
    AdminSites,
    AdminUnknown,
    /// `/s/<link>/<path>`: a shared link.
    Link,
    /// `/<alias>/<path>`: an account's published files.
    Published,
    /// A site's path, on its host or under its prefix (chosen by the router, never by `of`).
    Site,
}

impl Route {
    pub const ALL: [Route; 17] = [
        Route::Healthz,
        Route::Readyz,
        Route::Webhook,
        Route::Metrics,
        Route::OauthStart,
        Route::OauthCallback,
        Route::AdminAccounts,
        Route::AdminAccount,
        Route::AdminPurge,
        Route::AdminCache,
        Route::AdminFeeds,
        Route::AdminLog,
        Route::AdminSites,
        Route::AdminUnknown,
        Route::Link,
        Route::Published,
        Route::Site,
    ];

    /// The route of a request path (`uri.path()`).
    pub fn of(path: &str) -> Route {
        // One match on the whole path (the templates without a `{`; the test keeps the two
        // lists in step): scanning every template per request was a hundredth of a 304's CPU.
        match path {
            "/healthz" => Route::Healthz,
            "/readyz" => Route::Readyz,
            "/webhook" => Route::Webhook,
            "/metrics" => Route::Metrics,
            "/oauth/start" => Route::OauthStart,
            "/oauth/callback" => Route::OauthCallback,
            "/admin/accounts" => Route::AdminAccounts,
            "/admin/purge" => Route::AdminPurge,
            "/admin/cache" => Route::AdminCache,
            "/admin/feeds" => Route::AdminFeeds,
            "/admin/log" => Route::AdminLog,
            "/admin/sites" => Route::AdminSites,
            _ if path.starts_with("/admin/accounts/") => Route::AdminAccount,
            _ if path.starts_with("/admin/") => Route::AdminUnknown,
            _ if path.starts_with("/s/") => Route::Link,
            _ => Route::Published,
        }
    }

    /// The route's template: a bounded label for logs and metrics.
    pub fn template(self) -> &'static str {
        match self {
            Route::Healthz => "/healthz",
            Route::Readyz => "/readyz",
            Route::Webhook => "/webhook",
            Route::Metrics => "/metrics",
            Route::OauthStart => "/oauth/start",
            Route::OauthCallback => "/oauth/callback",
            Route::AdminAccounts => "/admin/accounts",
            Route::AdminAccount => "/admin/accounts/{alias}",
            Route::AdminPurge => "/admin/purge",
            Route::AdminCache => "/admin/cache",
            Route::AdminFeeds => "/admin/feeds",
            Route::AdminLog => "/admin/log",
            Route::AdminSites => "/admin/sites",
            Route::AdminUnknown => "/admin/{unknown}",
            Route::Link => "/s/{link}/{path}",
            Route::Published => "/{alias}/{path}",
            Route::Site => "{site}/{path}",
        }
    }
}

/// Whether `alias` is the first segment of one of the proxy's own routes (no account may
/// take it).
pub fn is_reserved(alias: &str) -> bool {
    Route::ALL
        .into_iter()
        .filter(|r| !matches!(r, Route::Published | Route::Site))
        .any(|r| r.template().split('/').nth(1) == Some(alias))
}

/// Whether `alias` is well formed: 1–64 of `[a-z0-9_-]` (lowercase; aliases appear in URLs).
/// Account aliases must also not be reserved.
pub fn valid_alias(alias: &str) -> bool {
    (1..=64).contains(&alias.len())
        && alias
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_routes_and_back_to_their_templates() {
        let cases = [
            ("/healthz", Route::Healthz),
            ("/readyz", Route::Readyz),
            ("/webhook", Route::Webhook),
            ("/metrics", Route::Metrics),
            ("/oauth/start", Route::OauthStart),
            ("/oauth/callback", Route::OauthCallback),
            ("/admin/accounts", Route::AdminAccounts),
            ("/admin/accounts/alice", Route::AdminAccount),
            ("/admin/purge", Route::AdminPurge),
            ("/admin/cache", Route::AdminCache),
            ("/admin/feeds", Route::AdminFeeds),
            ("/admin/log", Route::AdminLog),
            ("/admin/sites", Route::AdminSites),
            ("/admin/nope", Route::AdminUnknown),
            ("/s/site/index.html", Route::Link),
            ("/alice/a.jpg", Route::Published),
            ("/healthz/x", Route::Published),
            ("/oauth", Route::Published),
            ("/", Route::Published),
        ];
        for (path, route) in cases {
            assert_eq!(Route::of(path), route, "{path}");
        }
        for r in Route::ALL {
            if !r.template().contains('{') {
                assert_eq!(Route::of(r.template()), r);
            }
        }
    }

    #[test]
    fn reserved_aliases_are_the_first_segments_of_the_proxys_routes() {
        let reserved: Vec<&str> = [
            "healthz", "readyz", "metrics", "oauth", "webhook", "admin", "s",
        ]
        .into();
        for a in &reserved {
            assert!(is_reserved(a), "{a}");
        }
        for a in ["alice", "site", "health", "sx", "metric"] {
            assert!(!is_reserved(a), "{a}");
        }
    }

    #[test]
    fn aliases_are_short_lowercase_names() {
        for ok in ["a", "alice", "bob-2", "x_y", &"a".repeat(64)] {
            assert!(valid_alias(ok), "{ok}");
        }
        for bad in ["", "Alice", "a.b", "a/b", "é", &"a".repeat(65)] {
            assert!(!valid_alias(bad), "{bad}");
        }
    }
}
