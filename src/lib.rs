//! dropcache: a caching HTTP reverse proxy in front of Dropbox, and the faithful Dropbox API v2
//! emulator every test and the demo run against.
//!
//! The layers, top down; every dependency points down (`tests/layers.rs` keeps it so):
//!
//! ```text
//!  main (bin)      CLI, telemetry set-up, signals
//!  demo            the emulator and the proxy in one process
//!  emulator        Dropbox API v2 on one listener (uses server's accept loop) · console: linking
//!  server          listener and watchdog, router (http::route::Route), /healthz /readyz /metrics,
//!                  admin, OAuth linking, webhook, access log (server::run serves an App)
//!  app             builds every component once from a validated Config
//!  proxy           Proxy: the read path, steps 1-7 in Proxy::serve; respond builds the answers
//!  meta · body     metadata tiers and the change feed · blobs on disk, fills, thumbnails
//!  account         accounts and their tokens, each one's feed status, shared links
//!  store · upstream · telemetry   Redis / embedded · the Dropbox client · log set-up
//!  config          the validated settings
//!  leaves          secret, flight (single flight), http (conditional, range, etag, route,
//!                  Body, CacheStatus, sendfile), metrics (handles, and rendering a plain
//!                  snapshot)
//! ```
//!
//! A cached `GET /<alias>/<path>`: `server::serve` (accept, watchdog) → `server::router::handle`
//! (route, access record) → `proxy::Proxy::serve`: 1. method, 2. `proxy::normalize`, 3. the
//! account, 4. `meta::MetaCache::lookup` (L1 → store → Dropbox), 5. `http::conditional` and
//! `http::range`, 6. `body::Bodies::open` (a blob on disk, or a fill from Dropbox), 7.
//! `proxy::respond` → back in the router, a blob's bytes are handed to `http::sendfile` (plain
//! HTTP/1), and `server::access::Metered` counts and logs the request when its body is done.
#![forbid(unsafe_code)]

pub mod account;
pub mod app;
pub mod body;
pub mod config;
pub mod console;
pub mod demo;
pub mod emulator;
pub mod flight;
pub mod http;
pub mod meta;
pub mod metrics;
pub mod proxy;
pub mod secret;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod upstream;
