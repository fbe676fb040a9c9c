//! What an installed repo or PyPI tree was built from, stored inside the tree itself (so the
//! record switches together with the tree in one rename), and the test hook that kills the
//! process at a named point of the apply to prove crash safety.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fsutil::Durability;
use crate::simple_index::IndexFile;

/// State file name inside each installed repo directory and the PyPI directory. A dot file:
/// nginx never serves it.
pub const STATE_FILE: &str = ".installer-state.json";

/// Content of one installed RPM repo: enough to tell whether a new bundle changes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoState {
    /// Relative package path -> sha256.
    pub packages: BTreeMap<String, String>,
    /// Carried upstream records: bundle kind -> sha256 of the file.
    pub upstream: BTreeMap<String, String>,
    /// Repodata compression ("gzip" or "zstd").
    pub compress: String,
    /// repomd revision and record timestamps (the creation time of the bundle that built it).
    pub revision: u64,
}

impl RepoState {
    /// Same packages, records and options: a newer bundle carrying the same repo leaves it
    /// alone (its revision is not content).
    pub fn same_content(&self, other: &RepoState) -> bool {
        self.packages == other.packages
            && self.upstream == other.upstream
            && self.compress == other.compress
    }
}

/// Content of the installed PyPI tree.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PypiState {
    /// Every listed file, sorted by file name (`core_metadata` left empty: it is derived).
    pub files: Vec<IndexFile>,
}

/// Read a state file; a missing or unreadable one means "unknown content" (None), which makes
/// the next apply rebuild the tree rather than trust it.
pub fn load<T: for<'de> Deserialize<'de>>(dir: &Path) -> Option<T> {
    let bytes = fs_err::read(dir.join(STATE_FILE)).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Write the state file into `dir`, a staging tree: its owner syncs the filesystem before the
/// tree goes live.
pub fn store<T: Serialize>(dir: &Path, state: &T) -> Result<(), crate::fsutil::FsError> {
    let mut bytes = serde_json::to_vec_pretty(state).expect("state serializes");
    bytes.push(b'\n');
    crate::fsutil::write_atomic_as(&dir.join(STATE_FILE), &bytes, 0o644, Durability::Staged)
}

/// Environment variable naming a kill point, for the crash-safety tests only.
pub const KILL_ENV: &str = "INSTALLER_TEST_KILL_AT";

/// If `INSTALLER_TEST_KILL_AT` names `point`, die at once with SIGKILL (no unwinding, no
/// cleanup: exactly what a power cut or `kill -9` does to the process).
pub fn kill_point(point: &str) {
    if std::env::var(KILL_ENV).is_ok_and(|v| v == point) {
        let _ =
            rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::KILL);
    }
}
