//! The bundle commands as a user runs them: `bundler keygen`, `installer inspect` and
//! `installer verify`, with their output and documented exit statuses (0 ok, 1 operational
//! failure, 2 usage, 3 verification failure).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bundle::write::WriteOptions;
use bundle::{
    BundleManifest, DELTA_FORMAT, FORMAT_VERSION, LockedFile, NoProgress, PypiTarget, RpmRepo,
    RpmSection, ToolInfo, Totals,
};
use e2e::tree::pack_tree;
use e2e::workspace_bin;

fn run(bin: &str, args: &[&str]) -> Output {
    Command::new(workspace_bin(bin))
        .args(args)
        .output()
        .expect("binary runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn base() -> BundleManifest {
    let repo = |id: &str| RpmRepo {
        id: id.into(),
        arch: "x86_64".into(),
        dir: format!("repos/{id}/x86_64"),
        upstream_url: format!("http://127.0.0.1:1/{id}/x86_64/os"),
        revision: Some("1700000000".into()),
        package_count: 2,
        package_bytes: 300,
        metadata: vec![],
        slim: false,
        signers: vec![],
        metadata_signer: None,
    };
    BundleManifest {
        format: FORMAT_VERSION,
        min_installer_version: None,
        base: None,
        bundle_id: String::new(),
        created: time::macros::datetime!(2026-05-01 12:00:00 UTC),
        tool: ToolInfo {
            name: "bundler".into(),
            version: "0.1.0".into(),
        },
        release: Some("10".into()),
        arches: vec!["x86_64".into()],
        rpm: Some(RpmSection {
            distro: "rocky".into(),
            gpgcheck: true,
            key_path: Some("keys/RPM-GPG-KEY-Rocky-10".into()),
            key_fingerprint: None,
            pinned_fingerprints: vec![],
            minor_release: None,
            repos: vec![repo("baseos"), repo("appstream")],
        }),
        pypi_targets: vec![PypiTarget {
            name: "cp312-manylinux_2_39-x86_64".into(),
            python_version: "3.12".into(),
            implementation: "cp".into(),
            machine: "x86_64".into(),
            glibc: "2.39".into(),
            index_url: "https://pypi.org/simple".into(),
            requirements: vec!["six".into()],
            requirements_source: None,
            lock: vec![LockedFile {
                name: "six".into(),
                version: "1.16.0".into(),
                filename: "six-1.16.0-py2.py3-none-any.whl".into(),
                url: "https://files.invalid/six.whl".into(),
                sha256: "0".repeat(64),
                size: 50,
                upload_time: None,
                requires_python: None,
                yanked: None,
                path: "pypi/files/six-1.16.0-py2.py3-none-any.whl".into(),
            }],
        }],
        kubespray: None,
        files: vec![],
        totals: Totals::default(),
    }
}

/// A small signed bundle with two repos, one PyPI target and a key file.
fn make_bundle(dir: &Path, key: &Path) -> PathBuf {
    let src = dir.join("tree");
    for (rel, size) in [
        ("repos/baseos/x86_64/Packages/a.rpm", 100),
        ("repos/baseos/x86_64/Packages/b.rpm", 200),
        ("repos/baseos/x86_64/repodata/repomd.xml", 10),
        ("repos/appstream/x86_64/Packages/c.rpm", 300),
        ("pypi/files/six-1.16.0-py2.py3-none-any.whl", 50),
        ("keys/RPM-GPG-KEY-Rocky-10", 7),
    ] {
        let path = src.join(rel);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(&path, vec![b'x'; size]).unwrap();
    }
    let out = dir.join("bundle.tar.zst");
    let opts = WriteOptions {
        signing_key: Some(bundle::sign::load_signing_key(key).unwrap()),
        ..WriteOptions::default()
    };
    pack_tree(&src, &out, base(), &opts, &NoProgress).unwrap();
    out
}

#[test]
fn keygen_inspect_and_verify_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("site");
    let prefix_s = prefix.to_str().unwrap();
    let o = run("bundler", &["keygen", "--out", prefix_s]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).0.contains("fingerprint: sha256:"));
    let again = run("bundler", &["keygen", "--out", prefix_s]);
    assert_eq!(again.status.code(), Some(1), "{:?}", text(&again));
    assert!(text(&again).1.contains("already exists"));

    let bundle = make_bundle(tmp.path(), &tmp.path().join("site.key"));
    let b = bundle.to_str().unwrap();

    let o = run("installer", &["inspect", b]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("signed:    yes"), "{out}");
    assert!(out.contains("cp312-manylinux_2_39-x86_64"), "{out}");
    assert!(out.contains("release:   10 (x86_64)"), "{out}");

    let o = run("installer", &["inspect", "--json", b]);
    let json: serde_json::Value =
        serde_json::from_slice(&o.stdout).expect("inspect --json is JSON");
    assert_eq!(json["files"], 6);
    assert_eq!(json["signed"], true);
    assert_eq!(json["repos"][0]["id"], "baseos");
    assert_eq!(json["repos"][0]["all"]["files"], 3);
    assert_eq!(json["repos"][0]["all"]["bytes"], 310);
    assert_eq!(json["repos"][1]["all"]["files"], 1);
    assert_eq!(json["pypi_targets"][0]["locked"]["files"], 1);
    assert_eq!(json["other"]["files"], 1);
    assert_eq!(json["tool"]["version"], "0.1.0");
    assert_eq!(json["created"], "2026-05-01T12:00:00Z");

    // --quiet: no progress on stderr, only the result on stdout.
    let o = run("installer", &["verify", "--quiet", b]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.is_empty(), "--quiet printed on stderr: {err}");
    assert!(
        out.contains("result:    OK") && out.contains("not checked"),
        "{out}"
    );

    let public = format!("{prefix_s}.pub");
    let o = run("installer", &["verify", b, "--key", &public]);
    assert!(o.status.success(), "{:?}", text(&o));
    assert!(text(&o).0.contains("signature: valid, key sha256:"));

    let other = tmp.path().join("other");
    assert!(
        run("bundler", &["keygen", "--out", other.to_str().unwrap()])
            .status
            .success()
    );
    let o = run(
        "installer",
        &["verify", b, "--key", &format!("{}.pub", other.display())],
    );
    assert_eq!(o.status.code(), Some(3), "{:?}", text(&o));
    assert!(
        text(&o).1.contains("signature: does not match key"),
        "{:?}",
        text(&o)
    );
}

