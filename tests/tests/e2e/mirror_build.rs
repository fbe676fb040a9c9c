//! `bundler build` end to end against a generated Rocky-like mirror on 127.0.0.1: the bundle
//! verifies, its extracted repos let Debian's dnf install with gpgcheck=1, slim mode closes
//! over dependencies, hostile mirrors are survived or refused, and a killed build resumes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bundle::progress::NoProgress;
use e2e::mirror::{GeneratedMirror, MirrorSpec, generate_mirror};
use e2e::rpmgen::TEST_KEY_FILE;
use e2e::server::{Faults, TestServer};
use e2e::workspace_bin;

fn mirror(dir: &Path, tweak: impl FnOnce(&mut MirrorSpec)) -> GeneratedMirror {
    let mut spec = MirrorSpec::small(dir.join("mirror"));
    tweak(&mut spec);
    generate_mirror(&spec).expect("generate mirror (needs createrepo_c, modifyrepo_c)")
}

/// What the installer does with a slim repo: the unpacked bundle's repodata replaced by
/// createrepo_c's for the packages it carries.
fn regenerate_repodata(tree: &Path) {
    for repo in ["baseos", "appstream", "extras"] {
        let dir = tree.join("repos").join(repo).join("x86_64");
        fs_err::remove_dir_all(dir.join("repodata")).unwrap();
        ok(Command::new("createrepo_c")
            .arg("--quiet")
            .arg(&dir)
            .output()
            .unwrap());
    }
}

/// `bundler plan` of the RPM repos alone against `url`, with the test key and the cache under `dir`.
fn rpm_plan(dir: &Path, mirror: &GeneratedMirror, url: &str, more: &[&str]) -> Command {
    let mut cmd = bundler();
    cmd.args([
        "plan",
        "--mirror",
        url,
        "--no-pypi",
        "--no-files",
        "--no-images",
    ])
    .args(more)
    .arg("--cache")
    .arg(dir.join("cache"))
    .arg("--gpg-key")
    .arg(&mirror.key_path)
    .arg("--quiet");
    cmd
}

/// `bundler build` against `url` with the generated test key and a cache under `dir`.
fn build_cmd(
    dir: &Path,
    mirror: &GeneratedMirror,
    url: &str,
    output: &Path,
    more: &[&str],
) -> Command {
    let mut cmd = e2e::harness::rpm_only_build(&workspace_bin("bundler"));
    cmd.args(["--mirror", url]).args([
        "--gpg-key".as_ref(),
        mirror.key_path.as_os_str(),
        "--cache".as_ref(),
        dir.join("cache").as_os_str(),
        "-o".as_ref(),
        output.as_os_str(),
    ]);
    cmd.args(more);
    cmd
}

use e2e::harness::assert_success as ok;
use e2e::harness::{bundler, installer};

/// Bytes of every repo's repomd.xml and its signature: what a build fetches again even with a
/// warm cache.
fn repomd_bytes(m: &GeneratedMirror) -> u64 {
    m.repos
        .iter()
        .flat_map(|r| ["repomd.xml", "repomd.xml.asc"].map(|f| r.path.join("repodata").join(f)))
        .map(|p| fs_err::metadata(p).unwrap().len())
        .sum()
}

fn extract(bundle: &Path, dest: &Path) -> bundle::BundleManifest {
    bundle::read::extract(bundle, dest, None, &NoProgress).expect("bundle extracts")
}

/// A slim build (`--packages PACKAGES`) from `mirror` into `output`, extracted into
/// `<dir>/tree`: its manifest, whose every repo says it is slim.
fn slim_bundle(
    dir: &Path,
    mirror: &GeneratedMirror,
    url: &str,
    output: &Path,
    packages: &str,
) -> bundle::BundleManifest {
    ok(
        build_cmd(dir, mirror, url, output, &["--packages", packages])
            .output()
            .unwrap(),
    );
    let manifest = extract(output, &dir.join("tree"));
    let rpm = manifest.rpm.as_ref().unwrap();
    assert!(rpm.repos.iter().all(|r| r.slim));
    manifest
}

