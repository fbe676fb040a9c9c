//! Errors of repodata generation, each naming the file at fault so the operator knows what to fix.

use std::path::PathBuf;

/// Why repodata could not be built.
#[derive(Debug, thiserror::Error)]
pub enum RepodataError {
    #[error(transparent)]
    Io(#[from] std::io::Error),

    #[error("cannot read RPM header of {path}: {source} (is the file a complete RPM?)")]
    RpmHeader {
        path: PathBuf,
        #[source]
        source: rpm::Error,
    },

    #[error("cannot index {path}: {message}")]
    Metadata { path: PathBuf, message: String },

    #[error(
        "{relative_path} is listed by package set {first_set} with sha256 {first_sha256} and by \
         {second_set} with sha256 {second_sha256}; one repo cannot hold two different files at one path"
    )]
    ConflictingPackage {
        relative_path: String,
        first_set: String,
        first_sha256: String,
        second_set: String,
        second_sha256: String,
    },

    #[error("package path {relative_path:?} is not a plain relative path inside the repo")]
    BadPackagePath { relative_path: String },

    #[error("{path}: size is {actual} bytes but the bundle recorded {expected}")]
    SizeMismatch {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },

    #[error("cannot read upstream {kind} from {path}: {message}")]
    Upstream {
        kind: &'static str,
        path: PathBuf,
        message: String,
    },

    #[error(
        "upstream {kind} {path} lies inside the repodata/ directory this build replaces; \
         keep upstream metadata elsewhere (e.g. <repo>/.upstream/)"
    )]
    UpstreamInsideRepodata { kind: &'static str, path: PathBuf },

    #[error("repodata stopped: the packages it waited for will not come (an earlier step failed)")]
    Cancelled,

    #[error("cannot write {kind} metadata: {message}")]
    Write { kind: &'static str, message: String },
}
