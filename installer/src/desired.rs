//! A file the installer wants to exist on the target machine, as produced by the generators
//! (service configs, node files, nginx config). Generators are pure functions that return
//! these; the apply plan alone decides whether and how to write them (diff, backup, atomic
//! write), so that `--dry-run`, idempotence and backups work the same for every file.

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredFile {
    /// Absolute path as on the target machine (e.g. `/etc/named.conf`); `--root` is applied by
    /// the plan, never by the generator.
    pub path: PathBuf,
    pub contents: Vec<u8>,
    /// Unix permission bits, e.g. 0o644.
    pub mode: u32,
}
