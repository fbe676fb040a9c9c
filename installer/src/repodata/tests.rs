//! Unit tests of repodata generation on the public fixture RPMs: merging, upstream records,
//! reproducibility, up-to-date detection and the atomic swap.

use std::path::{Path, PathBuf};

use super::install::repomd_hrefs;
use super::upstream::{read_maybe_compressed, yaml_documents};
use super::*;

fn fixtures() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    assert!(dir.is_dir(), "public fixtures missing at {}", dir.display());
    dir
}

/// A repo with the el9 bzip2 RPMs under Packages/b/.
fn bzip2_repo(dir: &Path) -> PathBuf {
    let repo = dir.join("repo");
    let packages = repo.join("Packages/b");
    std::fs::create_dir_all(&packages).unwrap();
    for entry in std::fs::read_dir(fixtures().join("rpms/el9-bzip2")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), packages.join(entry.file_name())).unwrap();
    }
    repo
}

/// `set` with every file's sha256 and size filled in, as the bundle manifest gives them.
pub(super) fn with_digests(repo: &Path, set: PackageSet) -> PackageSet {
    PackageSet {
        files: set
            .files
            .into_iter()
            .map(|f| {
                let (sha256, size) = packages::hash_file(&repo.join(&f.relative_path)).unwrap();
                PackageFile {
                    known: Some(KnownDigest { sha256, size }),
                    ..f
                }
            })
            .collect(),
        ..set
    }
}

pub(super) fn input(repo: &Path, sets: Vec<PackageSet>) -> RepodataInput {
    RepodataInput {
        repo_dir: repo.to_owned(),
        package_sets: sets,
        upstream: Vec::new(),
    }
}

fn options() -> Options {
    Options {
        revision: 1_700_000_000,
        package_time: Some(1_600_000_000),
        ..Options::default()
    }
}

/// `build` of `sets` into `repo` with the fixed test options, which must succeed.
fn built(repo: &Path, sets: Vec<PackageSet>) -> RepodataOutcome {
    build(&input(repo, sets), &options(), &bundle::NoProgress).unwrap()
}

pub(super) fn read_dir_sorted(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn known_digests_give_the_same_output_as_hashing_public_fixture() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let repo_a = bzip2_repo(a.path());
    let repo_b = bzip2_repo(b.path());
    let scanned = PackageSet::scan(&repo_a, "x86_64").unwrap();
    assert_eq!(scanned.files.len(), 7);
    assert!(
        scanned.files[0]
            .relative_path
            .starts_with("Packages/b/bzip2-")
    );
    built(&repo_a, vec![scanned]);
    let known = with_digests(&repo_b, PackageSet::scan(&repo_b, "x86_64").unwrap());
    built(&repo_b, vec![known]);
    // Same inputs, other directory, other path to the digests: byte-identical repodata.
    assert_eq!(
        read_dir_sorted(&repo_a.join("repodata"))
            .into_iter()
            .filter(|(name, _)| name != ".input-digest")
            .collect::<Vec<_>>(),
        read_dir_sorted(&repo_b.join("repodata"))
            .into_iter()
            .filter(|(name, _)| name != ".input-digest")
            .collect::<Vec<_>>()
    );
}