/// `--io` and `KUBESPRAY_OFFLINE_IO` choose the I/O mode, both documented in `--help`; the flag
/// wins over the variable, and an unknown mode is a usage error naming the ones there are.
#[test]
fn the_io_mode_comes_from_the_flag_or_the_environment() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = bundle::sign::generate_keypair(&tmp.path().join("site")).unwrap();
    let bundle = make_bundle(tmp.path(), &keys.secret);
    let b = bundle.to_str().unwrap();
    let verify = |env: Option<&str>, args: &[&str]| {
        let mut cmd = Command::new(workspace_bin("installer"));
        cmd.args(["verify", "--quiet", b]).args(args);
        match env {
            Some(mode) => cmd.env(bundle::IO_MODE_ENV, mode),
            None => cmd.env_remove(bundle::IO_MODE_ENV),
        };
        cmd.output().expect("installer runs")
    };
    for mode in bundle::IoMode::NAMES {
        let o = verify(None, &["--io", mode]);
        assert!(o.status.success(), "--io {mode}: {:?}", text(&o));
        let o = verify(Some(mode), &[]);
        assert!(o.status.success(), "env {mode}: {:?}", text(&o));
    }
    let o = verify(Some("bogus"), &["--io", "buffered"]);
    assert!(o.status.success(), "the flag wins: {:?}", text(&o));
    for (env, args) in [(None, &["--io", "fast"][..]), (Some("fast"), &[][..])] {
        let o = verify(env, args);
        assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));
        let err = text(&o).1;
        assert!(err.contains("buffered") && err.contains("direct"), "{err}");
    }
    for (bin, args) in [
        ("installer", &["verify", "--help"][..]),
        ("installer", &["apply", "--help"][..]),
        ("bundler", &["build", "--help"][..]),
    ] {
        let help = text(&run(bin, args)).0;
        assert!(
            help.contains("--io <MODE>") && help.contains(bundle::IO_MODE_ENV),
            "{bin} {args:?}: {help}"
        );
    }
}

