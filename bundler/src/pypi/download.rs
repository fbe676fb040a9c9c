//! How the resolved files are fetched, and how the resolutions become the manifest's
//! `PypiTarget` locks and `FileEntry`s. Every file goes through the build's one fetcher: a
//! file the index gives the size and sha256 of is a pinned [`Download`] (cache, resume, retries,
//! checked like any package); one it does not (PEP 503 HTML gives no sizes) is received whole
//! with the same retry policy, checked against what the index does give, and stored in the
//! cache ([`source_of`]). `bundler pypi` then copies them into `pypi/files/<filename>`, one
//! copy shared by every target ([`download`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bundle::manifest::{FileEntry, FileKind, LockedFile, PypiTarget};
use bundle::progress::Reporter;
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::index::{IndexClient, IndexFile, check_status};
use super::{PypiError, ResolvedTarget};
use crate::fetch::{Download, Expected, Fetcher};

/// Where the bytes of one PyPI file come from.
#[derive(Debug, Clone)]
pub enum FileSource {
    /// Size and sha256 known from the index: fetched and checked by the fetcher.
    Pinned(Download),
    /// Already received and checked, in the cache.
    Stored {
        path: PathBuf,
        sha256: String,
        size: u64,
    },
}

/// How the bundle gets `file`: pinned when the index gives its size and sha256, else received
/// now (or found in the cache by its sha256) and stored in the cache.
pub async fn source_of(fetcher: &Fetcher, file: &IndexFile) -> Result<FileSource, PypiError> {
    if let (Some(size), Some(sha256)) = (file.size, &file.sha256) {
        return Ok(FileSource::Pinned(Download {
            label: file.filename.clone(),
            urls: vec![file.url.clone()],
            expected: Expected {
                size,
                sha256: sha256.clone(),
            },
            auth: None,
        }));
    }
    // The cache admits only checked files: one stored under the index's sha256 is that file.
    if let Some(sha256) = &file.sha256 {
        let path = fetcher.cache().entry_path(sha256);
        if let Ok(meta) = fs_err::tokio::metadata(&path).await {
            return Ok(FileSource::Stored {
                path,
                sha256: sha256.clone(),
                size: meta.len(),
            });
        }
    }
    let answer = fetcher
        .get(&file.url, &reqwest::header::HeaderMap::new())
        .await?;
    let body = check_status(answer, &file.url)?.body;
    let size = body.len() as u64;
    if let Some(expected) = file.size.filter(|&expected| expected != size) {
        return Err(PypiError::Size {
            url: file.url.to_string(),
            expected,
            actual: size,
        });
    }
    let actual = hex::encode(Sha256::digest(&body));
    if let Some(expected) = file.sha256.as_ref().filter(|&e| e != &actual) {
        return Err(PypiError::Checksum {
            url: file.url.to_string(),
            expected: expected.clone(),
            actual,
        });
    }
    let (path, sha256) = fetcher.cache().store_bytes(&body)?;
    Ok(FileSource::Stored { path, sha256, size })
}

/// The PyPI contribution to a manifest.
#[derive(Debug, Clone, Default)]
pub struct PypiPart {
    pub targets: Vec<PypiTarget>,
    /// One entry per distinct file, sorted by path.
    pub files: Vec<FileEntry>,
}

/// Bundle path of a PyPI file.
pub fn bundle_path(filename: &str) -> String {
    format!("pypi/files/{filename}")
}

/// The progress phase of [`download`]: one item per distinct file, bytes as the index tells.
pub const DOWNLOAD_PHASE: &str = "download PyPI files";

/// Downloads every file the resolutions chose into `root` and describes them.
/// `requirements` are the lines recorded with each target; `index_url` is recorded too.
pub async fn download(
    client: Arc<IndexClient>,
    resolved: &[ResolvedTarget],
    requirements: &[String],
    root: &Path,
    reporter: &dyn Reporter,
) -> Result<PypiPart, PypiError> {
    let unique = unique_files(resolved)?;
    let files_dir = root.join("pypi/files");
    fs_err::tokio::create_dir_all(&files_dir)
        .await
        .map_err(PypiError::Fs)?;
    let fetcher = client.fetcher();
    reporter.started(
        DOWNLOAD_PHASE,
        unique.len() as u64,
        unique.values().filter_map(|file| file.size).sum(),
    );
    let results: Vec<Result<(String, String, u64), PypiError>> =
        futures::stream::iter(unique.values().cloned())
            .map(|file| {
                let dest = files_dir.join(&file.filename);
                async move {
                    let (sha256, size) = fetch_one(fetcher, &file, &dest, reporter).await?;
                    Ok((file.filename, sha256, size))
                }
            })
            .buffer_unordered(fetcher.jobs())
            .collect()
            .await;
    reporter.finished();
    let mut actual: BTreeMap<String, (String, u64)> = BTreeMap::new();
    for result in results {
        let (filename, sha256, size) = result?;
        actual.insert(filename, (sha256, size));
    }
    Ok(describe(
        client.index_url().as_str(),
        resolved,
        requirements,
        &actual,
    ))
}

