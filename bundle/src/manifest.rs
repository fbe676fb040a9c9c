//! The manifest schema (format 1): what a bundle holds, where it came from, and the checksums
//! the reader holds every entry to. Unknown fields are ignored so that an older installer can
//! read a newer manifest of the same format; a newer `format` is refused before anything else
//! is parsed (see `BundleManifest::from_json`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The format of a full bundle: every installer reads it.
pub const FORMAT_VERSION: u32 = 1;
/// The format of a differential bundle (one with a [`BaseBundle`]): an installer that reads
/// only format 1 would miss the files left in the base, so it must refuse the bundle instead.
pub const DELTA_FORMAT: u32 = 2;
/// The newest format this build reads.
pub const NEWEST_FORMAT: u32 = DELTA_FORMAT;
/// What a differential bundle's `min_installer_version` says: the first version that reads it.
pub const DELTA_MIN_INSTALLER: &str = "0.1.0";

/// Name of the first archive entry.
pub const MANIFEST_NAME: &str = "manifest.json";
/// Name of the optional second archive entry: ed25519 signature over the exact manifest bytes.
pub const SIGNATURE_NAME: &str = "manifest.json.sig";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BundleManifest {
    /// Format version; readers refuse anything newer than `NEWEST_FORMAT`.
    pub format: u32,
    /// The oldest installer that reads this format (format 2 and later), named when an older
    /// one refuses the bundle.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_installer_version: Option<String>,
    /// Content-derived identifier (hex) of the whole state the manifest describes: the same
    /// file list always has the same id, whether a bundle carries all of it or is differential.
    pub bundle_id: String,
    /// Set for a differential bundle: the bundle whose files it leaves out (`in_base`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseBundle>,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
    pub tool: ToolInfo,
    /// Distribution release the RPM part mirrors, e.g. "10". None for a bundle without RPMs.
    #[serde(default)]
    pub release: Option<String>,
    /// Target machine architectures (RPM `--arch` and PyPI `--platform`), e.g. ["x86_64"].
    #[serde(default)]
    pub arches: Vec<String>,
    #[serde(default)]
    pub rpm: Option<RpmSection>,
    #[serde(default)]
    pub pypi_targets: Vec<PypiTarget>,
    /// What Kubespray downloads: the files repo and the container images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubespray: Option<KubesprayDownloads>,
    /// Every payload file, in archive order.
    pub files: Vec<FileEntry>,
    pub totals: Totals,
}

/// Fills `totals` from the file list, `bundle_id` from it (the first 32 hex digits of a sha256
/// over every file's path, size and sha256 in order), and the format: 1 for a full bundle, 2
/// with `min_installer_version` for a differential one. The same file list always gets the
/// same id, whatever the creation time, tool version or which files the archive carries.
pub fn finalize(manifest: &mut BundleManifest) {
    manifest.format = manifest.required_format();
    manifest.min_installer_version = manifest
        .base
        .as_ref()
        .map(|_| DELTA_MIN_INSTALLER.to_string());
    manifest.bundle_id = state_id(&manifest.files);
    manifest.totals = Totals {
        files: manifest.files.len() as u64,
        bytes: manifest.files.iter().map(|f| f.size).sum(),
    };
}

/// The `bundle_id` of a file list; see [`finalize`].
pub fn state_id(files: &[FileEntry]) -> String {
    use sha2::{Digest, Sha256};
    let mut id = Sha256::new();
    for file in files {
        id.update(file.path.as_bytes());
        id.update([0]);
        id.update(file.size.to_string().as_bytes());
        id.update([0]);
        id.update(file.sha256.as_bytes());
        id.update([b'\n']);
    }
    hex::encode(&id.finalize()[..16])
}

impl BundleManifest {
    /// The files the archive carries, in archive order: every file of a full bundle, the ones
    /// not `in_base` of a differential one.
    pub fn payload(&self) -> impl Iterator<Item = &FileEntry> {
        self.files.iter().filter(|f| !f.in_base)
    }

    /// Count and bytes of [`BundleManifest::payload`].
    pub fn payload_totals(&self) -> Totals {
        self.payload().fold(Totals::default(), |t, f| Totals {
            files: t.files + 1,
            bytes: t.bytes + f.size,
        })
    }