/// What apply does: headers parsed from another copy of each file (the unpacked bundle, before
/// the move into the repo) give the same repodata as parsing in place; a parsed package whose
/// digest does not match the repo's is not used (the file in the repo is parsed instead).
#[test]
fn packages_parsed_elsewhere_give_the_same_output_public_fixture() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let repo_a = bzip2_repo(a.path());
    let repo_b = bzip2_repo(b.path());
    let known_a = with_digests(&repo_a, PackageSet::scan(&repo_a, "x86_64").unwrap());
    built(&repo_a, vec![known_a]);

    let elsewhere = bzip2_repo(&b.path().join("unpacked"));
    let known_b = with_digests(&repo_b, PackageSet::scan(&repo_b, "x86_64").unwrap());
    let mut parsed = std::collections::HashMap::new();
    for file in &known_b.files {
        let package = parse_package(
            &elsewhere.join(&file.relative_path),
            &file.relative_path,
            file.known.as_ref(),
            &options(),
        )
        .unwrap();
        parsed.insert(file.relative_path.clone(), package);
    }
    // One stale entry: same path, a digest the repo does not expect.
    let stale_path = known_b.files[0].relative_path.clone();
    let mut stale = known_b.files[1].known.clone().unwrap();
    stale.size += 1;
    let stale = parse_package(
        &elsewhere.join(&known_b.files[1].relative_path),
        &stale_path,
        Some(&stale),
        &options(),
    )
    .unwrap_err();
    assert!(
        matches!(stale, RepodataError::SizeMismatch { .. }),
        "{stale}"
    );
    let mut wrong = parsed[&known_b.files[1].relative_path].clone();
    wrong.set_location_href(&stale_path);
    parsed.insert(stale_path, wrong);

    build_with_parsed(
        &input(&repo_b, vec![known_b]),
        &options(),
        parsed,
        &bundle::NoProgress,
    )
    .unwrap();
    assert_eq!(
        read_dir_sorted(&repo_a.join("repodata")),
        read_dir_sorted(&repo_b.join("repodata"))
    );
}

#[test]
fn unchanged_inputs_are_not_rewritten_and_changes_are_public_fixture() {
    let temp = tempfile::tempdir().unwrap();
    let repo = bzip2_repo(temp.path());
    let set = || with_digests(&repo, PackageSet::scan(&repo, "x86_64").unwrap());
    let first = built(&repo, vec![set()]);
    assert!(first.rewritten);
    assert_eq!(first.records, ["primary", "filelists", "other"]);
    assert!(is_current(&input(&repo, vec![set()]), &options()).unwrap());
    let before = read_dir_sorted(&repo.join("repodata"));
    let second = built(&repo, vec![set()]);
    assert!(!second.rewritten);
    assert_eq!(before, read_dir_sorted(&repo.join("repodata")));

    // A package gone: rebuilt, old records removed, no staging left behind.
    std::fs::remove_file(repo.join("Packages/b/bzip2-static-1.0.8-18.el9.x86_64.rpm")).unwrap();
    assert!(!is_current(&input(&repo, vec![set()]), &options()).unwrap());
    let third = built(&repo, vec![set()]);
    assert!(third.rewritten);
    assert_eq!(third.packages, 6);
    let repomd = std::fs::read_to_string(repo.join("repodata/repomd.xml")).unwrap();
    let hrefs = repomd_hrefs(&repomd);
    assert_eq!(hrefs.len(), 3);
    let names: Vec<String> = read_dir_sorted(&repo.join("repodata"))
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(
        names.len(),
        5,
        "3 records, repomd.xml, .input-digest: {names:?}"
    );
    for href in hrefs {
        assert!(repo.join(&href).is_file(), "{href}");
    }
    assert!(!repo.join(".repodata.staging").exists());

    // Other options are other inputs.
    let zstd = Options {
        compression: Compression::Zstd,
        ..options()
    };
    assert!(!is_current(&input(&repo, vec![set()]), &zstd).unwrap());
}

#[test]
fn a_deleted_record_makes_the_repodata_stale_public_fixture() {
    let temp = tempfile::tempdir().unwrap();
    let repo = bzip2_repo(temp.path());
    let set = PackageSet::scan(&repo, "x86_64").unwrap();
    built(&repo, vec![set.clone()]);
    let repomd = std::fs::read_to_string(repo.join("repodata/repomd.xml")).unwrap();
    std::fs::remove_file(repo.join(&repomd_hrefs(&repomd)[1])).unwrap();
    assert!(!is_current(&input(&repo, vec![set.clone()]), &options()).unwrap());
    assert!(built(&repo, vec![set]).rewritten);
}

