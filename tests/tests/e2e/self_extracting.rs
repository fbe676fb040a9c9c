//! One file across the gap (issue 19): a `.run` built by `bundler build --self-extracting`
//! applies with `sh FILE.run apply …` and nothing else installed, serves the installer to the
//! nodes, and a `.run` that was altered or cut short is refused before anything in it runs. A
//! `bundler` copied alone to an empty directory still builds (its release data is built in).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e::harness::assert_success;
use e2e::harness::{all_output, installer};
use e2e::mirror::{GeneratedMirror, MirrorSpec, generate_mirror};
use e2e::server::{Faults, TestServer};
use e2e::workspace_bin;
use sha2::{Digest, Sha256};

fn mirror(dir: &Path) -> GeneratedMirror {
    generate_mirror(&MirrorSpec::small(dir.join("mirror")))
        .expect("generate mirror (needs createrepo_c, modifyrepo_c)")
}

/// `bundler` (the given binary) building against `url`, run in `cwd` with no manifests
/// directory in sight.
fn build(bundler: &Path, cwd: &Path, m: &GeneratedMirror, url: &str, more: &[&str]) -> Output {
    e2e::harness::rpm_only_build(bundler)
        .current_dir(cwd)
        .env_remove("KUBESPRAY_OFFLINE_MANIFESTS")
        .args(["--mirror", url])
        .arg("--gpg-key")
        .arg(&m.key_path)
        .arg("--cache")
        .arg(cwd.join("cache"))
        .args(more)
        .output()
        .expect("run bundler")
}

/// `sh FILE.run ARGS` with its own TMPDIR, so a test can see that nothing was left there.
fn run_sh(run: &Path, tmpdir: &Path, args: &[&str]) -> Output {
    fs_err::create_dir_all(tmpdir).unwrap();
    Command::new("sh")
        .arg(run)
        .args(args)
        .env("TMPDIR", tmpdir)
        .env_remove("KOI_BUNDLE")
        .output()
        .expect("run sh")
}

fn sha256_hex(path: &Path) -> String {
    hex::encode(Sha256::digest(fs_err::read(path).unwrap()))
}

/// Every path under `dir`, relative and sorted.
fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs_err::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(dir).unwrap().display().to_string());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

fn is_empty_dir(dir: &Path) -> bool {
    fs_err::read_dir(dir).unwrap().next().is_none()
}

/// Builds `work/site.run` against a fresh mirror; returns it with the mirror's server alive.
fn built_run(work: &Path) -> (PathBuf, TestServer, GeneratedMirror) {
    let m = mirror(work);
    let server = TestServer::start(&m.root, Faults::none()).unwrap();
    let out = build(
        &workspace_bin("bundler"),
        work,
        &m,
        &server.url(),
        &["--self-extracting", "-o", "site.run"],
    );
    assert_success(out);
    (work.join("site.run"), server, m)
}

#[test]
fn run_file_applies_with_sh_alone_and_serves_the_installer_to_nodes() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, _server, _m) = built_run(tmp.path());

    // The transfer check an operator runs, on the one file.
    let check = Command::new("sha256sum")
        .arg("-c")
        .arg("site.run.sha256")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert_success(check);

    // The embedded installer reads the bundle in place: inspect and verify see it whole.
    let inspect = run_sh(&run, &tmp.path().join("t1"), &["inspect"]);
    let inspect = all_output(&assert_success(inspect));
    assert!(inspect.contains("INSTALLER"), "{inspect}");
    assert!(inspect.contains("x86_64"), "{inspect}");
    let verify = assert_success(run_sh(&run, &tmp.path().join("t2"), &["verify"]));
    assert!(
        all_output(&verify).contains("result:    OK"),
        "{}",
        all_output(&verify)
    );

    let root = tmp.path().join("admin");
    let apply = run_sh(
        &run,
        &tmp.path().join("t3"),
        &[
            "apply",
            "--root",
            root.to_str().unwrap(),
            "--no-services",
            "--http-port",
            "18123",
        ],
    );
    assert_success(apply);
    for t in ["t1", "t2", "t3"] {
        assert!(
            is_empty_dir(&tmp.path().join(t)),
            "{t}: the private temp dir was left behind"
        );
    }
    let node = root.join("data/node");
    let served = node.join("installer-x86_64");
    let sum = fs_err::read_to_string(node.join("installer-x86_64.sha256")).unwrap();
    assert_eq!(sum, format!("{}  installer-x86_64\n", sha256_hex(&served)));
    assert_eq!(sha256_hex(&served), sha256_hex(&workspace_bin("installer")));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        fs_err::metadata(&served).unwrap().permissions().mode() & 0o777,
        0o755
    );
    let landing = fs_err::read_to_string(root.join("data/index.html")).unwrap();
    assert!(
        landing.contains("/node/installer-$a.sha256 &amp;&amp; sha256sum -c"),
        "{landing}"
    );
    let playbook = fs_err::read_to_string(node.join("playbook.yml")).unwrap();
    assert!(playbook.contains("installer-{{ ansible_facts['architecture'] }}.sha256"));

    // The served installer is the real one: it runs on a node.
    let version = Command::new(&served).arg("--version").output().unwrap();
    assert!(all_output(&assert_success(version)).contains("installer"));
}