    /// The format this manifest must be written as.
    pub fn required_format(&self) -> u32 {
        if self.base.is_some() {
            DELTA_FORMAT
        } else {
            FORMAT_VERSION
        }
    }
}

/// The earlier bundle a differential bundle was built against (`bundler build --since`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseBundle {
    /// The base's `bundle_id`: an admin must hold every file of that state the delta omits.
    pub bundle_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub files: u64,
    pub bytes: u64,
}

/// The RPM part of a bundle: release key and repositories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpmSection {
    /// Distribution name used in the installed layout, e.g. "rocky".
    pub distro: String,
    /// False when the bundle was built with `--no-gpgcheck` (packages not verified).
    pub gpgcheck: bool,
    /// Bundle path of the release key file (e.g. `keys/RPM-GPG-KEY-Rocky-10`), if carried.
    #[serde(default)]
    pub key_path: Option<String>,
    /// Fingerprint of the key packages were verified against (uppercase hex, no spaces): the
    /// first of `pinned_fingerprints`.
    #[serde(default)]
    pub key_fingerprint: Option<String>,
    /// Every key a package could be signed by to pass: the release definition's pins (or, with
    /// `--gpg-key`, every key in that file). The key file may hold more keys than these.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pinned_fingerprints: Vec<String>,
    /// The minor release the repos hold, read from their metadata (the version of the
    /// release package, e.g. `rocky-release` 10.1 gives "10.1"), when it could be found.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minor_release: Option<String>,
    pub repos: Vec<RpmRepo>,
}

/// One upstream repository for one architecture. Its files live under `dir` in the bundle:
/// packages at their upstream relative paths and the upstream `repodata/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RpmRepo {
    /// Repo id, e.g. "baseos".
    pub id: String,
    pub arch: String,
    /// Bundle directory, e.g. `repos/baseos/x86_64`.
    pub dir: String,
    /// The base URL the repo was mirrored from.
    pub upstream_url: String,
    /// `<revision>` of the upstream repomd.xml, when present.
    #[serde(default)]
    pub revision: Option<String>,
    pub package_count: u64,
    pub package_bytes: u64,
    /// Upstream metadata records carried (repomd `type` and bundle path), e.g. group, updateinfo.
    #[serde(default)]
    pub metadata: Vec<UpstreamRecord>,
    /// True when a package list selected a dependency closure rather than the full repo.
    #[serde(default)]
    pub slim: bool,
    /// Fingerprints of the keys whose signatures verified on this repo's packages (any one
    /// package may carry several). Empty when packages were not verified.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signers: Vec<String>,
    /// Fingerprint of the key whose signature over `repomd.xml` (`repomd.xml.asc`) verified;
    /// None when the metadata was not signed or not checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata_signer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamRecord {
    /// repomd.xml `type` attribute: primary, filelists, other, group, group_gz, updateinfo, modules...
    pub kind: String,
    /// Bundle path of the file.
    pub path: String,
}

/// One PyPI target environment and the lock resolved for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PypiTarget {
    /// Short name, e.g. "cp312-manylinux_2_39-x86_64".
    pub name: String,
    pub python_version: String,
    pub implementation: String,
    pub machine: String,
    pub glibc: String,
    pub index_url: String,
    /// The requirement lines as given (after includes were expanded).
    pub requirements: Vec<String>,
    /// Where the requirements came from: a file given with `--requirements`, the list shipped
    /// for a Kubespray version, or the URL a Kubespray release's `requirements.txt` was fetched
    /// from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requirements_source: Option<String>,
    pub lock: Vec<LockedFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedFile {
    /// Normalized project name (PEP 503).
    pub name: String,
    pub version: String,
    pub filename: String,
    pub url: String,
    pub sha256: String,
    pub size: u64,
    #[serde(default)]
    pub upload_time: Option<String>,
    #[serde(default)]
    pub requires_python: Option<String>,
    /// Yank reason when the file was yanked upstream (kept only when pinned with `==`).
    #[serde(default)]
    pub yanked: Option<String>,
    /// Bundle path of the file (e.g. `pypi/files/six-1.16.0-py2.py3-none-any.whl`).
    pub path: String,
}