/// The distinct files the resolutions chose, by filename; one filename must mean one file.
pub fn unique_files(resolved: &[ResolvedTarget]) -> Result<BTreeMap<String, IndexFile>, PypiError> {
    let mut unique: BTreeMap<String, IndexFile> = BTreeMap::new();
    for target in resolved {
        for dist in &target.dists {
            if let Some(seen) = unique.get(&dist.file.filename)
                && seen.sha256.is_some()
                && dist.file.sha256.is_some()
                && seen.sha256 != dist.file.sha256
            {
                return Err(PypiError::ConflictingFiles {
                    filename: dist.file.filename.clone(),
                    first: seen.sha256.clone().unwrap_or_default(),
                    second: dist.file.sha256.clone().unwrap_or_default(),
                });
            }
            unique.insert(dist.file.filename.clone(), dist.file.clone());
        }
    }
    Ok(unique)
}

/// The manifest part for downloaded files; `actual` maps each filename to the sha256 and
/// size of the bytes that will go into the bundle.
pub fn describe(
    index_url: &str,
    resolved: &[ResolvedTarget],
    requirements: &[String],
    actual: &BTreeMap<String, (String, u64)>,
) -> PypiPart {
    let mut part = PypiPart::default();
    let unique = unique_files(resolved).unwrap_or_default();
    for (filename, file) in &unique {
        let (sha256, size) = actual[filename].clone();
        part.files.push(FileEntry {
            path: bundle_path(filename),
            size,
            sha256,
            kind: if filename.ends_with(".whl") {
                FileKind::Wheel
            } else {
                FileKind::Sdist
            },
            origin: Some(file.url.to_string()),
            in_base: false,
        });
    }
    for target in resolved {
        let lock = target
            .dists
            .iter()
            .map(|dist| {
                let (sha256, size) = actual[&dist.file.filename].clone();
                LockedFile {
                    name: dist.name.to_string(),
                    version: dist.version.to_string(),
                    filename: dist.file.filename.clone(),
                    url: dist.file.url.to_string(),
                    sha256,
                    size,
                    upload_time: dist.file.upload_time.clone(),
                    requires_python: dist.file.requires_python.clone(),
                    yanked: dist.file.yanked.clone(),
                    path: bundle_path(&dist.file.filename),
                }
            })
            .collect();
        let t = &target.target;
        part.targets.push(PypiTarget {
            name: t.name(),
            python_version: format!("{}.{}", t.python.0, t.python.1),
            implementation: "cpython".into(),
            machine: t.machine.clone(),
            glibc: format!("{}.{}", t.glibc.0, t.glibc.1),
            index_url: index_url.to_string(),
            requirements: requirements.to_vec(),
            requirements_source: None,
            lock,
        });
    }
    part
}

/// Fetches one file (see [`source_of`]) and copies it to `dest` through a temp file beside
/// it. A file already at `dest` with the index's sha256 is kept. Returns sha256 and size; the
/// file counts as one item done on `reporter` (a pinned one's bytes as they arrive).
async fn fetch_one(
    fetcher: &Fetcher,
    file: &IndexFile,
    dest: &Path,
    reporter: &dyn Reporter,
) -> Result<(String, u64), PypiError> {
    if let Some(expected) = &file.sha256
        && let Ok(existing) = fs_err::tokio::read(dest).await
    {
        let actual = hex::encode(Sha256::digest(&existing));
        if &actual == expected {
            reporter.advanced(1, existing.len() as u64);
            return Ok((actual, existing.len() as u64));
        }
    }
    let (path, sha256, size) = match source_of(fetcher, file).await? {
        FileSource::Pinned(download) => {
            let fetched = fetcher.fetch(&download, reporter).await?;
            (fetched.path, fetched.sha256, fetched.size)
        }
        FileSource::Stored { path, sha256, size } => {
            reporter.advanced(1, size);
            (path, sha256, size)
        }
    };
    // Unique per process and per download: the same wheel may be fetched by two targets of
    // one run, or by two runs into one directory, and a shared partial file was renamed away
    // under the other writer.
    static DOWNLOADS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let partial = dest.with_file_name(format!(
        ".{}.{}-{}.part",
        dest.file_name()
            .and_then(|name| name.to_str())
            .unwrap_or("download"),
        std::process::id(),
        DOWNLOADS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    fs_err::tokio::copy(&path, &partial)
        .await
        .map_err(PypiError::Fs)?;
    fs_err::tokio::rename(&partial, dest)
        .await
        .map_err(PypiError::Fs)?;
    Ok((sha256, size))
}
