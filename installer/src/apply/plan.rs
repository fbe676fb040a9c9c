//! The one plan of an apply: what each step will do, printed by `--dry-run` (with the unified
//! diff of every generated file) and executed by a real run.

use std::fmt;
use std::path::{Path, PathBuf};

use bundle::BundleManifest;
use sha2::{Digest, Sha256};

use super::{ApplyError, DownloadsPlan, ImagesPlan, Layout, PypiPlan, RepoPlan};
use crate::desired::DesiredFile;
use crate::fsutil::{self, FileChange};

/// Where the content of a planned file comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileSource {
    /// Rendered by a generator (nginx, and the service configs).
    Generated(DesiredFile),
    /// A payload file of the bundle (the release key, the installer binaries), known by path
    /// and sha256 until unpacked.
    FromBundle {
        target: PathBuf,
        bundle_path: String,
        sha256: String,
        mode: u32,
    },
}

/// One file the apply puts in place, and how it differs from what is there now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStep {
    pub source: FileSource,
    pub change: FileChange,
}

impl FileStep {
    pub fn generated(root: &Path, file: DesiredFile) -> Result<FileStep, ApplyError> {
        let change = fsutil::compare(
            &fsutil::rooted(root, &file.path)?,
            &file.contents,
            file.mode,
        )?;
        Ok(FileStep {
            source: FileSource::Generated(file),
            change,
        })
    }

    pub fn from_bundle(
        root: &Path,
        target: PathBuf,
        bundle_path: &str,
        sha256: &str,
        mode: u32,
    ) -> Result<FileStep, ApplyError> {
        let live = fsutil::rooted(root, &target)?;
        let change = match fs_err::read(&live) {
            Ok(old) if hex::encode(Sha256::digest(&old)) == sha256 => FileChange::Unchanged,
            Ok(old) => FileChange::Modify {
                old,
                mode_only: false,
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileChange::Create,
            Err(e) => return Err(e.into()),
        };
        Ok(FileStep {
            source: FileSource::FromBundle {
                target,
                bundle_path: bundle_path.to_string(),
                sha256: sha256.to_string(),
                mode,
            },
            change,
        })
    }

    pub fn target(&self) -> &Path {
        match &self.source {
            FileSource::Generated(f) => &f.path,
            FileSource::FromBundle { target, .. } => target,
        }
    }

    /// The file to install; bundle files are read from the unpacked bundle.
    pub fn desired(&self, extracted: &Path) -> Result<DesiredFile, ApplyError> {
        Ok(match &self.source {
            FileSource::Generated(f) => f.clone(),
            FileSource::FromBundle {
                target,
                bundle_path,
                mode,
                ..
            } => DesiredFile {
                path: target.clone(),
                contents: fs_err::read(extracted.join(bundle_path))?,
                mode: *mode,
            },
        })
    }
}

/// Everything an apply will do, decided before anything is written.
#[derive(Debug, Clone)]
pub struct Plan {
    pub manifest: BundleManifest,
    pub signature_required: bool,
    pub layout: Layout,
    pub repos: Vec<RepoPlan>,
    pub pypi: Option<PypiPlan>,
    /// Kubespray's files repo.
    pub downloads: Option<DownloadsPlan>,
    /// The image registry.
    pub images: Option<ImagesPlan>,
    pub files: Vec<FileStep>,
    /// For a differential bundle: the files it leaves out, and where this admin holds them.
    pub base_files: Vec<super::base::BaseFile>,
}

impl Plan {
    /// False when applying would leave every tree and file as it is.
    pub fn changes_anything(&self) -> bool {
        self.trees_change() || self.files.iter().any(|f| f.change.is_change())
    }

    /// True when some served tree (a repo, the index, the files repo, the registry) is rebuilt.
    fn trees_change(&self) -> bool {
        self.repos.iter().any(|r| !r.unchanged)
            || self.pypi.as_ref().is_some_and(|p| !p.unchanged)
            || self.downloads.as_ref().is_some_and(|d| !d.unchanged)
            || self.images.as_ref().is_some_and(|i| !i.unchanged)
    }

    /// True when some step needs the bundle's payload on disk (a tree to rebuild or a bundle
    /// file to install); otherwise the run only verifies the bundle, writing nothing to unpack.
    pub fn needs_payload(&self) -> bool {
        self.trees_change()
            || self
                .files
                .iter()
                .any(|f| f.change.is_change() && matches!(f.source, FileSource::FromBundle { .. }))
    }

    /// Unified diffs of every file that would change (bundle files by their sha256).
    pub fn diffs(&self) -> String {
        let mut out = String::new();
        for f in self.files.iter().filter(|f| f.change.is_change()) {
            match &f.source {
                FileSource::Generated(d) => {
                    out.push_str(&fsutil::unified_diff(&d.path, &f.change, &d.contents))
                }
                FileSource::FromBundle {
                    target,
                    bundle_path,
                    sha256,
                    ..
                } => out.push_str(&format!(
                    "{}: replaced by {bundle_path} from the bundle (sha256 {sha256})\n",
                    target.display()
                )),
            }
        }
        out
    }
}

fn change_word(c: &FileChange) -> &'static str {
    match c {
        FileChange::Unchanged => "unchanged",
        FileChange::Create => "create",
        FileChange::Modify { .. } => "update (backup .orig once)",
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = &self.manifest;
        writeln!(
            f,
            "bundle {} (release {}, created {}): {} files, {} bytes",
            m.bundle_id,
            m.release.as_deref().unwrap_or("-"),
            m.created,
            m.totals.files,
            m.totals.bytes
        )?;
        if let Some(base) = &m.base {
            writeln!(
                f,
                "differential, base {}: {} files carried, {} taken from this admin",
                base.bundle_id,
                m.payload_totals().files,
                self.base_files.len()
            )?;
        }
        let sig = if self.signature_required {
            "signature required"
        } else {
            "no key given: signature not checked"
        };
        let mut n = 1;
        writeln!(
            f,
            "  {n}. verify + unpack  every file's size and sha256, {sig}; staging {}",
            self.layout.staging.display()
        )?;
        for r in &self.repos {
            n += 1;
            writeln!(
                f,
                "  {n}. repo {:<12} {} -> {}",
                r.id,
                r.describe(),
                r.live_dir.display()
            )?;
        }
        if let Some(p) = &self.pypi {
            n += 1;
            writeln!(
                f,
                "  {n}. pypi index        {} -> {}",
                p.describe(),
                self.layout.pypi.display()
            )?;
        }
        if let Some(d) = &self.downloads {
            n += 1;
            writeln!(
                f,
                "  {n}. files repo        {} -> {}",
                d.describe(),
                self.layout.files.display()
            )?;
        }
        if let Some(i) = &self.images {
            n += 1;
            writeln!(
                f,
                "  {n}. image registry    {} -> {}",
                i.describe(),
                self.layout.registry.display()
            )?;
        }
        for step in &self.files {
            n += 1;
            writeln!(
                f,
                "  {n}. file {}  {}",
                step.target().display(),
                change_word(&step.change)
            )?;
        }
        if !self.changes_anything() {
            writeln!(
                f,
                "nothing to change: the admin server already serves this bundle"
            )?;
        }
        Ok(())
    }
}
