//! Round trips through the public API, in every `IoMode`: what goes in comes out
//! byte-identical, two builds are identical (whatever the mode), the sidecar checksum is what
//! `sha256sum -c` accepts, unknown fields are ignored.

use std::path::Path;
use std::process::Command;

use bundle::read::{extract_observed, read_manifest, verify_detailed};
use bundle::sign::{generate_keypair, load_signing_key, load_verifying_key};
use bundle::write::WriteOptions;
use bundle::{FileKind, IoMode, NoProgress};

use crate::harness::*;
use crate::tree::pack_tree;

fn small_tree(dir: &Path) {
    let long_dir = "d".repeat(120);
    write_tree(
        dir,
        &[
            (
                "repos/baseos/x86_64/Packages/b/bash-5.2.rpm",
                b"rpm bytes".repeat(1000),
            ),
            (
                "repos/baseos/x86_64/repodata/repomd.xml",
                b"<repomd/>".to_vec(),
            ),
            ("pypi/files/six-1.16.0-py2.py3-none-any.whl", vec![7u8; 513]),
            ("keys/RPM-GPG-KEY-Rocky-10", b"key".to_vec()),
            (
                &format!("{long_dir}/{}.whl", "n".repeat(200)),
                b"long".to_vec(),
            ),
            ("empty", vec![]),
            ("exactly-512", vec![1u8; 512]),
        ],
    );
}

#[test]
fn small_tree_round_trips_signed_with_sidecar_checksum() {
    for io in IoMode::ALL {
        small_tree_round_trips_in(io);
    }
}

fn small_tree_round_trips_in(io: IoMode) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let keys = generate_keypair(&tmp.path().join("site")).unwrap();
    let opts = WriteOptions {
        signing_key: Some(load_signing_key(&keys.secret).unwrap()),
        io,
        ..WriteOptions::default()
    };
    let out = tmp.path().join("b.tar.zst");
    let written = pack_tree(&src, &out, base_manifest(), &opts, &NoProgress).unwrap();
    assert!(written.signed);

    let status = Command::new("sha256sum")
        .args(["-c", "--quiet", "b.tar.zst.sha256"])
        .current_dir(tmp.path())
        .status()
        .unwrap();
    assert!(status.success(), "sha256sum -c rejects the sidecar file");

    let info = read_manifest(&out).unwrap();
    assert_eq!(info.manifest.totals.files, 7);
    assert!(info.signature.is_some());
    assert_eq!(info.manifest.bundle_id.len(), 32);
    let kinds: Vec<_> = info
        .manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.kind))
        .collect();
    assert!(kinds.contains(&("keys/RPM-GPG-KEY-Rocky-10", FileKind::Key)));
    assert!(kinds.contains(&(
        "repos/baseos/x86_64/repodata/repomd.xml",
        FileKind::Repodata
    )));

    let public = load_verifying_key(&keys.public).unwrap();
    let verified = verify_detailed(&out, Some(&public), io, &NoProgress).unwrap();
    assert!(verified.signed && verified.signature_checked);
    assert_eq!(verified.manifest, info.manifest);

    let dest = tmp.path().join("out");
    extract_in(&out, &dest, Some(&public), io).unwrap();
    assert_eq!(listing(&src).len(), listing(&dest).len());
    for (path, what) in listing(&src) {
        let got = &listing(&dest)[&path];
        // Same content and type; the mode of the source does not travel.
        assert_eq!(
            what.split(' ').skip(2).collect::<Vec<_>>(),
            got.split(' ').skip(2).collect::<Vec<_>>(),
            "{}",
            path.display()
        );
        assert!(
            got.starts_with("file 100644") || got.starts_with("dir 40755"),
            "{got}"
        );
    }
    let leftovers: Vec<_> = fs_err::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("staging") || n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    let observed = tmp.path().join("observed");
    let observer = CheckingObserver::default();
    extract_observed(&out, &observed, None, io, &observer, &NoProgress).unwrap();
    assert!(observer.wrong.lock().unwrap().is_empty());
    let mut seen = observer.seen.into_inner().unwrap();
    seen.sort();
    let mut expected: Vec<_> = info.manifest.files.iter().map(|f| f.path.clone()).collect();
    expected.sort();
    assert_eq!(seen, expected, "every payload file is shown once");

    let again = extract_in(&out, &dest, None, io).unwrap_err();
    assert!(again.to_string().contains("already exists"), "{again}");
    assert!(!again.is_verification_failure());
}

