//! A month of updates to a generated mirror, for the differential-bundle test and
//! `scripts/bench-delta`: a share of the filler packages gets a new version, two others go and
//! two new packages arrive, then every repo's metadata is rewritten and signed again as the
//! next sync of a real mirror would find it.

use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::mirror::{GeneratedMirror, GeneratedRepo, MirrorSpec, REPO_DIRS, refresh_repo};
use crate::rpmgen::{Dep, PackageSpec, write_package_signed};

/// What [`update_mirror`] changed.
#[derive(Debug, Clone)]
pub struct MirrorUpdate {
    /// Name and new file name of each package that got a new version.
    pub updated: Vec<(String, String)>,
    pub removed: usize,
    pub added: usize,
}

/// Gives `percent` % of all packages (at least two, taken from fillers still at 1.0, spread
/// over the repos) version `version`, removes two more fillers and adds two new packages named
/// after `round`, signing each with `spec`'s package keys; then refreshes every repo.
pub fn update_mirror(
    spec: &MirrorSpec,
    mirror: &mut GeneratedMirror,
    percent: usize,
    version: &str,
    round: u64,
) -> Result<MirrorUpdate> {
    let keys: Vec<&str> = spec.keys.packages.iter().map(String::as_str).collect();
    let total = mirror.total_packages();
    let updates = (total * percent).div_ceil(100).max(2);
    // Every n-th untouched filler, so that every repo gets its share of the updates.
    let fillers: Vec<(usize, String)> = mirror
        .repos
        .iter()
        .enumerate()
        .flat_map(|(r, repo)| repo.packages.iter().map(move |p| (r, p.clone())))
        .filter(|(_, p)| p.contains("-gen") && p.contains("-1.0-"))
        .collect();
    if fillers.len() < updates + 2 {
        bail!(
            "{} untouched filler packages, {} needed",
            fillers.len(),
            updates + 2
        );
    }
    let step = fillers.len() / (updates + 2);
    let mut result = MirrorUpdate {
        updated: Vec::new(),
        removed: 0,
        added: 0,
    };
    for (i, (r, rel)) in fillers.iter().step_by(step).take(updates + 2).enumerate() {
        let repo = &mut mirror.repos[*r];
        let old_size = fs_err::metadata(repo.path.join(rel))?.len();
        fs_err::remove_file(repo.path.join(rel))?;
        repo.packages.retain(|p| p != rel);
        if i >= updates {
            result.removed += 1;
            continue;
        }
        let package = new_version(rel, version, old_size, round * 1_000_003 + i as u64)?;
        write_package_signed(&package, &repo.path, &keys)?;
        repo.packages.push(package.relative_path());
        result
            .updated
            .push((package.name.clone(), package.file_name()));
    }
    for n in 0..2u64 {
        let repo = &mut mirror.repos[n as usize % 2];
        let name = format!("newcomer{round}x{n}");
        let mut package = PackageSpec::new(&name, "1.0", "noarch");
        package.blob_bytes = 20_000;
        package.seed = 7 + n + 10 * round;
        package
            .files
            .push((format!("/usr/share/{name}"), b"new\n".to_vec()));
        write_package_signed(&package, &repo.path, &keys)?;
        repo.packages.push(package.relative_path());
        result.added += 1;
    }
    for repo in &mirror.repos {
        refresh_repo(spec, repo)?;
    }
    Ok(result)
}

/// A filler (`Packages/a/alpha-gen00001-1.0-1.el10.x86_64.rpm`) at `version`, about as large
/// as the old one (`size`) but with a payload of its own (`seed`), as a real update is.
fn new_version(rel: &str, version: &str, size: u64, seed: u64) -> Result<PackageSpec> {
    let file = rel
        .rsplit('/')
        .next()
        .unwrap_or(rel)
        .trim_end_matches(".rpm");
    let (rest, arch) = file.rsplit_once('.').context("no arch in file name")?;
    let name = rest
        .split("-1.0-")
        .next()
        .context("no version in file name")?;
    let mut package = PackageSpec::new(name, version, arch);
    package.blob_bytes = size;
    package.seed = 1000 + seed;
    package.files.push((
        format!("/usr/bin/{name}"),
        format!("{version}\n").into_bytes(),
    ));
    if arch != "noarch" {
        package.requires.push(Dep::any("libc.so.6()(64bit)"));
    }
    Ok(package)
}

/// The mirror `generate_mirror(spec)` wrote earlier, read back from disk.
pub fn read_mirror(spec: &MirrorSpec) -> Result<GeneratedMirror> {
    let mut repos = Vec::new();
    for arch in &spec.arches {
        for dir_name in REPO_DIRS {
            let path = spec.repo_path(dir_name, arch);
            let mut packages = Vec::new();
            let mut package_bytes = 0;
            collect_rpms(&path, &path, &mut packages, &mut package_bytes)?;
            packages.sort();
            repos.push(GeneratedRepo {
                dir_name: dir_name.to_string(),
                arch: arch.clone(),
                path,
                packages,
                package_bytes,
            });
        }
    }
    Ok(GeneratedMirror {
        root: spec.root.clone(),
        repos,
        key_path: spec.root.join(&spec.keys.file),
    })
}

fn collect_rpms(repo: &Path, dir: &Path, out: &mut Vec<String>, bytes: &mut u64) -> Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            collect_rpms(repo, &path, out, bytes)?;
        } else if path.extension().is_some_and(|e| e == "rpm") {
            let rel = path.strip_prefix(repo).expect("under the repo");
            out.push(rel.to_string_lossy().into_owned());
            *bytes += entry.metadata()?.len();
        }
    }
    Ok(())
}
