//! The PyPI part of `bundler build`: resolve the requirements for every target and hand the
//! manifest's `pypi_targets` plus the `pypi/files/` entries to the packer, which fetches them
//! through the one fetcher (index sha256 and size checked, cached by content).
//!
//! The requirements of a Kubespray release this bundler ships no list for are read from the
//! release itself (`requirements.txt` at its tag), so a new Kubespray release needs no new
//! bundler.

use std::collections::BTreeMap;
use std::sync::Arc;

use bundle::progress::Reporter;
use futures::{StreamExt, TryStreamExt};

use super::{BuildError, BuildParts, Source};
use crate::fetch::Fetcher;
use crate::pypi::download::{FileSource, bundle_path, describe, source_of, unique_files};
use crate::pypi::requirements::is_shipped_kubespray;
use crate::pypi::{
    IndexClient, PypiError, PypiSettings, RequirementSet, ResolvedTarget, resolve_targets,
};

/// Where `--kubespray VERSION` reads `v<VERSION>/requirements.txt` when this bundler ships no
/// list for that version: the raw files of kubernetes-sigs/kubespray's tags on GitHub.
/// `--kubespray-source` points elsewhere (a corporate mirror of the repository, a test server).
pub const KUBESPRAY_SOURCE: &str = "https://raw.githubusercontent.com/kubernetes-sigs/kubespray";

/// The requirements of Kubespray `version`: the list shipped with this bundler, else the
/// release's `requirements.txt` fetched from `<source>/v<VERSION>/requirements.txt` through
/// the one fetcher (its URL is recorded as the requirements' source).
pub async fn kubespray_requirements(
    version: &str,
    source: &url::Url,
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
        source.as_str().trim_end_matches('/')
    );
    let url = url::Url::parse(&url)
        .map_err(|e| BuildError::Usage(format!("--kubespray-source {source}: {e}")))?;
    let (bytes, from) = fetcher
        .fetch_unpinned(std::slice::from_ref(&url))
        .await
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
pub async fn resolve_pypi(
    settings: &PypiSettings,
    fetcher: &Arc<Fetcher>,
    reporter: &dyn Reporter,
) -> Result<Vec<ResolvedTarget>, BuildError> {
    let client = Arc::new(IndexClient::new(&settings.index_url, fetcher.clone())?);
    Ok(resolve_targets(client, settings, reporter).await?)
}

/// Resolves and describes the PyPI part into `parts` (files pinned by the index are fetched
/// while the bundle is written); returns the resolutions.
pub async fn add_pypi_part(
    parts: &mut BuildParts,
    settings: &PypiSettings,
    fetcher: &Arc<Fetcher>,
    reporter: &dyn Reporter,
) -> Result<Vec<ResolvedTarget>, BuildError> {
    let client = Arc::new(IndexClient::new(&settings.index_url, fetcher.clone())?);
    let resolved = resolve_targets(client.clone(), settings, reporter).await?;
    let unique = unique_files(&resolved)?;
    let requirements = settings.requirements.lines();
    let mut actual: BTreeMap<String, (String, u64)> = BTreeMap::new();
    let mut sources: BTreeMap<String, Source> = BTreeMap::new();
    // Files the index pins (size and sha256) are fetched, and checked, while the bundle is
    // written; any other is received now (see `source_of`).
    let found: Vec<FileSource> =
        futures::stream::iter(unique.values().map(|file| source_of(fetcher, file)))
            .buffered(fetcher.jobs())
            .try_collect()
            .await?;
    for (filename, found) in unique.keys().zip(found) {
        let (source, sha256, size) = match found {
            FileSource::Pinned(download) => {
                let (sha256, size) = (download.expected.sha256.clone(), download.expected.size);
                let source = Source::Fetch {
                    download,
                    signed_package: None,
                };
                (source, sha256, size)
            }
            FileSource::Stored { path, sha256, size } => (Source::Local(path), sha256, size),
        };
        actual.insert(filename.clone(), (sha256, size));
        sources.insert(filename.clone(), source);
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