#[test]
fn two_builds_are_byte_identical_whatever_the_thread_count_and_io_mode() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let mut outputs = Vec::new();
    for io in IoMode::ALL {
        for threads in [1, 2, 3] {
            let out = tmp.path().join(format!("b{threads}-{io}.tar.zst"));
            let opts = WriteOptions {
                threads,
                io,
                ..WriteOptions::default()
            };
            pack_tree(&src, &out, base_manifest(), &opts, &NoProgress).unwrap();
            outputs.push(fs_err::read(&out).unwrap());
        }
    }
    assert_eq!(outputs.len(), 6);
    for (i, output) in outputs.iter().enumerate() {
        assert!(*output == outputs[0], "build {i} differs from the first");
    }
}

/// A run killed mid-write leaves `<bundle>.tmp-<pid>-*` behind; the next write removes it, but
/// not the temp file of a run that is still alive.
#[test]
fn temp_files_of_dead_runs_are_swept_and_live_ones_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    small_tree(&src);
    let out = tmp.path().join("b.tar.zst");
    // No process has this id (it is above the kernel's pid limit).
    let stale = tmp.path().join("b.tar.zst.tmp-4294967-abc123");
    let live = tmp
        .path()
        .join(format!("b.tar.zst.tmp-{}-def456", std::process::id()));
    let unrelated = tmp.path().join("other.tar.zst.tmp-4294967-abc123");
    for f in [&stale, &live, &unrelated] {
        fs_err::write(f, b"partial").unwrap();
    }
    pack_default(&src, &out, IoMode::default());
    assert!(!stale.exists(), "the dead run's temp file is removed");
    assert!(live.exists(), "a live run's temp file is left alone");
    assert!(
        unrelated.exists(),
        "another output's temp file is left alone"
    );
}

/// A few thousand small files and two 96 MB sparse files (mostly zeros with data at a few
/// offsets), so the test stays quick while the big-file paths are exercised.
#[test]
fn many_files_and_large_sparse_files_round_trip_byte_identical() {
    for io in IoMode::ALL {
        many_files_and_large_sparse_files_in(io);
    }
}

fn many_files_and_large_sparse_files_in(io: IoMode) {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    for i in 0..3000u32 {
        let dir = src.join(format!("repo/Packages/{}", i % 26));
        fs_err::create_dir_all(&dir).unwrap();
        let data: Vec<u8> = (0..(i * 37 % 5000)).map(|j| (j ^ i) as u8).collect();
        fs_err::write(dir.join(format!("pkg-{i}.rpm")), data).unwrap();
    }
    for name in ["big-a.bin", "big-b.bin"] {
        use std::io::{Seek, SeekFrom, Write};
        let mut f = fs_err::File::create(src.join(name)).unwrap();
        f.set_len(96 << 20).unwrap();
        for offset in [0u64, 1 << 20, 48 << 20, (96 << 20) - 4] {
            f.seek(SeekFrom::Start(offset)).unwrap();
            f.write_all(name.as_bytes().get(..4).unwrap()).unwrap();
        }
    }
    let out = tmp.path().join("big.tar.zst");
    pack_default(&src, &out, io);
    let manifest = verify_in(&out, None, io).unwrap();
    assert_eq!(manifest.totals.files, 3002);

    let dest = tmp.path().join("dest");
    extract_in(&out, &dest, None, io).unwrap();
    for file in &manifest.files {
        let path = dest.join(&file.path);
        let (size, sha) = bundle::write::hash_file(&path).unwrap();
        assert_eq!(
            (size, sha.as_str()),
            (file.size, file.sha256.as_str()),
            "{}",
            file.path
        );
    }
}

#[test]
fn unknown_manifest_fields_are_ignored() {
    let tmp = tempfile::tempdir().unwrap();
    let data = b"payload";
    let mut manifest = base_manifest();
    manifest.files = vec![entry("a/b.txt", data)];
    bundle::write::finalize(&mut manifest);
    let mut value = serde_json::to_value(&manifest).unwrap();
    value["future_top_level"] = serde_json::json!({"anything": [1, 2]});
    value["files"][0]["future_per_file"] = serde_json::json!("x");
    value["tool"]["future_nested"] = serde_json::json!(true);
    let raw = serde_json::to_vec(&value).unwrap();
    let bytes = compress(&raw_tar(&[
        Raw::file("manifest.json", &raw),
        Raw::file("a/b.txt", data),
    ]));
    let path = tmp.path().join("future.tar.zst");
    fs_err::write(&path, bytes).unwrap();

    assert_eq!(read_manifest(&path).unwrap().manifest, manifest);
    for io in IoMode::ALL {
        assert_eq!(verify_in(&path, None, io).unwrap(), manifest);
        let dest = tmp.path().join(format!("x-{io}"));
        extract_in(&path, &dest, None, io).unwrap();
        assert_eq!(fs_err::read(dest.join("a/b.txt")).unwrap(), data);
    }
}

