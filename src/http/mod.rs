//! HTTP semantics as pure functions over typed inputs, each table-tested.

pub mod body;
pub mod channel;
pub mod conditional;
pub mod cors;
pub mod encoding;
pub mod etag;
pub mod header_rules;
pub mod pattern;
pub mod provenance;
pub mod range;
pub mod redirects;
pub mod representation;
pub mod route;
pub mod sendfile;

pub use body::{Body, BoxError, empty, full, plain};
pub use provenance::{CacheStatus, X_CACHE_STATUS};
