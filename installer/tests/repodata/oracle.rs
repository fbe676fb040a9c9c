//! Oracle tests: run createrepo_c and our builder on the same RPMs and compare every package
//! of primary, filelists and other as XML trees.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use installer::repodata::{
    self, Compression, KnownDigest, Options, PackageFile, PackageSet, RepodataInput,
};
use sha2::{Digest, Sha256};

use super::xmltree::{self, Node};

pub fn fixtures() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    assert!(
        dir.join("rpms").is_dir(),
        "public fixtures missing at {} (tests/fixtures/README.md)",
        dir.display()
    );
    dir
}

pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// The package set of `repo` with digests computed here, as the bundle manifest would give them.
pub fn known_set(repo: &Path, label: &str) -> PackageSet {
    let scanned = PackageSet::scan(repo, label).unwrap();
    PackageSet {
        label: label.to_owned(),
        files: scanned
            .files
            .into_iter()
            .map(|f| {
                let bytes = std::fs::read(repo.join(&f.relative_path)).unwrap();
                PackageFile {
                    known: Some(KnownDigest {
                        sha256: hex::encode(Sha256::digest(&bytes)),
                        size: bytes.len() as u64,
                    }),
                    relative_path: f.relative_path,
                }
            })
            .collect(),
    }
}

/// createrepo_c's metadata for `repo`, written to `out/repodata`.
pub fn createrepo_c(repo: &Path, out: &Path) {
    std::fs::create_dir_all(out).unwrap();
    let status = Command::new("createrepo_c")
        .args(["--no-database", "--workers", "2", "--quiet", "-o"])
        .arg(out)
        .arg(repo)
        .status()
        .expect("createrepo_c is installed (Debian package createrepo-c)");
    assert!(
        status.success(),
        "createrepo_c failed on {}",
        repo.display()
    );
}

/// Compare our metadata (in `ours/repodata`) with createrepo_c's (in `theirs/repodata`).
/// Returns the number of packages compared.
pub fn assert_same_as_createrepo_c(ours: &Path, theirs: &Path) -> usize {
    let repo = ours;
    let mut problems = Vec::new();
    let mut count = 0;
    for kind in ["primary", "filelists", "other"] {
        let (our_declared, our_packages) = xmltree::packages(ours, kind);
        let (their_declared, their_packages) = xmltree::packages(theirs, kind);
        assert_eq!(our_declared, their_declared, "{kind}: packages= attribute");
        assert_eq!(
            our_declared,
            our_packages.len(),
            "{kind}: declared vs listed"
        );
        let our_keys: Vec<_> = our_packages.keys().collect();
        let their_keys: Vec<_> = their_packages.keys().collect();
        assert_eq!(our_keys, their_keys, "{kind}: the same packages");
        for (key, ours) in &our_packages {
            let theirs = &their_packages[key];
            let (ours, theirs) = normalize(repo, kind, ours.clone(), theirs.clone());
            if ours != theirs {
                problems.push(diff(kind, key, &ours, &theirs));
            }
        }
        count = our_packages.len();
    }
    assert!(
        problems.is_empty(),
        "{} package(s) differ from createrepo_c:\n{}",
        problems.len(),
        problems.join("\n")
    );
    count
}

/// Differences we accept on purpose. Each one says why; everything else must be equal.
fn normalize(repo: &Path, kind: &str, mut ours: Node, mut theirs: Node) -> (Node, Node) {
    if kind != "primary" {
        return (ours, theirs);
    }
    let href = ours.child("location").unwrap().attrs["href"].clone();
    let header = rpm::PackageMetadata::open(repo.join(&href)).unwrap();

    // 1. rpm v6 packages keep the payload size in RPMTAG_PAYLOADSIZEALT (5113), which
    //    createrepo_c 0.17 predates (it writes archive="0"). We report the real size: check it
    //    against the header here and then accept it.
    let their_size = theirs.child_mut("size").unwrap();
    if their_size.attrs["archive"] == "0"
        && let Ok(alt) = header
            .header
            .get_entry_data_as_u64(rpm::IndexTag::RPMTAG_PAYLOADSIZEALT)
    {
        their_size.attrs.insert("archive".into(), alt.to_string());
    }

    // 2. pre="1": like createrepo_c 1.x (and rpmrepo_metadata), we also mark %pretrans and
    //    %posttrans requires as pre; createrepo_c 0.17 marks only PREREQ/%pre/%post. For names
    //    with such a raw require `pre` is not compared. createrepo_c 0.17 also repeats a require
    //    that differs from the previous same-name one only in `pre`; we list each once. Neither
    //    changes what dnf resolves, so requires compare as sets.
    let transaction = rpm::DependencyFlags::PRETRANS | rpm::DependencyFlags::POSTTRANS;
    let loose: Vec<String> = header
        .get_requires()
        .unwrap()
        .into_iter()
        .filter(|d| d.flags.intersects(transaction))
        .map(|d| d.name)
        .collect();
    for side in [&mut ours, &mut theirs] {
        let Some(format) = side.child_mut("format") else {
            continue;
        };
        let Some(requires) = format.child_mut("rpm:requires") else {
            continue;
        };
        for entry in &mut requires.children {
            if loose.contains(&entry.attrs["name"]) {
                entry.attrs.remove("pre");
            }
        }
        requires.children.sort_by_key(|e| format!("{e:?}"));
        requires.children.dedup();
    }
    (ours, theirs)
}

fn diff(kind: &str, key: &str, ours: &Node, theirs: &Node) -> String {
    let ours = format!("{ours:#?}");
    let theirs = format!("{theirs:#?}");
    let text = similar::TextDiff::from_lines(&theirs, &ours);
    let mut out = format!("--- createrepo_c {kind} {key}\n+++ ours\n");
    for change in text.iter_all_changes() {
        if change.tag() != similar::ChangeTag::Equal {
            out.push_str(&format!("{}{}", change.tag(), change));
        }
    }
    out
}

fn build(repo: &Path, sets: Vec<PackageSet>, compression: Compression) {
    let input = RepodataInput {
        repo_dir: repo.to_owned(),
        package_sets: sets,
        upstream: Vec::new(),
    };
    let options = Options {
        compression,
        revision: 1_700_000_000,
        ..Options::default()
    };
    let outcome = repodata::build(&input, &options, &bundle::NoProgress).unwrap();
    assert!(outcome.rewritten);
}

#[test]
fn fixture_rpms_match_createrepo_c_public_fixture() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    copy_tree(&fixtures().join("rpms"), &repo);
    let set = known_set(&repo, "fixtures");
    let expected = set.files.len();
    assert!(expected >= 30, "fixture tree has {expected} RPMs");
    build(&repo, vec![set], Compression::Gzip);
    createrepo_c(&repo, &temp.path().join("createrepo_c"));
    let compared = assert_same_as_createrepo_c(&repo, &temp.path().join("createrepo_c"));
    assert_eq!(compared, expected);
}

#[test]
fn zstd_metadata_matches_createrepo_c_public_fixture() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    copy_tree(&fixtures().join("rpms/el9-bzip2"), &repo);
    build(
        &repo,
        vec![PackageSet::scan(&repo, "el9").unwrap()],
        Compression::Zstd,
    );
    let locations: BTreeMap<String, String> = xmltree::repomd_locations(&repo);
    assert!(
        locations["primary"].ends_with("-primary.xml.zst"),
        "{locations:?}"
    );
    createrepo_c(&repo, &temp.path().join("createrepo_c"));
    assert_eq!(
        assert_same_as_createrepo_c(&repo, &temp.path().join("createrepo_c")),
        7
    );
}
