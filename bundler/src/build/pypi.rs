//! The PyPI part of `bundler build`: resolve the requirements for every target and hand the
//! manifest's `pypi_targets` plus the `pypi/files/` entries to the packer, which fetches them
//! through the shared fetcher (index sha256 and size checked, cached by content).
//!
//! The requirements of a Kubespray release this bundler ships no list for are read from the
//! release itself (`requirements.txt` at its tag), so a new Kubespray release needs no new
//! bundler.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{BuildError, BuildParts, Source};
use crate::fetch::{Download, Expected, Fetcher};
use crate::pypi::download::{bundle_path, describe, unique_files};
use crate::pypi::requirements::is_shipped_kubespray;
use crate::pypi::{
    IndexClient, PypiError, PypiReporter, PypiSettings, RequirementSet, ResolvedTarget, download,
    resolve_targets,
};

/// Where `--kubespray VERSION` reads `v<VERSION>/requirements.txt` when this bundler ships no
/// list for that version: the raw files of kubernetes-sigs/kubespray's tags on GitHub.
/// `--kubespray-source` points elsewhere (a corporate mirror of the repository, a test server).
pub const KUBESPRAY_SOURCE: &str = "https://raw.githubusercontent.com/kubernetes-sigs/kubespray";

/// The requirements of Kubespray `version`: the list shipped with this bundler, else the
/// release's `requirements.txt` fetched from `<source>/v<VERSION>/requirements.txt` through
/// the one fetcher (its URL is recorded as the requirements' source).
pub fn kubespray_requirements(
    version: &str,
    source: &str,
    fetcher: &Fetcher,
) -> Result<RequirementSet, BuildError> {
    if is_shipped_kubespray(version) {
        return Ok(RequirementSet::kubespray(version)?);
    }
    let version = version.trim_start_matches('v');
    let bad = |message: String| {
        BuildError::Pypi(PypiError::Requirements {
            origin: format!("--kubespray {version}"),
            message,
        })
    };
    // A release tag: digits first, then what tags hold (2.32.0, 2.32.0-rc.1); nothing that
    // could walk out of the URL's path.
    if !version.starts_with(|c: char| c.is_ascii_digit())
        || !version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
    {
        return Err(BuildError::Usage(format!(
            "--kubespray {version}: not a release version (want e.g. 2.32.0, or master)"
        )));
    }
    let url = format!(
        "{}/v{version}/requirements.txt",
        source.trim_end_matches('/')
    );
    let url = url::Url::parse(&url)
        .map_err(|e| BuildError::Usage(format!("--kubespray-source {source}: {e}")))?;
    let (bytes, from) = fetcher
        .block_on(fetcher.fetch_unpinned(std::slice::from_ref(&url)))
        .map_err(|e| {
            bad(format!(
                "this bundler ships no requirements for it, and fetching them failed: {e}; check the version, or pass --kubespray-source URL or --requirements FILE"
            ))
        })?;
    let text = String::from_utf8(bytes).map_err(|_| bad(format!("{from} is not UTF-8 text")))?;
    let set = RequirementSet::from_text(&text, from.as_str(), None)?;
    if set.requirements.is_empty() {
        return Err(bad(format!("{from} lists no requirements")));
    }
    Ok(set)
}

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
    for target in &mut parts.pypi_targets {
        target.requirements_source = settings.requirements.source.clone();
    }
    Ok(resolved)
}
