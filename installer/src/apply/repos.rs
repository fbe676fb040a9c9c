//! The RPM part of apply: one installed repo per repo id (`<data>/repos/<distro>/<release>/<id>/`)
//! merging the bundle's per-arch directories, packages at their upstream relative paths. A repo
//! whose packages, carried records and options did not change is left alone; a changed one is
//! built complete in staging (packages unpacked straight into it, kept ones hard-linked with
//! `--keep-old`, repodata written while the packages unpack) and switched in with one atomic
//! exchange.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use bundle::{BundleManifest, FileKind};

use super::state::{self, RepoState};
use super::{ApplyError, Layout};
use crate::repodata::{self, Durability, KnownDigest, PackageFile, PackageSet, UpstreamRecords};

/// One repo the bundle carries (all its arches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoPlan {
    pub id: String,
    pub live_dir: PathBuf,
    /// Relative path -> (sha256, size, bundle path or None when kept from the live repo).
    pub packages: BTreeMap<String, (String, u64, Option<String>)>,
    /// Per arch, the carried upstream records (kind, bundle path, sha256).
    pub upstream: Vec<Vec<(String, String, String)>>,
    pub state: RepoState,
    pub added: usize,
    pub removed: usize,
    pub kept: usize,
    pub unchanged: bool,
}

impl RepoPlan {
    pub fn describe(&self) -> String {
        if self.unchanged {
            format!("unchanged ({} packages)", self.packages.len())
        } else {
            format!(
                "rebuild: +{} -{} packages, {} kept, {} total, repodata ({})",
                self.added,
                self.removed,
                self.kept,
                self.packages.len(),
                self.state.compress
            )
        }
    }
}

pub fn plan(
    manifest: &BundleManifest,
    layout: &Layout,
    keep_old: bool,
    compression: repodata::Compression,
) -> Result<Vec<RepoPlan>, ApplyError> {
    let Some(rpm) = &manifest.rpm else {
        return Ok(Vec::new());
    };
    let release = manifest.release.clone().unwrap_or_default();
    let sha_of: BTreeMap<&str, &str> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.sha256.as_str()))
        .collect();
    let mut by_id: BTreeMap<&str, Vec<&bundle::RpmRepo>> = BTreeMap::new();
    for repo in &rpm.repos {
        by_id.entry(repo.id.as_str()).or_default().push(repo);
    }
    let compress = match compression {
        repodata::Compression::Gzip => "gzip",
        repodata::Compression::Zstd => "zstd",
    };
    let mut plans = Vec::new();
    for (id, arches) in by_id {
        let live_dir = layout.repo_dir(&rpm.distro, &release, id);
        let mut packages = BTreeMap::new();
        let mut upstream = Vec::new();
        let mut state = RepoState {
            compress: compress.to_string(),
            revision: manifest.created.unix_timestamp().max(0) as u64,
            ..RepoState::default()
        };
        for repo in &arches {
            let prefix = format!("{}/", repo.dir.trim_end_matches('/'));
            for f in manifest.files.iter().filter(|f| f.kind == FileKind::Rpm) {
                let Some(rel) = f.path.strip_prefix(&prefix) else {
                    continue;
                };
                let entry = (f.sha256.clone(), f.size, Some(f.path.clone()));
                if let Some((sha, _, _)) = packages.get(rel) {
                    if sha != &f.sha256 {
                        return Err(ApplyError::ConflictingPackage {
                            repo: id.to_string(),
                            path: rel.to_string(),
                        });
                    }
                    continue;
                }
                state.packages.insert(rel.to_string(), f.sha256.clone());
                packages.insert(rel.to_string(), entry);
            }
            let mut records = Vec::new();
            for rec in &repo.metadata {
                let sha = sha_of.get(rec.path.as_str()).copied().unwrap_or_default();
                state
                    .upstream
                    .insert(format!("{}:{}", repo.arch, rec.kind), sha.to_string());
                records.push((rec.kind.clone(), rec.path.clone(), sha.to_string()));
            }
            upstream.push(records);
        }
        let live: Option<RepoState> = state::load(&live_dir);
        let live_packages = live
            .as_ref()
            .map(|s| s.packages.clone())
            .unwrap_or_default();
        let mut kept = 0;
        if keep_old {
            for (rel, sha) in &live_packages {
                if !packages.contains_key(rel) {
                    kept += 1;
                    state.packages.insert(rel.clone(), sha.clone());
                    packages.insert(rel.clone(), (sha.clone(), 0, None));
                }
            }
        }
        let added = packages
            .keys()
            .filter(|k| !live_packages.contains_key(*k))
            .count();
        let removed = live_packages
            .keys()
            .filter(|k| !packages.contains_key(*k))
            .count();
        let unchanged = live.as_ref().is_some_and(|l| l.same_content(&state));
        plans.push(RepoPlan {
            id: id.to_string(),
            live_dir,
            packages,
            upstream,
            state,
            added,
            removed,
            kept,
            unchanged,
        });
    }
    Ok(plans)
}

