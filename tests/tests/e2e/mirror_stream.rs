//! `bundler build` packs while it downloads: the streamed bundle is byte-identical to what the
//! two-pass writer makes of the same manifest and files, and a rebuild into a bundle that
//! already holds exactly that content keeps it (nothing rewritten) unless it is damaged or
//! would differ (here: signed now).

use std::path::Path;
use std::process::Output;

use bundle::progress::NoProgress;
use bundle::write::{WriteOptions, write_bundle};
use e2e::mirror::{MirrorSpec, generate_mirror};
use e2e::server::{Faults, TestServer};
use e2e::workspace_bin;

fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {stdout}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn streamed_build_equals_two_pass_and_an_up_to_date_output_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let m = generate_mirror(&MirrorSpec::small(tmp.path().join("mirror")))
        .expect("generate mirror (needs createrepo_c, modifyrepo_c)");
    let server = TestServer::start(&m.root, Faults::none()).unwrap();
    let out = tmp.path().join("b.tar.zst");
    let build = |epoch: Option<&str>, more: &[&str]| {
        let mut cmd = e2e::harness::rpm_only_build(&workspace_bin("bundler"));
        cmd.args(["--mirror", &server.url()])
            .arg("--gpg-key")
            .arg(&m.key_path)
            .arg("--cache")
            .arg(tmp.path().join("cache"))
            .arg("-o")
            .arg(&out)
            .args(more);
        match epoch {
            Some(e) => cmd.env("SOURCE_DATE_EPOCH", e),
            None => cmd.env_remove("SOURCE_DATE_EPOCH"),
        };
        ok(cmd.output().unwrap())
    };

    let first = build(Some("1700000000"), &[]);
    assert!(!first.contains("up to date"), "{first}");
    let streamed = fs_err::read(&out).unwrap();

    // The two-pass writer, given the same manifest and the same files, writes the same bytes.
    let tree = tmp.path().join("tree");
    let manifest = bundle::read::extract(&out, &tree, None, &NoProgress).unwrap();
    let sources: Vec<_> = manifest.files.iter().map(|f| tree.join(&f.path)).collect();
    let two_pass = tmp.path().join("two-pass.tar.zst");
    write_bundle(
        &two_pass,
        &manifest,
        &sources,
        &WriteOptions::default(),
        &NoProgress,
    )
    .unwrap();
    assert!(
        fs_err::read(&two_pass).unwrap() == streamed,
        "streamed and two-pass bundles differ"
    );

    // Same content, another clock: the bundle on disk is kept as it is, and since it is the
    // very file the first build wrote (its stamp in the cache), it is not read again.
    let mtime = |p: &Path| fs_err::metadata(p).unwrap().modified().unwrap();
    let before = mtime(&out);
    let again = build(None, &[]);
    assert!(
        again.contains("already up to date (unchanged since it was written), nothing rewritten"),
        "{again}"
    );
    assert_eq!(mtime(&out), before);
    assert!(fs_err::read(&out).unwrap() == streamed);

    // Touched (new mtime and ctime), same bytes: checked in full, kept, and stamped again.
    let file = fs_err::File::options().write(true).open(&out).unwrap();
    file.file()
        .set_modified(std::time::SystemTime::now())
        .unwrap();
    drop(file);
    let checked = build(None, &[]);
    assert!(
        checked.contains("already up to date (checked in full), nothing rewritten"),
        "{checked}"
    );
    let stamped = build(None, &[]);
    assert!(
        stamped.contains("(unchanged since it was written)"),
        "{stamped}"
    );

    // One damaged byte in the payload, with the mtime set back: the ctime still tells, the
    // full check finds the byte, and the bundle is rebuilt.
    let touched = mtime(&out);
    let mut damaged = streamed.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0x40;
    fs_err::write(&out, &damaged).unwrap();
    let file = fs_err::File::options().write(true).open(&out).unwrap();
    file.file().set_modified(touched).unwrap();
    drop(file);
    let rebuilt = build(Some("1700000000"), &[]);
    assert!(!rebuilt.contains("up to date"), "{rebuilt}");
    assert!(fs_err::read(&out).unwrap() == streamed);

    // Signing changes what would be written, so the unsigned bundle is not kept.
    let keys = bundle::sign::generate_keypair(&tmp.path().join("site")).unwrap();
    let signed = build(None, &["--sign", keys.secret.to_str().unwrap()]);
    assert!(
        !signed.contains("up to date") && signed.contains("signed"),
        "{signed}"
    );
    let public = bundle::sign::load_verifying_key(&keys.public).unwrap();
    bundle::read::verify(&out, Some(&public), &NoProgress).expect("signed bundle verifies");
    let kept = build(None, &["--sign", keys.secret.to_str().unwrap()]);
    assert!(kept.contains("already up to date"), "{kept}");
}
