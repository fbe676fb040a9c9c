//! Which packages a repo holds (merging the per-arch package sets) and their parsed headers.
//!
//! Header parsing is the per-package cost of repodata, so it runs on rayon over all packages and
//! reads only the lead, signature and main header of each RPM. The sha256 comes from the bundle
//! manifest when known; only packages without a known digest are hashed.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use rayon::prelude::*;
use rpmrepo_metadata::{Checksum, ChecksumType, Package, PackageOptions, PackageSource};
use sha2::{Digest, Sha256};

use super::{Options, RepodataError, text};

/// sha256 and size of a package as the bundle verified them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KnownDigest {
    /// Lower-case hex.
    pub sha256: String,
    pub size: u64,
}

/// One package file, at a `/`-separated path relative to the repo directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageFile {
    pub relative_path: String,
    /// `None`: the file is hashed while indexing.
    pub known: Option<KnownDigest>,
}

/// The packages one source (typically one arch of an upstream repo) puts into a repo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageSet {
    /// Names the set in errors, e.g. `x86_64`.
    pub label: String,
    pub files: Vec<PackageFile>,
}

impl PackageSet {
    /// Every `*.rpm` below `repo_dir` (skipping `repodata/` and hidden directories), with no
    /// known digests.
    pub fn scan(repo_dir: &Path, label: &str) -> Result<PackageSet, RepodataError> {
        let mut files = Vec::new();
        scan_dir(repo_dir, "", &mut files)?;
        files.sort();
        Ok(PackageSet {
            label: label.to_owned(),
            files: files
                .into_iter()
                .map(|relative_path| PackageFile {
                    relative_path,
                    known: None,
                })
                .collect(),
        })
    }
}

fn scan_dir(dir: &Path, prefix: &str, out: &mut Vec<String>) -> Result<(), RepodataError> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || (prefix.is_empty() && name == "repodata") {
            continue;
        }
        let relative = format!("{prefix}{name}");
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            scan_dir(&entry.path(), &format!("{relative}/"), out)?;
        } else if file_type.is_file() && name.ends_with(".rpm") {
            out.push(relative);
        }
    }
    Ok(())
}

/// A package after merging the sets: unique path, the set that first named it.
#[derive(Clone, Debug)]
pub(crate) struct MergedPackage {
    pub relative_path: String,
    pub known: Option<KnownDigest>,
}

/// Merge sets by path: identical entries once, different sha256 at one path is an error.
pub(crate) fn merge_sets(sets: &[PackageSet]) -> Result<Vec<MergedPackage>, RepodataError> {
    let mut by_path: BTreeMap<&str, (&str, &PackageFile)> = BTreeMap::new();
    for set in sets {
        for file in &set.files {
            check_relative_path(&file.relative_path)?;
            match by_path.get(file.relative_path.as_str()) {
                None => {
                    by_path.insert(&file.relative_path, (&set.label, file));
                }
                Some((first_label, first)) => {
                    if let (Some(a), Some(b)) = (&first.known, &file.known)
                        && a != b
                    {
                        return Err(RepodataError::ConflictingPackage {
                            relative_path: file.relative_path.clone(),
                            first_set: (*first_label).to_owned(),
                            first_sha256: a.sha256.clone(),
                            second_set: set.label.clone(),
                            second_sha256: b.sha256.clone(),
                        });
                    }
                    // Same path, one side without a digest: it is the same file on disk.
                    if first.known.is_none() && file.known.is_some() {
                        by_path.insert(&file.relative_path, (&set.label, file));
                    }
                }
            }
        }
    }
    Ok(by_path
        .into_values()
        .map(|(_, file)| MergedPackage {
            relative_path: file.relative_path.clone(),
            known: file.known.clone(),
        })
        .collect())
}

fn check_relative_path(relative_path: &str) -> Result<(), RepodataError> {
    let bad = relative_path.is_empty()
        || relative_path.starts_with('/')
        || relative_path.contains('\\')
        || relative_path
            .split('/')
            .any(|part| part.is_empty() || part == "." || part == "..");
    if bad {
        return Err(RepodataError::BadPackagePath {
            relative_path: relative_path.to_owned(),
        });
    }
    Ok(())
}

/// Parse every package (in parallel) and return them in createrepo_c's order: by file name,
/// then by path. A package found in `parsed` (by relative path) with the same sha256 and size
/// is taken from there instead of being read again.
pub(crate) fn parse_all(
    repo_dir: &Path,
    packages: &[MergedPackage],
    mut parsed: HashMap<String, Package>,
    options: &Options,
    reporter: &dyn bundle::Reporter,
) -> Result<Vec<Package>, RepodataError> {
    let mut ready = Vec::with_capacity(parsed.len());
    let mut to_parse = Vec::with_capacity(packages.len());
    for package in packages {
        match parsed.remove(&package.relative_path) {
            Some(done) if matches_known(&done, package.known.as_ref()) => {
                reporter.advanced(1, 0);
                ready.push((package.relative_path.as_str(), done));
            }
            _ => to_parse.push(package),
        }
    }
    let mut parsed: Vec<(&str, Package)> = to_parse
        .into_par_iter()
        .map(|package| {
            let path = repo_dir.join(&package.relative_path);
            let result = parse_package(
                &path,
                &package.relative_path,
                package.known.as_ref(),
                options,
            );
            reporter.advanced(1, 0);
            result.map(|parsed| (package.relative_path.as_str(), parsed))
        })
        .collect::<Result<_, _>>()?;
    parsed.extend(ready);
    parsed.par_sort_by(|(a, _), (b, _)| output_order(a, b));
    Ok(parsed.into_iter().map(|(_, package)| package).collect())
}

