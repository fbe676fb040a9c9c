//! `bundler pypi` as a user runs it, against a local index: the plan output, the files and
//! `pypi-part.json` it writes, and its exit codes (1 for an unsatisfiable set, 2 for usage
//! errors, 3 when a download does not match the index's sha256).

use std::process::Output;

use e2e::harness::bundler;
use e2e::pypi_index::{IndexContent, IndexEntry, IndexServer};
use e2e::wheelgen::DistSpec;

fn index() -> IndexContent {
    let mut index = IndexContent::default();
    let app = DistSpec::new("app", "1.0")
        .requires("native>=1")
        .requires("armonly ; platform_machine == 'aarch64'");
    index.add("app", IndexEntry::new(app.wheel()));
    for tag in [
        "cp312-cp312-manylinux_2_28_x86_64",
        "cp312-cp312-manylinux_2_28_aarch64",
    ] {
        index.add(
            "native",
            IndexEntry::new(DistSpec::new("native", "1.0").tag(tag).wheel()),
        );
    }
    index.add(
        "armonly",
        IndexEntry::new(DistSpec::new("armonly", "1.0").wheel()),
    );
    index.add(
        "left",
        IndexEntry::new(DistSpec::new("left", "1.0").requires("native<1").wheel()),
    );
    index
}

fn run_bundler(args: &[&str], dir: &std::path::Path) -> Output {
    let mut cmd = bundler();
    // A download cache of the test's own (the default one is shared by every run on the host,
    // where another test's good copy of a file would hide a corrupted download).
    cmd.args(args)
        .current_dir(dir)
        .env("XDG_CACHE_HOME", dir.join("cache-home"));
    if args.first() == Some(&"plan") {
        cmd.args(["--no-files", "--no-images"]);
    }
    if args.first() == Some(&"build") {
        // These tests are about wheels: no Kubespray files or images (they come from the
        // internet), and no installer binary among the files they list.
        cmd.args(["--no-files", "--no-images", "--no-installer"]);
    }
    cmd.output().expect("run bundler")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_string()
}

/// An index serving `content`, and a work dir holding `req.txt` (asking for `app`).
fn served_with_requirements(content: IndexContent) -> (IndexServer, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    fs_err::write(dir.path().join("req.txt"), "app\n").unwrap();
    (IndexServer::start(content), dir)
}

fn args(owned: &[String]) -> Vec<&str> {
    owned.iter().map(String::as_str).collect()
}

/// `--requirements FILE --index-url INDEX` and one `--platform` per machine.
fn targeting(requirements: &str, index: &str, machines: &[&str]) -> Vec<String> {
    let mut flags = ["--requirements", requirements, "--index-url", index]
        .map(String::from)
        .to_vec();
    for machine in machines {
        flags.extend(["--platform".to_string(), machine.to_string()]);
    }
    flags
}

/// Build flags that resolve `req.txt` against `index` for x86_64 into `output`.
fn resolving(output: &str, index: &str, cache: &str) -> Vec<String> {
    let mut flags = vec!["-o".to_string(), output.to_string()];
    flags.extend(targeting("req.txt", index, &["x86_64"]));
    flags.extend(["--cache".to_string(), cache.to_string()]);
    flags
}

/// `bundler build --no-rpm -q ARGS` (ARGS start with `-o FILE`) must succeed; the bundle's
/// verified manifest.
fn built(dir: &std::path::Path, args: &[&str]) -> bundle::manifest::BundleManifest {
    let out = run_bundler(&[&["build", "--no-rpm", "-q"], args].concat(), dir);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // -q: nothing on stderr (no bars, no resolution or download lines), one result line.
    assert!(out.stderr.is_empty(), "-q printed: {}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "{}",
        text(&out.stdout)
    );
    bundle::read::verify(&dir.join(args[1]), None, &bundle::progress::NoProgress).unwrap()
}

