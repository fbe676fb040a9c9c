//! The hostile-bundle suite: every crafted bundle is refused by `verify` and by `extract`, in
//! every `IoMode`, the error names the entry (or stream position) and the reason, it counts as
//! a verification failure (exit 3 in the binaries), and the extraction parent is left exactly
//! as it was.

use std::path::Path;

use bundle::IoMode;
use bundle::read::{NoObserver, extract_observed, verify, verify_detailed};
use bundle::sign::{SigningKey, VerifyingKey, sign_manifest};
use bundle::write::{finalize, manifest_bytes};
use bundle::{BundleManifest, NoProgress};
use tar::EntryType;

use crate::harness::*;

const A: &str = "repos/baseos/x86_64/Packages/a/a-1.0-1.el10.x86_64.rpm";
const B: &str = "pypi/files/b-2.0-py3-none-any.whl";

fn a_data() -> Vec<u8> {
    (0..1000u32).map(|i| (i * 7) as u8).collect()
}

fn b_data() -> Vec<u8> {
    vec![0x42; 700]
}

fn manifest_for(files: &[(&str, &[u8])]) -> BundleManifest {
    let mut m = base_manifest();
    m.files = files.iter().map(|(p, d)| entry(p, d)).collect();
    finalize(&mut m);
    m
}

