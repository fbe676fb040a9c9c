//! Minor releases: `--release 10` is the moving latest, `--release 10.1` exactly 10.1 from the
//! vault layout (`<vault>/10.1/<Repo>/<arch>/os/`), falling back to the mirrors for a minor
//! release not vaulted yet. The manifest records the minor release the repos hold (the version
//! of `rocky-release`), `installer inspect` shows it, and a tree holding another minor release
//! than asked for is refused.
//!
//! The test site copies Rocky's layout: `pub/rocky/10` holds 10.2 and `pub/rocky/10.2` links to
//! it; `vault/rocky/10.1` holds 10.1.

use std::path::Path;
use std::process::Output;

use bundle::progress::NoProgress;
use e2e::harness::assert_success as ok;
use e2e::harness::{bundler, installer};
use e2e::mirror::{MirrorSpec, generate_mirror};
use e2e::server::{Faults, TestServer};

fn tree(root: &Path, release: &str, minor: &str) {
    let mut spec = MirrorSpec::small(root);
    spec.release = release.into();
    spec.minor_release = minor.into();
    spec.filler_packages = 0;
    generate_mirror(&spec).unwrap();
}

fn build(tmp: &Path, release: &str, url: &str, out: &Path) -> Output {
    bundler()
        .args(["build", "--quiet", "--no-pypi", "--no-files", "--no-images"])
        .args(["--no-installer", "--release", release])
        .arg("--mirror")
        .arg(format!("{url}/pub/rocky"))
        .arg("--vault")
        .arg(format!("{url}/vault/rocky"))
        .arg("--gpg-key")
        .arg(tmp.join("site/pub/rocky/RPM-GPG-KEY-kubespray-test"))
        .arg("--cache")
        .arg(tmp.join("cache"))
        .arg("-o")
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn minor_releases_come_from_the_vault_and_are_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let site = tmp.path().join("site");
    tree(&site.join("pub/rocky"), "10", "10.2");
    std::os::unix::fs::symlink("10", site.join("pub/rocky/10.2")).unwrap();
    tree(&site.join("vault/rocky"), "10.1", "10.1");
    // A tree under 10.3 that holds 10.2: a mirror serving the wrong minor release.
    tree(&site.join("vault/rocky"), "10.3", "10.2");
    let server = TestServer::start(&site, Faults::none()).unwrap();
    let url = server.url();

    // 10.1: from the vault.
    let out = tmp.path().join("10.1.tar.zst");
    ok(build(tmp.path(), "10.1", &url, &out));
    let manifest = bundle::read::verify(&out, None, &NoProgress).unwrap();
    assert_eq!(
        manifest.release.as_deref(),
        Some("10"),
        "the served layout is per major"
    );
    let rpm = manifest.rpm.as_ref().unwrap();
    assert_eq!(rpm.minor_release.as_deref(), Some("10.1"));
    for repo in &rpm.repos {
        assert!(
            repo.upstream_url
                .starts_with(&format!("{url}/vault/rocky/10.1/")),
            "{}",
            repo.upstream_url
        );
    }
    let inspect = ok(installer().arg("inspect").arg(&out).output().unwrap());
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(text.contains("release:   10, minor release 10.1"), "{text}");
    let inspect = ok(installer()
        .args(["inspect", "--json"])
        .arg(&out)
        .output()
        .unwrap());
    let json: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert_eq!(json["minor_release"], "10.1");

    // 10, the moving latest, and 10.2 (not in the vault yet): both from the mirror's tree of
    // that name, both 10.2.
    for (asked, tree) in [("10", "pub/rocky/10/"), ("10.2", "pub/rocky/10.2/")] {
        let out = tmp.path().join(format!("{asked}.tar.zst"));
        ok(build(tmp.path(), asked, &url, &out));
        let rpm = bundle::read::verify(&out, None, &NoProgress)
            .unwrap()
            .rpm
            .unwrap();
        assert_eq!(rpm.minor_release.as_deref(), Some("10.2"), "{asked}");
        let upstream = &rpm.repos[0].upstream_url;
        assert!(upstream.starts_with(&format!("{url}/{tree}")), "{upstream}");
    }

    // 10.3 asked for, 10.2 found: refused, nothing written.
    let out = tmp.path().join("10.3.tar.zst");
    let run = build(tmp.path(), "10.3", &url, &out);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("not release 10.3"), "{stderr}");
    assert!(stderr.contains("rocky-release-10.2"), "{stderr}");
    assert!(!out.exists());
}
