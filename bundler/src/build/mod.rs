//! `bundler build` as a library call: each part (RPM mirror, PyPI wheels) reads its metadata
//! and describes its files (path, size, sha256 from upstream metadata, and where the bytes come
//! from); then [`stream::pack`] writes the manifest and streams every file into the bundle as
//! it is downloaded and verified. Nothing is written to the output path unless every file was
//! fetched and verified.

pub mod delta;
pub mod installer;
pub mod kubespray;
pub mod pypi;
pub mod reuse;
pub mod rpm;
pub mod space;
pub mod stream;

use std::path::PathBuf;
use std::sync::Arc;

use bundle::progress::Reporter;
use bundle::{BundleManifest, FORMAT_VERSION, FileEntry, FileKind, PypiTarget, RpmSection};
use bundle::{ToolInfo, Totals};
use time::OffsetDateTime;

use crate::fetch::{Download, FetchError, Fetcher};
use crate::release::ReleaseError;
use crate::rpm::RpmMetaError;
use crate::rpm::verify::ReleaseKey;

pub use stream::pack;

/// Where a bundle file's bytes come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A local file that is already there (metadata and keys in the cache, staged wheels).
    Local(PathBuf),
    /// To be fetched while the bundle is written. `signed_package` names the RPM (NEVRA) whose
    /// header signature must verify against the build's key before the file is packed.
    Fetch {
        download: Download,
        signed_package: Option<String>,
    },
}

/// Files a part contributes: the manifest entry and where its bytes come from.
pub type PartFiles = Vec<(FileEntry, Source)>;

/// A bundle file to fetch: its manifest entry (size and sha256 as upstream promises them,
/// origin the first mirror's URL) and the download.
pub(crate) fn to_fetch(
    path: String,
    kind: FileKind,
    download: Download,
    signed_package: Option<String>,
) -> (FileEntry, Source) {
    let origin = download
        .urls
        .first()
        .filter(|u| u.scheme() != "file")
        .map(ToString::to_string);
    (
        FileEntry {
            path,
            size: download.expected.size,
            sha256: download.expected.sha256.clone(),
            kind,
            origin,
            in_base: false,
        },
        Source::Fetch {
            download,
            signed_package,
        },
    )
}

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
    /// Not enough room for what the build downloads and writes, found before it starts.
    #[error(transparent)]
    Space(#[from] space::SpaceError),
    #[error("image {reference}: {source}")]
    Image {
        reference: String,
        #[source]
        source: FetchError,
    },
    /// A registry served a manifest or config the bundle cannot take (a verification failure).
    #[error("{0}")]
    ImageInvalid(String),
    /// A registry lacks an image the build needs (an operational failure).
    #[error("{0}")]
    ImageUnavailable(String),
}

/// Everything the parts described, ready to pack.
#[derive(Debug, Default)]
pub struct BuildParts {
    pub release: Option<String>,
    pub arches: Vec<String>,
    pub rpm: Option<RpmSection>,
    pub pypi_targets: Vec<PypiTarget>,
    pub kubespray: Option<bundle::KubesprayDownloads>,
    pub files: PartFiles,
    /// The key file RPM header signatures are checked against (None with `--no-gpgcheck`).
    pub verifier: Option<Arc<ReleaseKey>>,
    /// `--since`: the base's manifest; the files it holds are left out of the bundle.
    pub base: Option<BundleManifest>,
}

/// The manifest for `parts` (files in order, totals and id filled in).
fn manifest_for(parts: &BuildParts) -> BundleManifest {
    let mut manifest = BundleManifest {
        format: FORMAT_VERSION,
        min_installer_version: None,
        base: None,
        bundle_id: String::new(),
        created: created_time(),
        tool: ToolInfo {
            name: "bundler".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        release: parts.release.clone(),
        arches: parts.arches.clone(),
        rpm: parts.rpm.clone(),
        pypi_targets: parts.pypi_targets.clone(),
        kubespray: parts.kubespray.clone(),
        files: parts
            .files
            .iter()
            .zip(delta::in_base(parts))
            .map(|((e, _), in_base)| FileEntry {
                in_base,
                ..e.clone()
            })
            .collect(),
        totals: Totals::default(),
    };
    manifest.base = parts.base.as_ref().map(delta::base_record);
    bundle::write::finalize(&mut manifest);
    manifest
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

/// Read the RPM part's metadata and describe its files into `parts` (a no-op selection never reaches here).
pub async fn add_rpm_part(
    parts: &mut BuildParts,
    opts: &rpm::RpmOptions,
    fetcher: &Fetcher,
    reporter: &dyn Reporter,
) -> Result<(), BuildError> {
    let plan = rpm::plan(opts, fetcher, reporter).await?;
    let part = rpm::describe(opts, &plan)?;
    parts.release = Some(opts.release.release.clone());
    for arch in &opts.arches {
        if !parts.arches.contains(arch) {
            parts.arches.push(arch.clone());
        }
    }
    parts.rpm = Some(part.section);
    parts.files.extend(part.files);
    parts.verifier = part.verifier;
    Ok(())
}