/// Install `packages` with Debian's dnf from the extracted repos, gpgcheck=1 with the key the
/// bundle carries. Returns the installed package names.
fn dnf_install(tree: &Path, repos: &[&str], root: &Path, packages: &[&str]) -> Vec<String> {
    let reposdir = root.with_extension("repos.d");
    fs_err::create_dir_all(&reposdir).unwrap();
    let mut conf = String::new();
    for id in repos {
        conf.push_str(&format!(
            "[{id}]\nname={id}\nbaseurl=file://{}/repos/{id}/x86_64\ngpgcheck=1\ngpgkey=file://{}/keys/{TEST_KEY_FILE}\n\n",
            tree.display(),
            tree.display()
        ));
    }
    fs_err::write(reposdir.join("bundle.repo"), conf).unwrap();
    let out = Command::new("dnf")
        .args([
            "-y",
            "-q",
            "--noplugins",
            "--releasever=10",
            "--forcearch=x86_64",
        ])
        .arg(format!("--installroot={}", root.display()))
        .arg(format!("--setopt=reposdir={}", reposdir.display()))
        .arg(format!(
            "--setopt=cachedir={}",
            root.with_extension("dnfcache").display()
        ))
        .arg("install")
        .args(packages)
        .output()
        .expect("dnf runs");
    ok(out);
    let q = ok(Command::new("rpm")
        .args(["--root"])
        .arg(root)
        .args(["-qa", "--qf", "%{NAME}\n"])
        .output()
        .unwrap());
    String::from_utf8_lossy(&q.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn build_verifies_carries_metadata_and_dnf_installs_with_gpgcheck() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mirror(tmp.path(), |_| {});
    let server = TestServer::start(&m.root, Faults::none()).unwrap();
    let out = tmp.path().join("b.tar.zst");
    ok(build_cmd(tmp.path(), &m, &server.url(), &out, &[])
        .output()
        .unwrap());

    ok(installer().arg("verify").arg(&out).output().unwrap());
    let manifest = bundle::read::verify(&out, None, &NoProgress).expect("bundle verifies");
    assert!(tmp.path().join("b.tar.zst.sha256").is_file());
    let rpm = manifest.rpm.as_ref().expect("rpm section");
    assert!(rpm.gpgcheck);
    assert_eq!(
        rpm.key_path.as_deref(),
        Some(&*format!("keys/{TEST_KEY_FILE}"))
    );
    assert_eq!(
        rpm.key_fingerprint.as_deref(),
        Some(e2e::rpmgen::TEST_KEY_FINGERPRINT)
    );
    let ids: Vec<_> = rpm.repos.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["baseos", "appstream", "extras"]);
    for repo in &rpm.repos {
        let upstream = m.repo(
            match repo.id.as_str() {
                "baseos" => "BaseOS",
                "appstream" => "AppStream",
                _ => "extras",
            },
            "x86_64",
        );
        assert_eq!(
            repo.package_count as usize,
            upstream.packages.len(),
            "{}",
            repo.id
        );
        assert_eq!(repo.package_bytes, upstream.package_bytes);
        assert_eq!(repo.revision.as_deref(), Some("1750000000"));
        let kinds: Vec<_> = repo.metadata.iter().map(|r| r.kind.as_str()).collect();
        if repo.id != "extras" {
            assert!(
                kinds.contains(&"group") && kinds.contains(&"updateinfo"),
                "{kinds:?}"
            );
        }
    }
    let appstream = &rpm.repos[1];
    assert!(
        appstream
            .metadata
            .iter()
            .any(|r| r.path.ends_with("-PRIMARY.xml.gz")),
        "Peridot-style names carried as they are"
    );

    // The extracted tree is a repository as it is (upstream metadata, no regeneration).
    let tree = tmp.path().join("tree");
    extract(&out, &tree);
    let installed = dnf_install(
        &tree,
        &["baseos", "appstream", "extras"],
        &tmp.path().join("root"),
        &["nginx", "container-tools", "epel-release"],
    );
    for name in [
        "nginx",
        "nginx-core",
        "openssl-libs",
        "glibc",
        "git-core",
        "curl",
        "epel-release",
    ] {
        assert!(
            installed.iter().any(|n| n == name),
            "{name} not installed: {installed:?}"
        );
    }

    // A second build is served from the cache; plan says nothing is left to download.
    let served = server.body_bytes();
    let again = tmp.path().join("again.tar.zst");
    ok(build_cmd(tmp.path(), &m, &server.url(), &again, &[])
        .output()
        .unwrap());
    let repomd_bytes: u64 = repomd_bytes(&m);
    assert_eq!(
        server.body_bytes() - served,
        repomd_bytes,
        "warm cache fetches only repomd.xml and its signature"
    );
    let plan = ok(rpm_plan(tmp.path(), &m, &server.url(), &["--json"])
        .output()
        .unwrap());
    let lines: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    for line in lines.as_array().unwrap() {
        assert_eq!(line["bytes_to_download"], 0, "{line}");
        assert!(line["packages"].as_u64().unwrap() > 0);
    }
}

