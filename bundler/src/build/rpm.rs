//! The RPM part of a build: load the release key file, then for all selected repos and arches
//! at once fetch `repomd.xml` (first mirror that answers), check its detached signature before trusting it,
//! fetch every metadata record it lists (pinned by its sha256), parse primary, select the
//! packages (everything, or the slim closure), read the minor release from the release
//! package, and describe the bundle files: metadata and key from the cache, packages to fetch
//! and verify while the bundle is written (`super::stream`), plus the manifest's `RpmSection`.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;

use bundle::progress::Reporter;
use bundle::{FileEntry, FileKind, RpmRepo, RpmSection, UpstreamRecord};
use url::Url;

use super::{BuildError, PartFiles, Source, to_fetch};
use crate::fetch::{Download, Expected, Fetched, Fetcher};
use crate::release::ReleaseDef;
use crate::rpm::RpmMetaError;
use crate::rpm::closure::{ClosureInput, required_paths, resolve_closure};
use crate::rpm::filelists::add_wanted_files;
use crate::rpm::primary::{PrimaryPackage, parse_primary};
use crate::rpm::repomd::{MdRecord, RepoMd, decompress, parse_repomd};
use crate::rpm::verify::ReleaseKey;

/// What to mirror, resolved from the command line and the release definition.
#[derive(Debug, Clone)]
pub struct RpmOptions {
    pub release: ReleaseDef,
    /// Mirror roots in preference order.
    pub mirrors: Vec<String>,
    /// Mirrorlist URL with `{repo}` and `{arch}`: each repo's list adds its first
    /// [`MIRRORLIST_TAKE`] mirrors ahead of `mirrors`.
    pub mirrorlist: Option<String>,
    pub repos: Vec<String>,
    pub arches: Vec<String>,
    /// `--packages` patterns; None for a full mirror.
    pub packages: Option<Vec<String>>,
    pub weak_deps: bool,
    pub gpg_key: Option<PathBuf>,
    pub gpgcheck: bool,
}

/// A metadata file in the cache and where it came from.
#[derive(Debug, Clone)]
pub struct MetaFile {
    pub kind: String,
    /// Path relative to the repo base (e.g. `repodata/repomd.xml`).
    pub href: String,
    pub fetched: Fetched,
}

/// The key file packages and metadata are checked against, as fetched for the bundle.
#[derive(Debug, Clone)]
pub struct KeyFile {
    pub key: Arc<ReleaseKey>,
    pub file: Fetched,
}

/// Everything read before any package is downloaded (all `bundler plan` does).
#[derive(Debug, Clone)]
pub struct RpmPlan {
    pub repos: Vec<RepoPlan>,
    /// None only with `--no-gpgcheck` when no key could be had.
    pub key: Option<KeyFile>,
    /// The version of the release package (`rocky-release`) in the repos, e.g. "10.1".
    pub minor_release: Option<String>,
}

/// One repo and arch after its metadata was read.
#[derive(Debug, Clone)]
pub struct RepoPlan {
    pub id: String,
    pub arch: String,
    /// Repo base URLs (ending in `/`), the one that served repomd.xml first.
    pub bases: Vec<Url>,
    pub revision: Option<String>,
    /// repomd.xml, repomd.xml.asc (when present) and every record.
    pub metadata: Vec<MetaFile>,
    /// Every package in primary.
    pub all: Vec<PrimaryPackage>,
    /// Indexes into `all` of the packages to mirror.
    pub selected: Vec<usize>,
    pub slim: bool,
    /// The pinned key whose signature over repomd.xml verified (None when not checked).
    pub metadata_signer: Option<String>,
}

impl RepoPlan {
    pub fn bundle_dir(&self) -> String {
        format!("repos/{}/{}", self.id, self.arch)
    }

    pub fn selected(&self) -> impl Iterator<Item = &PrimaryPackage> {
        self.selected.iter().map(|&i| &self.all[i])
    }

