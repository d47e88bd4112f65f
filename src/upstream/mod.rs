//! Talking to Dropbox: wire types, header-safe JSON and the content hash.
//!
//! The typed client (transport, retry, errors) joins this module with the proxy's read path.

pub mod content_hash;
pub mod json;
pub mod types;
