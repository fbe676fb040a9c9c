//! A refused `installer apply` leaves the installed tree exactly as it was (every entry, and
//! every file's bytes, size, mtime and inode; nothing left behind): under every kind of hostile
//! bundle, on a data root too full for the update, and when a second apply runs while the first
//! holds the lock (refused naming the first, which then ends as an apply alone would).

use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use crate::harness::*;

/// An entry of a bundle's tar as written back: its full path, header and data.
type Entry = (String, tar::Header, Vec<u8>);

/// `good` with its uncompressed tar rewritten: `edit` sees every entry (index, entry) and
/// returns what to write in its place. Long paths are written as GNU long names, as the bundle
/// writer does; a path with `..` goes into the header as it is (the tar crate refuses it).
fn rewritten(good: &Path, out: &Path, mut edit: impl FnMut(usize, Entry) -> Vec<Entry>) {
    let tar = zstd::decode_all(&fs_err::read(good).unwrap()[..]).unwrap();
    let mut archive = tar::Archive::new(&tar[..]);
    let mut builder = tar::Builder::new(Vec::new());
    for (i, entry) in archive.entries().unwrap().enumerate() {
        let mut entry = entry.unwrap();
        let path = String::from_utf8(entry.path_bytes().into_owned()).unwrap();
        let header = entry.header().clone();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        for (path, mut header, data) in edit(i, (path, header, data)) {
            if path.contains("..") {
                let field = &mut header.as_old_mut().name;
                field.fill(0);
                field[..path.len()].copy_from_slice(path.as_bytes());
                header.set_cksum();
                builder.append(&header, &data[..]).unwrap();
            } else {
                builder.append_data(&mut header, &path, &data[..]).unwrap();
            }
        }
    }
    let tar = builder.into_inner().unwrap();
    fs_err::write(out, zstd::encode_all(&tar[..], 3).unwrap()).unwrap();
}

/// The manifest entry with `edit` applied to its JSON.
fn manifest_edited(
    edit: impl Fn(&mut serde_json::Value),
) -> impl FnMut(usize, Entry) -> Vec<Entry> {
    move |i, (path, mut header, data)| {
        if i != 0 {
            return vec![(path, header, data)];
        }
        let mut manifest: serde_json::Value = serde_json::from_slice(&data).unwrap();
        edit(&mut manifest);
        let data = serde_json::to_vec_pretty(&manifest).unwrap();
        header.set_size(data.len() as u64);
        vec![(path, header, data)]
    }
}

/// Bundles made from `good` the way an attacker or a broken medium would, each named.
fn hostile_bundles(good: &Path, dir: &Path) -> Vec<(String, std::path::PathBuf)> {
    let bytes = fs_err::read(good).unwrap();
    let entries = {
        let tar = zstd::decode_all(&bytes[..]).unwrap();
        tar::Archive::new(&tar[..]).entries().unwrap().count()
    };
    let last = entries - 1;
    let mut out = Vec::new();
    let mut add = |name: &str| {
        let path = dir.join(format!("{name}.tar.zst"));
        out.push((name.to_string(), path.clone()));
        path
    };

    let mut flipped = bytes.clone();
    let n = flipped.len();
    flipped[n / 2] ^= 0x01;
    fs_err::write(add("compressed-bit-flipped"), flipped).unwrap();
    fs_err::write(add("truncated-at-half"), &bytes[..bytes.len() / 2]).unwrap();
    fs_err::write(add("truncated-by-one-byte"), &bytes[..bytes.len() - 1]).unwrap();
    fs_err::write(add("empty-file"), b"").unwrap();
    let mut trailing = bytes.clone();
    trailing.extend_from_slice(b"junk after the frame");
    fs_err::write(add("bytes-after-the-stream"), trailing).unwrap();

    rewritten(
        good,
        &add("payload-byte-changed"),
        |i, (path, header, mut data)| {
            if i == last {
                data[0] ^= 0x20;
            }
            vec![(path, header, data)]
        },
    );
    rewritten(
        good,
        &add("entry-escaping-with-dotdot"),
        |i, (path, header, data)| {
            let path = if i == 1 {
                "../../../etc/evil".into()
            } else {
                path
            };
            vec![(path, header, data)]
        },
    );
    rewritten(
        good,
        &add("entry-is-a-symlink"),
        |i, (path, mut header, data)| {
            if i == 1 {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_link_name("/etc/shadow").unwrap();
                header.set_size(0);
                return vec![(path, header, Vec::new())];
            }
            vec![(path, header, data)]
        },
    );
    rewritten(
        good,
        &add("entry-larger-than-listed"),
        |i, (path, mut header, mut data)| {
            if i == last {
                data.extend_from_slice(b"more");
                header.set_size(data.len() as u64);
            }
            vec![(path, header, data)]
        },
    );
    rewritten(good, &add("entry-duplicated"), |i, entry| {
        if i == last {
            return vec![entry.clone(), entry];
        }
        vec![entry]
    });
    rewritten(good, &add("entry-missing"), |i, entry| {
        if i == last { Vec::new() } else { vec![entry] }
    });
    rewritten(good, &add("entry-not-listed"), |i, entry| {
        if i != last {
            return vec![entry];
        }
        let mut extra = tar::Header::new_gnu();
        extra.set_size(4);
        extra.set_mode(0o644);
        vec![entry, ("rpm/extra.rpm".into(), extra, b"evil".to_vec())]
    });
    rewritten(
        good,
        &add("manifest-path-escaping"),
        manifest_edited(|m| m["files"][0]["path"] = "../../../etc/cron.d/evil".into()),
    );
    rewritten(
        good,
        &add("manifest-newer-format"),
        manifest_edited(|m| m["format"] = 99.into()),
    );
    rewritten(
        good,
        &add("manifest-not-json"),
        manifest_edited(|m| *m = serde_json::Value::String("{".into())),
    );
    out
}

