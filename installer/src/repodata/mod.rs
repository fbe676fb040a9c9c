//! RPM repository metadata (`repodata/`) for the repos the installer lays out, with
//! createrepo_c's output semantics but built for the offline admin server's case: the bundle has
//! already verified every package's sha256, so we never hash an RPM again, parse headers in
//! parallel, and write primary, filelists and other concurrently.
//!
//! # API (used by `installer apply`)
//!
//! ```no_run
//! use installer::repodata::{self, Options, PackageSet, RepodataInput, UpstreamRecords};
//! # fn main() -> Result<(), repodata::RepodataError> {
//! let repo = std::path::PathBuf::from("/data/repos/rocky/10/baseos");
//! let input = RepodataInput {
//!     repo_dir: repo.clone(),
//!     // One set per arch; `PackageSet::scan` when no digests are known (it hashes).
//!     package_sets: vec![PackageSet::scan(&repo, "x86_64")?],
//!     upstream: vec![UpstreamRecords { comps: Some(repo.join("comps.xml")), ..Default::default() }],
//! };
//! let options = Options { revision: 1_764_000_000, ..Options::default() };
//! if !repodata::is_current(&input, &options)? {
//!     let outcome = repodata::build(&input, &options, &bundle::NoProgress)?;
//!     assert!(outcome.rewritten);
//! }
//! # Ok(()) }
//! ```
//!
//! - [`build`] is a no-op (returns `rewritten: false`) when [`is_current`] holds, so callers may
//!   call it unconditionally.
//! - Several package sets are merged (multi-arch repos): a path listed twice with the same sha256
//!   is kept once, with a different one it is [`RepodataError::ConflictingPackage`].
//! - Upstream record files must not live in `repo_dir/repodata/` (it is replaced and pruned
//!   of every file the new repomd.xml does not name, including an upstream `repomd.xml.asc`);
//!   keep them e.g. in `repo_dir/.upstream/` (hidden directories are not scanned for RPMs).
//! - Upstream records merge: comps from the first set that has one (written as `group` plain and
//!   `group_gz`), updateinfo as the union by advisory id (package lists merged), modules as the
//!   concatenation of YAML documents with identical documents once.
//! - [`previous_records`] reads the records of the repodata a repo has now (only if they write
//!   back byte for byte); passed to [`build_with_parsed`], those whose sha256 and size still
//!   match are not read from their RPMs again (`createrepo_c --update`).
//! - [`build_fed`] writes the same output while the packages still arrive (a [`PackageFeed`]
//!   that apply fills as the bundle unpacks).
//! - Output depends only on the inputs: `Options::revision` is the repomd revision and every
//!   record timestamp; package `time file` is the RPM's mtime unless `Options::package_time`.
//! - Crash safety: new files are written into `<repo>/.repodata.staging/`, fsynced, moved into
//!   `repodata/` under content-addressed names, and `repomd.xml` is renamed into place last;
//!   old records are deleted afterwards. A kill at any point leaves a repomd.xml whose records
//!   all exist (the old or the new one), and a rerun finishes the job. With
//!   `Options::durability` set to `Staged` nothing is fsynced here: the caller builds the repo in
//!   a staging tree and syncs its filesystem once before switching it live (what apply does).

mod error;
mod feed;
mod install;
mod packages;
mod reuse;
mod text;
mod upstream;
mod write;

use std::collections::HashMap;
use std::path::PathBuf;

use bundle::Reporter;

pub use crate::fsutil::Durability;

pub use error::RepodataError;
pub use feed::{PackageFeed, build_fed};
pub use packages::{KnownDigest, PackageFile, PackageSet, parse_package, parse_package_with_head};
pub use reuse::previous_records;
pub use rpmrepo_metadata::Package;

/// Compression for primary/filelists/other, updateinfo and modules (comps is always written
/// both plain and gzip, as Rocky publishes it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Compression {
    /// Readable by every yum/dnf; createrepo_c 0.x's default and what Rocky publishes.
    #[default]
    Gzip,
    /// Smaller and faster; needs dnf with libsolv zstd support (EL >= 8.4).
    Zstd,
}

impl Compression {
    pub(crate) fn suffix(self) -> &'static str {
        match self {
            Compression::Gzip => "gz",
            Compression::Zstd => "zst",
        }
    }
}

/// How to build; every field is part of the input digest used by [`is_current`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub compression: Compression,
    /// repomd `<revision>` and every record `<timestamp>` (createrepo_c
    /// `--revision N --set-timestamp-to-revision`).
    pub revision: u64,
    /// Changelog entries kept per package (createrepo_c default 10).
    pub changelog_limit: usize,
    /// When set, every package's `<time file>` is this value instead of the RPM's mtime.
    pub package_time: Option<u64>,
    /// fsync each file as it is written (a live repo), or leave that to a caller that builds
    /// the repo in a staging tree and syncs it once.
    pub durability: Durability,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            compression: Compression::Gzip,
            revision: 0,
            changelog_limit: 10,
            package_time: None,
            durability: Durability::EachFile,
        }
    }
}