#[test]
fn multi_arch_sets_merge_identical_noarch_and_reject_conflicts() {
    let digest = |sha: &str| {
        Some(KnownDigest {
            sha256: sha.repeat(64),
            size: 10,
        })
    };
    let file = |path: &str, sha: &str| PackageFile {
        relative_path: path.to_owned(),
        known: digest(sha),
    };
    let x86 = PackageSet {
        label: "x86_64".into(),
        files: vec![
            file("Packages/a/a.x86_64.rpm", "1"),
            file("Packages/n/n.noarch.rpm", "2"),
        ],
    };
    let arm = PackageSet {
        label: "aarch64".into(),
        files: vec![
            file("Packages/a/a.aarch64.rpm", "3"),
            file("Packages/n/n.noarch.rpm", "2"),
        ],
    };
    let merged = packages::merge_sets(&[x86.clone(), arm]).unwrap();
    assert_eq!(merged.len(), 3);

    let arm_conflict = PackageSet {
        label: "aarch64".into(),
        files: vec![file("Packages/n/n.noarch.rpm", "4")],
    };
    let error = packages::merge_sets(&[x86.clone(), arm_conflict]).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("Packages/n/n.noarch.rpm"), "{message}");
    assert!(
        message.contains("x86_64") && message.contains("aarch64"),
        "{message}"
    );
    assert!(
        message.contains(&"2".repeat(64)) && message.contains(&"4".repeat(64)),
        "{message}"
    );

    let escaping = PackageSet {
        label: "bad".into(),
        files: vec![file("../outside.rpm", "5")],
    };
    assert!(matches!(
        packages::merge_sets(&[escaping]),
        Err(RepodataError::BadPackagePath { .. })
    ));
}

#[test]
fn size_mismatch_with_the_manifest_is_an_error_public_fixture() {
    let temp = tempfile::tempdir().unwrap();
    let repo = bzip2_repo(temp.path());
    let mut set = with_digests(&repo, PackageSet::scan(&repo, "x86_64").unwrap());
    set.files[0].known.as_mut().unwrap().size += 1;
    let error = build(&input(&repo, vec![set]), &options(), &bundle::NoProgress).unwrap_err();
    assert!(
        matches!(error, RepodataError::SizeMismatch { .. }),
        "{error}"
    );
    assert!(!repo.join("repodata").exists());
}

