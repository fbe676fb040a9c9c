//! Split volumes (issue 15): `bundler build --split SIZE` writes `NAME.001`, `NAME.002`, … that
//! `sha256sum -c NAME.sha256` checks and the installer reads as the one bundle they hold: the
//! split bundle verifies and applies to the very tree the unsplit one gives. A missing,
//! reordered, truncated or foreign volume is refused with exit 3, naming it, before anything
//! is written.

use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::harness::assert_success;
use e2e::harness::{all_output, file_tree, run_installer};
use e2e::mirror::{GeneratedMirror, MirrorSpec, generate_mirror};
use e2e::server::{Faults, TestServer};
use e2e::workspace_bin;

fn build(cwd: &Path, m: &GeneratedMirror, url: &str, more: &[&str]) {
    let out = e2e::harness::rpm_only_build(&workspace_bin("bundler"))
        .current_dir(cwd)
        .args(["--mirror", url])
        .arg("--gpg-key")
        .arg(&m.key_path)
        .arg("--cache")
        .arg(cwd.join("cache"))
        .arg("--installer")
        .arg(workspace_bin("installer"))
        .args(more)
        .output()
        .expect("run bundler");
    assert_success(out);
}

/// Damages the copy of the volume set in the directory it is given.
type VolumeFault<'a> = dyn Fn(&Path) + 'a;

fn volume(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("b.tar.zst.{index:03}"))
}

/// A volume size that cuts `b.tar.zst` into three volumes.
fn three_volumes(whole: &Path) -> String {
    let size = fs_err::metadata(whole).unwrap().len();
    let trailer = bundle::volume::TRAILER_LEN;
    (size.div_ceil(3) + trailer).to_string()
}

