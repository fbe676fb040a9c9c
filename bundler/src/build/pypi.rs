//! The PyPI part of `bundler build`: resolve the requirements for every target, fetch the
//! chosen files through the shared fetcher (index sha256 and size checked, cached by content)
//! and hand the manifest's `pypi_targets` plus the `pypi/files/` entries to the packer.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use bundle::progress::Reporter;

use super::{BuildError, BuildParts};
use crate::fetch::{Download, Expected, Fetcher};
use crate::pypi::download::{bundle_path, describe, unique_files};
use crate::pypi::{
    IndexClient, PypiReporter, PypiSettings, ResolvedTarget, download, resolve_targets,
};

/// Resolves only: what `plan` shows.
pub fn resolve_pypi(
    settings: &PypiSettings,
    fetcher: &Fetcher,
    events: &dyn PypiReporter,
) -> Result<Vec<ResolvedTarget>, BuildError> {
    let client = Arc::new(IndexClient::new(&settings.index_url)?);
    Ok(fetcher.block_on(resolve_targets(client, settings, events))?)
}

/// Resolves, fetches and adds the PyPI part to `parts`; returns the resolutions.
pub fn add_pypi_part(
    parts: &mut BuildParts,
    settings: &PypiSettings,
    fetcher: &Fetcher,
    events: &dyn PypiReporter,
    reporter: &dyn Reporter,
) -> Result<Vec<ResolvedTarget>, BuildError> {
    let client = Arc::new(IndexClient::new(&settings.index_url)?);
    let resolved = fetcher.block_on(resolve_targets(client.clone(), settings, events))?;
    let unique = unique_files(&resolved)?;
    let requirements = settings.requirements.lines();
    let mut actual: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut local: BTreeMap<String, PathBuf> = BTreeMap::new();
    let pinned: Option<Vec<Download>> = unique
        .values()
        .map(|file| {
            Some(Download {
                label: file.filename.clone(),
                urls: vec![file.url.clone()],
                expected: Expected {
                    size: file.size?,
                    sha256: file.sha256.clone()?,
                },
            })
        })
        .collect();
    match pinned {
        Some(downloads) => {
            let fetched =
                fetcher.block_on(fetcher.fetch_all("PyPI files", &downloads, reporter))?;
            for (download, fetched) in downloads.iter().zip(fetched) {
                actual.insert(download.label.clone(), (fetched.sha256, fetched.size));
                local.insert(download.label.clone(), fetched.path);
            }
        }
        None => {
            // An HTML index gives no sizes, which the shared fetcher needs; stream these
            // files into a staging area of the cache instead (sha256 still checked).
            let staging = fetcher.cache().root().join("pypi-staging");
            let part = fetcher.block_on(download(
                client.clone(),
                &resolved,
                &requirements,
                &staging,
                events,
            ))?;
            for entry in part.files {
                let filename = entry.path.trim_start_matches("pypi/files/").to_string();
                local.insert(filename.clone(), staging.join(&entry.path));
                actual.insert(filename, (entry.sha256, entry.size));
            }
        }
    }
    let part = describe(
        client.index_url().as_str(),
        &resolved,
        &requirements,
        &actual,
    );
    for entry in part.files {
        let filename = entry.path.trim_start_matches("pypi/files/").to_string();
        debug_assert_eq!(entry.path, bundle_path(&filename));
        let path = local
            .remove(&filename)
            .expect("every described file was fetched");
        parts.files.push((entry, path));
    }
    for target in &part.targets {
        if !parts.arches.contains(&target.machine) {
            parts.arches.push(target.machine.clone());
        }
    }
    parts.pypi_targets = part.targets;
    Ok(resolved)
}