/// The repodata options `plan`'s repo is built with.
pub(super) fn repodata_options(
    plan: &RepoPlan,
    compression: repodata::Compression,
) -> repodata::Options {
    repodata::Options {
        compression,
        revision: plan.state.revision,
        package_time: Some(plan.state.revision),
        // `execute` builds in staging and syncs the filesystem once before the switch.
        durability: Durability::Staged,
        ..repodata::Options::default()
    }
}

/// Where the repo of `plan` is built before it is switched live; the unpack writes the repo's
/// packages there.
pub(super) fn stage_dir(layout: &Layout, plan: &RepoPlan) -> PathBuf {
    layout.staging.join(format!("repo-{}", plan.id))
}

/// What a rebuilt repo's repodata is built from: its packages with their digests (a kept
/// package's size is read from the live file it will be linked to) and the bundle's upstream
/// records under `extracted` (read only once the unpack is done).
pub fn repodata_input(
    plan: &RepoPlan,
    layout: &Layout,
    extracted: &Path,
) -> Result<repodata::RepodataInput, ApplyError> {
    let mut files = Vec::with_capacity(plan.packages.len());
    for (rel, (sha, size, bundle_path)) in &plan.packages {
        let size = match bundle_path {
            Some(_) => *size,
            None => fs_err::metadata(plan.live_dir.join(rel))?.len(),
        };
        files.push(PackageFile {
            relative_path: rel.clone(),
            known: Some(KnownDigest {
                sha256: sha.clone(),
                size,
            }),
        });
    }
    let upstream = plan
        .upstream
        .iter()
        .map(|records| {
            let mut u = UpstreamRecords::default();
            for (kind, path, _) in records {
                let p = Some(extracted.join(path));
                match kind.as_str() {
                    "group" if u.comps.is_none() => u.comps = p,
                    "group_gz" if u.comps.is_none() => u.comps = p,
                    "updateinfo" => u.updateinfo = p,
                    "modules" => u.modules = p,
                    _ => {}
                }
            }
            u
        })
        .collect();
    Ok(repodata::RepodataInput {
        repo_dir: stage_dir(layout, plan),
        package_sets: vec![PackageSet {
            label: plan.id.clone(),
            files,
        }],
        upstream,
    })
}

/// Build the planned (rebuilt) repo in staging and switch it live. Started before the unpack:
/// the repodata writers take the records `feed` gets as the packages unpack (see
/// `prefetch`), and the live repo's records of unchanged packages are offered at once. Once
/// `unpacked` delivers the relative paths the unpack wrote into the staged tree, the other
/// packages are moved (a differential bundle's) or linked (`--keep-old`) there, what is still
/// missing is read, and the repo is finished, synced and switched. A closed `unpacked` (the
/// unpack failed) stops the build.
#[allow(clippy::too_many_arguments)]
pub fn execute(
    plan: &RepoPlan,
    layout: &Layout,
    extracted: &Path,
    compression: repodata::Compression,
    input: &repodata::RepodataInput,
    feed: &repodata::PackageFeed,
    unpacked: mpsc::Receiver<HashSet<String>>,
    reporter: &dyn bundle::Reporter,
) -> Result<(), ApplyError> {
    let stage = stage_dir(layout, plan);
    fs_err::create_dir_all(&stage)?;
    let options = repodata_options(plan, compression);
    // Packages the live repo already describes keep their records (matched by sha256 and size
    // in the feed), so only new and changed packages have their headers read.
    for (relative, package) in repodata::previous_records(&plan.live_dir, &options) {
        feed.offer(&relative, package);
    }
    repodata::build_fed(input, &options, feed, || {
        let placed = unpacked
            .recv()
            .map_err(|_| repodata::RepodataError::Cancelled)?;
        let mut made_dirs = HashSet::new();
        for (rel, (_, _, bundle_path)) in &plan.packages {
            if placed.contains(rel) {
                continue;
            }
            let dest = stage.join(rel);
            if let Some(parent) = dest.parent()
                && !made_dirs.contains(parent)
            {
                fs_err::create_dir_all(parent)?;
                made_dirs.insert(parent.to_path_buf());
            }
            match bundle_path {
                Some(p) => fs_err::rename(extracted.join(p), &dest)?,
                None => fs_err::hard_link(plan.live_dir.join(rel), &dest)?,
            }
        }
        feed.complete(&stage, &options, reporter)
            .map_err(ApplyError::from)
    })?;
    state::store(&stage, &plan.state)?;
    // One flush for the whole staged repo (unpacked packages, repodata, state), then the switch.
    crate::fsutil::sync_filesystem(&stage)?;
    state::kill_point(&format!("repo-staged:{}", plan.id));
    crate::fsutil::replace_dir(&stage, &plan.live_dir)?;
    state::kill_point(&format!("repo-switched:{}", plan.id));
    Ok(())
}
