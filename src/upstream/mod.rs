//! Talking to Dropbox: the typed client and its transport, retry policy and errors; the wire
//! types, header-safe JSON and the content hash it shares with the emulator.

pub mod client;
pub mod content_hash;
pub mod error;
pub mod json;
pub mod retry;
pub mod transport;
pub mod types;
