//! The flags `build` and `plan` share: what to mirror (release, mirrors, repos, arches, slim
//! package list, key) and how to fetch it (cache, jobs). Resolved once into the library's
//! `RpmOptions` and `FetchSettings` before any work starts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bundle::IoMode;
use bundler::build::BuildError;
use bundler::build::kubespray::KubesprayOptions;
use bundler::build::rpm::RpmOptions;
use bundler::fetch::{Connections, FetchSettings, Fetcher};
use bundler::kubespray::{DownloadLists, HostMirrors};
use bundler::pypi::PypiSettings;
use bundler::pypi::requirements::default_kubespray_version;
use bundler::release::{ReleaseDef, package_set};
use clap::Args;
use clap::builder::{PossibleValuesParser, TypedValueParser};

use super::pypi_args::PypiArgs;

#[derive(Debug, Args)]
pub struct SelectionArgs {
    /// Distribution release to mirror (reads manifests/rocky-<RELEASE>.toml): `10` is the
    /// newest minor release, `10.1` exactly that one (from the vault once it moved there).
    #[arg(long, default_value = "10")]
    pub release: String,
    /// Mirror root URL (repeatable): http://, https://, file:// or a local path. With several,
    /// files are fetched from all of them at once, more from the faster; one that keeps
    /// failing is dropped with a note. Metadata comes from the first that answers. Default:
    /// the release definition's mirrors.
    #[arg(long = "mirror", value_name = "URL")]
    pub mirrors: Vec<String>,
    /// Also fetch from the mirrors a mirrorlist names for each repo and arch (the first
    /// few, MirrorManager lists the nearest first), with `{repo}` and `{arch}` in the URL;
    /// without a URL, the release definition's (mirrors.rockylinux.org). With it, only the
    /// --mirror given explicitly are added, not the release's default mirrors.
    #[arg(long, value_name = "URL", num_args = 0..=1, default_missing_value = "")]
    pub mirrorlist: Option<String>,
    /// Root of the vault that keeps older minor releases, tried before the mirrors for a
    /// `--release X.Y` and not used for the moving latest (repeatable). Default: the release
    /// definition's vault, unless --mirror is given.
    #[arg(long = "vault", value_name = "URL")]
    pub vaults: Vec<String>,
    /// Repo id to mirror (repeatable; default: the release's repos not marked optional, so
    /// baseos, appstream and extras; crb and highavailability on request).
    #[arg(long = "repo", value_name = "ID")]
    pub repos: Vec<String>,
    /// Target architecture (repeatable; default: x86_64).
    #[arg(long = "arch", value_name = "ARCH")]
    pub arches: Vec<String>,
    /// Skip the RPM part.
    #[arg(long)]
    pub no_rpm: bool,
    /// Skip the PyPI part.
    #[arg(long, conflicts_with = "requirements")]
    pub no_pypi: bool,
    /// Leave out Kubespray's files (kubelet, kubeadm, etcd, CNI, containerd, ...).
    #[arg(long)]
    pub no_files: bool,
    /// Leave out Kubespray's container images.
    #[arg(long)]
    pub no_images: bool,
    /// Fetch Kubespray's files of HOST from URL instead (repeatable), e.g.
    /// dl.k8s.io=https://mirror.corp/dl.k8s.io; the bundle still records the original URLs.
    #[arg(long = "files-mirror", value_name = "HOST=URL")]
    pub files_mirrors: Vec<String>,
    /// Pull images of registry HOST from URL instead (repeatable), e.g.
    /// docker.io=https://registry-mirror.corp; images keep their names and digests.
    #[arg(long = "registry-mirror", value_name = "HOST=URL")]
    pub registry_mirrors: Vec<String>,
    /// Download lists in the shipped JSON form, e.g. made by scripts/kubespray-lists for your
    /// own Kubespray inventory (files with their sha256, images with their arches).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["files_list", "images_list"])]
    pub download_lists: Option<PathBuf>,
    /// Your Kubespray inventory: the download lists are rendered from it with ansible (what
    /// its group_vars enable), from the Kubespray source tree given with --kubespray-tree.
    #[arg(long, value_name = "DIR", requires = "kubespray_tree",
          conflicts_with_all = ["download_lists", "files_list", "images_list"])]
    pub kubespray_inventory: Option<PathBuf>,
    /// A Kubespray source tree of the --kubespray version (for --kubespray-inventory).
    #[arg(long, value_name = "DIR", requires = "kubespray_inventory")]
    pub kubespray_tree: Option<PathBuf>,
    /// Kubespray's files.list (from contrib/offline/generate_list.sh) instead of the shipped
    /// list; its files are pinned by what upstream serves (the list has no checksums).
    #[arg(long, value_name = "FILE")]
    pub files_list: Option<PathBuf>,
    /// Kubespray's images.list (from contrib/offline/generate_list.sh) instead of the shipped
    /// list.
    #[arg(long, value_name = "FILE")]
    pub images_list: Option<PathBuf>,
    /// Slim mode: a file of package names, name.arch, globs or provides (one per line, #
    /// comments), expanded to their dependency closure against the selected repos. `@kubespray`
    /// is the shipped list of what Kubespray installs on the nodes
    /// (manifests/kubespray-rocky10-packages.txt).
    #[arg(long, value_name = "FILE|@SET")]
    pub packages: Option<PathBuf>,
    /// In slim mode, leave out weak dependencies (Recommends).
    #[arg(long)]
    pub no_weak_deps: bool,
    /// Verify packages against this ASCII-armored key instead of the release key.
    #[arg(long, value_name = "FILE")]
    pub gpg_key: Option<PathBuf>,
    /// Do not verify package signatures (recorded in the manifest).
    #[arg(long)]
    pub no_gpgcheck: bool,
    /// Download cache (content-addressed; re-runs fetch only what is new).
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// Parallel downloads per mirror to start with; over the network more are added while the
    /// measured throughput grows (at most 32 in all).
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub jobs: usize,
    /// How downloads share connections to a host: http1 (one connection per download in
    /// flight), http2 (--jobs HTTP/2 connections per host) or http2-shared (all on one HTTP/2
    /// connection).
    #[arg(long, default_value = "http1", value_name = "MODE")]
    pub connections: Connections,
    /// Also trust the certificate authorities in this PEM file for HTTPS (a private mirror);
    /// also $KUBESPRAY_OFFLINE_CA_CERT.
    #[arg(long, value_name = "FILE", env = "KUBESPRAY_OFFLINE_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// How the bundle and the download cache are written and read: `direct` bypasses the page
    /// cache (O_DIRECT, falling back to buffered where the filesystem refuses it), `buffered`
    /// goes through it like any program. See docs/BENCHMARKS.md for when each is faster.
    #[arg(
        long = "io",
        value_name = "MODE",
        env = bundle::IO_MODE_ENV,
        default_value_t = IoMode::default(),
        value_parser = PossibleValuesParser::new(IoMode::NAMES)
            .map(|name| name.parse::<IoMode>().expect("one of the listed names")),
    )]
    pub io: IoMode,
    /// Directory of release definitions (rocky-<release>.toml) looked in before the ones built
    /// into bundler; also $KUBESPRAY_OFFLINE_MANIFESTS.
    #[arg(long, value_name = "DIR")]
    pub manifests: Option<PathBuf>,
    /// No progress bars and no per-step lines (resolution, download totals); the result,
    /// notes (a mirror dropped) and errors still print.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub pypi: PypiArgs,
}

