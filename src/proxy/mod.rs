//! The proxy's request path: target (normalize), then respond.

pub mod normalize;