    /// Downloads of the selected packages.
    pub fn downloads(&self) -> Result<Vec<Download>, BuildError> {
        self.selected().map(|p| self.download(p)).collect()
    }

    fn download(&self, pkg: &PrimaryPackage) -> Result<Download, BuildError> {
        let sha256 = pkg.sha256.clone().ok_or_else(|| RpmMetaError::NoSha256 {
            url: self.bases[0].to_string(),
            what: pkg.nevra(),
            source_file: "primary".into(),
        })?;
        Ok(Download {
            label: pkg.href.rsplit('/').next().unwrap_or(&pkg.href).to_string(),
            urls: join_all(&self.bases, &pkg.href)?,
            expected: Expected {
                size: pkg.size,
                sha256,
            },
            auth: None,
        })
    }
}

fn join_all(bases: &[Url], href: &str) -> Result<Vec<Url>, BuildError> {
    bases
        .iter()
        .map(|b| {
            b.join(href).map_err(|e| {
                BuildError::Meta(RpmMetaError::Malformed {
                    url: b.to_string(),
                    reason: format!("bad location {href}: {e}"),
                })
            })
        })
        .collect()
}

/// Mirrors taken from the top of a mirrorlist: enough to fill a link, few enough that a list
/// of far-away mirrors does not get work.
pub const MIRRORLIST_TAKE: usize = 4;

/// The repo base URLs the mirrorlist `template` names for `repo` and `arch`, the first
/// [`MIRRORLIST_TAKE`] of them. The list is not trusted more than any mirror: everything still
/// checks against the signed metadata.
async fn mirrorlist(
    template: &str,
    repo: &crate::release::RepoDef,
    arch: &str,
    fetcher: &Fetcher,
) -> Result<Vec<Url>, BuildError> {
    let name = repo.mirrorlist_name.as_deref().unwrap_or(&repo.dir);
    let url = parse_url(&template.replace("{repo}", name).replace("{arch}", arch))?;
    let (bytes, _) = fetcher.fetch_unpinned(std::slice::from_ref(&url)).await?;
    let text = String::from_utf8_lossy(&bytes);
    let bases: Vec<Url> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("http://") || l.starts_with("https://"))
        .take(MIRRORLIST_TAKE)
        .map(|l| parse_url(&format!("{}/", l.trim_end_matches('/'))))
        .collect::<Result<_, _>>()?;
    if bases.is_empty() {
        return Err(BuildError::Usage(format!(
            "mirrorlist {url} names no http(s) mirror for {}/{arch}; check the URL or use --mirror",
            repo.id
        )));
    }
    Ok(bases)
}

fn parse_url(s: &str) -> Result<Url, BuildError> {
    Url::parse(s).map_err(|e| BuildError::Usage(format!("bad mirror URL {s}: {e}")))
}

/// Load the key, read metadata for every selected repo and arch (signature first), and select
/// packages. Downloads only metadata (this is all `bundler plan` does).
pub async fn plan(
    opts: &RpmOptions,
    fetcher: &Fetcher,
    reporter: &dyn Reporter,
) -> Result<RpmPlan, BuildError> {
    let key = release_key(opts, fetcher).await?;
    let check = MetadataCheck {
        key: key.as_ref().filter(|_| opts.gpgcheck).map(|k| &*k.key),
        required: opts.release.key.signed_metadata,
    };
    let mut wanted = Vec::new();
    for arch in &opts.arches {
        for id in &opts.repos {
            let repo = opts.release.repo(id).ok_or_else(|| {
                BuildError::Usage(format!(
                    "unknown repo {id:?} for release {}",
                    opts.release.release
                ))
            })?;
            let bases = opts
                .mirrors
                .iter()
                .map(|m| parse_url(&opts.release.repo_url(m, repo, arch)))
                .collect::<Result<Vec<_>, _>>()?;
            wanted.push((id, arch, repo, bases));
        }
    }
    // Every repo and arch at once: over a long round trip, fetching their metadata one after
    // the other costs a few round trips each. Parsing primary, the CPU work between the
    // fetches, runs on the blocking pool.
    let check = &check;
    let planned = wanted
        .into_iter()
        .map(|(id, arch, repo, mut bases)| async move {
            if let Some(list) = &opts.mirrorlist {
                let listed = mirrorlist(list, repo, arch, fetcher).await?;
                bases.splice(0..0, listed);
            }
            plan_repo(id, arch, bases, check, fetcher, reporter).await
        });
    let mut repos = futures::future::try_join_all(planned).await?;
    if let Some(patterns) = &opts.packages {
        select_closure(&mut repos, &opts.arches, patterns, opts.weak_deps)?;
    }
    let minor_release = minor_release(&opts.release, &repos)?;
    Ok(RpmPlan {
        repos,
        key,
        minor_release,
    })
}