#[test]
fn pypi_command_plans_fetches_and_reports() {
    let (server, dir) = served_with_requirements(index());
    let flags = targeting("req.txt", &server.url(), &["x86_64", "aarch64"]);
    let both = [&["pypi"][..], &args(&flags)].concat();

    let plan = run_bundler(&[&both[..], &["--dry-run"]].concat(), dir.path());
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let stdout = text(&plan.stdout);
    assert!(
        stdout.contains("PyPI target cp312-manylinux_2_39-x86_64: 2 distributions"),
        "{stdout}"
    );
    assert!(
        stdout.contains("PyPI target cp312-manylinux_2_39-aarch64: 3 distributions"),
        "{stdout}"
    );
    assert!(stdout.contains("PyPI total: 4 files"), "{stdout}");
    assert!(
        !dir.path().join("out").exists(),
        "--dry-run downloads nothing"
    );

    let build = run_bundler(
        &[&both[..], &["-o", "out", "-q", "--cache", "pcache"]].concat(),
        dir.path(),
    );
    assert!(build.status.success(), "{}", text(&build.stderr));
    assert!(
        build.stderr.is_empty(),
        "-q printed: {}",
        text(&build.stderr)
    );
    // The wheels went through the fetcher's cache: a run into another directory takes them
    // from there and asks the index for no file. Without -q and a terminal, the progress
    // front-end prints a line per phase.
    let file_requests = || {
        server
            .requests()
            .iter()
            .filter(|r| r.contains("/files/") && !r.contains("bytes=") && !r.contains(".metadata"))
            .count()
    };
    let before = file_requests();
    let again = run_bundler(
        &[&both[..], &["-o", "out2", "--cache", "pcache"]].concat(),
        dir.path(),
    );
    assert!(again.status.success(), "{}", text(&again.stderr));
    let progress = text(&again.stderr);
    assert!(
        progress.contains("resolve PyPI targets done: 2/2\n")
            && progress.contains("download PyPI files done: 4/4 files, "),
        "{progress}"
    );
    assert_eq!(file_requests(), before, "{:?}", server.requests());
    assert!(dir.path().join("out2/pypi-part.json").exists());
    let part: serde_json::Value =
        serde_json::from_slice(&fs_err::read(dir.path().join("out/pypi-part.json")).unwrap())
            .unwrap();
    assert_eq!(part["pypi_targets"].as_array().unwrap().len(), 2);
    assert_eq!(part["pypi_targets"][1]["lock"].as_array().unwrap().len(), 3);
    assert_eq!(
        part["pypi_targets"][0]["requirements"],
        serde_json::json!(["app"])
    );
    let files = part["files"].as_array().unwrap();
    assert_eq!(files.len(), 4);
    for file in files {
        let path = dir.path().join("out").join(file["path"].as_str().unwrap());
        assert_eq!(
            fs_err::metadata(&path).unwrap().len(),
            file["size"].as_u64().unwrap()
        );
    }

    fs_err::write(dir.path().join("conflict.txt"), "app\nleft\n").unwrap();
    let flags = targeting("conflict.txt", &server.url(), &["x86_64"]);
    let conflict = run_bundler(
        &[&["pypi"][..], &args(&flags), &["--dry-run"]].concat(),
        dir.path(),
    );
    assert_eq!(conflict.status.code(), Some(1));
    let stderr = text(&conflict.stderr);
    assert!(
        stderr.contains("left depends on native <1")
            || stderr.contains("left 1.0 depends on native <1"),
        "{stderr}"
    );

    let usage = run_bundler(
        &["pypi", "--requirements", "req.txt", "--kubespray", "master"],
        dir.path(),
    );
    assert_eq!(usage.status.code(), Some(2), "{}", text(&usage.stderr));
}

#[test]
fn corrupted_download_exits_with_3() {
    let mut content = index();
    content
        .corrupt
        .push("native-1.0-cp312-cp312-manylinux_2_28_x86_64.whl".into());
    let (server, dir) = served_with_requirements(content);
    let flags = targeting("req.txt", &server.url(), &["x86_64"]);
    let run = run_bundler(
        &[&["pypi"][..], &args(&flags), &["-o", "out", "-q"]].concat(),
        dir.path(),
    );
    assert_eq!(run.status.code(), Some(3), "{}", text(&run.stderr));
    // The fetcher's wording, as for every other download: the file, its URL, both hashes.
    assert!(
        text(&run.stderr).contains("sha256 mismatch")
            && text(&run.stderr).contains("native-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"),
        "{}",
        text(&run.stderr)
    );
    assert!(
        !dir.path()
            .join("out/pypi/files/native-1.0-cp312-cp312-manylinux_2_28_x86_64.whl")
            .exists()
    );
}

