//! Reusing the package records of the repodata a repo already has, as `createrepo_c --update`
//! does: an update that changes 5% of a repo's packages should not read the headers of the
//! other 95% again from a cold disk.
//!
//! A record is only worth reusing if writing it again gives exactly the bytes a header parse
//! would. We cannot compare record by record without the headers, so the whole previous
//! primary, filelists and other are checked at once: written again from what was read, each
//! must hash to the open-checksum its repomd.xml states. Any difference (a record the reader
//! does not carry faithfully, a file from another tool, damage) and nothing is reused; every
//! package is then read from its RPM as before. Callers match the records they take by sha256
//! and size (see `packages::parse_all`), so a changed package is never described by its old
//! record.

use std::collections::HashMap;
use std::io;
use std::path::Path;

use rpmrepo_metadata::{Checksum, Package, PackageIterator, RepomdRecord, RepositoryReader};

use super::Options;
use super::write::{HashingWriter, write_filelists_xml, write_other_xml, write_primary_xml};

/// The package records of `repo_dir/repodata` keyed by location href, with `time file` set to
/// `options.package_time`; empty when there is nothing trustworthy to reuse (no repodata, a
/// record that does not parse or does not write back to the same bytes, or no fixed package
/// time, since a record's `time file` would then have to come from the new file's mtime).
pub fn previous_records(repo_dir: &Path, options: &Options) -> HashMap<String, Package> {
    let Some(time_file) = options.package_time else {
        return HashMap::new();
    };
    let Some(packages) = read_verified(repo_dir) else {
        return HashMap::new();
    };
    packages
        .into_iter()
        .map(|mut package| {
            package.set_time_file(time_file);
            (package.location_href().to_owned(), package)
        })
        .collect()
}

/// Every package of the repodata, in file order, if all three files round-trip.
fn read_verified(repo_dir: &Path) -> Option<Vec<Package>> {
    if !repo_dir.join("repodata/repomd.xml").is_file() {
        return None;
    }
    let reader = RepositoryReader::new_from_directory(repo_dir).ok()?;
    let repomd = reader.repomd();
    let primary = repomd.get_record("primary")?;
    let filelists = repomd.get_record("filelists")?;
    let other = repomd.get_record("other")?;
    let packages = PackageIterator::from_files(
        &repo_dir.join(&primary.location_href),
        &repo_dir.join(&filelists.location_href),
        &repo_dir.join(&other.location_href),
    )
    .ok()?
    .collect::<Result<Vec<Package>, _>>()
    .ok()?;
    let faithful = writes_back(primary, &packages, write_primary_xml)
        && writes_back(filelists, &packages, write_filelists_xml)
        && writes_back(other, &packages, write_other_xml);
    faithful.then_some(packages)
}

type XmlWriterFn = fn(&mut (dyn io::Write + Send), &[Package]) -> Result<(), super::RepodataError>;

/// True when `write` gives, for `packages`, content whose sha256 and size are the record's
/// open-checksum and open-size.
fn writes_back(record: &RepomdRecord, packages: &[Package], write: XmlWriterFn) -> bool {
    let (Some(Checksum::Sha256(expected)), Some(expected_size)) =
        (&record.open_checksum, record.open_size)
    else {
        return false;
    };
    let mut sink = HashingWriter::new(io::sink());
    if write(&mut sink, packages).is_err() {
        return false;
    }
    let (_, checksum, size) = sink.finish();
    checksum == *expected && size == expected_size
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::super::*;
    use super::previous_records;
    use crate::repodata::tests::{input, read_dir_sorted, with_digests};

    /// Every fixture RPM (many kinds: latin1 text, rich deps, file types, src, v4/v6) at its
    /// path below `tests/fixtures/rpms`, copied into `dir/repo`.
    fn fixture_repo(dir: &Path) -> PathBuf {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/rpms");
        let repo = dir.join("repo");
        copy_rpms(&fixtures, &repo);
        repo
    }

    fn copy_rpms(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name();
            if entry.file_type().unwrap().is_dir() {
                copy_rpms(&entry.path(), &to.join(&name));
            } else if name.to_string_lossy().ends_with(".rpm") {
                std::fs::copy(entry.path(), to.join(&name)).unwrap();
            }
        }
    }

    fn known_set(repo: &Path) -> PackageSet {
        with_digests(repo, PackageSet::scan(repo, "x86_64").unwrap())
    }

    fn options(revision: u64) -> Options {
        Options {
            revision,
            package_time: Some(revision),
            ..Options::default()
        }
    }

    #[test]
    fn reused_records_give_the_repodata_a_header_parse_gives_public_fixture() {
        let old = tempfile::tempdir().unwrap();
        let fresh = tempfile::tempdir().unwrap();
        let repo = fixture_repo(old.path());
        let fresh_repo = fixture_repo(fresh.path());
        let set = known_set(&repo);
        build(
            &input(&repo, vec![set.clone()]),
            &options(1_600_000_000),
            &bundle::NoProgress,
        )
        .unwrap();
        build(
            &input(&fresh_repo, vec![set.clone()]),
            &options(1_700_000_000),
            &bundle::NoProgress,
        )
        .unwrap();

        let reused = previous_records(&repo, &options(1_700_000_000));
        assert_eq!(reused.len(), set.files.len(), "every record round-trips");
        // The RPMs are now unreadable: only the reused records can describe them.
        for file in &set.files {
            let path = repo.join(&file.relative_path);
            let size = std::fs::metadata(&path).unwrap().len();
            std::fs::write(&path, vec![0u8; size as usize]).unwrap();
        }
        build_with_parsed(
            &input(&repo, vec![set]),
            &options(1_700_000_000),
            reused,
            &bundle::NoProgress,
        )
        .unwrap();
        assert_eq!(
            read_dir_sorted(&repo.join("repodata")),
            read_dir_sorted(&fresh_repo.join("repodata"))
        );
    }

    #[test]
    fn repodata_that_does_not_write_back_is_not_reused_public_fixture() {
        let dir = tempfile::tempdir().unwrap();
        let repo = fixture_repo(dir.path());
        build(
            &input(&repo, vec![known_set(&repo)]),
            &options(1_600_000_000),
            &bundle::NoProgress,
        )
        .unwrap();
        assert!(!previous_records(&repo, &options(1_700_000_000)).is_empty());
        assert!(
            previous_records(&repo, &Options::default()).is_empty(),
            "no fixed time"
        );

        // A primary.xml whose stated open-checksum its records do not reproduce.
        let repomd_path = repo.join("repodata/repomd.xml");
        let repomd = std::fs::read_to_string(&repomd_path).unwrap();
        let start = repomd.find("<open-checksum type=\"sha256\">").unwrap() + 29;
        let mut tampered = repomd.clone();
        tampered.replace_range(start..start + 64, &"0".repeat(64));
        std::fs::write(&repomd_path, tampered).unwrap();
        assert!(previous_records(&repo, &options(1_700_000_000)).is_empty());

        std::fs::remove_dir_all(repo.join("repodata")).unwrap();
        assert!(previous_records(&repo, &options(1_700_000_000)).is_empty());
    }
}
