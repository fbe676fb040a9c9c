//! The PyPI simple index the admin server serves to pip and uv: a static tree of PEP 503 HTML
//! and PEP 691 JSON pages plus PEP 658/714 `.metadata` side files, built from the wheels a
//! bundle carries and the lock the bundler recorded (requires-python, yanked, upload-time).
//!
//! Layout under the PyPI data directory (`/data/pypi`):
//! ```text
//! files/<filename>              wheels and sdists (PyPI filenames are globally unique)
//! files/<filename>.metadata     wheels only: METADATA, byte-for-byte
//! simple/index.html             root, PEP 503
//! simple/index.v1_json          root, PEP 691 (nginx picks it by Accept)
//! simple/<project>/index.html   one page per normalized project name
//! simple/<project>/index.v1_json
//! ```

mod metadata;
pub(crate) mod render;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

pub use metadata::{CoreMetadata, MetadataError, read_wheel_metadata, wheel_metadata_from};
pub use render::{API_VERSION, encode_segment, escape_html};

use bundle::manifest::{BundleManifest, FileKind};

pub use crate::fsutil::Durability;

/// Name of the HTML page in each index directory (nginx default and what `file://` pip reads).
pub const HTML_PAGE: &str = "index.html";
/// Name of the JSON page in each index directory; nginx maps the PEP 691 Accept type to it.
pub const JSON_PAGE: &str = "index.v1_json";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Metadata(#[from] MetadataError),
    #[error(transparent)]
    Fs(#[from] crate::fsutil::FsError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("{filename}: listed twice with different content (sha256 {first} and {second})")]
    Conflict {
        filename: String,
        first: String,
        second: String,
    },
    #[error("{path}: file name {filename:?} is not a plain file name")]
    BadName { path: String, filename: String },
}

/// One distribution file as the index lists it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IndexFile {
    /// Project name as given (normalized when grouping).
    pub project: String,
    pub version: String,
    pub filename: String,
    pub sha256: String,
    pub size: u64,
    /// `yyyy-mm-ddThh:mm:ss.ffffffZ` (UTC), or None when unknown (never an empty string).
    pub upload_time: Option<String>,
    pub requires_python: Option<String>,
    /// Yank reason (empty string: yanked without a reason); None when not yanked.
    pub yanked: Option<String>,
    /// sha256 of the `.metadata` side file, once it exists.
    pub core_metadata: Option<String>,
}

/// One project page: the normalized name and its files sorted by file name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Project {
    pub name: String,
    pub files: Vec<IndexFile>,
}

/// PEP 503 normalization: runs of `-`, `_`, `.` become one `-`, lowercase.
pub fn normalize_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut in_sep = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !in_sep {
                out.push('-');
            }
            in_sep = true;
        } else {
            out.extend(c.to_lowercase());
            in_sep = false;
        }
    }
    out
}

/// Normalize upload times to the PEP 700 form, dropping values that do not parse.
pub fn normalize_upload_time(raw: &str) -> Option<String> {
    use time::format_description::well_known::Rfc3339;
    let parsed = time::OffsetDateTime::parse(raw, &Rfc3339).ok()?;
    let utc = parsed.to_offset(time::UtcOffset::UTC);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    utc.format(&fmt).ok()
}

/// The index files a bundle carries: every file of every PyPI target's lock (shared pure-Python
/// wheels once), plus wheels present in the bundle but in no lock (name and version from the
/// wheel file name). Returns the records and, per file name, its bundle path.
pub fn files_from_manifest(
    manifest: &BundleManifest,
) -> Result<(Vec<IndexFile>, BTreeMap<String, String>), IndexError> {
    let mut by_name: BTreeMap<String, IndexFile> = BTreeMap::new();
    let mut paths = BTreeMap::new();
    fn add(
        by_name: &mut BTreeMap<String, IndexFile>,
        paths: &mut BTreeMap<String, String>,
        f: IndexFile,
        path: &str,
    ) -> Result<(), IndexError> {
        if f.filename.is_empty() || f.filename.contains('/') || f.filename.starts_with('.') {
            return Err(IndexError::BadName {
                path: path.to_string(),
                filename: f.filename,
            });
        }
        if let Some(prev) = by_name.get(&f.filename) {
            if prev.sha256 != f.sha256 {
                return Err(IndexError::Conflict {
                    filename: f.filename.clone(),
                    first: prev.sha256.clone(),
                    second: f.sha256,
                });
            }
            return Ok(());
        }
        paths.insert(f.filename.clone(), path.to_string());
        by_name.insert(f.filename.clone(), f);
        Ok(())
    }
    for target in &manifest.pypi_targets {
        for l in &target.lock {
            add(
                &mut by_name,
                &mut paths,
                IndexFile {
                    project: l.name.clone(),
                    version: l.version.clone(),
                    filename: l.filename.clone(),
                    sha256: l.sha256.clone(),
                    size: l.size,
                    upload_time: l.upload_time.as_deref().and_then(normalize_upload_time),
                    requires_python: l.requires_python.clone(),
                    yanked: l.yanked.clone(),
                    core_metadata: None,
                },
                &l.path,
            )?;
        }
    }
    for entry in manifest.files.iter().filter(|e| e.kind == FileKind::Wheel) {
        let filename = entry.path.rsplit('/').next().unwrap_or(&entry.path);
        if by_name.contains_key(filename) {
            continue;
        }
        let mut parts = filename.split('-');
        let (Some(project), Some(version)) = (parts.next(), parts.next()) else {
            continue;
        };
        add(
            &mut by_name,
            &mut paths,
            IndexFile {
                project: project.to_string(),
                version: version.to_string(),
                filename: filename.to_string(),
                sha256: entry.sha256.clone(),
                size: entry.size,
                upload_time: None,
                requires_python: None,
                yanked: None,
                core_metadata: None,
            },
            &entry.path,
        )?;
    }
    Ok((by_name.into_values().collect(), paths))
}