#[test]
fn every_hostile_bundle_leaves_the_installed_tree_exactly_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = bundles(tmp.path());
    let root = tmp.path().join("root");
    apply_ok(&old, &root);
    let before = exact_snapshot(&root);
    let hostile = tmp.path().join("hostile");
    fs_err::create_dir_all(&hostile).unwrap();
    let cases = hostile_bundles(&new, &hostile);
    assert_eq!(cases.len(), 15);
    for (name, bundle) in &cases {
        let out = apply_output(bundle, &root, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: applied");
        assert_eq!(out.status.code(), Some(3), "{name}: {stderr}");
        assert!(
            stderr.contains(&*bundle.to_string_lossy()),
            "{name}: {stderr}"
        );
        assert_eq!(exact_snapshot(&root), before, "{name} changed the tree");
    }
    // The good bundle still applies over the same tree.
    apply_ok(&new, &root);
}

#[test]
fn a_data_root_too_full_for_the_update_leaves_the_installed_tree_exactly_as_it_was() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = bundles(tmp.path());
    let root = tmp.path().join("root");
    let data = root.join("data");
    let _tmpfs = Tmpfs::mount(&data, "128m");
    apply_ok(&old, &root);
    // Fill the data root's filesystem (from outside the tree apply manages) until less is free
    // than the update needs.
    let payload = bundle::read::read_manifest(&new)
        .unwrap()
        .manifest
        .totals
        .bytes;
    let free = free_bytes(&data);
    let keep = payload / 2;
    let filler = data.join("operator-filler.bin");
    fs_err::write(&filler, vec![0u8; (free - keep) as usize]).unwrap();
    let before = exact_snapshot(&root);
    let out = apply_output(&new, &root, &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("needs ") && stderr.contains(" on /data, ") && stderr.contains(" free"),
        "{stderr}"
    );
    assert_eq!(
        stderr.matches("No space left").count(),
        0,
        "refused before writing: {stderr}"
    );
    assert_eq!(exact_snapshot(&root), before);
    // Room again: the same update goes through.
    fs_err::remove_file(&filler).unwrap();
    apply_ok(&new, &root);
}

/// Bytes available to an unprivileged writer on `dir`'s filesystem, as `df` counts them.
fn free_bytes(dir: &Path) -> u64 {
    let out = run_ok(
        std::process::Command::new("stat")
            .args(["-f", "-c", "%a %S"])
            .arg(dir),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (blocks, size) = text.trim().split_once(' ').unwrap();
    blocks.parse::<u64>().unwrap() * size.parse::<u64>().unwrap()
}

#[test]
fn a_second_apply_while_one_runs_is_refused_naming_it_and_the_first_ends_correct() {
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = bundles(tmp.path());
    let want = uninterrupted_tree(tmp.path(), &old, &new, UNSERVED_PORT);

    let root = tmp.path().join("root");
    apply_ok(&old, &root);
    let lock_file = root.join("data").join(installer::lock::LOCK_FILE);
    let first = installer_apply(&new, &root, UNSERVED_PORT, &[])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = first.id();
    // Once the first run has written itself into the lock, stop it there, so that the second
    // surely runs while the first holds the lock and is in the middle of its work.
    wait_for_lock_holder(&lock_file, pid);
    signal(pid, libc::SIGSTOP);
    let frozen = exact_snapshot(&root);
    let second = apply_output(&new, &root, &[]);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("locked by pid {pid} (`")) && stderr.contains(" apply "),
        "{stderr}"
    );
    assert_eq!(
        exact_snapshot(&root),
        frozen,
        "the refused run touched the tree"
    );
    signal(pid, libc::SIGCONT);
    let out = first.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(tree_listing(&root), want);
}

fn wait_for_lock_holder(lock_file: &Path, pid: u32) {
    let start = std::time::Instant::now();
    loop {
        let content = std::fs::read_to_string(lock_file).unwrap_or_default();
        if content.lines().next() == Some(&pid.to_string()) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "pid {pid} never took the lock: {content:?}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn signal(pid: u32, sig: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, sig) }, 0);
}
