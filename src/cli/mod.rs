//! The binary's own parts: its arguments, and the `accounts` command.

pub mod accounts;
pub mod args;
