//! Library behind the `bundler` binary; `main.rs` only parses arguments and calls into here.

pub mod build;
pub mod fetch;
pub mod kubespray;
pub mod pypi;
pub mod release;
pub mod rpm;
