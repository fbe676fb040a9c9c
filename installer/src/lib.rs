//! Library behind the `installer` binary; `main.rs` only parses arguments and calls into here.

pub mod apply;
pub mod desired;
pub mod fsutil;
pub mod nginx;
pub mod repodata;
pub mod simple_index;
