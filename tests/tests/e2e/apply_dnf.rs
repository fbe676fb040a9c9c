//! `installer apply` on a bundle of a generated Rocky-like mirror (signed RPMs, comps,
//! updateinfo): Debian's dnf, through a real nginx serving the applied tree with the generated
//! conf.d file, installs a package and its dependencies with `gpgcheck=1` and the served release
//! key, lists the carried groups and advisories; a newer bundle updates only the repos it
//! changes, and `--keep-old` keeps what it dropped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::harness::*;
use e2e::localbundle::{LocalBundleSpec, build_local_bundle};
use e2e::mirror::{MirrorSpec, generate_mirror};
use e2e::rpmgen::{PackageSpec, write_package};

fn spec(mirror: &Path, created: &str) -> LocalBundleSpec {
    LocalBundleSpec {
        mirror_root: Some(mirror.to_path_buf()),
        key: Some(mirror.join(e2e::rpmgen::TEST_KEY_FILE)),
        release: "10".into(),
        arches: vec!["x86_64".into()],
        wheels: None,
        created: created.into(),
    }
}

struct Dnf {
    installroot: PathBuf,
    port: u16,
}

impl Dnf {
    fn run(&self, args: &[&str]) -> Output {
        let base = format!("http://127.0.0.1:{}/rocky", self.port);
        let mut cmd = isolated_dnf(&self.installroot);
        for repo in ["baseos", "appstream", "extras"] {
            cmd.arg(format!("--repofrompath={repo},{base}/10/{repo}/"))
                .arg(format!("--setopt={repo}.gpgcheck=1"))
                .arg(format!(
                    "--setopt={repo}.gpgkey={base}/RPM-GPG-KEY-Rocky-10"
                ));
        }
        cmd.args(args)
            .output()
            .expect("dnf is installed (Debian package dnf)")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "dnf {args:?} failed:\n{text}");
        text
    }
}

fn mtime(p: &Path) -> std::time::SystemTime {
    fs_err::metadata(p).unwrap().modified().unwrap()
}

#[test]
fn apply_rpm_repos_serve_dnf_with_gpgcheck_groups_and_advisories() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = tmp.path().join("mirror");
    generate_mirror(&MirrorSpec::small(&mirror)).unwrap();
    let bundle1 = tmp.path().join("b1.tar.zst");
    build_local_bundle(
        &spec(&mirror, "2026-09-01T00:00:00Z"),
        &tmp.path().join("w1"),
        &bundle1,
    )
    .unwrap();
    let root = tmp.path().join("root");
    let port = free_port();
    let out = run_ok(&mut installer_apply(&bundle1, &root, port, &[]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("repo baseos"), "{text}");
    let key = root.join("data/repos/rocky/RPM-GPG-KEY-Rocky-10");
    assert_eq!(
        fs_err::read(&key).unwrap(),
        fs_err::read(mirror.join(e2e::rpmgen::TEST_KEY_FILE)).unwrap()
    );
    assert!(root.join("etc/pki/rpm-gpg/RPM-GPG-KEY-Rocky-10").exists());

    let nginx = Nginx::start(&root, port);
    let (code, _, _) = curl(&nginx.url("/rocky/10/baseos/repodata/repomd.xml"), None);
    assert_eq!(code, "200");
    let (code, ctype, _) = curl(&nginx.url("/rocky/10/"), None);
    assert_eq!(
        (code.as_str(), ctype.as_str()),
        ("200", "text/html"),
        "autoindex on repos"
    );
    let (code, _, _) = curl(&nginx.url("/rocky/10/baseos/.installer-state.json"), None);
    assert_eq!(code, "404");

    let installroot = tmp.path().join("installroot");
    let dnf = Dnf { installroot, port };
    let install = dnf.ok(&["install", "coreutils"]);
    for dep in ["coreutils-common", "glibc", "bash", "filesystem"] {
        assert!(
            install.contains(dep),
            "{dep} not installed with coreutils:\n{install}"
        );
    }
    let rpmdb = Command::new("rpm")
        .arg("--root")
        .arg(&dnf.installroot)
        .args(["-q", "coreutils", "glibc"])
        .output()
        .unwrap();
    assert!(
        rpmdb.status.success(),
        "{}",
        String::from_utf8_lossy(&rpmdb.stdout)
    );
    let groups = dnf.ok(&["group", "list"]);
    assert!(
        groups.contains("Core") && groups.contains("Basic Web Server"),
        "{groups}"
    );
    // dnf lists advisories for installed packages: install the older openssl-libs build the
    // carried advisory is about.
    dnf.ok(&["install", "openssl-libs-1:3.2.2-12.el10"]);
    let advisories = dnf.ok(&["updateinfo", "list", "--all"]);
    assert!(advisories.contains("RLSA-2025:0001"), "{advisories}");

    // A newer bundle: AppStream loses two filler packages and gains one; BaseOS and extras
    // are the same, so they must not be rewritten.
    let mirror2 = tmp.path().join("mirror2");
    Command::new("cp")
        .arg("-al")
        .arg(&mirror)
        .arg(&mirror2)
        .status()
        .unwrap();
    let appstream = mirror2.join("10/AppStream/x86_64/os");
    let mut fillers: Vec<PathBuf> = walk_rpms(&appstream)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("-gen"))
        .collect();
    fillers.sort();
    let dropped: Vec<String> = fillers[..2]
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    for p in &fillers[..2] {
        fs_err::remove_file(p).unwrap();
    }
    write_package(
        &PackageSpec::new("kso-newcomer", "1.0", "noarch"),
        &appstream,
        true,
    )
    .unwrap();
    let bundle2 = tmp.path().join("b2.tar.zst");
    build_local_bundle(
        &spec(&mirror2, "2026-10-01T00:00:00Z"),
        &tmp.path().join("w2"),
        &bundle2,
    )
    .unwrap();

    let repomd = |id: &str| root.join(format!("data/repos/rocky/10/{id}/repodata/repomd.xml"));
    let before = (mtime(&repomd("baseos")), mtime(&repomd("extras")));
    let out = run_ok(&mut installer_apply(&bundle2, &root, port, &[]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rebuild: +1 -2 packages"), "{text}");
    assert_eq!(
        (mtime(&repomd("baseos")), mtime(&repomd("extras"))),
        before,
        "{text}"
    );
    let appstream_live = root.join("data/repos/rocky/10/appstream");
    let live: Vec<String> = walk_rpms(&appstream_live)
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert!(live.iter().any(|n| n.starts_with("kso-newcomer-1.0")));
    assert!(
        dropped.iter().all(|d| !live.contains(d)),
        "dropped packages must go"
    );
    let avail = dnf.ok(&["--refresh", "list", "--available", "kso-newcomer"]);
    assert!(avail.contains("kso-newcomer"), "{avail}");

    // --keep-old over the first bundle keeps the dropped packages, in the tree and the metadata.
    let root_keep = tmp.path().join("root-keep");
    run_ok(&mut installer_apply(&bundle1, &root_keep, port, &[]));
    run_ok(&mut installer_apply(
        &bundle2,
        &root_keep,
        port,
        &["--keep-old"],
    ));
    let kept: Vec<String> = walk_rpms(&root_keep.join("data/repos/rocky/10/appstream"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert!(
        dropped.iter().all(|d| kept.contains(d)),
        "--keep-old lost {dropped:?}"
    );
    assert_eq!(kept.len(), live.len() + 2);
}

fn walk_rpms(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in fs_err::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk_rpms(&path));
        } else if path.extension().is_some_and(|e| e == "rpm") {
            out.push(path);
        }
    }
    out
}
