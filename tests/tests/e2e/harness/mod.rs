//! The end-to-end tests' harness, over the library's `e2e::harness` (the `bundler` and
//! `installer` commands, free ports, the daemon guard, `wait_for`): two bundles of a small site,
//! a real nginx, cached PyPI tools and wheels, network namespaces, site files on loopback ports
//! and the service daemons. Every test module takes what it needs with `use crate::harness::*`.

mod bundles;
mod netns;
mod nginx;
mod services;
mod wheels;

pub use bundles::{bundles, exact_snapshot};
pub use e2e::harness::*;
pub use netns::*;
pub use nginx::*;
pub use services::*;
pub use wheels::*;