/// The download cache when `--cache` is not given.
pub fn default_cache_dir() -> PathBuf {
    dirs::cache_dir()
        .unwrap_or_else(std::env::temp_dir)
        .join("kubespray-offline")
}

/// A mirror given as a plain local path becomes a file:// URL.
fn mirror_url(m: &str) -> Result<String, BuildError> {
    if m.contains("://") {
        return Ok(m.to_string());
    }
    let abs = std::path::absolute(Path::new(m))
        .map_err(|e| BuildError::Usage(format!("--mirror {m}: {e}")))?;
    url::Url::from_directory_path(&abs)
        .map(|u| u.to_string())
        .map_err(|()| BuildError::Usage(format!("--mirror {m}: not a usable path")))
}

/// The patterns of a package list: a file, or `@NAME` for a shipped set.
fn read_patterns(
    path: &Path,
    release: &ReleaseDef,
    manifests: Option<&Path>,
) -> Result<Vec<String>, BuildError> {
    let (text, origin) = match path.to_str().and_then(|p| p.strip_prefix('@')) {
        Some(name) => package_set(name, release, manifests)?,
        None => (
            fs_err::read_to_string(path)
                .map_err(|e| BuildError::Usage(format!("--packages: {e}")))?,
            path.to_path_buf(),
        ),
    };
    let patterns = parse_patterns(&text);
    if patterns.is_empty() {
        return Err(BuildError::Usage(format!(
            "--packages {}: no package names in it",
            origin.display()
        )));
    }
    Ok(patterns)
}

/// Package names of a list: one or more per line, `#` starts a comment.
pub fn parse_patterns(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or_default())
        .flat_map(str::split_whitespace)
        .map(str::to_string)
        .collect()
}

