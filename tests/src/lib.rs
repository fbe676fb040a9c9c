//! Shared helpers for the end-to-end tests: finding the built binaries, temp trees, and the
//! generators for fixture mirrors and indexes that the tests, `scripts/demo` and the benchmarks
//! all use.

use std::path::PathBuf;

/// Path of a workspace binary built by cargo (`bundler` or `installer`).
///
/// Integration tests in this crate cannot use `CARGO_BIN_EXE_*` for another package's binaries,
/// so look next to the test executable, where cargo puts every binary of the workspace.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe
        .parent()
        .expect("test binary has a parent")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built; run the tests through `cargo test --workspace` so cargo builds it",
        path.display()
    );
    path
}

#[cfg(test)]
mod architecture;
pub mod authfront;
pub mod containerd;
pub mod harness;
pub mod localbundle;
pub mod mirror;
pub mod mirror_update;
pub mod ociimage;
pub mod peridot;
pub mod pypi_index;
pub mod registry;
pub mod rpmgen;
pub mod server;
// The bundle crate's own test helper (pack a directory tree), one copy for both crates.
#[path = "../../bundle/tests/format/tree.rs"]
pub mod tree;
pub mod wheelgen;
