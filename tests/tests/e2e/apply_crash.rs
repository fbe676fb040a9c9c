//! Crash safety and idempotence of `installer apply`: an apply killed with SIGKILL at every
//! step (and at arbitrary moments) and run again leaves a tree identical to an uninterrupted
//! apply; a bundle failing verification leaves the previous tree untouched; a second apply
//! changes nothing; `--dry-run` writes nothing.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::*;

#[test]
fn apply_killed_at_every_step_and_rerun_matches_uninterrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = bundles(tmp.path());
    let want = uninterrupted_tree(tmp.path(), &old, &new, UNSERVED_PORT);
    assert!(
        want.iter()
            .any(|l| l.starts_with("data/pypi/files/delta-0.1-py3-none-any.whl "))
    );
    assert!(
        !want.iter().any(|l| l.contains("beta-1.0")),
        "dropped wheel must go"
    );

    let points = [
        "unpacked",
        "repo-staged:appstream",
        "repo-switched:appstream",
        "pypi-staged",
        "pypi-switched",
        "file:/etc/nginx/conf.d/kubespray-offline.conf",
    ];
    for point in points {
        let root = tmp.path().join(format!("root-{}", point.replace('/', "_")));
        apply_ok(&old, &root);
        apply_killed_at(&new, &root, UNSERVED_PORT, point);
        apply_ok(&new, &root);
        assert_eq!(tree_listing(&root), want, "after a kill at {point}");
    }
}

#[test]
fn apply_sigkilled_at_arbitrary_moments_and_rerun_matches_uninterrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = bundles(tmp.path());
    let want = uninterrupted_tree(tmp.path(), &old, &new, UNSERVED_PORT);
    for (i, delay_ms) in [0u64, 10, 30, 60, 100, 200].into_iter().enumerate() {
        let root = tmp.path().join(format!("root-{i}"));
        apply_ok(&old, &root);
        let mut child = installer_apply(&new, &root, UNSERVED_PORT, &[])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        apply_ok(&new, &root);
        assert_eq!(tree_listing(&root), want, "after SIGKILL at {delay_ms} ms");
    }
}

#[test]
fn apply_failed_verification_leaves_previous_tree_served() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = bundles(tmp.path());
    let root = tmp.path().join("root");
    apply_ok(&old, &root);
    let before = tree_listing(&root);
    let mut bytes = fs_err::read(&new).unwrap();
    let n = bytes.len();
    bytes[n - 200] ^= 0xff;
    let bad = tmp.path().join("bad.tar.zst");
    fs_err::write(&bad, &bytes).unwrap();
    let exact_before = exact_snapshot(&root);
    let out = apply_output(&bad, &root, &[]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tree_listing(&root), before);
    assert_eq!(exact_snapshot(&root), exact_before);
}

#[test]
fn apply_while_another_holds_the_lock_is_refused_and_a_stale_lock_is_taken_over() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = bundles(tmp.path());
    let root = tmp.path().join("root");
    apply_ok(&old, &root);
    let data = root.join("data");
    let held = installer::lock::DirLock::acquire(&data, "installer apply held-by-test").unwrap();
    let before = exact_snapshot(&root);
    for args in [
        vec!["apply".to_string(), new.display().to_string()],
        vec![
            "nat".to_string(),
            "disable".to_string(),
            "--no-runtime".to_string(),
        ],
    ] {
        let out = installer()
            .args(&args)
            .arg("--root")
            .arg(&root)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "locked by pid {} (`installer apply held-by-test`) since ",
                std::process::id()
            )),
            "{stderr}"
        );
        assert_eq!(exact_snapshot(&root), before, "{args:?} touched the tree");
    }
    drop(held);
    // A holder that died leaves its information behind but no lock: the next run takes over.
    fs_err::write(
        data.join(installer::lock::LOCK_FILE),
        "999999\ninstaller apply dead\n2026-01-01T00:00:00Z\n",
    )
    .unwrap();
    apply_ok(&new, &root);
}