/// Real RPMs and upstream repodata (already compressed, odd names) pack and unpack unchanged.
#[test]
fn real_rpms_and_repodata_round_trip_public_fixture() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures");
    assert!(
        fixtures.join("rpms").is_dir(),
        "{} is missing: the public fixtures travel with the repository (tests/fixtures/README.md)",
        fixtures.display()
    );
    for io in IoMode::ALL {
        real_rpms_and_repodata_round_trip_in(&fixtures, io);
    }
}

fn real_rpms_and_repodata_round_trip_in(fixtures: &Path, io: IoMode) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("fixtures.tar.zst");
    pack_default(fixtures, &out, io);
    let manifest = verify_in(&out, None, io).unwrap();
    assert!(manifest.files.iter().any(|f| f.kind == FileKind::Rpm));
    assert!(manifest.files.iter().any(|f| f.kind == FileKind::Repodata));
    let dest = tmp.path().join("dest");
    extract_in(&out, &dest, None, io).unwrap();
    let (want, got) = (listing(fixtures), listing(&dest));
    let strip = |m: &std::collections::BTreeMap<std::path::PathBuf, String>| -> Vec<(std::path::PathBuf, String)> {
        m.iter()
            .filter(|(_, v)| v.starts_with("file"))
            .map(|(k, v)| (k.clone(), v.split(' ').skip(2).collect::<Vec<_>>().join(" ")))
            .collect()
    };
    assert_eq!(strip(&want), strip(&got));
    assert_eq!(strip(&want).len(), manifest.files.len());
}

/// Places the files under `repos/` at the same relative path below `dir`, and checks what it is
/// shown as `CheckingObserver` does.
struct PlacingObserver {
    dir: std::path::PathBuf,
    checks: CheckingObserver,
    shown_at: std::sync::Mutex<Vec<std::path::PathBuf>>,
}

impl bundle::read::EntryObserver for PlacingObserver {
    fn verified(&self, entry: &bundle::FileEntry, path: &Path, head: &[u8]) {
        self.checks.verified(entry, path, head);
        self.shown_at.lock().unwrap().push(path.to_path_buf());
    }

    fn place(&self, entry: &bundle::FileEntry) -> Option<std::path::PathBuf> {
        entry
            .path
            .starts_with("repos/")
            .then(|| self.dir.join(&entry.path))
    }
}

#[test]
fn an_observer_places_files_outside_the_destination_in_every_io_mode() {
    for io in IoMode::ALL {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        small_tree(&src);
        let out = tmp.path().join("b.tar.zst");
        let opts = WriteOptions {
            io,
            ..WriteOptions::default()
        };
        pack_tree(&src, &out, base_manifest(), &opts, &NoProgress).unwrap();
        let observer = PlacingObserver {
            dir: tmp.path().join("placed"),
            checks: CheckingObserver::default(),
            shown_at: Default::default(),
        };
        let dest = tmp.path().join("out");
        extract_observed(&out, &dest, None, io, &observer, &NoProgress).unwrap();
        assert!(observer.checks.wrong.lock().unwrap().is_empty(), "{io}");
        assert_eq!(observer.checks.seen.lock().unwrap().len(), 7, "{io}");
        for (relative, _) in listing(&src) {
            let (path, relative) = (src.join(&relative), relative.as_path());
            let placed = relative.starts_with("repos");
            let (there, not_there) = if placed {
                (tmp.path().join("placed"), &dest)
            } else {
                (dest.clone(), &tmp.path().join("placed"))
            };
            if path.is_file() {
                assert_eq!(
                    fs_err::read(there.join(relative)).unwrap(),
                    fs_err::read(&path).unwrap(),
                    "{io}: {}",
                    relative.display()
                );
                assert!(
                    !not_there.join(relative).exists(),
                    "{io}: {}",
                    relative.display()
                );
                // Unplaced files are shown in the staging directory that becomes `dest`.
                assert!(
                    !placed
                        || observer
                            .shown_at
                            .lock()
                            .unwrap()
                            .contains(&there.join(relative)),
                    "{io}: shown where it is, {}",
                    relative.display()
                );
            }
        }
    }
}
