//! The one error type of the bundle crate. Every variant carries what an operator needs to act:
//! the bundle or file path, the entry at fault, and the expected and actual values. Callers map
//! errors to exit codes with [`BundleError::is_verification_failure`]: a bundle that is damaged,
//! tampered with, hostile or unreadable by this version is a verification failure (exit 3);
//! anything else (disk full, destination exists, a missing source file) is operational (exit 1).

use std::io;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    /// Reading or writing a local file failed (not a problem of the bundle's content).
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// A file operation failed; the message (from `fs_err`) names the path.
    #[error(transparent)]
    Fs(io::Error),

    /// The compressed stream or the tar structure of the bundle is damaged.
    #[error("{bundle}: {reason}")]
    CorruptStream { bundle: PathBuf, reason: String },

    /// The manifest is missing, unreadable or inconsistent.
    #[error("{bundle}: manifest.json: {reason}")]
    Manifest { bundle: PathBuf, reason: String },

    /// The manifest was written for a newer bundle format than this build reads.
    #[error(
        "{bundle}: bundle format {found} needs {}; this is installer {ours} which reads format \
         {supported}",
        needed_installer(needed)
    )]
    UnsupportedFormat {
        bundle: PathBuf,
        found: u64,
        /// `min_installer_version` from the newer manifest, when it says.
        needed: Option<String>,
        ours: &'static str,
        supported: u32,
    },

    /// One archive entry breaks a rule; `entry` is its path as written in the archive.
    #[error("{bundle}: entry {entry:?}: {reason}")]
    Entry {
        bundle: PathBuf,
        entry: String,
        reason: EntryProblem,
    },

    /// The manifest signature does not check out against the given key.
    #[error("{bundle}: signature: {reason}")]
    Signature { bundle: PathBuf, reason: String },

    /// A key file could not be read or parsed.
    #[error("{path}: {reason}")]
    Key { path: PathBuf, reason: String },

    /// While packing, a source file differed from what the manifest says about it.
    #[error("{source_path}: packing {entry:?}: {reason}")]
    SourceMismatch {
        source_path: PathBuf,
        entry: String,
        reason: EntryProblem,
    },

    /// The manifest handed to the writer breaks a rule (paths, sizes, counts).
    #[error("invalid manifest for writing: {reason}")]
    InvalidInput { reason: String },

    /// A volume of a split bundle is missing, out of order, truncated or from another set.
    #[error("{volume}: {reason}")]
    Volume { volume: PathBuf, reason: String },

    /// Extraction refuses to touch an existing destination.
    #[error("{path}: destination already exists; extraction only creates new directories")]
    DestinationExists { path: PathBuf },
}

/// Why one entry was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EntryProblem {
    #[error("unsafe path: {0}")]
    UnsafePath(String),
    #[error("{0} entries are not allowed; bundles hold regular files only")]
    NotARegularFile(&'static str),
    #[error("not listed in the manifest")]
    NotInManifest,
    #[error("appears more than once in the archive")]
    Duplicate,
    #[error("listed in the manifest but missing from the archive")]
    Missing,
    #[error("out of manifest order: expected {expected:?} here")]
    OutOfOrder { expected: String },
    #[error("larger than the manifest says: {actual} bytes, expected {expected}")]
    Oversize { expected: u64, actual: u64 },
    #[error("size mismatch: {actual} bytes, expected {expected}")]
    SizeMismatch { expected: u64, actual: u64 },
    #[error("sha256 mismatch: got {actual}, expected {expected}")]
    HashMismatch { expected: String, actual: String },
    #[error("{0}")]
    Malformed(String),
}

fn needed_installer(needed: &Option<String>) -> String {
    match needed {
        Some(version) => format!("installer >= {version}"),
        None => "a newer installer".to_string(),
    }
}

impl BundleError {
    /// True when the bundle itself is at fault (damaged, tampered, hostile, unsigned when a key
    /// was given, or of a newer format): the binaries exit with status 3 for these.
    pub fn is_verification_failure(&self) -> bool {
        !matches!(
            self,
            BundleError::Io { .. }
                | BundleError::Fs(_)
                | BundleError::Key { .. }
                | BundleError::SourceMismatch { .. }
                | BundleError::InvalidInput { .. }
                | BundleError::DestinationExists { .. }
        )
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: io::Error) -> Self {
        BundleError::Io {
            path: path.into(),
            source,
        }
    }
}

/// An error and its causes on one line, `outer: cause: cause`, each cause once. Many errors
/// here and in the binaries already include their source in their own message (`{path}:
/// {source}`) and still return it from `source()`, so a plain chain walk would print such a
/// cause twice; both binaries print their errors through this.
pub fn chain_message(err: &(dyn std::error::Error + 'static)) -> String {
    let mut message = err.to_string();
    for cause in std::iter::successors(err.source(), |e| e.source()) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_prints_once() {
        let err = BundleError::io(
            "/x/absent.tar.zst",
            io::Error::from(io::ErrorKind::NotFound),
        );
        let message = chain_message(&err);
        assert_eq!(message.matches("not found").count(), 1, "{message}");
    }
}