#[test]
fn upstream_records_are_carried_and_merged_public_fixture() {
    let temp = tempfile::tempdir().unwrap();
    let repo = bzip2_repo(temp.path());
    let comps = fixtures().join("comps/rocky9-minimal-comps-x86_64.xml");
    let updateinfo_a = fixtures().join("updateinfo/updateinfo_01.xml");
    // The aarch64 side: the same advisory with its own package, plus other advisories; xz.
    let update_1 = std::fs::read_to_string(&updateinfo_a).unwrap();
    let update_1 =
        &update_1[update_1.find("  <update ").unwrap()..update_1.find("</updates>").unwrap()];
    let update_1 = update_1
        .replace("name=\"bar\"", "name=\"baz\"")
        .replace("bar-2.0.1-3.noarch", "baz-2.0.1-3.noarch");
    let others = std::fs::read_to_string(fixtures().join("updateinfo/updateinfo_03.xml")).unwrap();
    let b_xml = others.replace("</updates>", &format!("{update_1}</updates>"));
    let updateinfo_b = temp.path().join("updateinfo_b.xml.xz");
    let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
    std::io::Write::write_all(&mut xz, b_xml.as_bytes()).unwrap();
    std::fs::write(&updateinfo_b, xz.finish().unwrap()).unwrap();
    let modules_a = temp.path().join("a.modules.yaml");
    let modules_b = temp.path().join("b.modules.yaml");
    let shared = "---\ndocument: modulemd\nversion: 2\ndata:\n  name: shared\n...\n";
    std::fs::write(
        &modules_a,
        format!("{shared}---\ndocument: modulemd\ndata:\n  name: x86only\n...\n"),
    )
    .unwrap();
    std::fs::write(
        &modules_b,
        format!("{shared}--- !tagged\ndocument: modulemd-defaults\ndata:\n  module: arm\n"),
    )
    .unwrap();

    let upstream = vec![
        UpstreamRecords {
            comps: Some(comps.clone()),
            updateinfo: Some(updateinfo_a.clone()),
            modules: Some(modules_a),
        },
        UpstreamRecords {
            comps: Some(fixtures().join("comps/comps_00.xml")),
            updateinfo: Some(updateinfo_b.clone()),
            modules: Some(modules_b),
        },
    ];
    let input = RepodataInput {
        upstream,
        ..input(&repo, vec![PackageSet::scan(&repo, "x86_64").unwrap()])
    };
    let outcome = build(&input, &options(), &bundle::NoProgress).unwrap();
    assert_eq!(
        outcome.records,
        [
            "primary",
            "filelists",
            "other",
            "group",
            "group_gz",
            "modules",
            "updateinfo"
        ]
    );
    let repomd = std::fs::read_to_string(repo.join("repodata/repomd.xml")).unwrap();
    let hrefs = repomd_hrefs(&repomd);
    let href = |suffix: &str| {
        let href = hrefs.iter().find(|h| h.ends_with(suffix)).unwrap();
        read_maybe_compressed(&repo.join(href)).unwrap()
    };

    // comps: the first set's, byte for byte, plain and gzip.
    let original = std::fs::read(&comps).unwrap();
    assert_eq!(href("-comps.xml"), original);
    assert_eq!(href("-comps.xml.gz"), original);

    // modules: union of documents, the shared one once, tags kept.
    let modules = String::from_utf8(href("-modules.yaml.gz")).unwrap();
    let documents = yaml_documents(&modules);
    assert_eq!(documents.len(), 3, "{modules}");
    assert_eq!(modules.matches("name: shared").count(), 1);
    assert!(modules.contains("--- !tagged\ndocument: modulemd-defaults"));

    // updateinfo: union by id; every advisory id of both inputs present exactly once.
    let merged = String::from_utf8(href("-updateinfo.xml.gz")).unwrap();
    let ids = |xml: &str| -> Vec<String> {
        let mut ids: Vec<String> = xml
            .split("<id>")
            .skip(1)
            .map(|rest| rest.split("</id>").next().unwrap().to_owned())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let a = String::from_utf8(read_maybe_compressed(&updateinfo_a).unwrap()).unwrap();
    let b = String::from_utf8(read_maybe_compressed(&updateinfo_b).unwrap()).unwrap();
    let mut expected = ids(&a);
    expected.extend(ids(&b));
    expected.sort();
    expected.dedup();
    assert!(!expected.is_empty());
    assert_eq!(ids(&merged), expected);
    assert_eq!(expected.len(), 7);
    for id in &expected {
        assert_eq!(merged.matches(&format!("<id>{id}</id>")).count(), 1, "{id}");
    }
    // The advisory in both inputs lists both packages.
    let update_1 = &merged[merged.find("<id>foobarupdate_1</id>").unwrap()..];
    let update_1 = &update_1[..update_1.find("</update>").unwrap()];
    assert!(update_1.contains("bar-2.0.1-3.noarch.rpm"), "{update_1}");
    assert!(update_1.contains("baz-2.0.1-3.noarch.rpm"), "{update_1}");
}

#[test]
fn yaml_documents_split_on_markers() {
    let docs = yaml_documents("---\na: 1\n...\n---\nb: 2\n--- !x\nc: 3\n");
    assert_eq!(docs, ["---\na: 1", "---\nb: 2", "--- !x\nc: 3"]);
    assert_eq!(yaml_documents("a: 1\n"), ["---\na: 1"]);
}

#[test]
fn upstream_records_inside_repodata_are_refused_public_fixture() {
    let temp = tempfile::tempdir().unwrap();
    let repo = bzip2_repo(temp.path());
    std::fs::create_dir_all(repo.join("repodata")).unwrap();
    let comps = repo.join("repodata/comps.xml");
    std::fs::copy(fixtures().join("comps/comps_00.xml"), &comps).unwrap();
    let input = RepodataInput {
        upstream: vec![UpstreamRecords {
            comps: Some(comps),
            ..Default::default()
        }],
        ..input(&repo, vec![PackageSet::scan(&repo, "x86_64").unwrap()])
    };
    let error = build(&input, &options(), &bundle::NoProgress).unwrap_err();
    assert!(
        matches!(
            error,
            RepodataError::UpstreamInsideRepodata { kind: "comps", .. }
        ),
        "{error}"
    );
    assert!(is_current(&input, &options()).is_err());
}

#[test]
fn leftovers_of_a_killed_build_do_not_matter_public_fixture() {
    let temp = tempfile::tempdir().unwrap();
    let repo = bzip2_repo(temp.path());
    let set = PackageSet::scan(&repo, "x86_64").unwrap();
    built(&repo, vec![set.clone()]);
    let served = read_dir_sorted(&repo.join("repodata"));

    // A build killed after staging, and after moving records in but before the repomd switch
    // (the digest file is already gone then): a rerun finishes the job.
    let staging = repo.join(".repodata.staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::write(staging.join("primary.xml.gz"), b"half written").unwrap();
    std::fs::write(
        repo.join("repodata/0000-primary.xml.gz"),
        b"moved, not referenced",
    )
    .unwrap();
    std::fs::remove_file(repo.join("repodata/.input-digest")).unwrap();
    assert!(!is_current(&input(&repo, vec![set.clone()]), &options()).unwrap());
    let outcome = built(&repo, vec![set.clone()]);
    assert!(outcome.rewritten);
    assert!(!staging.exists());
    assert_eq!(read_dir_sorted(&repo.join("repodata")), served);
    assert!(is_current(&input(&repo, vec![set]), &options()).unwrap());
}

/// repomd.xml is a pure function of the packages and `Options::revision`: any change to what
/// it records (record order, checksums of the compressed metadata, sizes) shows as a diff.
#[test]
fn repomd_xml_snapshot_public_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let repo = bzip2_repo(dir.path());
    let set = PackageSet::scan(&repo, "x86_64").unwrap();
    built(&repo, vec![set]);
    let repomd = std::fs::read_to_string(repo.join("repodata/repomd.xml")).unwrap();
    insta::assert_snapshot!("repomd_el9_bzip2", repomd);
}

/// A repo of the el9 bzip2 RPMs, each under `copies` file names (so there are more packages
/// than the feed announces at once).
fn many_packages_repo(dir: &Path, copies: usize) -> PathBuf {
    let repo = dir.join("repo");
    let packages = repo.join("Packages/b");
    std::fs::create_dir_all(&packages).unwrap();
    for entry in std::fs::read_dir(fixtures().join("rpms/el9-bzip2")).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        for copy in 0..copies {
            let to = packages.join(format!("c{copy:02}-{name}"));
            std::fs::copy(entry.path(), to).unwrap();
        }
    }
    repo
}

