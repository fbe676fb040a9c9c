//! Library behind the `installer` binary; `main.rs` only parses arguments and calls into here.

pub mod desired;
pub mod fsutil;
pub mod simple_index;
pub mod nginx;