/// Slim mode: per arch, replace each repo's selection with its share of the dependency closure
/// of `patterns` over all of that arch's repos.
pub fn select_closure(
    plans: &mut [RepoPlan],
    arches: &[String],
    patterns: &[String],
    weak_deps: bool,
) -> Result<(), BuildError> {
    for arch in arches {
        let idx: Vec<usize> = (0..plans.len())
            .filter(|&i| &plans[i].arch == arch)
            .collect();
        let mut repos: Vec<Vec<PrimaryPackage>> =
            idx.iter().map(|&i| plans[i].all.clone()).collect();
        let closure = |repos: &[Vec<PrimaryPackage>]| {
            resolve_closure(&ClosureInput {
                repos,
                arch,
                patterns,
                weak_deps,
            })
        };
        let closure = match closure(&repos) {
            // Primary lists only some files (createrepo_c's rules). Like dnf, look the other
            // required paths up in filelists, then resolve again.
            Err(RpmMetaError::Unresolvable { requirement, .. }) if requirement.starts_with('/') => {
                let wanted = required_paths(&repos);
                for (r, &i) in idx.iter().enumerate() {
                    add_filelists(&plans[i], &mut repos[r], &wanted)?;
                }
                closure(&repos)?
            }
            other => other?,
        };
        for &i in &idx {
            plans[i].selected.clear();
            plans[i].slim = true;
        }
        for (r, p) in closure {
            plans[idx[r]].selected.push(p);
        }
    }
    Ok(())
}

/// The minor release the repos hold: the newest version of the release package among them.
/// When a minor release was asked for, a repo set holding another one is refused (a mirror
/// serving the wrong tree, or a moved symlink).
fn minor_release(release: &ReleaseDef, plans: &[RepoPlan]) -> Result<Option<String>, BuildError> {
    let Some(name) = &release.release_package else {
        return Ok(None);
    };
    let newest = plans
        .iter()
        .flat_map(|plan| plan.all.iter().map(move |p| (plan, p)))
        .filter(|(_, p)| &p.name == name)
        .max_by(|(_, a), (_, b)| {
            rpm_version::Evr::new(a.epoch.as_str(), a.version.as_str(), a.release.as_str()).cmp(
                &rpm_version::Evr::new(b.epoch.as_str(), b.version.as_str(), b.release.as_str()),
            )
        });
    let Some((plan, package)) = newest else {
        return Ok(None);
    };
    if let Some(asked) = &release.minor
        && package.version != *asked
    {
        return Err(RpmMetaError::WrongMinorRelease {
            repo: format!("{}/{}", plan.id, plan.arch),
            url: plan.bases[0].to_string(),
            asked: asked.clone(),
            found: package.nevra(),
        }
        .into());
    }
    Ok(Some(package.version.clone()))
}

