//! The RPM side of the bundler: reading upstream repository metadata (repomd, primary),
//! selecting packages (full mirror or slim closure) and verifying package and metadata
//! signatures against the release key file. Network access lives in [`crate::fetch`]; orchestration in
//! [`crate::build`].

pub mod closure;
pub mod filelists;
pub mod primary;
pub mod repomd;
pub mod richdep;
mod rsa_ring;
pub mod verify;

use std::path::PathBuf;

/// Problems with upstream RPM metadata or packages.
#[derive(Debug, thiserror::Error)]
pub enum RpmMetaError {
    #[error("{url}: not valid repository metadata: {reason}")]
    Malformed { url: String, reason: String },
    #[error("{url}: repomd.xml has no primary record")]
    NoPrimary { url: String },
    #[error(
        "{url}: {what} has no sha256 checksum in {source_file}; only sha256 repositories are supported"
    )]
    NoSha256 {
        url: String,
        what: String,
        source_file: String,
    },
    #[error("--packages pattern {pattern:?} is not a valid glob: {reason}")]
    BadPattern { pattern: String, reason: String },
    #[error("--packages pattern {pattern:?} matches no package in the selected repos and arch")]
    NoMatch { pattern: String },
    #[error("nothing in the selected repos provides {requirement:?}, needed by {chain}")]
    Unresolvable { requirement: String, chain: String },
    #[error("cannot read the GPG key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("package {package} ({path}) failed signature verification: {reason}")]
    Signature {
        package: String,
        path: PathBuf,
        reason: String,
    },
    #[error(
        "repo {repo}: the metadata signature {url} does not check out: {reason}; the mirror may serve old or altered metadata (try another --mirror)"
    )]
    MetadataSignature {
        repo: String,
        url: String,
        reason: String,
    },
    #[error(
        "repo {repo} ({url}) holds {found}, not release {asked}: the mirror serves another minor release under that path"
    )]
    WrongMinorRelease {
        repo: String,
        url: String,
        asked: String,
        found: String,
    },
}

impl RpmMetaError {
    /// True when upstream served something that failed a check (exit status 3): a package or
    /// metadata signature, a key that does not hold its pin, the wrong minor release.
    pub fn is_verification(&self) -> bool {
        matches!(
            self,
            RpmMetaError::Signature { .. }
                | RpmMetaError::Key { .. }
                | RpmMetaError::MetadataSignature { .. }
                | RpmMetaError::WrongMinorRelease { .. }
        )
    }
}