#[test]
fn altered_or_truncated_run_file_is_refused_before_anything_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let (run, _server, _m) = built_run(tmp.path());
    let bytes = fs_err::read(&run).unwrap();
    let header = bundle::run::HEADER_LEN as usize;

    let mut flipped = bytes.clone();
    flipped[header + 4096] ^= 0x55; // inside the installer
    let cut = bytes[..bytes.len() - 1000].to_vec(); // the end of the bundle stream is missing
    let mut flipped_bundle = bytes.clone();
    let bundle_at = bytes.len() - 2000;
    flipped_bundle[bundle_at] ^= 0x55; // inside the bundle stream
    for (name, data, says) in [
        ("flipped.run", flipped, "the installer inside is altered"),
        ("cut.run", cut, "cut short or altered"),
        // Where the flipped byte lands decides who notices first: zstd (a compressed block)
        // or the entry's sha256 (a raw block, which zstd stores unchecked). Both name the file.
        ("flipped-bundle.run", flipped_bundle, "flipped-bundle.run: "),
    ] {
        let path = tmp.path().join(name);
        fs_err::write(&path, &data).unwrap();
        let root = tmp.path().join(format!("root-{name}"));
        let tmpdir = tmp.path().join(format!("tmp-{name}"));
        let out = run_sh(
            &path,
            &tmpdir,
            &["apply", "--root", root.to_str().unwrap(), "--no-services"],
        );
        assert_eq!(out.status.code(), Some(3), "{name}: {}", all_output(&out));
        assert!(
            all_output(&out).contains(says),
            "{name}: {}",
            all_output(&out)
        );
        if name == "flipped-bundle.run" {
            let said = all_output(&out);
            assert!(
                said.contains(": corrupt") || said.contains("sha256 mismatch"),
                "{name}: {said}"
            );
        }
        // A damaged bundle stream is found by the (genuine) installer while it unpacks; it
        // removes its staging, and only its released lock file stays. The other two never run it.
        if name == "flipped-bundle.run" {
            let left: Vec<_> = walk(&root);
            assert_eq!(
                left,
                ["data", "data/.installer.lock"],
                "{name}: apply left {left:?}"
            );
        } else {
            assert!(!root.exists(), "{name}: apply wrote {}", root.display());
        }
        assert!(is_empty_dir(&tmpdir), "{name}: left files in TMPDIR");
        // The installer on its own refuses the damaged file too, naming it.
        let verify = installer().arg("verify").arg(&path).output().unwrap();
        assert_eq!(
            verify.status.code(),
            Some(3),
            "{name}: {}",
            all_output(&verify)
        );
        assert!(
            all_output(&verify).contains(name),
            "{}",
            all_output(&verify)
        );
    }
}

#[test]
fn bundler_copied_alone_to_an_empty_directory_builds() {
    let tmp = tempfile::tempdir().unwrap();
    let m = mirror(tmp.path());
    let server = TestServer::start(&m.root, Faults::none()).unwrap();
    let alone = tmp.path().join("alone");
    fs_err::create_dir_all(&alone).unwrap();
    let bundler = alone.join("bundler");
    fs_err::copy(workspace_bin("bundler"), &bundler).unwrap();

    // No installer beside it: the build says what to pass instead of carrying none silently.
    let out = build(&bundler, &alone, &m, &server.url(), &["-o", "b.tar.zst"]);
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("--installer FILE"),
        "{}",
        all_output(&out)
    );
    assert!(!alone.join("b.tar.zst").exists());

    // With the installer named (anywhere), the release data built into bundler is enough.
    let out = build(
        &bundler,
        &alone,
        &m,
        &server.url(),
        &[
            "--installer",
            workspace_bin("installer").to_str().unwrap(),
            "-o",
            "b.tar.zst",
        ],
    );
    assert_success(out);
    let inspect = installer()
        .arg("inspect")
        .arg(alone.join("b.tar.zst"))
        .output()
        .unwrap();
    let inspect = all_output(&assert_success(inspect));
    assert!(inspect.contains("release:   10"), "{inspect}");
    assert!(inspect.contains("INSTALLER"), "{inspect}");

    // A release the binary does not know names the ones it does and the way to add one.
    let out = Command::new(&bundler)
        .current_dir(&alone)
        .args(["plan", "--release", "7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("knows 10"),
        "{}",
        all_output(&out)
    );
    assert!(
        all_output(&out).contains("--manifests DIR"),
        "{}",
        all_output(&out)
    );
}
