//! Putting new repodata in place without ever serving a half-written repository, and knowing
//! when an existing repodata/ is already the one these inputs would produce.
//!
//! A digest of all inputs (package paths with their sha256 and size, upstream files, options)
//! is stored in `repodata/.input-digest`. It is removed before repomd.xml is switched and
//! written after, so a stale digest can never vouch for a different repomd.xml.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use sha2::{Digest, Sha256};

use super::packages::MergedPackage;
use super::write::Record;
use super::{Durability, Options, RepodataError, RepodataInput};

const DIGEST_FILE: &str = ".input-digest";
const STAGING_DIR: &str = ".repodata.staging";

/// Digest of everything the output depends on. Packages without a known sha256 are identified
/// by size and mtime (hashing them here would cost what we are trying to save).
pub(crate) fn input_digest(
    input: &RepodataInput,
    packages: &[MergedPackage],
    options: &Options,
) -> Result<String, RepodataError> {
    let mut hasher = Sha256::new();
    let mut line = |text: String| {
        hasher.update(text.as_bytes());
        hasher.update(b"\n");
    };
    line(format!(
        "installer-repodata {} format 1",
        env!("CARGO_PKG_VERSION")
    ));
    line(format!(
        "compression={:?} revision={} changelog_limit={} package_time={:?}",
        options.compression, options.revision, options.changelog_limit, options.package_time
    ));
    for package in packages {
        match &package.known {
            Some(known) => line(format!(
                "package {} sha256={} size={}",
                package.relative_path, known.sha256, known.size
            )),
            None => {
                let stat = fs_err::metadata(input.repo_dir.join(&package.relative_path))?;
                let mtime = stat
                    .modified()?
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                line(format!(
                    "package {} size={} mtime_ns={mtime}",
                    package.relative_path,
                    stat.len()
                ));
            }
        }
        if options.package_time.is_none() && package.known.is_some() {
            // `time file` comes from the mtime, so it is an input too.
            let stat = fs_err::metadata(input.repo_dir.join(&package.relative_path))?;
            let mtime = stat
                .modified()?
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            line(format!("mtime {mtime}"));
        }
    }
    for (i, set) in input.upstream.iter().enumerate() {
        for (kind, path) in [
            ("comps", &set.comps),
            ("updateinfo", &set.updateinfo),
            ("modules", &set.modules),
        ] {
            let value = match path {
                Some(path) => hex::encode(Sha256::digest(fs_err::read(path)?)),
                None => "none".to_owned(),
            };
            line(format!("upstream {i} {kind} {value}"));
        }
    }
    Ok(hex::encode(hasher.finalize()))
}

/// The stored digest equals `digest` and every file repomd.xml names is present.
pub(crate) fn stored_digest_matches(repo_dir: &Path, digest: &str) -> Result<bool, RepodataError> {
    let repodata = repo_dir.join("repodata");
    let stored = match fs_err::read_to_string(repodata.join(DIGEST_FILE)) {
        Ok(stored) => stored,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e.into()),
    };
    if stored.trim() != digest {
        return Ok(false);
    }
    let repomd = match std::fs::read_to_string(repodata.join("repomd.xml")) {
        Ok(repomd) => repomd,
        Err(_) => return Ok(false),
    };
    Ok(repomd_hrefs(&repomd)
        .iter()
        .all(|href| repo_dir.join(href).is_file()))
}

/// The `location href` values of a repomd.xml we wrote.
pub(crate) fn repomd_hrefs(repomd: &str) -> Vec<String> {
    repomd
        .split("<location href=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

/// An empty staging directory inside the repo (same filesystem, so renames are atomic).
pub(crate) fn fresh_staging_dir(repo_dir: &Path) -> Result<PathBuf, RepodataError> {
    let staging = repo_dir.join(STAGING_DIR);
    if staging.exists() {
        fs_err::remove_dir_all(&staging)?;
    }
    fs_err::create_dir_all(&staging)?;
    Ok(staging)
}

fn write_digest(path: &Path, digest: &str, durability: Durability) -> Result<(), RepodataError> {
    let temp = path.with_extension("tmp");
    let file = fs_err::File::create(&temp)?;
    (&file).write_all(format!("{digest}\n").as_bytes())?;
    durability.sync(file.file())?;
    fs_err::rename(&temp, path)?;
    Ok(())
}

/// Move the staged records and repomd.xml into `repo_dir/repodata`, repomd.xml last, then
/// drop what the new repomd.xml no longer names and record the input digest.
pub(crate) fn install(
    repo_dir: &Path,
    staging: &Path,
    records: &[Record],
    digest: &str,
    durability: Durability,
) -> Result<(), RepodataError> {
    let repodata = repo_dir.join("repodata");
    durability.sync_dir(staging)?;
    if !repodata.exists() {
        write_digest(&staging.join(DIGEST_FILE), digest, durability)?;
        durability.sync_dir(staging)?;
        fs_err::rename(staging, &repodata)?;
        durability.sync_dir(repo_dir)?;
        return Ok(());
    }

    let digest_path = repodata.join(DIGEST_FILE);
    if digest_path.exists() {
        fs_err::remove_file(&digest_path)?;
    }
    for record in records {
        fs_err::rename(
            staging.join(&record.file_name),
            repodata.join(&record.file_name),
        )?;
    }
    durability.sync_dir(&repodata)?;
    fs_err::rename(staging.join("repomd.xml"), repodata.join("repomd.xml"))?;
    durability.sync_dir(&repodata)?;

    let keep: HashSet<&str> = records
        .iter()
        .map(|r| r.file_name.as_str())
        .chain(["repomd.xml"])
        .collect();
    for entry in fs_err::read_dir(&repodata)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep.contains(name.as_str()) && entry.file_type()?.is_file() {
            fs_err::remove_file(entry.path())?;
        }
    }
    write_digest(&digest_path, digest, durability)?;
    durability.sync_dir(&repodata)?;
    fs_err::remove_dir_all(staging)?;
    Ok(())
}