#[test]
fn apply_onto_a_too_small_data_root_is_refused_before_writing() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, _new) = bundles(tmp.path());
    let root = tmp.path().join("root");
    let data = root.join("data");
    // Smaller than any bundle plus apply's fixed margin for repodata and index pages.
    let _tmpfs = Tmpfs::mount(&data, "8m");
    let out = apply_output(&old, &root, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("needs "), "{stderr}");
    assert!(stderr.contains(" on /data, "), "{stderr}");
    assert!(stderr.contains(" free"), "{stderr}");
    // Only the (released, empty) lock is left in the data root.
    let left: Vec<String> = fs_err::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(left, [installer::lock::LOCK_FILE]);
    assert_eq!(
        fs_err::read_to_string(data.join(installer::lock::LOCK_FILE)).unwrap(),
        ""
    );
}

#[test]
fn apply_twice_changes_nothing_and_dry_run_writes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = bundles(tmp.path());
    let root = tmp.path().join("root");

    // Dry run on an empty root: plan and diff printed, nothing written.
    let out = apply_output(&old, &root, &["--dry-run"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("+++ b/etc/nginx/conf.d/kubespray-offline.conf"),
        "{text}"
    );
    assert!(text.contains("pypi index"), "{text}");
    assert!(!root.exists(), "dry run wrote {}", root.display());

    apply_ok(&old, &root);
    let first = tree_listing(&root);
    let conf = root.join("etc/nginx/conf.d/kubespray-offline.conf");
    let mtime = fs_err::metadata(&conf).unwrap().modified().unwrap();
    let again = apply_ok(&old, &root);
    assert!(again.contains("no changes"), "{again}");
    assert!(again.contains("unchanged"), "{again}");
    assert_eq!(tree_listing(&root), first);
    assert_eq!(fs_err::metadata(&conf).unwrap().modified().unwrap(), mtime);

    // Dry run of the newer bundle over the applied one: says what changes, writes nothing.
    let out = apply_output(&new, &root, &["--dry-run"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("rebuild: +2 -2 files"), "{text}");
    assert_eq!(tree_listing(&root), first);

    // --keep-old keeps what the new bundle dropped, in files and in the index.
    let out = run_ok(&mut installer_apply(
        &new,
        &root,
        UNSERVED_PORT,
        &["--keep-old"],
    ));
    assert!(out.status.success());
    let listing = tree_listing(&root).join("\n");
    assert!(listing.contains("data/pypi/files/beta-1.0-py3-none-any.whl "));
    assert!(listing.contains("data/pypi/files/delta-0.1-py3-none-any.whl "));
    let beta = fs_err::read_to_string(root.join("data/pypi/simple/beta/index.html")).unwrap();
    assert!(beta.contains("beta-1.0-py3-none-any.whl"));
}

#[test]
fn apply_backs_up_an_operator_file_once() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = bundles(tmp.path());
    let root = tmp.path().join("root");
    let conf = root.join("etc/nginx/conf.d/kubespray-offline.conf");
    fs_err::create_dir_all(conf.parent().unwrap()).unwrap();
    fs_err::write(&conf, "# the operator's own file\n").unwrap();
    apply_ok(&old, &root);
    apply_ok(&new, &root);
    let backup = root.join("etc/nginx/conf.d/kubespray-offline.conf.orig");
    assert_eq!(
        fs_err::read_to_string(backup).unwrap(),
        "# the operator's own file\n"
    );
    // Our own file passes nginx -t inside a stock-shaped nginx.conf.
    let dir = tempfile::tempdir().unwrap();
    let main_conf = dir.path().join("nginx.conf");
    fs_err::write(&main_conf, Nginx::conf(dir.path(), conf.parent().unwrap())).unwrap();
    let mut cmd = Command::new("nginx");
    run_ok(cmd.arg("-t").arg("-c").arg(&main_conf));
}