#[test]
fn split_bundle_applies_like_the_whole_one_and_each_volume_fault_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let m = generate_mirror(&MirrorSpec::small(tmp.path().join("mirror")))
        .expect("generate mirror (needs createrepo_c, modifyrepo_c)");
    let server = TestServer::start(&m.root, Faults::none()).unwrap();
    let (whole_dir, split_dir) = (tmp.path().join("whole"), tmp.path().join("split"));
    fs_err::create_dir_all(&whole_dir).unwrap();
    fs_err::create_dir_all(&split_dir).unwrap();
    build(&whole_dir, &m, &server.url(), &["-o", "b.tar.zst"]);
    let whole = whole_dir.join("b.tar.zst");
    let split = three_volumes(&whole);
    build(
        &split_dir,
        &m,
        &server.url(),
        &["--split", &split, "-o", "b.tar.zst"],
    );

    // At least three volumes (the two builds' streams differ a little: the manifest records
    // each one's creation time), none above the size, no whole file and no temp file beside
    // them, and the transfer check an operator runs lists them all.
    let limit: u64 = split.parse().unwrap();
    let mut names: Vec<String> = fs_err::read_dir(&split_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with("b.tar.zst"))
        .collect();
    names.sort();
    let count = names.len() as u32 - 2;
    assert!(count >= 3, "{names:?}");
    let expected: Vec<String> = (1..=count)
        .map(|i| format!("b.tar.zst.{i:03}"))
        .chain(["b.tar.zst.manifest.json", "b.tar.zst.sha256"].map(String::from))
        .collect();
    assert_eq!(names, expected);
    for index in 1..=count {
        assert!(fs_err::metadata(volume(&split_dir, index)).unwrap().len() <= limit);
    }
    let check = Command::new("sha256sum")
        .args(["-c", "b.tar.zst.sha256"])
        .current_dir(&split_dir)
        .output()
        .unwrap();
    let check = all_output(&assert_success(check));
    assert_eq!(check.matches(": OK").count(), count as usize, "{check}");

    // Verify by the first volume and by the directory; apply gives the tree the whole gives.
    let first = volume(&split_dir, 1);
    let verify = assert_success(run_installer(&["verify"], &first, None));
    assert!(
        all_output(&verify).contains("result:    OK"),
        "{}",
        all_output(&verify)
    );
    assert_success(run_installer(&["verify"], &split_dir, None));
    assert_success(run_installer(&["inspect"], &split_dir, None));
    let (root_whole, root_split) = (tmp.path().join("root-whole"), tmp.path().join("root-split"));
    assert_success(run_installer(&["apply"], &whole, Some(&root_whole)));
    let applied = all_output(&assert_success(run_installer(
        &["apply"],
        &first,
        Some(&root_split),
    )));
    // The progress names each volume as the reading reaches it.
    for index in 1..=count {
        let line = format!(
            "reading volume {index} of {count}: {}",
            volume(&split_dir, index).display()
        );
        assert!(applied.contains(&line), "{line} missing:\n{applied}");
    }
    // The installer writes repodata anew, and it records the packages' file times, which
    // differ between any two applies; the landing page and each repo's state name the bundle's
    // creation time or that repodata. Every other file must be the same.
    let (mut a, mut b) = (file_tree(&root_whole), file_tree(&root_split));
    let metadata = |p: &PathBuf| p.components().any(|c| c.as_os_str() == "repodata");
    let (ra, rb) = (
        a.keys().filter(|p| metadata(p)).count(),
        b.keys().filter(|p| metadata(p)).count(),
    );
    assert_eq!(ra, rb);
    let volatile = |p: &PathBuf| {
        metadata(p) || p.ends_with("data/index.html") || p.ends_with(".installer-state.json")
    };
    a.retain(|p, _| !volatile(p));
    b.retain(|p, _| !volatile(p));
    assert!(a.len() > 50, "{}", a.len());
    let only: Vec<_> = a
        .keys()
        .filter(|k| !b.contains_key(*k))
        .chain(b.keys().filter(|k| !a.contains_key(*k)))
        .collect();
    assert!(only.is_empty(), "in one tree only: {only:?}");
    let differ: Vec<_> = a
        .iter()
        .filter(|(path, bytes)| {
            // Configs name their root.
            let rooted = |bytes: &[u8], root: &Path| {
                String::from_utf8_lossy(bytes).replace(root.to_str().unwrap(), "ROOT")
            };
            rooted(bytes, &root_whole) != rooted(&b[*path], &root_split)
        })
        .map(|(path, _)| path.display().to_string())
        .collect();
    assert!(differ.is_empty(), "{differ:?}");

    // A later build of the same content (another creation time) gives the foreign volume.
    let other_dir = tmp.path().join("other");
    fs_err::create_dir_all(&other_dir).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    build(
        &other_dir,
        &m,
        &server.url(),
        &["--split", &split, "-o", "b.tar.zst"],
    );
    let faults: [(&str, &VolumeFault); 4] = [
        ("missing", &|d| fs_err::remove_file(volume(d, 2)).unwrap()),
        ("out of order", &|d| {
            fs_err::rename(volume(d, 2), d.join("swap")).unwrap();
            fs_err::rename(volume(d, 3), volume(d, 2)).unwrap();
            fs_err::rename(d.join("swap"), volume(d, 3)).unwrap();
        }),
        ("truncated", &|d| {
            let v = volume(d, 2);
            let len = fs_err::metadata(&v).unwrap().len();
            fs_err::OpenOptions::new()
                .write(true)
                .open(&v)
                .unwrap()
                .set_len(len - 1000)
                .unwrap();
        }),
        ("another bundle", &|d| {
            fs_err::copy(volume(&other_dir, 2), volume(d, 2)).unwrap();
        }),
    ];
    for (says, fault) in faults {
        let dir = tmp.path().join(format!("fault-{}", says.replace(' ', "-")));
        fs_err::create_dir_all(&dir).unwrap();
        for index in 1..=count {
            fs_err::copy(volume(&split_dir, index), volume(&dir, index)).unwrap();
        }
        fault(&dir);
        let root = tmp.path().join(format!("root-{}", says.replace(' ', "-")));
        for out in [
            run_installer(&["verify"], &volume(&dir, 1), None),
            run_installer(&["inspect"], &dir, None),
            run_installer(&["apply"], &volume(&dir, 1), Some(&root)),
        ] {
            assert_eq!(out.status.code(), Some(3), "{says}: {}", all_output(&out));
            assert!(
                all_output(&out).contains("b.tar.zst.002"),
                "{says}: {}",
                all_output(&out)
            );
            assert!(
                all_output(&out).contains(says),
                "{says}: {}",
                all_output(&out)
            );
        }
        assert!(!root.exists(), "{says}: apply wrote {}", root.display());
    }
}