#[test]
fn damaged_bundles_exit_3_and_operational_failures_exit_1() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("k");
    bundle::sign::generate_keypair(&key).unwrap();
    let good = fs_err::read(make_bundle(tmp.path(), &tmp.path().join("k.key"))).unwrap();

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("truncated", good[..good.len() - 20].to_vec(), "truncated"),
        (
            "garbage",
            [good.clone(), b"trailing".to_vec()].concat(),
            "garbage after the end",
        ),
        (
            "corrupt",
            {
                let mut b = good.clone();
                let at = b.len() - 30;
                b[at] ^= 0xff;
                b
            },
            "corrupt zstd stream",
        ),
    ];
    for (name, bytes, want) in cases {
        let path = tmp.path().join(format!("{name}.tar.zst"));
        fs_err::write(&path, bytes).unwrap();
        let o = run("installer", &["verify", "--quiet", path.to_str().unwrap()]);
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(3), "{name}: {err}");
        assert!(
            err.contains(want) && err.contains("verification failed"),
            "{name}: {err}"
        );
    }

    let o = run(
        "installer",
        &[
            "verify",
            tmp.path().join("absent.tar.zst").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    // The path once, and the cause once (the error's message and its source both said it).
    let (_, err) = text(&o);
    assert!(err.contains("absent.tar.zst"), "{err}");
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");
    let o = run("installer", &["verify"]);
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));

    let mut value = serde_json::to_value(base()).unwrap();
    value["format"] = 7.into();
    let raw = serde_json::to_vec(&value).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(raw.len() as u64);
    h.set_mode(0o644);
    tar.append_data(&mut h, "manifest.json", raw.as_slice())
        .unwrap();
    let newer = tmp.path().join("newer.tar.zst");
    fs_err::write(
        &newer,
        zstd::encode_all(tar.into_inner().unwrap().as_slice(), 1).unwrap(),
    )
    .unwrap();
    let o = run("installer", &["inspect", newer.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(3), "{:?}", text(&o));
    assert!(
        text(&o).1.contains(&format!(
            "bundle format 7 needs a newer installer; this is installer 0.1.0 which reads format {DELTA_FORMAT}"
        )),
        "{:?}",
        text(&o)
    );
}

#[test]
fn bundler_exit_status_names_who_is_at_fault() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.tar.zst");
    let out_s = out.to_str().unwrap();
    let not_elf = tmp.path().join("installer");
    fs_err::write(&not_elf, "#!/bin/sh\n").unwrap();
    let absent = tmp.path().join("absent.manifest.json");
    // Each is refused before any download: bad flag values and an unknown release are usage.
    for (args, says) in [
        (
            vec![
                "build",
                "--release",
                "10",
                "--no-installer",
                "--since",
                absent.to_str().unwrap(),
            ],
            "--since",
        ),
        (
            vec![
                "build",
                "--release",
                "10",
                "--installer",
                not_elf.to_str().unwrap(),
            ],
            "--installer",
        ),
        (
            vec!["build", "--release", "99", "--no-installer"],
            "rocky-99.toml",
        ),
        (vec!["build", "--bogus-flag"], "--bogus-flag"),
        // Refused before the release key is fetched from the (unreachable) mirror.
        (
            vec![
                "build",
                "--no-installer",
                "--mirror",
                "http://127.0.0.1:9",
                "--kubespray-source",
                "ftp://mirror.example/kubespray",
            ],
            "--kubespray-source",
        ),
        // Refused before an unshipped release's requirements are fetched.
        (
            vec![
                "build",
                "--no-installer",
                "--kubespray",
                "9.9.9",
                "--kubespray-source",
                "http://127.0.0.1:9",
                "--repo",
                "bogus",
            ],
            "--repo bogus",
        ),
        (
            vec![
                "build",
                "--no-installer",
                "--no-rpm",
                "--no-files",
                "--no-images",
                "--kubespray",
                "9.9.9",
                "--kubespray-source",
                "http://127.0.0.1:9",
                "--exclude-newer",
                "yesterday",
            ],
            "--exclude-newer",
        ),
        (
            vec!["build", "--no-installer", "--index-url", "pypi.org/simple"],
            "--index-url",
        ),
    ] {
        let o = run("bundler", &[args.as_slice(), &["-o", out_s]].concat());
        let (_, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
    }
    assert!(!out.exists());

    // An I/O failure is operational.
    let o = run(
        "bundler",
        &[
            "keygen",
            "--out",
            tmp.path().join("no/such/dir/k").to_str().unwrap(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{:?}", text(&o));
    assert!(text(&o).1.contains("no/such/dir"), "{:?}", text(&o));
    assert_eq!(
        text(&o).1.matches("No such file or directory").count(),
        1,
        "{:?}",
        text(&o)
    );
}
