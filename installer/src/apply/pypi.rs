//! The PyPI part of apply: decide whether the bundle changes the installed index, and if so
//! build the complete new tree (files + index) in staging and switch it in with one atomic
//! exchange, so pip always sees either the old or the new index.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bundle::BundleManifest;

use super::state::{self, PypiState};
use super::{ApplyError, Layout};
use crate::fsutil::Durability;
use crate::simple_index::{self, CoreMetadata, IndexFile};

/// What the PyPI step will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PypiPlan {
    /// Files the new index lists (sorted by file name).
    pub files: Vec<IndexFile>,
    /// File name -> bundle path, for files taken from the bundle.
    pub from_bundle: BTreeMap<String, String>,
    /// Files kept from the installed index (`--keep-old`).
    pub kept: Vec<String>,
    pub added: usize,
    pub removed: usize,
    pub unchanged: bool,
}

impl PypiPlan {
    pub fn describe(&self) -> String {
        let projects = simple_index::group(self.files.clone()).len();
        let what = format!("{} files, {projects} projects", self.files.len());
        if self.unchanged {
            format!("unchanged ({what})")
        } else {
            format!(
                "rebuild: +{} -{} files, {} kept ({what})",
                self.added,
                self.removed,
                self.kept.len()
            )
        }
    }
}

pub fn plan(
    manifest: &BundleManifest,
    layout: &Layout,
    keep_old: bool,
) -> Result<Option<PypiPlan>, ApplyError> {
    let (mut files, from_bundle) = simple_index::files_from_manifest(manifest)?;
    let live: Option<PypiState> = state::load(&layout.pypi);
    if files.is_empty() && live.is_none() {
        return Ok(None);
    }
    let live_files = live.map(|s| s.files).unwrap_or_default();
    let mut kept = Vec::new();
    if keep_old {
        for old in &live_files {
            if !from_bundle.contains_key(&old.filename) {
                kept.push(old.filename.clone());
                files.push(old.clone());
            }
        }
    }
    files.sort_by(|a, b| a.filename.cmp(&b.filename));
    let live_names: BTreeMap<&str, &IndexFile> = live_files
        .iter()
        .map(|f| (f.filename.as_str(), f))
        .collect();
    let added = files
        .iter()
        .filter(|f| !live_names.contains_key(f.filename.as_str()))
        .count();
    let removed = live_files
        .iter()
        .filter(|f| !files.iter().any(|n| n.filename == f.filename))
        .count();
    let unchanged = layout.pypi.exists() && files == live_files;
    Ok(Some(PypiPlan {
        files,
        from_bundle,
        kept,
        added,
        removed,
        unchanged,
    }))
}

/// Build the planned tree in staging and switch it live. `metadata` holds the core metadata of
/// wheels already read during the unpack (by file name).
pub fn execute(
    plan: &PypiPlan,
    layout: &Layout,
    extracted: &Path,
    metadata: &HashMap<String, CoreMetadata>,
) -> Result<(), ApplyError> {
    if plan.unchanged {
        return Ok(());
    }
    let stage = layout.staging.join("pypi");
    let files_dir = stage.join("files");
    fs_err::create_dir_all(&files_dir)?;
    fs_err::create_dir_all(stage.join("simple"))?;
    for (filename, bundle_path) in &plan.from_bundle {
        fs_err::rename(extracted.join(bundle_path), files_dir.join(filename))?;
    }
    for filename in &plan.kept {
        fs_err::hard_link(
            layout.pypi.join("files").join(filename),
            files_dir.join(filename),
        )?;
    }
    simple_index::build_with_metadata(&stage, plan.files.clone(), metadata, Durability::Staged)?;
    state::store(
        &stage,
        &PypiState {
            files: plan.files.clone(),
        },
    )?;
    // One flush for the whole staged tree (moved wheels, side files, pages), then the switch.
    crate::fsutil::sync_filesystem(&stage)?;
    state::kill_point("pypi-staged");
    crate::fsutil::replace_dir(&stage, &layout.pypi)?;
    state::kill_point("pypi-switched");
    Ok(())
}