/// The names of the shipped Kubespray node set, as dnf would be asked for them.
fn kubespray_node_set() -> Vec<String> {
    let text = fs_err::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../manifests/kubespray-rocky10-packages.txt"
    ))
    .unwrap();
    text.lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

#[test]
fn kubespray_node_kit_resolves_and_dnf_installs_it_into_an_empty_root() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mirror(tmp.path(), |s| s.filler_packages = 30);
    let server = TestServer::start(&m.root, Faults::none()).unwrap();

    // plan shows what a full mirror and the kit would take.
    let plan = ok(rpm_plan(tmp.path(), &m, &server.url(), &[])
        .output()
        .unwrap());
    let text = String::from_utf8_lossy(&plan.stdout);
    let size = |prefix: &str| -> u64 {
        let line = text
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in:\n{text}"));
        line.rsplit(", ")
            .next()
            .unwrap()
            .trim_end_matches(" bytes")
            .parse()
            .unwrap()
    };
    let (full, kit) = (size("full mirror:"), size("Kubespray node kit"));
    assert_eq!(full, m.total_bytes(), "{text}");
    assert!(kit * 2 < full, "{text}");

    let out = tmp.path().join("kit.tar.zst");
    let manifest = slim_bundle(tmp.path(), &m, &server.url(), &out, "@kubespray");
    let tree = tmp.path().join("tree");
    let rpm = manifest.rpm.unwrap();
    assert_eq!(
        rpm.repos.iter().map(|r| r.package_bytes).sum::<u64>(),
        kit,
        "the build carries what plan said"
    );
    let carried: Vec<&str> = manifest
        .files
        .iter()
        .filter_map(|f| f.path.strip_suffix(".rpm"))
        .collect();
    for wanted in [
        "kernel-modules-extra-",
        "kernel-core-",
        "iptables-nft-",
        "conntrack-tools-",
    ] {
        assert!(
            carried
                .iter()
                .any(|p| p.rsplit('/').next().unwrap().starts_with(wanted)),
            "{wanted} missing from {carried:?}"
        );
    }

    regenerate_repodata(&tree);
    let names = kubespray_node_set();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let installed = dnf_install(
        &tree,
        &["baseos", "appstream", "extras"],
        &tmp.path().join("root"),
        &names,
    );
    for name in [
        "kernel-modules-extra",
        "iptables-nft",
        "conntrack-tools",
        "container-selinux",
        "python3-libselinux",
        "socat",
    ] {
        assert!(installed.iter().any(|n| n == name), "{name}: {installed:?}");
    }
}

