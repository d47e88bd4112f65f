//! HTTP semantics as pure functions over typed inputs, each table-tested.

pub mod conditional;
pub mod etag;
pub mod range;
