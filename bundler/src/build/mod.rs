//! `bundler build` as a library call: run each part (RPM mirror, PyPI wheels), collect their
//! files, and pack them into one bundle with the manifest.
//! Nothing is written to the output path unless every file was fetched and verified.

pub mod pypi;
pub mod rpm;

use std::path::PathBuf;

use bundle::progress::Reporter;
use bundle::write::{WriteOptions, WrittenBundle, finalize, write_bundle};
use bundle::{BundleManifest, FORMAT_VERSION, FileEntry, PypiTarget, RpmSection, ToolInfo, Totals};
use time::OffsetDateTime;

use crate::fetch::{FetchError, Fetcher};
use crate::release::ReleaseError;
use crate::rpm::RpmMetaError;

/// Files a part contributes: the manifest entry and the local file holding its bytes.
pub type PartFiles = Vec<(FileEntry, PathBuf)>;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error(transparent)]
    Meta(#[from] RpmMetaError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error(transparent)]
    Bundle(#[from] bundle::error::BundleError),
    #[error(transparent)]
    Pypi(#[from] crate::pypi::PypiError),
    #[error("{0}")]
    Usage(String),
}

impl BuildError {
    /// 3 for verification failures (wrong checksum from every mirror, bad or missing package
    /// signature, a key that does not match its pin), 2 for usage errors, else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            BuildError::Fetch(e) if e.is_checksum_failure() => 3,
            BuildError::Pypi(e) if e.is_verification() => 3,
            BuildError::Meta(RpmMetaError::Signature { .. } | RpmMetaError::Key { .. }) => 3,
            BuildError::Bundle(e) if e.is_verification_failure() => 3,
            BuildError::Usage(_) | BuildError::Release(ReleaseError::NotFound { .. }) => 2,
            _ => 1,
        }
    }
}

/// Everything the parts produced, ready to pack.
#[derive(Debug, Default)]
pub struct BuildParts {
    pub release: Option<String>,
    pub arches: Vec<String>,
    pub rpm: Option<RpmSection>,
    pub pypi_targets: Vec<PypiTarget>,
    pub files: PartFiles,
}

/// Assemble the manifest and write the bundle (atomically, with its `.sha256`).
pub fn pack(
    parts: BuildParts,
    output: &std::path::Path,
    opts: &WriteOptions,
    reporter: &dyn Reporter,
) -> Result<WrittenBundle, BuildError> {
    if parts.files.is_empty() {
        return Err(BuildError::Usage(
            "nothing to bundle: every part was skipped (--no-rpm and --no-pypi?)".into(),
        ));
    }
    let (entries, sources): (Vec<FileEntry>, Vec<PathBuf>) = parts.files.into_iter().unzip();
    let mut manifest = BundleManifest {
        format: FORMAT_VERSION,
        bundle_id: String::new(),
        created: created_time(),
        tool: ToolInfo {
            name: "bundler".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        release: parts.release,
        arches: parts.arches,
        rpm: parts.rpm,
        pypi_targets: parts.pypi_targets,
        files: entries,
        totals: Totals::default(),
    };
    finalize(&mut manifest);
    Ok(write_bundle(output, &manifest, &sources, opts, reporter)?)
}

/// `SOURCE_DATE_EPOCH` when set (reproducible rebuilds), else now; whole seconds.
fn created_time() -> OffsetDateTime {
    let now = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or_else(OffsetDateTime::now_utc);
    now.replace_nanosecond(0).unwrap_or(now)
}

/// Run the RPM part into `parts` (a no-op selection never reaches here).
pub fn add_rpm_part(
    parts: &mut BuildParts,
    opts: &rpm::RpmOptions,
    fetcher: &Fetcher,
    reporter: &dyn Reporter,
) -> Result<(), BuildError> {
    let plans = rpm::plan(opts, fetcher, reporter)?;
    let (files, section) = rpm::fetch(opts, &plans, fetcher, reporter)?;
    parts.release = Some(opts.release.release.clone());
    for arch in &opts.arches {
        if !parts.arches.contains(arch) {
            parts.arches.push(arch.clone());
        }
    }
    parts.rpm = Some(section);
    parts.files.extend(files);
    Ok(())
}