/// Adds the `wanted` paths that `plan`'s filelists (already in the cache with the rest of the
/// metadata) lists to `packages`, the repo's packages. A repo without filelists adds nothing.
fn add_filelists(
    plan: &RepoPlan,
    packages: &mut [PrimaryPackage],
    wanted: &HashSet<String>,
) -> Result<(), BuildError> {
    let Some(meta) = plan.metadata.iter().find(|m| m.kind == "filelists") else {
        return Ok(());
    };
    let url = meta.fetched.url.to_string();
    let file = fs_err::File::open(&meta.fetched.path).map_err(crate::fetch::FetchError::Fs)?;
    let reader = decompress(file).map_err(|e| RpmMetaError::Malformed {
        url: url.clone(),
        reason: e.to_string(),
    })?;
    add_wanted_files(reader, &url, packages, wanted)?;
    Ok(())
}

/// How a repo's `repomd.xml` is checked: against the pinned keys when gpgcheck is on; a
/// missing signature fails only when the release definition says there must be one.
struct MetadataCheck<'a> {
    key: Option<&'a ReleaseKey>,
    required: bool,
}

async fn plan_repo(
    id: &str,
    arch: &str,
    mut bases: Vec<Url>,
    check: &MetadataCheck<'_>,
    fetcher: &Fetcher,
    reporter: &dyn Reporter,
) -> Result<RepoPlan, BuildError> {
    let repomd_urls = join_all(&bases, "repodata/repomd.xml")?;
    let (bytes, from) = fetcher.fetch_unpinned(&repomd_urls).await?;
    // Prefer the mirror that answered for everything else in this repo.
    if let Some(pos) = repomd_urls.iter().position(|u| *u == from) {
        let good = bases.remove(pos);
        bases.insert(0, good);
    }
    // The detached signature comes from the mirror that served repomd.xml, and is checked
    // before anything repomd.xml says is used.
    let asc_url = join_all(&bases[..1], "repodata/repomd.xml.asc")?;
    let asc = fetcher.fetch_unpinned(&asc_url).await;
    let bad_metadata = |reason: String| RpmMetaError::MetadataSignature {
        repo: format!("{id}/{arch}"),
        url: asc_url[0].to_string(),
        reason,
    };
    let metadata_signer = match (check.key, &asc) {
        (Some(key), Ok((asc, _))) => Some(key.verify_detached(&bytes, asc).map_err(bad_metadata)?),
        (Some(_), Err(e)) if check.required => {
            return Err(bad_metadata(format!(
                "repomd.xml has no signature ({e}), and the release definition says every repo's metadata is signed"
            ))
            .into());
        }
        _ => None,
    };
    let repomd: RepoMd = parse_repomd(&bytes, from.as_str())?;
    let (path, sha256) = fetcher.cache().store_bytes(&bytes)?;
    let mut metadata = vec![MetaFile {
        kind: "repomd".into(),
        href: "repodata/repomd.xml".into(),
        fetched: Fetched {
            path,
            url: from.clone(),
            size: bytes.len() as u64,
            sha256,
            from_cache: false,
            data: None,
            held: None,
        },
    }];
    // The bundle carries the signature when the mirror has it, checked or not.
    if let Ok((asc, url)) = asc {
        let (path, sha256) = fetcher.cache().store_bytes(&asc)?;
        metadata.push(MetaFile {
            kind: "repomd-asc".into(),
            href: "repodata/repomd.xml.asc".into(),
            fetched: Fetched {
                path,
                url,
                size: asc.len() as u64,
                sha256,
                from_cache: false,
                data: None,
                held: None,
            },
        });
    }
    let primary = repomd
        .record("primary")
        .ok_or_else(|| RpmMetaError::NoPrimary {
            url: from.to_string(),
        })?
        .clone();
    let downloads = repomd
        .records
        .iter()
        .map(|r| record_download(r, &bases, &from))
        .collect::<Result<Vec<_>, _>>()?;
    let what = format!("metadata {id}/{arch}");
    let fetched = fetcher.fetch_all(&what, &downloads, reporter).await?;
    let mut primary_path = None;
    for (record, f) in repomd.records.iter().zip(fetched) {
        if *record == primary {
            primary_path = Some(f.path.clone());
        }
        metadata.push(MetaFile {
            kind: record.kind.clone(),
            href: record.href.clone(),
            fetched: f,
        });
    }
    let primary_path = primary_path.expect("primary is one of the records");
    let primary_url = bases[0]
        .join(&primary.href)
        .map_or_else(|_| primary.href.clone(), |u| u.to_string());
    let all = tokio::task::spawn_blocking(move || read_primary(&primary_path, &primary_url))
        .await
        .expect("primary parsing does not panic")?;
    Ok(RepoPlan {
        id: id.to_string(),
        arch: arch.to_string(),
        bases,
        revision: repomd.revision.clone(),
        metadata,
        selected: (0..all.len()).collect(),
        all,
        slim: false,
        metadata_signer,
    })
}

