//! The PyPI part of a bundle: resolve a requirements file for each target interpreter
//! (CPython on glibc, per machine), pick one file per distribution by wheel tag rank, download
//! the files with their index checksums verified, and describe the result as manifest
//! `PypiTarget`s (the lock) plus `FileEntry`s under `pypi/files/`.
//!
//! Flow: [`PypiSettings`] -> [`resolve_targets`] (one pubgrub run per target, all sharing one
//! [`IndexClient`] cache) -> [`download`] -> [`PypiPart`].

pub mod candidates;
pub mod download;
pub mod html;
pub mod index;
pub mod lock;
pub mod metadata;
pub mod requirements;
pub mod resolver;
pub mod target;

use bundle::progress::Reporter;
use indicatif::HumanBytes;
use std::sync::Arc;

pub use candidates::ResolveOptions;
pub use download::{PypiPart, download};
pub use index::IndexClient;
pub use requirements::RequirementSet;
pub use resolver::ResolvedDist;
pub use target::Target;

/// The public index, used unless `--index-url` or the requirements file says otherwise.
pub const DEFAULT_INDEX_URL: &str = "https://pypi.org/simple/";

#[derive(Debug, thiserror::Error)]
pub enum PypiError {
    #[error("target: {message}")]
    Target { message: String },
    #[error("{origin}: {message}")]
    Requirements { origin: String, message: String },
    #[error("{url}: {message}")]
    Http { url: String, message: String },
    #[error(
        "project `{name}` is not on the index ({url} answered 404); check the name or --index-url"
    )]
    ProjectNotFound { name: String, url: String },
    #[error("index page {url}: {message}")]
    BadIndexPage { url: String, message: String },
    #[error("metadata of {url}: {message}")]
    BadMetadata { url: String, message: String },
    #[error(
        "{name} {version} is only available as an sdist whose dependencies are dynamic (PKG-INFO older than \
         Metadata-Version 2.2 or `Dynamic: Requires-Dist`), so they cannot be known without building it; \
         pin a version of {name} that has a wheel"
    )]
    DynamicSdist { name: String, version: String },
    #[error("no set of packages satisfies the requirements for {target}:\n{explanation}")]
    NoSolution { target: String, explanation: String },
    #[error("{url}: sha256 is {actual}, the index says {expected}")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{url}: size is {actual} bytes, the index says {expected}")]
    Size {
        url: String,
        expected: u64,
        actual: u64,
    },
    #[error("{filename} was resolved with two different sha256 values ({first} and {second})")]
    ConflictingFiles {
        filename: String,
        first: String,
        second: String,
    },
    /// A request that failed for good (after the fetcher's retries), or a file that did not
    /// match the index's size and sha256 on any attempt.
    #[error(transparent)]
    Fetch(#[from] crate::fetch::FetchError),
    /// A file operation failed; the message (from `fs_err`) names the path.
    #[error(transparent)]
    Fs(std::io::Error),
}

impl PypiError {
    /// True for checksum problems (exit code 3), false for operational ones.
    pub fn is_verification(&self) -> bool {
        match self {
            PypiError::Checksum { .. }
            | PypiError::Size { .. }
            | PypiError::ConflictingFiles { .. } => true,
            PypiError::Fetch(e) => e.is_checksum_failure(),
            _ => false,
        }
    }
}

/// The progress phase of [`resolve_targets`]: one item per target.
pub const RESOLVE_PHASE: &str = "resolve PyPI targets";

/// Everything the PyPI part of a build needs, resolved from the command line once.
#[derive(Debug, Clone)]
pub struct PypiSettings {
    pub requirements: RequirementSet,
    pub targets: Vec<Target>,
    pub index_url: String,
    pub options: ResolveOptions,
    /// A previous bundle's resolution to reuse instead of resolving (`--pypi-lock`): where it
    /// came from, and its recorded targets.
    pub locked: Option<(String, Vec<bundle::manifest::PypiTarget>)>,
}

