//! Library behind the `bundler` binary; `main.rs` only parses arguments and calls into here.

pub mod commands;