/// The packages of the primary metadata file at `path` (any compression).
fn read_primary(path: &std::path::Path, url: &str) -> Result<Vec<PrimaryPackage>, BuildError> {
    let file = fs_err::File::open(path).map_err(crate::fetch::FetchError::Fs)?;
    let reader = decompress(file).map_err(|e| RpmMetaError::Malformed {
        url: url.to_string(),
        reason: e.to_string(),
    })?;
    Ok(parse_primary(reader, url)?)
}

fn record_download(r: &MdRecord, bases: &[Url], repomd_url: &Url) -> Result<Download, BuildError> {
    let missing = |what: &str| RpmMetaError::NoSha256 {
        url: repomd_url.to_string(),
        what: format!("record {} ({what})", r.kind),
        source_file: "repomd.xml".into(),
    };
    Ok(Download {
        label: r.href.rsplit('/').next().unwrap_or(&r.href).to_string(),
        urls: join_all(bases, &r.href)?,
        expected: Expected {
            size: r.size.ok_or_else(|| missing("no <size>"))?,
            sha256: r
                .sha256
                .clone()
                .ok_or_else(|| missing("no sha256 <checksum>"))?,
        },
        auth: None,
    })
}

/// The RPM part, described before any package is downloaded: every bundle file with its
/// source, the manifest section, and the key every package's header signatures are checked
/// against (None with `--no-gpgcheck`).
pub struct RpmPart {
    pub files: PartFiles,
    pub section: RpmSection,
    pub verifier: Option<Arc<ReleaseKey>>,
}

/// Describe the bundle files of the plan: metadata and the key are already in the cache,
/// packages are to be fetched (and their signatures verified) while the bundle is written.
/// Sizes and sha256 come from primary, so the manifest is complete before any download; the
/// repos' signers are filled in by the packer ([`super::stream`]).
pub fn describe(opts: &RpmOptions, plan: &RpmPlan) -> Result<RpmPart, BuildError> {
    let mut files: PartFiles = Vec::new();
    let mut repos = Vec::new();
    for plan in &plan.repos {
        let dir = plan.bundle_dir();
        let mut records = Vec::new();
        for m in &plan.metadata {
            let path = format!("{dir}/{}", m.href);
            if m.kind != "repomd" && m.kind != "repomd-asc" {
                records.push(UpstreamRecord {
                    kind: m.kind.clone(),
                    path: path.clone(),
                });
            }
            files.push(entry(path, &m.fetched, FileKind::Repodata));
        }
        let mut bytes = 0;
        for pkg in plan.selected() {
            let download = plan.download(pkg)?;
            bytes += download.expected.size;
            let path = format!("{dir}/{}", pkg.href);
            let signed = opts.gpgcheck.then(|| pkg.nevra());
            files.push(to_fetch(path, FileKind::Rpm, download, signed));
        }
        repos.push(RpmRepo {
            id: plan.id.clone(),
            arch: plan.arch.clone(),
            dir,
            upstream_url: plan.bases[0].to_string(),
            revision: plan.revision.clone(),
            package_count: plan.selected.len() as u64,
            package_bytes: bytes,
            metadata: records,
            slim: plan.slim,
            signers: Vec::new(),
            metadata_signer: plan.metadata_signer.clone(),
        });
    }
    let pinned = plan
        .key
        .as_ref()
        .filter(|_| opts.gpgcheck)
        .map(|k| k.key.pinned())
        .unwrap_or_default();
    let key_path = plan.key.as_ref().map(|k| {
        let path = format!(
            "keys/{}",
            k.file
                .url
                .path_segments()
                .and_then(|mut s| s.next_back())
                .unwrap_or("RPM-GPG-KEY")
        );
        files.push(entry(path.clone(), &k.file, FileKind::Key));
        path
    });
    let section = RpmSection {
        distro: opts.release.distro.clone(),
        gpgcheck: opts.gpgcheck,
        key_path,
        key_fingerprint: pinned.first().cloned(),
        pinned_fingerprints: pinned,
        minor_release: plan.minor_release.clone(),
        repos,
    };
    Ok(RpmPart {
        files,
        section,
        verifier: plan
            .key
            .as_ref()
            .filter(|_| opts.gpgcheck)
            .map(|k| k.key.clone()),
    })
}

