//! The PyPI part of `bundler build`: resolve the requirements for every target and hand the
//! manifest's `pypi_targets` plus the `pypi/files/` entries to the packer, which fetches them
//! through the shared fetcher (index sha256 and size checked, cached by content).

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{BuildError, BuildParts, Source};
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

/// Resolves and describes the PyPI part into `parts` (files pinned by the index are fetched
/// while the bundle is written); returns the resolutions.
pub fn add_pypi_part(
    parts: &mut BuildParts,
    settings: &PypiSettings,
    fetcher: &Fetcher,
    events: &dyn PypiReporter,
) -> Result<Vec<ResolvedTarget>, BuildError> {
    let client = Arc::new(IndexClient::new(&settings.index_url)?);
    let resolved = fetcher.block_on(resolve_targets(client.clone(), settings, events))?;
    let unique = unique_files(&resolved)?;
    let requirements = settings.requirements.lines();
    let mut actual: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
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
                auth: None,
            })
        })
        .collect();
    match pinned {
        Some(downloads) => {
            // Size and sha256 are known from the index: the files are fetched (and checked
            // against them) while the bundle is written.
            for download in downloads {
                let e = &download.expected;
                actual.insert(download.label.clone(), (e.sha256.clone(), e.size));
                let label = download.label.clone();
                sources.insert(
                    label,
                    Source::Fetch {
                        download,
                        signed_package: None,
                    },
                );
            }
        }
        None => {
            // An HTML index gives no sizes, which the manifest needs up front; stream these
            // files into a staging area of the cache now instead (sha256 still checked).
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
                sources.insert(filename.clone(), Source::Local(staging.join(&entry.path)));
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
        let source = sources
            .remove(&filename)
            .expect("every described file has a source");
        parts.files.push((entry, source));
    }
    for target in &part.targets {
        if !parts.arches.contains(&target.machine) {
            parts.arches.push(target.machine.clone());
        }
    }
    parts.pypi_targets = part.targets;
    Ok(resolved)
}
