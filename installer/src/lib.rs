//! Library behind the `installer` binary; `main.rs` only parses arguments and calls into here.

pub mod commands;
pub mod desired;
pub mod reporter;
