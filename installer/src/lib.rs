//! Library behind the `installer` binary; `main.rs` only parses arguments and calls into here.

pub mod actions;
pub mod desired;
pub mod fsutil;
pub mod netprobe;
pub mod node;
pub mod services;
pub mod site;
pub mod status;