fn entry(path: String, f: &Fetched, kind: FileKind) -> (FileEntry, Source) {
    (
        FileEntry {
            path,
            size: f.size,
            sha256: f.sha256.clone(),
            kind,
            origin: (f.url.scheme() != "file").then(|| f.url.to_string()),
            in_base: false,
        },
        Source::Local(f.path.clone()),
    )
}

/// The key to verify with and its file (as fetched, for the bundle): `--gpg-key` (every key in
/// it trusted), else the release key file from the mirrors, with the release definition's pins.
/// None only with `--no-gpgcheck` when no key could be had.
async fn release_key(opts: &RpmOptions, fetcher: &Fetcher) -> Result<Option<KeyFile>, BuildError> {
    if let Some(path) = &opts.gpg_key {
        let key = ReleaseKey::load(path, None)?;
        let bytes = fs_err::read(path).map_err(crate::fetch::FetchError::Fs)?;
        let (cached, sha256) = fetcher.cache().store_bytes(&bytes)?;
        let abs = std::path::absolute(path).map_err(|source| crate::fetch::FetchError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let url = Url::from_file_path(&abs)
            .map_err(|()| BuildError::Usage(format!("bad key path {}", path.display())))?;
        return Ok(Some(KeyFile {
            key: Arc::new(key),
            file: key_file(cached, url, &bytes, sha256),
        }));
    }
    let def = &opts.release.key;
    // With only a mirrorlist (repo URLs, not roots), the release's mirrors have the key; its
    // pins decide whether it is the right one wherever it came from.
    let roots = if opts.mirrors.is_empty() {
        &opts.release.mirrors
    } else {
        &opts.mirrors
    };
    let urls = roots
        .iter()
        .map(|m| parse_url(&format!("{}/{}", m.trim_end_matches('/'), def.file)))
        .collect::<Result<Vec<_>, _>>()?;
    let fetched = fetcher.fetch_unpinned(&urls).await;
    let (bytes, url) = match fetched {
        Ok(ok) => ok,
        Err(_) if !opts.gpgcheck => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let (cached, sha256) = fetcher.cache().store_bytes(&bytes)?;
    let key = ReleaseKey::load(&cached, Some(&def.pins()))?;
    Ok(Some(KeyFile {
        key: Arc::new(key),
        file: key_file(cached, url, &bytes, sha256),
    }))
}

/// The key file as the bundle carries it: stored in the cache, with where it came from.
fn key_file(path: std::path::PathBuf, url: Url, bytes: &[u8], sha256: String) -> Fetched {
    Fetched {
        path,
        url,
        size: bytes.len() as u64,
        sha256,
        from_cache: false,
        data: None,
        held: None,
    }
}