/// One target's resolution.
#[derive(Debug, Clone)]
pub struct ResolvedTarget {
    pub target: Target,
    pub dists: Vec<ResolvedDist>,
}

impl ResolvedTarget {
    /// Bytes of the chosen files as far as the index tells sizes.
    pub fn bytes(&self) -> u64 {
        self.dists.iter().filter_map(|dist| dist.file.size).sum()
    }
}

/// Resolves every target in parallel against one shared index cache, reported as one phase
/// ([`RESOLVE_PHASE`]) that advances by one item per target resolved.
pub async fn resolve_targets(
    client: Arc<IndexClient>,
    settings: &PypiSettings,
    reporter: &dyn Reporter,
) -> Result<Vec<ResolvedTarget>, PypiError> {
    if let Some((origin, targets)) = &settings.locked {
        return lock::resolved_from_lock(origin, targets);
    }
    reporter.started(RESOLVE_PHASE, settings.targets.len() as u64, 0);
    let handle = tokio::runtime::Handle::current();
    let jobs = settings.targets.iter().map(|target| {
        let (client, handle, target) = (client.clone(), handle.clone(), target.clone());
        let (requirements, options) = (settings.requirements.clone(), settings.options.clone());
        let job = tokio::task::spawn_blocking(move || {
            resolver::resolve(client, handle, &requirements, target.clone(), options)
                .map(|dists| ResolvedTarget { target, dists })
        });
        async move {
            let target = job.await.map_err(|err| PypiError::Target {
                message: format!("the resolver thread failed: {err}"),
            })??;
            reporter.advanced(1, 0);
            Ok::<_, PypiError>(target)
        }
    });
    // Polled together, so the count moves as each target is done, in whatever order.
    let resolved = futures::future::try_join_all(jobs).await;
    reporter.finished();
    resolved
}

/// Resolves every target and downloads the chosen files under `root` (`pypi/files/`) through
/// `fetcher`: the PyPI part on its own (`bundler pypi`). Must run inside a multi-threaded tokio
/// runtime.
pub async fn collect(
    settings: &PypiSettings,
    fetcher: Arc<crate::fetch::Fetcher>,
    root: &std::path::Path,
    reporter: &dyn Reporter,
) -> Result<(Vec<ResolvedTarget>, PypiPart), PypiError> {
    let client = Arc::new(IndexClient::new(&settings.index_url, fetcher)?);
    let resolved = resolve_targets(client.clone(), settings, reporter).await?;
    let part = download(
        client,
        &resolved,
        &settings.requirements.lines(),
        root,
        reporter,
    )
    .await?;
    Ok((resolved, part))
}

/// Human-readable resolution per target and the bytes to fetch (what `plan` shows).
pub fn render_plan(resolved: &[ResolvedTarget]) -> String {
    let mut out = String::new();
    let mut unique = std::collections::BTreeMap::new();
    for target in resolved {
        out.push_str(&format!(
            "PyPI target {}: {} distributions, {}\n",
            target.target.name(),
            target.dists.len(),
            HumanBytes(target.bytes())
        ));
        for dist in &target.dists {
            let size = dist
                .file
                .size
                .map(|bytes| HumanBytes(bytes).to_string())
                .unwrap_or_else(|| "size unknown".into());
            let yanked = if dist.file.yanked.is_some() {
                "  (yanked upstream, pinned)"
            } else {
                ""
            };
            out.push_str(&format!(
                "  {:<24} {:<12} {:>10}  {}{yanked}\n",
                dist.name, dist.version, size, dist.file.filename
            ));
            unique.insert(dist.file.filename.clone(), dist.file.size.unwrap_or(0));
        }
    }
    out.push_str(&format!(
        "PyPI total: {} files, {} to fetch (files shared by targets counted once)\n",
        unique.len(),
        HumanBytes(unique.values().sum())
    ));
    out
}
