//! The files a differential bundle leaves out (`in_base` in its manifest): found on this admin
//! by sha256 in the trees earlier applies installed, which record what they hold in their state
//! files (repos, PyPI, files repo, registry) or beside it (the node installers). Any state that
//! holds every omitted file will do, not only the base itself.
//!
//! [`locate`] runs while planning, so a delta whose files this admin lacks is refused before
//! anything is written; [`link_into`] runs after the unpack and puts each one at its bundle path
//! in the extracted tree (a hard link: the data root is one filesystem), after which apply
//! proceeds exactly as for the full bundle.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bundle::BundleManifest;

use super::downloads::DownloadsState;
use super::images::RegistryState;
use super::state::{self, PypiState, RepoState};
use super::{ApplyError, Layout};

/// Omitted files named in the refusal, at most.
const NAMED_MISSING: usize = 10;

/// One omitted file and where this admin holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseFile {
    pub bundle_path: String,
    pub installed: PathBuf,
}

/// Where each omitted file of `manifest` is on this admin; refuses (naming the base, counting
/// the missing files and naming some) when any is not there with its recorded size.
pub fn locate(manifest: &BundleManifest, layout: &Layout) -> Result<Vec<BaseFile>, ApplyError> {
    let Some(base) = &manifest.base else {
        return Ok(Vec::new());
    };
    let held = installed_by_sha256(layout);
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for file in manifest.files.iter().filter(|f| f.in_base) {
        let here = held.get(file.sha256.as_str()).filter(|path| {
            fs_err::metadata(path).is_ok_and(|m| m.is_file() && m.len() == file.size)
        });
        match here {
            Some(path) => found.push(BaseFile {
                bundle_path: file.path.clone(),
                installed: path.clone(),
            }),
            None => missing.push(file.path.clone()),
        }
    }
    if missing.is_empty() {
        return Ok(found);
    }
    Err(ApplyError::MissingBaseFiles {
        base: base.bundle_id.clone(),
        count: missing.len(),
        total: manifest.files.iter().filter(|f| f.in_base).count(),
        named: missing.into_iter().take(NAMED_MISSING).collect(),
    })
}

/// Hard-links every located file into the extracted tree at its bundle path (a copy when the
/// link is refused), so that the trees are built from `extracted` as from a full bundle.
pub fn link_into(files: &[BaseFile], extracted: &Path) -> Result<(), ApplyError> {
    for file in files {
        let dest = extracted.join(&file.bundle_path);
        if let Some(parent) = dest.parent() {
            fs_err::create_dir_all(parent)?;
        }
        if fs_err::hard_link(&file.installed, &dest).is_err() {
            fs_err::copy(&file.installed, &dest)?;
        }
    }
    Ok(())
}

/// sha256 -> an installed file with that content, from every tree's record.
fn installed_by_sha256(layout: &Layout) -> HashMap<String, PathBuf> {
    let mut held = HashMap::new();
    // Repos live at `<data>/repos/<distro>/<release>/<id>/`.
    for dir in subdirs(&layout.repos)
        .flat_map(|d| subdirs(&d).collect::<Vec<_>>())
        .flat_map(|d| subdirs(&d).collect::<Vec<_>>())
    {
        if let Some(repo) = state::load::<RepoState>(&dir) {
            for (rel, sha) in repo.packages {
                held.entry(sha).or_insert_with(|| dir.join(rel));
            }
        }
    }
    if let Some(pypi) = state::load::<PypiState>(&layout.pypi) {
        for f in pypi.files {
            let path = layout.pypi.join("files").join(&f.filename);
            held.entry(f.sha256).or_insert(path);
        }
    }
    if let Some(files) = state::load::<DownloadsState>(&layout.files) {
        for (rel, sha) in files.files {
            held.entry(sha).or_insert_with(|| layout.files.join(rel));
        }
    }
    if let Some(registry) = state::load::<RegistryState>(&layout.registry) {
        for hex in registry.stored.into_keys() {
            let path = layout.registry.join("blobs/sha256").join(&hex);
            held.entry(hex).or_insert(path);
        }
    }
    // The node installers, each with its `installer-<arch>.sha256` beside it.
    let node = layout.data.join("node");
    for entry in fs_err::read_dir(&node).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("installer-") || !name.ends_with(".sha256") {
            continue;
        }
        let Ok(text) = fs_err::read_to_string(entry.path()) else {
            continue;
        };
        if let Some((sha, file)) = text.trim_end().split_once("  ")
            && !file.contains('/')
        {
            held.entry(sha.to_string())
                .or_insert_with(|| node.join(file));
        }
    }
    held
}

fn subdirs(dir: &Path) -> impl Iterator<Item = PathBuf> {
    fs_err::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| e.path())
}