#[test]
fn packages_fed_in_any_order_give_the_same_output_public_fixture() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let repo_a = many_packages_repo(a.path(), 20);
    let repo_b = many_packages_repo(b.path(), 20);
    let set_a = with_digests(&repo_a, PackageSet::scan(&repo_a, "x86_64").unwrap());
    assert!(set_a.files.len() > 128, "{}", set_a.files.len());
    built(&repo_a, vec![set_a]);

    let set_b = with_digests(&repo_b, PackageSet::scan(&repo_b, "x86_64").unwrap());
    let input = input(&repo_b, vec![set_b.clone()]);
    let feed = PackageFeed::new(&input).unwrap();
    let outcome = build_fed(&input, &options(), &feed, || {
        // Two of every three records offered, last first, while the writers wait; one with a
        // digest the repo does not expect is ignored; the rest is read by `complete`.
        for (i, file) in set_b.files.iter().enumerate().rev() {
            let known = file.known.clone().unwrap();
            if i % 3 == 0 {
                let stale = KnownDigest {
                    sha256: "0".repeat(64),
                    ..known
                };
                let package = parse_package(
                    &repo_b.join(&file.relative_path),
                    &file.relative_path,
                    Some(&stale),
                    &options(),
                )
                .unwrap();
                feed.offer(&file.relative_path, package);
                assert!(feed.wants(&file.relative_path));
                continue;
            }
            let package = parse_package(
                &repo_b.join(&file.relative_path),
                &file.relative_path,
                Some(&known),
                &options(),
            )
            .unwrap();
            feed.offer(&file.relative_path, package);
            assert!(!feed.wants(&file.relative_path));
        }
        feed.complete(&repo_b, &options(), &bundle::NoProgress)
    })
    .unwrap();
    assert!(outcome.rewritten);
    assert_eq!(outcome.packages, set_b.files.len());
    assert_eq!(
        read_dir_sorted(&repo_a.join("repodata")),
        read_dir_sorted(&repo_b.join("repodata"))
    );
    // The stored input digest is `build`'s, so the repo counts as current afterwards.
    assert!(is_current(&input, &options()).unwrap());
}