#[test]
fn build_and_plan_carry_the_pypi_part() {
    let (server, dir) = served_with_requirements(index());
    let flags = targeting("req.txt", &server.url(), &["x86_64", "aarch64"]);
    let pypi = [
        &["--no-rpm"][..],
        &args(&flags),
        &["--cache", "cache", "-q"],
    ]
    .concat();
    let plan = run_bundler(&[&["plan"], &pypi[..]].concat(), dir.path());
    assert!(plan.status.success(), "{}", text(&plan.stderr));
    let stdout = text(&plan.stdout);
    assert!(
        stdout.contains("PyPI target cp312-manylinux_2_39-aarch64: 3 distributions"),
        "{stdout}"
    );

    let build = run_bundler(
        &[&["build", "-o", "b.tar.zst"], &pypi[..]].concat(),
        dir.path(),
    );
    assert!(build.status.success(), "{}", text(&build.stderr));
    let manifest = bundle::read::verify(
        &dir.path().join("b.tar.zst"),
        None,
        &bundle::progress::NoProgress,
    )
    .unwrap();
    assert_eq!(manifest.pypi_targets.len(), 2);
    assert_eq!(manifest.arches, ["x86_64", "aarch64"]);
    let paths: Vec<_> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "pypi/files/app-1.0-py3-none-any.whl",
            "pypi/files/armonly-1.0-py3-none-any.whl",
            "pypi/files/native-1.0-cp312-cp312-manylinux_2_28_aarch64.whl",
            "pypi/files/native-1.0-cp312-cp312-manylinux_2_28_x86_64.whl",
        ]
    );
    let lock = &manifest.pypi_targets[1].lock;
    assert!(lock.iter().all(|l| l.upload_time.is_some() && l.size > 0));
}

#[test]
fn build_from_an_html_index_without_sizes() {
    let mut content = index();
    content.html_only = true;
    let (server, dir) = served_with_requirements(content);
    let manifest = built(
        dir.path(),
        &args(&resolving("b.tar.zst", &server.url(), "cache")),
    );
    assert_eq!(manifest.files.len(), 2);
    assert_eq!(manifest.pypi_targets[0].lock.len(), 2);
    assert!(
        manifest.pypi_targets[0]
            .lock
            .iter()
            .all(|l| l.upload_time.is_none())
    );
}

/// `--pypi-lock` replays a previous bundle's resolution: after the index gained a newer `app`,
/// a locked build still bundles exactly the old files (same lock, same bytes), while a fresh
/// resolution picks the new version.
#[test]
fn a_locked_build_fetches_the_recorded_files_even_after_the_index_moved_on() {
    let (server, dir) = served_with_requirements(index());
    let first = built(
        dir.path(),
        &args(&resolving("first.tar.zst", &server.url(), "cache1")),
    );

    // The index moves on: app 2.0 appears (on another server; the recorded URLs stay valid).
    let mut newer = index();
    newer.add(
        "app",
        IndexEntry::new(DistSpec::new("app", "2.0").requires("native>=1").wheel()),
    );
    let moved = IndexServer::start(newer);
    let fresh = built(
        dir.path(),
        &args(&resolving("fresh.tar.zst", &moved.url(), "cache2")),
    );
    let versions = |m: &bundle::manifest::BundleManifest| -> Vec<String> {
        m.pypi_targets[0]
            .lock
            .iter()
            .map(|l| format!("{} {}", l.name, l.version))
            .collect()
    };
    assert!(versions(&fresh).contains(&"app 2.0".to_string()));

    let locked = built(
        dir.path(),
        &[
            "-o",
            "locked.tar.zst",
            "--pypi-lock",
            "first.tar.zst",
            "--cache",
            "cache3",
        ],
    );
    assert_eq!(locked.pypi_targets, first.pypi_targets);
    assert_eq!(locked.files, first.files);
    assert!(versions(&locked).contains(&"app 1.0".to_string()));

    // A lock replaces resolution: resolution flags with it are a usage error.
    let clash = run_bundler(
        &[
            "build",
            "--no-rpm",
            "--pypi-lock",
            "first.tar.zst",
            "--requirements",
            "req.txt",
        ],
        dir.path(),
    );
    assert_eq!(clash.status.code(), Some(2), "{}", text(&clash.stderr));
}