impl SelectionArgs {
    pub fn rpm_options(&self) -> Result<RpmOptions, BuildError> {
        let release = ReleaseDef::load(&self.release, self.manifests.as_deref())?;
        let mirrorlist = match self.mirrorlist.as_deref() {
            None => None,
            Some("") => Some(release.mirrorlist.clone().ok_or_else(|| {
                BuildError::Usage(format!(
                    "--mirrorlist: release {} names no mirrorlist; give its URL",
                    release.release
                ))
            })?),
            Some(url) => Some(url.to_string()),
        };
        let mut mirrors: Vec<String> = if self.mirrors.is_empty() && mirrorlist.is_none() {
            release.mirrors.clone()
        } else {
            self.mirrors
                .iter()
                .map(|m| mirror_url(m))
                .collect::<Result<_, _>>()?
        };
        // A minor release is looked for in the vault first: the mirrors carry it only until the
        // next minor release is out.
        if release.minor.is_some() {
            let vaults: Vec<String> = if !self.vaults.is_empty() {
                self.vaults
                    .iter()
                    .map(|m| mirror_url(m))
                    .collect::<Result<_, _>>()?
            } else if self.mirrors.is_empty() {
                release.vault.clone()
            } else {
                Vec::new()
            };
            mirrors.splice(0..0, vaults);
        }
        let repos = if self.repos.is_empty() {
            release.default_repos()
        } else {
            self.repos.clone()
        };
        for id in &repos {
            if release.repo(id).is_none() {
                let known: Vec<_> = release.repos.iter().map(|r| r.id.as_str()).collect();
                return Err(BuildError::Usage(format!(
                    "--repo {id}: release {} has {}",
                    release.release,
                    known.join(", ")
                )));
            }
        }
        let arches = if self.arches.is_empty() {
            release.default_arches.clone()
        } else {
            self.arches.clone()
        };
        for arch in &arches {
            if !release.arches.contains(arch) {
                return Err(BuildError::Usage(format!(
                    "--arch {arch}: release {} has {}",
                    release.release,
                    release.arches.join(", ")
                )));
            }
        }
        let packages = self
            .packages
            .as_deref()
            .map(|p| read_patterns(p, &release, self.manifests.as_deref()))
            .transpose()?;
        Ok(RpmOptions {
            release,
            mirrors,
            mirrorlist,
            repos,
            arches,
            packages,
            weak_deps: !self.no_weak_deps,
            gpg_key: self.gpg_key.clone(),
            gpgcheck: !self.no_gpgcheck,
        })
    }

    /// The PyPI settings (`None` with `--no-pypi`); `--platform` defaults to the RPM arches,
    /// `python_full_version` comes from the release definition. `fetcher` fetches Kubespray's
    /// requirements when this bundler ships none for `--kubespray`.
    pub async fn pypi_settings(
        &self,
        fetcher: &Fetcher,
    ) -> Result<Option<PypiSettings>, BuildError> {
        if self.no_pypi {
            return Ok(None);
        }
        let release = ReleaseDef::load(&self.release, self.manifests.as_deref());
        let arches = if self.no_rpm {
            self.arches.clone()
        } else {
            self.rpm_options()?.arches
        };
        let python_full = release.as_ref().ok().and_then(|r| r.python_full_version());
        self.pypi
            .settings(&arches, python_full, fetcher)
            .await
            .map(Some)
    }

    /// What to take of Kubespray's files and images (`None` when both are left out), for the
    /// `--kubespray` version (default the newest shipped) and the RPM arches.
    pub fn kubespray_options(&self) -> Result<Option<KubesprayOptions>, BuildError> {
        if self.no_files && self.no_images {
            return Ok(None);
        }
        let version = self
            .pypi
            .kubespray
            .clone()
            .unwrap_or_else(|| default_kubespray_version().to_string());
        let lists = if let (Some(inventory), Some(tree)) =
            (&self.kubespray_inventory, &self.kubespray_tree)
        {
            DownloadLists::render(&version, tree, inventory)?
        } else if let Some(path) = &self.download_lists {
            DownloadLists::from_file(path)?
        } else if self.files_list.is_some() || self.images_list.is_some() {
            let shipped = DownloadLists::shipped(&version).ok();
            let mut lists = DownloadLists::from_generated(
                &version,
                self.files_list.as_deref(),
                self.images_list.as_deref(),
            )?;
            // A list given for one kind only: the other comes from the shipped lists.
            if let Some(shipped) = shipped {
                if self.files_list.is_none() {
                    lists.files = shipped.files;
                }
                if self.images_list.is_none() {
                    lists.images = shipped.images;
                }
            }
            lists
        } else {
            DownloadLists::shipped(&version)?
        };
        let arches = if self.arches.is_empty() {
            vec!["x86_64".to_string()]
        } else {
            self.arches.clone()
        };
        Ok(Some(KubesprayOptions {
            lists,
            arches,
            files: !self.no_files,
            images: !self.no_images,
            files_mirrors: HostMirrors::parse("--files-mirror", &self.files_mirrors)?,
            registry_mirrors: HostMirrors::parse("--registry-mirror", &self.registry_mirrors)?,
        }))
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.cache.clone().unwrap_or_else(default_cache_dir)
    }

    /// The build's one fetcher (shared with the PyPI index client, hence the `Arc`).
    pub fn fetcher(&self) -> Result<Arc<Fetcher>, BuildError> {
        let settings = FetchSettings {
            jobs: self.jobs.max(1),
            connections: self.connections,
            ca_certs: self.ca_cert.iter().cloned().collect(),
            io: self.io,
            ..FetchSettings::default()
        };
        Ok(Arc::new(Fetcher::new(self.cache_dir(), settings)?))
    }
}