#[test]
fn a_fed_build_stops_with_the_reason_its_packages_did_not_come_public_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let repo = bzip2_repo(dir.path());
    let set = with_digests(&repo, PackageSet::scan(&repo, "x86_64").unwrap());
    let input = input(&repo, vec![set]);
    let feed = PackageFeed::new(&input).unwrap();
    let err = build_fed(&input, &options(), &feed, || {
        Err(RepodataError::Metadata {
            path: repo.join("bundle.tar.zst"),
            message: "the unpack failed".into(),
        })
    })
    .unwrap_err();
    assert!(err.to_string().contains("the unpack failed"), "{err}");
    assert!(!repo.join("repodata").exists());

    // A package that cannot be read stops it too, naming the file.
    let feed = PackageFeed::new(&input).unwrap();
    let broken = repo.join("Packages/b/bzip2-1.0.8-18.el9.x86_64.rpm");
    let size = std::fs::metadata(&broken).unwrap().len();
    std::fs::write(&broken, vec![0u8; size as usize]).unwrap();
    let err = build_fed(&input, &options(), &feed, || {
        feed.complete(&repo, &options(), &bundle::NoProgress)
    })
    .unwrap_err();
    assert!(
        err.to_string().contains("bzip2-1.0.8-18.el9.x86_64.rpm"),
        "{err}"
    );
    assert!(!repo.join("repodata").exists());
}

#[test]
fn a_panic_while_the_packages_come_stops_the_writers_public_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let repo = bzip2_repo(dir.path());
    let set = with_digests(&repo, PackageSet::scan(&repo, "x86_64").unwrap());
    let input = input(&repo, vec![set]);
    let (done, finished) = std::sync::mpsc::channel();
    let build = {
        let input = input.clone();
        std::thread::spawn(move || {
            let feed = PackageFeed::new(&input).unwrap();
            let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                build_fed::<RepodataError>(&input, &options(), &feed, || {
                    panic!("the unpack panicked")
                })
            }));
            done.send(panicked.is_err()).unwrap();
        })
    };
    // Without the feed cancelled on the way out, the scope would wait for its writers forever.
    let panicked = finished
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the writers were left waiting for records that never come");
    assert!(panicked);
    build.join().unwrap();
    assert!(!repo.join("repodata").exists());
}
