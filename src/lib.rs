//! dropcache: a caching HTTP reverse proxy in front of Dropbox, and the faithful Dropbox API v2
//! emulator every test and the demo run against.
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
