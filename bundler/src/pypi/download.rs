//! Fetching the resolved files into the bundle tree (`pypi/files/<filename>`, one copy shared
//! by every target) with sha256 and size checked against the index, and turning the
//! resolutions into the manifest's `PypiTarget` locks and `FileEntry`s.
//!
//! `bundler build` downloads through the shared fetcher (see `build::pypi`); this module's
//! own streaming download serves `bundler pypi` and indexes that give no file sizes (PEP 503
//! HTML), which the shared fetcher needs up front.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bundle::manifest::{FileEntry, FileKind, LockedFile, PypiTarget};
use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::index::{IndexClient, IndexFile, check_status, http_error};
use super::{PypiError, PypiReporter, ResolvedTarget};

/// Downloads at once; PyPI's CDN is happy with this and it keeps 2 cores busy hashing.
const PARALLEL: usize = 8;

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

/// Downloads every file the resolutions chose into `root` and describes them.
/// `requirements` are the lines recorded with each target; `index_url` is recorded too.
pub async fn download(
    client: Arc<IndexClient>,
    resolved: &[ResolvedTarget],
    requirements: &[String],
    root: &Path,
    reporter: &dyn PypiReporter,
) -> Result<PypiPart, PypiError> {
    let unique = unique_files(resolved)?;
    let files_dir = root.join("pypi/files");
    fs_err::tokio::create_dir_all(&files_dir).await?;
    reporter.download_started(
        unique.len(),
        unique.values().filter_map(|file| file.size).sum(),
    );
    let results: Vec<Result<(String, String, u64), PypiError>> =
        futures::stream::iter(unique.values().cloned())
            .map(|file| {
                let client = client.clone();
                let dest = files_dir.join(&file.filename);
                async move {
                    let (sha256, size, cached) = fetch_one(&client, &file, &dest).await?;
                    reporter.file_done(&file.filename, size, cached);
                    Ok((file.filename, sha256, size))
                }
            })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
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

/// Streams one file to `dest` (through a temp file beside it), hashing as it goes. A file
/// already at `dest` with the index's sha256 is kept. Returns sha256, size and whether the
/// existing copy was used.
async fn fetch_one(
    client: &IndexClient,
    file: &IndexFile,
    dest: &Path,
) -> Result<(String, u64, bool), PypiError> {
    if let Some(expected) = &file.sha256
        && let Ok(existing) = fs_err::tokio::read(dest).await
    {
        let actual = hex::encode(Sha256::digest(&existing));
        if &actual == expected {
            return Ok((actual, existing.len() as u64, true));
        }
    }
    let response = client
        .send(|| client.http().get(file.url.clone()), &file.url)
        .await?;
    let response = check_status(response, &file.url)?;
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
    let mut out = fs_err::tokio::File::create(&partial).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|err| http_error(&file.url, err))?;
        hasher.update(&chunk);
        size += chunk.len() as u64;
        out.write_all(&chunk).await?;
    }
    out.flush().await?;
    drop(out);
    let actual = hex::encode(hasher.finalize());
    let mismatch = if let Some(expected) = file.size.filter(|&expected| expected != size) {
        Some(PypiError::Size {
            url: file.url.to_string(),
            expected,
            actual: size,
        })
    } else {
        file.sha256
            .as_ref()
            .filter(|&expected| expected != &actual)
            .map(|expected| PypiError::Checksum {
                url: file.url.to_string(),
                expected: expected.clone(),
                actual: actual.clone(),
            })
    };
    if let Some(err) = mismatch {
        let _ = fs_err::tokio::remove_file(&partial).await;
        return Err(err);
    }
    fs_err::tokio::rename(&partial, dest).await?;
    Ok((actual, size, false))
}