fn good_manifest() -> BundleManifest {
    manifest_for(&[(A, &a_data()), (B, &b_data())])
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// Manifest (+ signature) followed by `payload`, compressed.
fn bundle_with(
    manifest: &BundleManifest,
    signer: Option<&SigningKey>,
    payload: Vec<Raw>,
) -> Vec<u8> {
    let raw = manifest_bytes(manifest);
    let mut entries = vec![Raw::file("manifest.json", &raw)];
    if let Some(k) = signer {
        entries.push(Raw::file("manifest.json.sig", &sign_manifest(k, &raw)));
    }
    entries.extend(payload);
    compress(&raw_tar(&entries))
}

fn good_payload() -> Vec<Raw> {
    vec![Raw::file(A, &a_data()), Raw::file(B, &b_data())]
}

fn special(name: &str, kind: EntryType, link: &str) -> Raw {
    Raw {
        name: name.as_bytes().to_vec(),
        kind,
        data: vec![],
        size: None,
        link: link.as_bytes().to_vec(),
    }
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    key: Option<VerifyingKey>,
    /// Each must appear in the error message.
    expect: Vec<String>,
}

fn case(name: &'static str, bytes: Vec<u8>, expect: &[&str]) -> Case {
    Case {
        name,
        bytes,
        key: None,
        expect: expect.iter().map(|s| s.to_string()).collect(),
    }
}

fn with_entry(before_b: Raw) -> Vec<u8> {
    bundle_with(
        &good_manifest(),
        None,
        vec![Raw::file(A, &a_data()), before_b, Raw::file(B, &b_data())],
    )
}

fn cases() -> Vec<Case> {
    let good = bundle_with(&good_manifest(), None, good_payload());
    let signer = key(1);
    let public = signer.verifying_key();
    let mut cases = vec![
        case(
            "dotdot entry",
            with_entry(Raw::file("../evil", b"x")),
            &["\"../evil\"", "`..`"],
        ),
        case(
            "dotdot inside",
            with_entry(Raw::file("repos/../../evil", b"x")),
            &["repos/../../evil", "`..`"],
        ),
        case(
            "absolute path",
            with_entry(Raw::file("/etc/evil", b"x")),
            &["\"/etc/evil\"", "absolute"],
        ),
        case(
            "backslash",
            with_entry(Raw::file("repos\\evil", b"x")),
            &["backslash"],
        ),
        case(
            "empty component",
            with_entry(Raw::file("repos//evil", b"x")),
            &["repos//evil", "empty path component"],
        ),
        case(
            "NUL inside a long name",
            with_entry(Raw::file(&format!("{}\0evil", "n".repeat(120)), b"x")),
            &["NUL"],
        ),
        case(
            "symlink",
            with_entry(special("repos/link", EntryType::Symlink, "/etc/passwd")),
            &["repos/link", "symbolic link"],
        ),
        case(
            "hardlink",
            with_entry(special("repos/hard", EntryType::Link, A)),
            &["repos/hard", "hard link"],
        ),
        case(
            "character device",
            with_entry(special("repos/null", EntryType::Char, "")),
            &["repos/null", "character device"],
        ),
        case(
            "block device",
            with_entry(special("repos/sda", EntryType::Block, "")),
            &["repos/sda", "block device"],
        ),
        case(
            "fifo",
            with_entry(special("repos/fifo", EntryType::Fifo, "")),
            &["repos/fifo", "fifo"],
        ),
        case(
            "directory as payload",
            with_entry(special("repos/dir", EntryType::Directory, "")),
            &["repos/dir", "directory"],
        ),
        case(
            "pax header",
            with_entry(special("repos/pax", EntryType::XHeader, "")),
            &["repos/pax", "pax extended header"],
        ),
        case(
            "duplicate path",
            bundle_with(
                &good_manifest(),
                None,
                vec![
                    Raw::file(A, &a_data()),
                    Raw::file(B, &b_data()),
                    Raw::file(B, &b_data()),
                ],
            ),
            &[B, "more than once"],
        ),
        case(
            "duplicate in place of the next file",
            bundle_with(
                &good_manifest(),
                None,
                vec![
                    Raw::file(A, &a_data()),
                    Raw::file(A, &a_data()),
                    Raw::file(B, &b_data()),
                ],
            ),
            &[A, "more than once"],
        ),
        case(
            "entry missing from the manifest",
            with_entry(Raw::file("repos/extra.rpm", b"x")),
            &["repos/extra.rpm", "not listed in the manifest"],
        ),
        case(
            "manifest entry missing from the archive",
            bundle_with(&good_manifest(), None, vec![Raw::file(A, &a_data())]),
            &[B, "missing from the archive"],
        ),
        case(
            "manifest entry missing in the middle",
            bundle_with(&good_manifest(), None, vec![Raw::file(B, &b_data())]),
            &[A, "missing from the archive"],
        ),
        case(
            "one flipped byte in a payload file",
            bundle_with(
                &good_manifest(),
                None,
                vec![Raw::file(A, &flip(&a_data(), 500)), Raw::file(B, &b_data())],
            ),
            &[A, "sha256 mismatch"],
        ),
        case(
            "size mismatch (short entry)",
            bundle_with(
                &good_manifest(),
                None,
                vec![Raw::file(A, &a_data()[..990]), Raw::file(B, &b_data())],
            ),
            &[A, "size mismatch: 990 bytes, expected 1000"],
        ),
        case(
            "oversize entry",
            bundle_with(
                &good_manifest(),
                None,
                vec![
                    Raw::file(A, &[a_data(), vec![0; 4096]].concat()),
                    Raw::file(B, &b_data()),
                ],
            ),
            &[
                A,
                "larger than the manifest says: 5096 bytes, expected 1000",
            ],
        ),
        case(
            "oversize entry header with no data behind it",
            bundle_with(
                &good_manifest(),
                None,
                vec![Raw {
                    size: Some(1 << 40),
                    ..Raw::file(A, &a_data())
                }],
            ),
            &[A, "larger than the manifest says"],
        ),
        case(
            "truncated zstd stream",
            good[..good.len() / 2].to_vec(),
            &["truncated"],
        ),
        case(
            "truncated to the last byte",
            good[..good.len() - 1].to_vec(),
            &["truncated"],
        ),
        case(
            "garbage after the zstd frame",
            [good.clone(), b"garbage".to_vec()].concat(),
            &["garbage after the end of the zstd frame"],
        ),
        case(
            "garbage after the tar end-of-archive blocks",
            compress(
                &[
                    raw_tar(&[
                        Raw::manifest(&good_manifest()),
                        Raw::file(A, &a_data()),
                        Raw::file(B, &b_data()),
                    ]),
                    b"junk".to_vec(),
                ]
                .concat(),
            ),
            &["data after the end-of-archive marker"],
        ),
        case(
            "only one end-of-archive block",
            {
                let tar = raw_tar(&[
                    Raw::manifest(&good_manifest()),
                    Raw::file(A, &a_data()),
                    Raw::file(B, &b_data()),
                ]);
                compress(&tar[..tar.len() - 512])
            },
            &["two zero blocks"],
        ),
        case(
            "corrupt zstd stream",
            flip(&good, good.len() - 8),
            &["zstd"],
        ),
        case(
            "manifest not first",
            compress(&raw_tar(&[
                Raw::file(A, &a_data()),
                Raw::manifest(&good_manifest()),
            ])),
            &[A, "not the regular file manifest.json"],
        ),
        case(
            "unsafe path listed in the manifest itself",
            bundle_with(
                &manifest_for(&[("../evil", b"x")]),
                None,
                vec![Raw::file("../evil", b"x")],
            ),
            &["../evil", "`..`"],
        ),
        case(
            "format newer than supported",
            newer_format(),
            &[
                "bundle format 3 needs installer >= 0.9.0; this is installer 0.1.0 which reads format 2",
            ],
        ),
    ];

    // A file and its manifest entry both changed after signing: fine without a key (the bundle
    // is self-consistent), refused with one.
    let tampered = {
        let original = bundle_with(&good_manifest(), Some(&signer), good_payload());
        let changed = manifest_for(&[(A, &flip(&a_data(), 3)), (B, &b_data())]);
        let raw = manifest_bytes(&good_manifest());
        let old_sig = sign_manifest(&signer, &raw);
        let bytes = compress(&raw_tar(&[
            Raw::manifest(&changed),
            Raw::file("manifest.json.sig", &old_sig),
            Raw::file(A, &flip(&a_data(), 3)),
            Raw::file(B, &b_data()),
        ]));
        let tmp = tempfile::tempdir().unwrap();
        for (name, b) in [("original", &original), ("tampered", &bytes)] {
            let p = tmp.path().join(name);
            fs_err::write(&p, b).unwrap();
            verify(&p, None, &NoProgress).unwrap_or_else(|e| panic!("{name} without key: {e}"));
        }
        verify(&tmp.path().join("original"), Some(&public), &NoProgress).unwrap();
        bytes
    };
    cases.push(Case {
        key: Some(public),
        ..case(
            "file and manifest entry changed after signing",
            tampered,
            &["signature", "does not match"],
        )
    });
    cases.push(Case {
        key: Some(public),
        ..case(
            "signature from another key",
            bundle_with(&good_manifest(), Some(&key(2)), good_payload()),
            &["signature", "does not match"],
        )
    });
    cases.push(Case {
        key: Some(public),
        ..case(
            "signature missing while a key is given",
            good.clone(),
            &["not signed"],
        )
    });
    cases
}

fn flip(data: &[u8], at: usize) -> Vec<u8> {
    let mut out = data.to_vec();
    out[at] ^= 0x01;
    out
}

fn newer_format() -> Vec<u8> {
    let mut value = serde_json::to_value(good_manifest()).unwrap();
    value["format"] = 3.into();
    value["min_installer_version"] = "0.9.0".into();
    value["files"] = serde_json::json!([{"renamed": "fields"}]);
    let raw = serde_json::to_vec(&value).unwrap();
    compress(&raw_tar(&[Raw::file("manifest.json", &raw)]))
}

fn check_refused(c: &Case, dir: &Path, io: IoMode) {
    let bundle = dir.join("hostile.tar.zst");
    fs_err::write(&bundle, &c.bytes).unwrap();
    let parent = dir.join("site");
    write_tree(&parent, &[("existing/file", b"keep me".to_vec())]);
    let before = listing(dir);

    let err = verify_detailed(&bundle, c.key.as_ref(), io, &NoProgress).expect_err(c.name);
    let message = err.to_string();
    eprintln!("{}: {message}", c.name);
    for want in &c.expect {
        assert!(
            message.contains(want.as_str()),
            "{} ({io}): verify said {message:?}, wanted {want:?}",
            c.name
        );
    }
    assert!(err.is_verification_failure(), "{}: {message}", c.name);

    let dest = parent.join("data");
    let err = extract_observed(&bundle, &dest, c.key.as_ref(), io, &NoObserver, &NoProgress)
        .expect_err(c.name);
    assert_eq!(
        err.to_string(),
        message,
        "{}: extract and verify disagree",
        c.name
    );
    assert_eq!(listing(dir), before, "{}: extraction left traces", c.name);
    assert!(!dest.exists());

    // An observer is shown only files that checked out, whatever else is wrong.
    let observer = CheckingObserver::default();
    let err = extract_observed(&bundle, &dest, c.key.as_ref(), io, &observer, &NoProgress)
        .expect_err(c.name);
    assert_eq!(err.to_string(), message, "{}", c.name);
    let wrong = observer.wrong.into_inner().unwrap();
    assert!(
        wrong.is_empty(),
        "{}: observer saw unverified {wrong:?}",
        c.name
    );
    assert_eq!(listing(dir), before, "{}: extraction left traces", c.name);
}

#[test]
fn every_hostile_bundle_is_refused_by_verify_and_extract_leaving_no_trace() {
    let cases = cases();
    assert!(cases.len() >= 30);
    for io in IoMode::ALL {
        for c in &cases {
            let tmp = tempfile::tempdir().unwrap();
            check_refused(c, tmp.path(), io);
        }
    }
}

#[test]
fn the_unmodified_base_bundle_is_accepted() {
    // Guards the suite: its cases fail for their own reason, not because the base is broken.
    let tmp = tempfile::tempdir().unwrap();
    let signer = key(1);
    let public = signer.verifying_key();
    let path = tmp.path().join("good.tar.zst");
    fs_err::write(
        &path,
        bundle_with(&good_manifest(), Some(&signer), good_payload()),
    )
    .unwrap();
    for io in IoMode::ALL {
        verify_detailed(&path, Some(&public), io, &NoProgress).unwrap();
        let dest = tmp.path().join(format!("dest-{io}"));
        extract_observed(&path, &dest, Some(&public), io, &NoObserver, &NoProgress).unwrap();
        assert_eq!(fs_err::read(dest.join(A)).unwrap(), a_data());
        assert_eq!(fs_err::read(dest.join(B)).unwrap(), b_data());
    }
}