#[test]
fn slim_closure_installs_into_empty_root_and_is_much_smaller() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mirror(tmp.path(), |s| s.filler_packages = 30);
    let server = TestServer::start(&m.root, Faults::none()).unwrap();
    let list = tmp.path().join("packages.txt");
    fs_err::write(
        &list,
        "# web node\nnginx\ncontainer-tools.noarch\nepel-*\nchrony  # needs /bin/sh\n",
    )
    .unwrap();
    let out = tmp.path().join("slim.tar.zst");
    let manifest = slim_bundle(tmp.path(), &m, &server.url(), &out, list.to_str().unwrap());
    let tree = tmp.path().join("tree");
    let rpm = manifest.rpm.unwrap();
    let slim_bytes: u64 = rpm.repos.iter().map(|r| r.package_bytes).sum();
    assert!(
        slim_bytes * 5 < m.total_bytes(),
        "slim {slim_bytes} vs full {}",
        m.total_bytes()
    );
    let names: Vec<String> = manifest
        .files
        .iter()
        .filter(|f| f.path.ends_with(".rpm"))
        .map(|f| f.path.rsplit('/').next().unwrap().to_string())
        .collect();
    let bundled = |prefix: &str| names.iter().any(|n| n.starts_with(prefix));
    assert!(
        bundled("publicsuffix-list"),
        "Recommends included by default"
    );
    assert!(bundled("openssl-libs-3.2.2-16"), "newest EVR");
    assert!(!bundled("openssl-libs-3.2.2-12"), "older EVR left out");
    assert!(bundled("bash-"), "file dependency /bin/sh resolved");
    assert!(bundled("nginx-filesystem"), "rich dependency resolved");

    // What the installer does with a slim repo: regenerate its metadata, then dnf uses it.
    regenerate_repodata(&tree);
    let installed = dnf_install(
        &tree,
        &["baseos", "appstream", "extras"],
        &tmp.path().join("root"),
        &["nginx", "container-tools", "epel-release", "chrony"],
    );
    assert!(installed.iter().any(|n| n == "nginx"), "{installed:?}");
    assert!(installed.iter().any(|n| n == "bash"), "{installed:?}");

    let lean = tmp.path().join("lean.tar.zst");
    ok(build_cmd(
        tmp.path(),
        &m,
        &server.url(),
        &lean,
        &["--packages", list.to_str().unwrap(), "--no-weak-deps"],
    )
    .output()
    .unwrap());
    let lean_manifest = bundle::read::read_manifest(&lean).unwrap().manifest;
    let lean_has = |part: &str| lean_manifest.files.iter().any(|f| f.path.contains(part));
    assert!(!lean_has("publicsuffix-list"), "no weak deps");
    // chrony only recommends tzdata, but it requires /usr/share/zoneinfo/UTC, which is in
    // filelists and not in primary: tzdata comes in without weak deps too.
    assert!(
        lean_has("/tzdata-"),
        "a file requirement found only in filelists"
    );

    // An unknown name is a clear usage problem, not an empty bundle.
    fs_err::write(&list, "no-such-package\n").unwrap();
    let bad = build_cmd(
        tmp.path(),
        &m,
        &server.url(),
        &tmp.path().join("x.tar.zst"),
        &["--packages", list.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no-such-package"));
}

#[test]
fn flaky_mirror_build_completes_with_every_file_matching_upstream() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mirror(tmp.path(), |_| {});
    let server = TestServer::start(&m.root, Faults::flaky(11)).unwrap();
    let out = tmp.path().join("b.tar.zst");
    ok(build_cmd(tmp.path(), &m, &server.url(), &out, &[])
        .output()
        .unwrap());
    assert!(
        server
            .stats
            .faults
            .load(std::sync::atomic::Ordering::SeqCst)
            >= 5
    );
    let tree = tmp.path().join("tree");
    let manifest = extract(&out, &tree);
    let mut compared = 0;
    for repo in manifest.rpm.as_ref().unwrap().repos.iter() {
        let dir_name = match repo.id.as_str() {
            "baseos" => "BaseOS",
            "appstream" => "AppStream",
            _ => "extras",
        };
        let upstream = &m.repo(dir_name, "x86_64").path;
        for f in manifest
            .files
            .iter()
            .filter(|f| f.path.starts_with(&repo.dir))
        {
            let rel = &f.path[repo.dir.len() + 1..];
            assert_eq!(
                fs_err::read(tree.join(&f.path)).unwrap(),
                fs_err::read(upstream.join(rel)).unwrap(),
                "{}",
                f.path
            );
            compared += 1;
        }
    }
    assert!(compared > 40, "{compared}");
}

/// A build into `<dir>/b.tar.zst` that must fail verification (exit 3): its stderr.
fn refused_build(dir: &Path, mirror: &GeneratedMirror, url: &str) -> String {
    let result = build_cmd(dir, mirror, url, &dir.join("b.tar.zst"), &[])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&result.stderr).into_owned();
    assert_eq!(result.status.code(), Some(3), "{stderr}");
    stderr
}

