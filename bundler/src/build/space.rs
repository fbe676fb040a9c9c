//! Free-space preflight for `bundler build`: before the first payload download, the cache's and
//! the output's filesystems must hold what the build will put there (the downloads not cached
//! yet, the bundle), so that a 20 GB build is refused in a second ("needs 19.93 GiB on /x, 2.98 GiB
//! free") instead of failing with a full disk an hour in. Two places on one filesystem are
//! counted together.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use indicatif::HumanBytes;

/// Bytes a bundle takes beyond its payload (tar headers, manifest, zstd frame): a fixed part
/// plus a per-file part; the payload itself (packages, wheels, image layers) is compressed
/// already and does not shrink much.
const FIXED_OVERHEAD: u64 = 16 << 20;
const PER_FILE_OVERHEAD: u64 = 1536;

#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    #[error(
        "needs {needed} on {place}, {free} free ({parts}); free space there or use another {options}",
        needed = HumanBytes(*needed),
        place = place.display(),
        free = HumanBytes(*free),
    )]
    NoSpace {
        place: PathBuf,
        needed: u64,
        free: u64,
        /// What makes up `needed`, e.g. "downloads into the cache /c: 2.1 GB".
        parts: String,
        /// The options that move those writes elsewhere.
        options: String,
    },
    #[error("cannot read the free space of {path}: {cause}", path = path.display())]
    Stat {
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// One place the build writes to and how much it will write there.
#[derive(Debug, Clone)]
pub struct Need {
    /// The directory written into (it may not exist yet).
    pub dir: PathBuf,
    pub bytes: u64,
    /// What is written, for the message: "downloads into the cache".
    pub what: &'static str,
    /// The option that chooses `dir`: "--cache".
    pub option: &'static str,
}

/// An upper bound of the bundle file's size for `files` payload files of `payload` bytes.
pub fn bundle_estimate(payload: u64, files: u64) -> u64 {
    payload + FIXED_OVERHEAD + files * PER_FILE_OVERHEAD
}

/// Refuses the build when a filesystem cannot hold what `needs` will write to it.
pub fn check(needs: &[Need]) -> Result<(), SpaceError> {
    // (device, the first place's existing directory, bytes, the places)
    let mut filesystems: Vec<(u64, PathBuf, u64, Vec<&Need>)> = Vec::new();
    for need in needs.iter().filter(|n| n.bytes > 0) {
        let existing = nearest_existing(&need.dir);
        let dev = std::fs::metadata(&existing)
            .map_err(|cause| SpaceError::Stat {
                path: existing.clone(),
                cause,
            })?
            .dev();
        match filesystems.iter_mut().find(|(d, ..)| *d == dev) {
            Some((_, _, bytes, places)) => {
                *bytes += need.bytes;
                places.push(need);
            }
            None => filesystems.push((dev, existing, need.bytes, vec![need])),
        }
    }
    for (_, existing, needed, places) in filesystems {
        let stat = rustix::fs::statvfs(&existing).map_err(|e| SpaceError::Stat {
            path: existing.clone(),
            cause: e.into(),
        })?;
        let free = stat.f_bavail.saturating_mul(stat.f_frsize);
        if free < needed {
            let parts = places
                .iter()
                .map(|n| format!("{} {}: {}", n.what, n.dir.display(), HumanBytes(n.bytes)))
                .collect::<Vec<_>>()
                .join(", ");
            let mut options: Vec<&str> = places.iter().map(|n| n.option).collect();
            options.dedup();
            return Err(SpaceError::NoSpace {
                place: places[0].dir.clone(),
                needed,
                free,
                parts,
                options: options.join(" or "),
            });
        }
    }
    Ok(())
}

/// `dir` or its nearest existing ancestor (on the filesystem `dir` will be created on).
fn nearest_existing(dir: &Path) -> PathBuf {
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    absolute
        .ancestors()
        .find(|d| d.exists())
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_need_larger_than_any_disk_is_refused_naming_place_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        let needs = [
            Need {
                dir: cache.clone(),
                bytes: u64::MAX / 4,
                what: "downloads into the cache",
                option: "--cache",
            },
            Need {
                dir: dir.path().to_path_buf(),
                bytes: 1,
                what: "the bundle in",
                option: "-o",
            },
        ];
        let err = check(&needs).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "needs {} on {}, ",
                HumanBytes(u64::MAX / 4 + 1),
                cache.display()
            )),
            "{err}"
        );
        assert!(err.contains(" free (downloads into the cache "), "{err}");
        assert!(err.contains("use another --cache or -o"), "{err}");
        check(&[Need {
            bytes: 1,
            ..needs[0].clone()
        }])
        .unwrap();
    }
}