#[test]
fn a_kubespray_release_without_shipped_lists_is_read_from_its_source() {
    let (index, dir) = served_with_requirements(index());
    // A Kubespray "repository" on 127.0.0.1 with a release this bundler knows nothing of.
    let kubespray = dir.path().join("kubespray");
    fs_err::create_dir_all(kubespray.join("v9.9.9")).unwrap();
    fs_err::write(
        kubespray.join("v9.9.9/requirements.txt"),
        "# Kubespray 9.9.9\napp==1.0\n",
    )
    .unwrap();
    let source = e2e::server::TestServer::start(&kubespray, e2e::server::Faults::none()).unwrap();
    let flags = |version: &str| {
        [
            "--kubespray",
            version,
            "--kubespray-source",
            &source.url(),
            "--index-url",
            &index.url(),
            "--platform",
            "x86_64",
            "--cache",
            "cache",
        ]
        .map(String::from)
        .to_vec()
    };

    let manifest = built(
        dir.path(),
        &[&["-o", "b.tar.zst"][..], &args(&flags("9.9.9"))].concat(),
    );
    let target = &manifest.pypi_targets[0];
    assert_eq!(target.requirements, ["app==1.0"]);
    assert_eq!(
        target.requirements_source.as_deref(),
        Some(format!("{}/v9.9.9/requirements.txt", source.url()).as_str())
    );
    let locked: Vec<&str> = target.lock.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(locked, ["app", "native"]);

    // A version the source does not have: exit 1, naming the URL it tried.
    let out = run_bundler(
        &[
            &["build", "--no-rpm", "-q", "-o", "c.tar.zst"],
            &args(&flags("9.9.8"))[..],
        ]
        .concat(),
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("/v9.9.8/requirements.txt"), "{stderr}");
    assert!(stderr.contains("HTTP 404"), "{stderr}");
    assert!(!dir.path().join("c.tar.zst").exists());

    // A shipped version is not fetched: the source is never asked.
    let before = source
        .stats
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    let out = run_bundler(
        &[&["plan", "--no-rpm"][..], &args(&flags("2.31.0"))].concat(),
        dir.path(),
    );
    // The shipped 2.31.0 list names projects this small index lacks, so the plan fails to
    // resolve; what matters is that the source saw no request.
    assert!(
        !text(&out.stderr).contains("requirements.txt"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        source
            .stats
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        before
    );
}

/// Issue 17: two runs fetching the same wheel into one `-o` directory renamed one shared
/// partial file away under each other ("failed to rename …whl.part: No such file").
#[test]
fn concurrent_runs_into_one_directory_all_pass_with_the_same_files() {
    let (server, dir) = served_with_requirements(index());
    let url = server.url();
    let runs: Vec<_> = (0..6)
        .map(|_| {
            bundler()
                .arg("pypi")
                .args(targeting("req.txt", &url, &["x86_64", "aarch64"]))
                .args(["-o", "out", "-q"])
                .current_dir(dir.path())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for run in runs {
        let out = run.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
    }
    let part: serde_json::Value =
        serde_json::from_slice(&fs_err::read(dir.path().join("out/pypi-part.json")).unwrap())
            .unwrap();
    let mut checked = 0;
    for target in part["pypi_targets"].as_array().unwrap() {
        for file in target["lock"].as_array().unwrap() {
            let name = file["filename"].as_str().unwrap();
            let found: Vec<_> = walk(&dir.path().join("out"))
                .into_iter()
                .filter(|p| p.file_name().is_some_and(|n| n == name))
                .collect();
            assert_eq!(found.len(), 1, "{name}: {found:?}");
            let bytes = fs_err::read(&found[0]).unwrap();
            assert_eq!(
                hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
                file["sha256"].as_str().unwrap(),
                "{name}"
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 5);
    let leftovers: Vec<_> = walk(&dir.path().join("out"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".part"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs_err::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