#[test]
fn always_corrupt_package_fails_with_name_and_url_exit_3_and_no_bundle() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mirror(tmp.path(), |_| {});
    let mut faults = Faults::none();
    faults.always_corrupt = vec!["curl-8.9.1-1.el10.x86_64.rpm".into()];
    let server = TestServer::start(&m.root, faults).unwrap();
    let stderr = refused_build(tmp.path(), &m, &server.url());
    assert!(stderr.contains("curl-8.9.1-1.el10.x86_64.rpm"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}/10/BaseOS/x86_64/os/Packages/c/curl-8.9.1-1.el10.x86_64.rpm",
            server.url()
        )),
        "{stderr}"
    );
    let leftovers: Vec<_> = fs_err::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("b.tar.zst"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn unsigned_package_fails_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mirror(tmp.path(), |s| s.unsigned = vec!["chrony".into()]);
    let server = TestServer::start(&m.root, Faults::none()).unwrap();
    let out = tmp.path().join("b.tar.zst");
    let stderr = refused_build(tmp.path(), &m, &server.url());
    assert!(
        stderr.contains("chrony-4.6-1.el10.x86_64") && stderr.contains("not signed"),
        "{stderr}"
    );
    assert!(!out.exists());
    // The explicit opt-out builds, and says so in the manifest; --sign signs the manifest.
    let keys = bundle::sign::generate_keypair(&tmp.path().join("bundle")).unwrap();
    ok(build_cmd(
        tmp.path(),
        &m,
        &server.url(),
        &out,
        &["--no-gpgcheck", "--sign", keys.secret.to_str().unwrap()],
    )
    .output()
    .unwrap());
    let public = bundle::sign::load_verifying_key(&keys.public).unwrap();
    let manifest =
        bundle::read::verify(&out, Some(&public), &NoProgress).expect("signed bundle verifies");
    assert!(!manifest.rpm.unwrap().gpgcheck);
}

/// Bytes of downloaded content in the cache (whole and partial files; not the records of
/// passed signature checks under `signatures/`).
fn cached_bytes(cache: &Path) -> u64 {
    fn walk(p: &Path, total: &mut u64) {
        for e in fs_err::read_dir(p).into_iter().flatten().flatten() {
            let path: PathBuf = e.path();
            if path.ends_with("signatures") {
                continue;
            } else if path.is_dir() {
                walk(&path, total);
            } else {
                *total += e.metadata().unwrap().len();
            }
        }
    }
    let mut total = 0;
    walk(cache, &mut total);
    total
}