/// Group files into projects, sorted by normalized name, files by file name.
pub fn group(files: Vec<IndexFile>) -> Vec<Project> {
    let mut map: BTreeMap<String, Vec<IndexFile>> = BTreeMap::new();
    for f in files {
        map.entry(normalize_name(&f.project)).or_default().push(f);
    }
    map.into_iter()
        .map(|(name, mut files)| {
            files.sort_by(|a, b| a.filename.cmp(&b.filename));
            Project { name, files }
        })
        .collect()
}

/// Summary of a built index, for the plan report and the landing page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexSummary {
    pub projects: usize,
    pub files: usize,
    pub metadata_files: usize,
}

/// Build the index under `pypi_dir` for files already present in `pypi_dir/files/`: write the
/// `.metadata` side file of every wheel (in parallel) and every page. Writes are atomic and
/// identical files are left alone, so rebuilding an unchanged index touches nothing; pages of
/// projects no longer listed are removed.
pub fn build(pypi_dir: &Path, files: Vec<IndexFile>) -> Result<IndexSummary, IndexError> {
    build_with_metadata(pypi_dir, files, &HashMap::new(), Durability::EachFile)
}

/// [`build`], with the core metadata of some wheels already read (by file name, from the same
/// bytes that are now in `pypi_dir/files/`); the others are read from their wheel. With
/// [`Durability::Staged`] nothing is fsynced: `pypi_dir` is a staging tree that the caller syncs
/// once before switching it live.
pub fn build_with_metadata(
    pypi_dir: &Path,
    files: Vec<IndexFile>,
    metadata: &HashMap<String, CoreMetadata>,
    durability: Durability,
) -> Result<IndexSummary, IndexError> {
    let files_dir = pypi_dir.join("files");
    let simple = pypi_dir.join("simple");
    let files: Vec<IndexFile> = files
        .into_par_iter()
        .map(|mut f| -> Result<IndexFile, IndexError> {
            if f.filename.ends_with(".whl") {
                let meta = match metadata.get(&f.filename) {
                    Some(meta) => meta.clone(),
                    None => read_wheel_metadata(&files_dir.join(&f.filename))?,
                };
                let side = files_dir.join(format!("{}.metadata", f.filename));
                write_if_changed(&side, &meta.bytes, durability)?;
                f.core_metadata = Some(meta.sha256);
            }
            Ok(f)
        })
        .collect::<Result<_, _>>()?;
    let metadata_files = files.iter().filter(|f| f.core_metadata.is_some()).count();
    let file_count = files.len();
    let projects = group(files);

    write_if_changed(
        &simple.join(HTML_PAGE),
        render::root_html(&projects).as_bytes(),
        durability,
    )?;
    write_if_changed(
        &simple.join(JSON_PAGE),
        render::root_json(&projects).as_bytes(),
        durability,
    )?;
    for p in &projects {
        let dir = simple.join(&p.name);
        let html = render::project_html(p);
        write_if_changed(&dir.join(HTML_PAGE), html.as_bytes(), durability)?;
        let json = render::project_json(p);
        write_if_changed(&dir.join(JSON_PAGE), json.as_bytes(), durability)?;
    }
    let keep: HashSet<&str> = projects.iter().map(|p| p.name.as_str()).collect();
    for entry in fs_err::read_dir(&simple)? {
        let entry = entry?;
        let name = entry.file_name();
        let is_stale =
            entry.file_type()?.is_dir() && !keep.contains(name.to_string_lossy().as_ref());
        if is_stale {
            fs_err::remove_dir_all(entry.path())?;
        }
    }
    Ok(IndexSummary {
        projects: projects.len(),
        files: file_count,
        metadata_files,
    })
}

fn write_if_changed(path: &Path, bytes: &[u8], durability: Durability) -> Result<(), IndexError> {
    if crate::fsutil::compare(path, bytes, 0o644)?.is_change() {
        crate::fsutil::write_atomic_as(path, bytes, 0o644, durability)?;
    }
    Ok(())
}

/// Path of the `.metadata` side file of `filename` in `files_dir`.
pub fn metadata_path(files_dir: &Path, filename: &str) -> PathBuf {
    files_dir.join(format!("{filename}.metadata"))
}

#[cfg(test)]
mod tests;