/// createrepo_c's order of packages in primary, filelists and other: by file name, then by
/// relative path.
pub(crate) fn output_order(a: &str, b: &str) -> std::cmp::Ordering {
    file_name(a).cmp(file_name(b)).then(a.cmp(b))
}

pub(crate) fn file_name(relative_path: &str) -> &str {
    relative_path.rsplit('/').next().unwrap_or(relative_path)
}

/// True when a package parsed earlier carries exactly the digest the repo now expects.
pub(crate) fn matches_known(parsed: &Package, known: Option<&KnownDigest>) -> bool {
    let Some(known) = known else {
        return false;
    };
    parsed.size_package() == known.size
        && matches!(parsed.checksum(), Checksum::Sha256(sha) if *sha == known.sha256)
}

/// Parse the RPM at `path` into the record it gets at `relative_path` of a repo (the record
/// does not depend on where the file sits now, so a caller may parse it before moving it into
/// the repo). With `known`, the size is checked and the sha256 taken from it, not computed.
pub fn parse_package(
    path: &Path,
    relative_path: &str,
    known: Option<&KnownDigest>,
    options: &Options,
) -> Result<Package, RepodataError> {
    parse_package_with_head(path, &[], relative_path, known, options)
}

/// [`parse_package`] for a file whose first bytes are still in memory (`head`, a prefix of the
/// file, possibly all of it): the header is read from there and only what lies past `head`
/// from disk.
pub fn parse_package_with_head(
    path: &Path,
    head: &[u8],
    relative_path: &str,
    known: Option<&KnownDigest>,
    options: &Options,
) -> Result<Package, RepodataError> {
    // All of a verified file in memory, and no mtime wanted: nothing to read from the disk.
    if let (Some(known), Some(time_file)) = (known, options.package_time)
        && head.len() as u64 == known.size
    {
        let source = PackageSource {
            checksum: Some(Checksum::Sha256(known.sha256.clone())),
            size_package: Some(known.size),
            time_file,
            location_href: relative_path.to_owned(),
            location_base: None,
        };
        return package_from_header(path, &mut &head[..], source, options);
    }
    let path: PathBuf = path.to_path_buf();
    let mut file = fs_err::File::open(&path)?;
    let stat = file.metadata()?;
    let (sha256, size) = match known {
        Some(known) => {
            if known.size != stat.len() {
                return Err(RepodataError::SizeMismatch {
                    path,
                    expected: known.size,
                    actual: stat.len(),
                });
            }
            (known.sha256.clone(), known.size)
        }
        None => hash_file(&path)?,
    };
    let time_file = match options.package_time {
        Some(time) => time,
        None => stat
            .modified()?
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let head = &head[..head
        .len()
        .min(usize::try_from(stat.len()).unwrap_or(usize::MAX))];
    file.seek(SeekFrom::Start(head.len() as u64))?;
    let mut reader = head.chain(BufReader::with_capacity(64 * 1024, file));
    let source = PackageSource {
        checksum: Some(Checksum::Sha256(sha256)),
        size_package: Some(size),
        time_file,
        location_href: relative_path.to_owned(),
        location_base: None,
    };
    package_from_header(&path, &mut reader, source, options)
}

/// The record of the RPM whose bytes `reader` yields from the start (`path` names it in errors).
fn package_from_header(
    path: &Path,
    reader: &mut impl BufRead,
    source: PackageSource,
    options: &Options,
) -> Result<Package, RepodataError> {
    let path = path.to_path_buf();
    let header =
        rpm::PackageMetadata::parse(reader).map_err(|source| RepodataError::RpmHeader {
            path: path.clone(),
            source,
        })?;
    let package_options = PackageOptions {
        checksum_type: ChecksumType::Sha256,
        changelog_limit: options.changelog_limit,
    };
    let mut parsed =
        Package::from_package_metadata(&header, source, package_options).map_err(|e| {
            RepodataError::Metadata {
                path,
                message: e.to_string(),
            }
        })?;
    text::restore_latin1(&mut parsed, &header);
    text::bump_equal_changelog_times(&mut parsed);
    Ok(parsed)
}

/// sha256 (hex) and size of a file, streamed.
pub(crate) fn hash_file(path: &Path) -> Result<(String, u64), RepodataError> {
    let mut file = fs_err::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}
