//! Library behind the `installer` binary; `main.rs` only parses arguments and calls into here.

pub mod actions;
pub mod apply;
pub mod desired;
pub mod fsutil;
pub mod lock;
pub mod netprobe;
pub mod nginx;
pub mod node;
pub mod registry;
pub mod repodata;
pub mod services;
pub mod simple_index;
pub mod site;
pub mod status;

#[cfg(test)]
mod snapshots;
#[cfg(test)]
mod test_manifest;