/// Kubespray's own downloads for one Kubespray version: the files its roles fetch by URL and
/// the container images its nodes pull. Every byte of both is also a [`FileEntry`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KubesprayDownloads {
    /// Kubespray version the lists belong to, e.g. "2.31.0".
    pub version: String,
    #[serde(default)]
    pub files: Vec<DownloadFile>,
    #[serde(default)]
    pub images: Vec<ImageEntry>,
}

/// One file of Kubespray's files repo. In the bundle it lives at `files/<host>/<url path>`
/// (`files/dl.k8s.io/release/v1.35.4/bin/linux/amd64/kubelet`), the layout Kubespray's offline
/// guide recommends for `files_repo`: the original domains as top directories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadFile {
    /// Kubespray's name for the download (kubelet, etcd, cni, ...).
    pub name: String,
    /// Kubespray's `image_arch` (amd64, arm64).
    pub arch: String,
    /// Where Kubespray would fetch it.
    pub url: String,
    /// Bundle path of the file.
    pub path: String,
}

/// One container image, served by the admin's read-only registry as `name:tag`. Manifests and
/// blobs are stored once by digest at `images/blobs/sha256/<hex>`, shared between images.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageEntry {
    /// The reference as Kubespray names it: `registry.k8s.io/pause:3.10`,
    /// `docker.io/library/nginx:1.28.2-alpine`.
    pub reference: String,
    /// Repository served by the admin, the reference without its registry host:
    /// `pause`, `calico/node`, `library/nginx`.
    pub name: String,
    pub tag: String,
    /// Digest of the top-level manifest or index exactly as upstream served it: `sha256:<hex>`.
    pub digest: String,
    /// Media type of the top-level manifest or index.
    pub media_type: String,
    /// Platforms whose images are carried (`linux/amd64`); an index keeps its upstream bytes,
    /// so it may list platforms that are not carried.
    #[serde(default)]
    pub platforms: Vec<String>,
    /// Every manifest this image needs: the top-level one, and for an index each carried
    /// platform's manifest.
    pub manifests: Vec<ImageManifest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageManifest {
    /// `sha256:<hex>`.
    pub digest: String,
    pub media_type: String,
    /// Bundle path (`images/blobs/sha256/<hex>`).
    pub path: String,
}

/// Every payload entry: the reader checks each archive entry against exactly this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative `/`-separated UTF-8 path inside the bundle.
    pub path: String,
    pub size: u64,
    /// Lowercase hex sha256 of the content.
    pub sha256: String,
    pub kind: FileKind,
    /// Where the file is fetched from, when it is fetched: the first (preferred) mirror's URL.
    /// The bundler writes the manifest before the downloads finish, so a file that a fallback
    /// mirror served still names the preferred one; its sha256 is what pins it.
    #[serde(default)]
    pub origin: Option<String>,
    /// Left out of a differential bundle's archive: the base holds a file with this sha256,
    /// which the installer takes from the admin. Never set for metadata (see
    /// [`FileKind::travels_in_full`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_base: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    Rpm,
    /// Upstream repodata file (repomd.xml, primary, comps, updateinfo, ...).
    Repodata,
    Wheel,
    Sdist,
    /// Core metadata side file of a wheel or sdist.
    Metadata,
    /// A GPG public key (release key).
    Key,
    /// The `installer` binary for one admin architecture (`installer/<arch>/installer`), so
    /// that the bundle carries what applies it.
    Installer,
    /// A file of Kubespray's files repo (kubelet, etcd, CNI plugins, ...).
    Download,
    /// An image manifest or index (OCI or Docker v2), stored by digest.
    ImageManifest,
    /// An image config or layer blob, stored by digest.
    ImageBlob,
    /// Anything else; readers treat it as opaque data.
    #[serde(other)]
    Other,
}

impl FileKind {
    /// Metadata, keys and unknown files are always carried by a differential bundle: they are
    /// small, and the installer keeps no copy of them under their bundle path to take them from.
    pub fn travels_in_full(self) -> bool {
        matches!(
            self,
            FileKind::Repodata | FileKind::Metadata | FileKind::Key | FileKind::Other
        )
    }
}
