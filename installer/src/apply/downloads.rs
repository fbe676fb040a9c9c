//! The files repo part of apply: Kubespray's downloads under `<data>/files/`, the original
//! domains as top directories (`files/dl.k8s.io/release/v1.35.4/bin/linux/amd64/kubelet` in the
//! bundle is `<data>/files/dl.k8s.io/release/...` on the admin and
//! `http://ADMIN/files/dl.k8s.io/release/...` for Kubespray's `files_repo`). Like the PyPI
//! tree, a changed repo is built complete in staging and switched in with one atomic exchange;
//! an unchanged one is left alone.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use bundle::BundleManifest;
use serde::{Deserialize, Serialize};

use super::state;
use super::{ApplyError, Layout};

/// Bundle directory of the files repo.
pub const BUNDLE_DIR: &str = "files/";

/// Content of the installed files repo.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadsState {
    /// Path below `<data>/files/` -> sha256.
    pub files: BTreeMap<String, String>,
}

/// What the files repo step will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadsPlan {
    pub live_dir: PathBuf,
    /// Path below the repo -> (sha256, size, bundle path).
    pub files: BTreeMap<String, (String, u64, String)>,
    pub added: usize,
    pub removed: usize,
    pub unchanged: bool,
}

impl DownloadsPlan {
    pub fn state(&self) -> DownloadsState {
        DownloadsState {
            files: self
                .files
                .iter()
                .map(|(rel, (sha, _, _))| (rel.clone(), sha.clone()))
                .collect(),
        }
    }

    pub fn describe(&self) -> String {
        let bytes: u64 = self.files.values().map(|(_, size, _)| size).sum();
        let what = format!("{} files, {bytes} bytes", self.files.len());
        if self.unchanged {
            format!("unchanged ({what})")
        } else {
            format!("rebuild: +{} -{} files ({what})", self.added, self.removed)
        }
    }
}

/// The repo the bundle asks for. None when the bundle has no downloads and none are installed.
pub fn plan(
    manifest: &BundleManifest,
    layout: &Layout,
) -> Result<Option<DownloadsPlan>, ApplyError> {
    let entries: BTreeMap<&str, &bundle::FileEntry> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    let mut files = BTreeMap::new();
    for d in manifest.kubespray.iter().flat_map(|k| &k.files) {
        let bad = |reason: &str| ApplyError::Download {
            name: d.name.clone(),
            path: d.path.clone(),
            reason: reason.to_string(),
        };
        let rel = d
            .path
            .strip_prefix(BUNDLE_DIR)
            .filter(|rel| rel.contains('/'))
            .ok_or_else(|| bad("not under files/<host>/"))?;
        let entry = entries
            .get(d.path.as_str())
            .ok_or_else(|| bad("not among the bundle's files"))?;
        files.insert(
            rel.to_string(),
            (entry.sha256.clone(), entry.size, d.path.clone()),
        );
    }
    let live: Option<DownloadsState> = state::load(&layout.files);
    if files.is_empty() && live.is_none() {
        return Ok(None);
    }
    let live = live.unwrap_or_default();
    let added = files
        .keys()
        .filter(|rel| !live.files.contains_key(*rel))
        .count();
    let removed = live
        .files
        .keys()
        .filter(|rel| !files.contains_key(*rel))
        .count();
    let mut plan = DownloadsPlan {
        live_dir: layout.files.clone(),
        files,
        added,
        removed,
        unchanged: false,
    };
    plan.unchanged = layout.files.exists() && plan.state() == live;
    Ok(Some(plan))
}

/// Build the planned repo in staging from the unpacked bundle and switch it live.
pub fn execute(plan: &DownloadsPlan, layout: &Layout, extracted: &Path) -> Result<(), ApplyError> {
    if plan.unchanged {
        return Ok(());
    }
    let stage = layout.staging.join("files");
    fs_err::create_dir_all(&stage)?;
    let mut made_dirs = HashSet::new();
    for (rel, (_, _, bundle_path)) in &plan.files {
        let dest = stage.join(rel);
        if let Some(parent) = dest.parent()
            && made_dirs.insert(parent.to_path_buf())
        {
            fs_err::create_dir_all(parent)?;
        }
        fs_err::rename(extracted.join(bundle_path), &dest)?;
    }
    state::store(&stage, &plan.state())?;
    crate::fsutil::sync_filesystem(&stage)?;
    state::kill_point("files-staged");
    crate::fsutil::replace_dir(&stage, &plan.live_dir)?;
    state::kill_point("files-switched");
    Ok(())
}