#[test]
fn sigkill_mid_download_then_rerun_fetches_only_what_was_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mirror(tmp.path(), |_| {});
    let mut slow = Faults::none();
    slow.slow_rpm_body = Some(Duration::from_millis(400));
    let out = tmp.path().join("b.tar.zst");
    {
        let server = TestServer::start(&m.root, slow).unwrap();
        let mut child = build_cmd(tmp.path(), &m, &server.url(), &out, &["--jobs", "2"])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while server.stats.requests_for(".rpm") < 10 {
            assert!(Instant::now() < deadline, "build never got going");
            assert!(
                child.try_wait().unwrap().is_none(),
                "build finished before it could be killed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // SIGKILL: no chance to clean up.
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert!(!out.exists());
    let before = cached_bytes(&tmp.path().join("cache"));
    assert!(before > 0);

    let server = TestServer::start(&m.root, Faults::none()).unwrap();
    ok(build_cmd(tmp.path(), &m, &server.url(), &out, &[])
        .output()
        .unwrap());
    let manifest = bundle::read::verify(&out, None, &NoProgress).unwrap();
    let repomd: u64 = repomd_bytes(&m);
    // Everything in the bundle, minus what the killed run left in the cache (whole files,
    // partial ones, and the --gpg-key file it stored), plus repomd.xml and its signature,
    // which are always fetched fresh.
    // The installer binary beside bundler is packed from disk, never fetched.
    let local: u64 = manifest
        .files
        .iter()
        .filter(|f| f.kind == bundle::FileKind::Installer)
        .map(|f| f.size)
        .sum();
    let expected = manifest.totals.bytes - local + repomd - before;
    assert_eq!(server.body_bytes(), expected);
    assert!(server.body_bytes() < manifest.totals.bytes - local);
}

/// A file slow to come (over a long round trip, a lost tail waits for a retransmission) must
/// not stop the downloads after it: the writer waits for it in manifest order, but the fetcher
/// keeps starting the next files, more of them than it has in flight at most (32).
#[test]
fn a_stalled_download_does_not_hold_up_the_ones_after_it() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mirror(tmp.path(), |spec| spec.filler_packages = 60);
    let mut faults = Faults::none();
    faults.hold_first_rpm = Some((40, Duration::from_secs(20)));
    let server = TestServer::start(&m.root, faults).unwrap();
    let out = tmp.path().join("b.tar.zst");
    ok(build_cmd(tmp.path(), &m, &server.url(), &out, &[])
        .output()
        .unwrap());
    assert!(
        server
            .stats
            .held_released_by_others
            .load(std::sync::atomic::Ordering::SeqCst),
        "fewer than 40 other packages were requested while the first one stalled"
    );
    bundle::read::verify(&out, None, &NoProgress).expect("the bundle verifies");
}

#[test]
fn concurrent_builds_on_one_cache_all_pass_with_identical_bundles() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mirror(tmp.path(), |_| {});
    let server = TestServer::start(&m.root, Faults::none()).unwrap();
    let outputs: Vec<PathBuf> = (0..3)
        .map(|i| tmp.path().join(format!("bundle-{i}.tar.zst")))
        .collect();
    let children: Vec<_> = outputs
        .iter()
        .map(|out| {
            build_cmd(tmp.path(), &m, &server.url(), out, &[])
                .env("SOURCE_DATE_EPOCH", "1788220800")
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let first = fs_err::read(&outputs[0]).unwrap();
    for other in &outputs[1..] {
        assert!(
            fs_err::read(other).unwrap() == first,
            "{} differs from {}",
            other.display(),
            outputs[0].display()
        );
    }
}

#[test]
fn a_cache_or_output_without_room_is_refused_before_any_package_is_downloaded() {
    let tmp = tempfile::tempdir().unwrap();
    // Packages of 1 to 2 MB, so that one downloaded package shows in the served bytes.
    let m = mirror(tmp.path(), |spec| {
        spec.filler_min_bytes = 1 << 20;
        spec.filler_max_bytes = 2 << 20;
    });
    let payload: u64 = m.repos.iter().map(|r| r.package_bytes).sum();
    let server = TestServer::start(&m.root, Faults::none()).unwrap();
    let refused = |dir: &Path, output: &Path| {
        let before = server.body_bytes();
        let out = build_cmd(dir, &m, &server.url(), output, &[])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            server.body_bytes() - before < 1 << 20,
            "a package was downloaded: {stderr}"
        );
        assert!(!output.exists());
        stderr
    };

    // The cache on a filesystem smaller than the packages.
    let a = tmp.path().join("a");
    let _cache = e2e::harness::Tmpfs::mount(&a.join("cache"), "8m");
    let stderr = refused(&a, &a.join("out.tar.zst"));
    let cache = a.join("cache");
    assert!(
        stderr.contains(&format!(" on {}, ", cache.display()))
            && stderr.contains(" free (downloads into the cache ")
            && stderr.contains("use another --cache"),
        "{stderr}"
    );
    let partial: Vec<_> = fs_err::read_dir(cache.join("partial"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".part"))
        .collect();
    assert!(partial.is_empty(), "{partial:?}");

    // The output on a filesystem smaller than the bundle.
    let b = tmp.path().join("b");
    let _out = e2e::harness::Tmpfs::mount(&b.join("out"), "8m");
    let stderr = refused(&b, &b.join("out/bundle.tar.zst"));
    assert!(
        stderr.contains(&format!(" on {}, ", b.join("out").display()))
            && stderr.contains(" free (the bundle into ")
            && stderr.contains("use another -o"),
        "{stderr}"
    );

    // Cache and output on one filesystem that holds either but not both: counted together.
    let c = tmp.path().join("c");
    let size = payload + (20 << 20) + payload / 4;
    let _both = e2e::harness::Tmpfs::mount(&c, &size.to_string());
    let stderr = refused(&c, &c.join("bundle.tar.zst"));
    assert!(
        stderr.contains("downloads into the cache ")
            && stderr.contains("the bundle into ")
            && stderr.contains("use another --cache or -o"),
        "{stderr}"
    );
}
