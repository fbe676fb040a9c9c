//! Packing a directory tree as it is: walk it, hash every file in parallel, list the files in
//! path order with a kind guessed from the name, and write the bundle. A test helper, not part
//! of the format: the bundle crate's tests use it, and the e2e crate includes this file (its
//! tests, `pack-tree` for the benchmarks) so there is one copy. `bundler build` fills its
//! manifest from what it fetched instead.

use std::path::{Path, PathBuf};

use bundle::write::{WriteOptions, WrittenBundle, finalize, hash_file, write_bundle};
use bundle::{BundleError, BundleManifest, FileEntry, FileKind, Reporter};
use rayon::prelude::*;

/// The kind a bundle path most likely has, from its name alone.
pub fn file_kind(path: &str) -> FileKind {
    let name = path.rsplit('/').next().unwrap_or(path);
    if name.ends_with(".rpm") {
        FileKind::Rpm
    } else if path.split('/').any(|c| c == "repodata") {
        FileKind::Repodata
    } else if name.ends_with(".whl") {
        FileKind::Wheel
    } else if name.ends_with(".metadata") {
        FileKind::Metadata
    } else if name.ends_with(".tar.gz") || name.ends_with(".zip") || name.ends_with(".tar.bz2") {
        FileKind::Sdist
    } else if name.contains("GPG-KEY") || name.ends_with(".asc") || name.ends_with(".gpg") {
        FileKind::Key
    } else {
        FileKind::Other
    }
}

/// Bundles every regular file under `dir` (relative paths, sorted bytewise) with `base` as the
/// rest of the manifest. Symlinks and special files under `dir` are an error.
pub fn pack_tree(
    dir: &Path,
    output: &Path,
    base: BundleManifest,
    opts: &WriteOptions,
    reporter: &dyn Reporter,
) -> Result<WrittenBundle, BundleError> {
    let manifest = manifest_of_tree(dir, base, reporter)?;
    let sources: Vec<PathBuf> = manifest.files.iter().map(|f| dir.join(&f.path)).collect();
    write_bundle(output, &manifest, &sources, opts, reporter)
}

/// `base` with every regular file under `dir` as its files, hashed in parallel, finalized.
pub fn manifest_of_tree(
    dir: &Path,
    mut base: BundleManifest,
    reporter: &dyn Reporter,
) -> Result<BundleManifest, BundleError> {
    let mut rel_paths = Vec::new();
    walk(dir, String::new(), &mut rel_paths)?;
    rel_paths.sort();
    reporter.started("hash", rel_paths.len() as u64, 0);
    let files = rel_paths
        .par_iter()
        .map(|rel| {
            let (size, sha256) = hash_file(&dir.join(rel))?;
            reporter.advanced(1, size);
            Ok(FileEntry {
                path: rel.clone(),
                size,
                sha256,
                kind: file_kind(rel),
                origin: None,
                in_base: false,
            })
        })
        .collect::<Result<Vec<_>, BundleError>>()?;
    reporter.finished();
    base.files = files;
    finalize(&mut base);
    Ok(base)
}

fn walk(dir: &Path, prefix: String, out: &mut Vec<String>) -> Result<(), BundleError> {
    for entry in fs_err::read_dir(dir).map_err(BundleError::Fs)? {
        let entry = entry.map_err(BundleError::Fs)?;
        let name = entry
            .file_name()
            .into_string()
            .map_err(|name| BundleError::InvalidInput {
                reason: format!("{}: file name {name:?} is not UTF-8", dir.display()),
            })?;
        let rel = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let kind = entry.file_type().map_err(BundleError::Fs)?;
        if kind.is_dir() {
            walk(&entry.path(), rel, out)?;
        } else if kind.is_file() {
            bundle::paths::check_entry_path(&rel).map_err(|why| BundleError::InvalidInput {
                reason: format!("{}: {why}", entry.path().display()),
            })?;
            out.push(rel);
        } else {
            return Err(BundleError::InvalidInput {
                reason: format!(
                    "{}: not a regular file or directory; bundles hold regular files only",
                    entry.path().display()
                ),
            });
        }
    }
    Ok(())
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_names() {
        assert_eq!(
            file_kind("repos/baseos/x86_64/Packages/b/bash.rpm"),
            FileKind::Rpm
        );
        assert_eq!(
            file_kind("repos/baseos/x86_64/repodata/repomd.xml"),
            FileKind::Repodata
        );
        assert_eq!(
            file_kind("pypi/files/six-1.16.0-py2.py3-none-any.whl"),
            FileKind::Wheel
        );
        assert_eq!(
            file_kind("pypi/files/six-1.16.0-py2.py3-none-any.whl.metadata"),
            FileKind::Metadata
        );
        assert_eq!(file_kind("pypi/files/pyyaml-6.0.tar.gz"), FileKind::Sdist);
        assert_eq!(file_kind("keys/RPM-GPG-KEY-Rocky-10"), FileKind::Key);
        assert_eq!(file_kind("notes.txt"), FileKind::Other);
    }
}