/// Upstream metadata carried into the generated repodata (any of gzip/zstd/xz/bz2/plain,
/// detected by magic bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UpstreamRecords {
    pub comps: Option<PathBuf>,
    pub updateinfo: Option<PathBuf>,
    pub modules: Option<PathBuf>,
}

/// One repository to index: its directory (packages at relative paths below it) and what goes in.
#[derive(Clone, Debug)]
pub struct RepodataInput {
    pub repo_dir: PathBuf,
    pub package_sets: Vec<PackageSet>,
    pub upstream: Vec<UpstreamRecords>,
}

/// What [`build`] did.
#[derive(Clone, Debug)]
pub struct RepodataOutcome {
    /// Packages indexed (after merging the sets).
    pub packages: usize,
    /// False when the existing repodata was already current and nothing was written.
    pub rewritten: bool,
    /// Path of the repomd.xml now in place.
    pub repomd: PathBuf,
    /// Record types written, in repomd order (empty when not rewritten).
    pub records: Vec<String>,
}

/// True when `repo_dir/repodata` was built by [`build`] from exactly these inputs and options
/// (compares a digest stored beside repomd.xml; never re-reads the RPMs when digests are known).
pub fn is_current(input: &RepodataInput, options: &Options) -> Result<bool, RepodataError> {
    check_upstream_location(input)?;
    let packages = packages::merge_sets(&input.package_sets)?;
    let digest = install::input_digest(input, &packages, options)?;
    install::stored_digest_matches(&input.repo_dir, &digest)
}

/// Build `repo_dir/repodata` for `input` (see the module docs), or do nothing if it is current.
pub fn build(
    input: &RepodataInput,
    options: &Options,
    reporter: &dyn Reporter,
) -> Result<RepodataOutcome, RepodataError> {
    build_with_parsed(input, options, HashMap::new(), reporter)
}

/// [`build`], with packages already parsed by [`parse_package`] (same `options`), keyed by
/// relative path: those whose sha256 and size match their [`KnownDigest`] are not read again
/// (apply parses headers while the bundle unpacks). Packages missing from `parsed` are read
/// from `repo_dir` as usual.
pub fn build_with_parsed(
    input: &RepodataInput,
    options: &Options,
    parsed: HashMap<String, Package>,
    reporter: &dyn Reporter,
) -> Result<RepodataOutcome, RepodataError> {
    check_upstream_location(input)?;
    let repodata_dir = input.repo_dir.join("repodata");
    let merged = packages::merge_sets(&input.package_sets)?;
    let digest = install::input_digest(input, &merged, options)?;
    if install::stored_digest_matches(&input.repo_dir, &digest)? {
        return Ok(RepodataOutcome {
            packages: merged.len(),
            rewritten: false,
            repomd: repodata_dir.join("repomd.xml"),
            records: Vec::new(),
        });
    }

    let repo_name = input
        .repo_dir
        .file_name()
        .unwrap_or_default()
        .to_string_lossy();
    reporter.started(&format!("repodata {repo_name}"), merged.len() as u64, 0);
    let parsed = packages::parse_all(&input.repo_dir, &merged, parsed, options, reporter)?;
    let staging = install::fresh_staging_dir(&input.repo_dir)?;
    let records = write::write_package_records(&staging, parsed.as_slice(), options)?;
    let outcome = finish(input, &staging, records, &digest, parsed.len(), options)?;
    reporter.finished();
    Ok(outcome)
}

/// The end of every rebuild, whichever way its package records were written ([`build`] or
/// apply's fed build): the upstream records beside them, `repomd.xml`, and the switch of the
/// staged `repodata/` into place.
fn finish(
    input: &RepodataInput,
    staging: &std::path::Path,
    mut records: Vec<write::Record>,
    digest: &str,
    packages: usize,
    options: &Options,
) -> Result<RepodataOutcome, RepodataError> {
    records.extend(upstream::write_upstream_records(
        staging,
        &input.upstream,
        options,
    )?);
    write::sort_records(&mut records);
    write::write_repomd(staging, &records, options)?;
    install::install(
        &input.repo_dir,
        staging,
        &records,
        digest,
        options.durability,
    )?;
    Ok(RepodataOutcome {
        packages,
        rewritten: true,
        repomd: input.repo_dir.join("repodata").join("repomd.xml"),
        records: records.iter().map(|r| r.kind.clone()).collect(),
    })
}

/// Upstream records must survive the swap of `repodata/`, so they may not live inside it.
fn check_upstream_location(input: &RepodataInput) -> Result<(), RepodataError> {
    let repodata_dir = input.repo_dir.join("repodata");
    for set in &input.upstream {
        for (kind, path) in [
            ("comps", &set.comps),
            ("updateinfo", &set.updateinfo),
            ("modules", &set.modules),
        ] {
            if let Some(path) = path
                && path.starts_with(&repodata_dir)
            {
                return Err(RepodataError::UpstreamInsideRepodata {
                    kind,
                    path: path.clone(),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
