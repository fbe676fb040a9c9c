//! What a bundle holds, in numbers: per RPM repo and per PyPI target, Kubespray's images and
//! files, counts and sizes, plus identity and signature presence. Built from the manifest alone, so `installer inspect` (and
//! a landing page) can show it without reading the payload.

use serde::Serialize;

use crate::manifest::{BundleManifest, ToolInfo};
use crate::stream::ManifestInfo;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub format: u32,
    pub bundle_id: String,
    /// RFC 3339.
    pub created: String,
    pub tool: ToolInfo,
    pub release: Option<String>,
    /// The minor release the RPM repos hold, e.g. "10.1" (from the manifest's RPM section).
    pub minor_release: Option<String>,
    /// Keys whose signatures verified on the bundle's packages, over every repo.
    pub package_signers: Vec<String>,
    pub arches: Vec<String>,
    /// The bundle carries `manifest.json.sig` (not checked here; `verify --key` checks it).
    pub signed: bool,
    /// Every file of the state the manifest describes.
    pub files: u64,
    pub bytes: u64,
    /// A differential bundle's base id (`bundler build --since`); None for a full bundle.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The files the archive carries: all of them, or a differential bundle's new ones.
    pub carried: Count,
    pub repos: Vec<RepoSummary>,
    pub pypi_targets: Vec<TargetSummary>,
    /// The installer binaries the bundle carries, one per admin architecture.
    pub installers: Vec<InstallerSummary>,
    /// Kubespray's downloads, when the bundle carries them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubespray: Option<KubespraySummary>,
    /// Payload files under no repo directory, in no PyPI lock and no installer (keys, for
    /// instance).
    pub other: Count,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KubespraySummary {
    pub version: String,
    /// Images (`name:tag` entries).
    pub images: u64,
    /// Every manifest and blob stored for them, each once.
    pub image_files: Count,
    /// Files of the files repo.
    pub files: Count,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InstallerSummary {
    pub arch: String,
    pub path: String,
    pub size: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Count {
    pub files: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepoSummary {
    pub id: String,
    pub arch: String,
    pub dir: String,
    pub upstream_url: String,
    pub revision: Option<String>,
    pub slim: bool,
    pub packages: u64,
    pub package_bytes: u64,
    /// Every file under the repo directory (packages and upstream metadata).
    pub all: Count,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TargetSummary {
    pub name: String,
    pub python_version: String,
    pub implementation: String,
    pub machine: String,
    pub glibc: String,
    pub requirements: usize,
    /// Locked files (wheels, sdists) and their total size.
    pub locked: Count,
}

impl Summary {
    /// "full", or "differential, base <id>" (what `installer inspect` and `verify` print).
    pub fn kind(&self) -> String {
        match &self.base {
            Some(base) => format!("differential, base {base}"),
            None => "full".to_string(),
        }
    }

    pub fn of(info: &ManifestInfo) -> Summary {
        Summary::from_manifest(&info.manifest, info.signature.is_some())
    }

    pub fn from_manifest(m: &BundleManifest, signed: bool) -> Summary {
        let repos: Vec<RepoSummary> = m
            .rpm
            .iter()
            .flat_map(|rpm| &rpm.repos)
            .map(|repo| {
                let prefix = format!("{}/", repo.dir.trim_end_matches('/'));
                let mut all = Count::default();
                for f in m.files.iter().filter(|f| f.path.starts_with(&prefix)) {
                    all.files += 1;
                    all.bytes += f.size;
                }
                RepoSummary {
                    id: repo.id.clone(),
                    arch: repo.arch.clone(),
                    dir: repo.dir.clone(),
                    upstream_url: repo.upstream_url.clone(),
                    revision: repo.revision.clone(),
                    slim: repo.slim,
                    packages: repo.package_count,
                    package_bytes: repo.package_bytes,
                    all,
                }
            })
            .collect();
        let pypi_targets = m
            .pypi_targets
            .iter()
            .map(|t| TargetSummary {
                name: t.name.clone(),
                python_version: t.python_version.clone(),
                implementation: t.implementation.clone(),
                machine: t.machine.clone(),
                glibc: t.glibc.clone(),
                requirements: t.requirements.len(),
                locked: Count {
                    files: t.lock.len() as u64,
                    bytes: t.lock.iter().map(|l| l.size).sum(),
                },
            })
            .collect();
        let repo_prefixes: Vec<String> = repos
            .iter()
            .map(|r| format!("{}/", r.dir.trim_end_matches('/')))
            .collect();
        let locked: std::collections::HashSet<&str> = m
            .pypi_targets
            .iter()
            .flat_map(|t| t.lock.iter().map(|l| l.path.as_str()))
            .collect();
        let installers: Vec<InstallerSummary> = m
            .files
            .iter()
            .filter(|f| f.kind == crate::FileKind::Installer)
            .map(|f| InstallerSummary {
                arch: f.path.split('/').nth(1).unwrap_or_default().to_string(),
                path: f.path.clone(),
                size: f.size,
                sha256: f.sha256.clone(),
            })
            .collect();
        let downloads: std::collections::HashSet<&str> = m
            .kubespray
            .iter()
            .flat_map(|k| k.files.iter().map(|d| d.path.as_str()))
            .collect();
        let is_image_file = |f: &crate::FileEntry| {
            matches!(
                f.kind,
                crate::FileKind::ImageManifest | crate::FileKind::ImageBlob
            )
        };
        let kubespray = m.kubespray.as_ref().map(|k| {
            let mut image_files = Count::default();
            let mut files = Count::default();
            for f in &m.files {
                if is_image_file(f) {
                    image_files.files += 1;
                    image_files.bytes += f.size;
                } else if downloads.contains(f.path.as_str()) {
                    files.files += 1;
                    files.bytes += f.size;
                }
            }
            KubespraySummary {
                version: k.version.clone(),
                images: k.images.len() as u64,
                image_files,
                files,
            }
        });
        let mut other = Count::default();
        for f in &m.files {
            let in_repo = repo_prefixes.iter().any(|p| f.path.starts_with(p.as_str()));
            let known = in_repo
                || f.kind == crate::FileKind::Installer
                || is_image_file(f)
                || downloads.contains(f.path.as_str());
            if !known && !locked.contains(f.path.as_str()) {
                other.files += 1;
                other.bytes += f.size;
            }
        }
        Summary {
            format: m.format,
            bundle_id: m.bundle_id.clone(),
            created: m
                .created
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_else(|_| m.created.to_string()),
            tool: m.tool.clone(),
            release: m.release.clone(),
            minor_release: m.rpm.as_ref().and_then(|r| r.minor_release.clone()),
            package_signers: {
                let mut signers: Vec<String> = Vec::new();
                for s in m.rpm.iter().flat_map(|r| &r.repos).flat_map(|r| &r.signers) {
                    if !signers.contains(s) {
                        signers.push(s.clone());
                    }
                }
                signers
            },
            arches: m.arches.clone(),
            signed,
            files: m.totals.files,
            bytes: m.totals.bytes,
            base: m.base.as_ref().map(|b| b.bundle_id.clone()),
            carried: {
                let t = m.payload_totals();
                Count {
                    files: t.files,
                    bytes: t.bytes,
                }
            },
            repos,
            pypi_targets,
            installers,
            kubespray,
            other,
        }
    }
}
