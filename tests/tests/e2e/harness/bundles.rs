//! Two bundles of one small site for the crash and refusal tests (`old`, then `new` with a
//! repo and the wheels changed), and an exact snapshot of a tree for "left as it was".

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::localbundle::{LocalBundleSpec, build_local_bundle};
use e2e::mirror::{MirrorSpec, generate_mirror};
use e2e::rpmgen::{PackageSpec, write_package};

/// A small pure-Python wheel whose METADATA names it.
fn write_wheel(dir: &Path, name: &str, version: &str) -> PathBuf {
    let path = dir.join(format!("{name}-{version}-py3-none-any.whl"));
    let file = fs_err::File::create(&path).unwrap();
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::SimpleFileOptions::default();
    zip.start_file(format!("{name}/__init__.py"), opts).unwrap();
    zip.write_all(&vec![b'#'; 4096]).unwrap();
    zip.start_file(format!("{name}-{version}.dist-info/METADATA"), opts)
        .unwrap();
    write!(
        zip,
        "Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nRequires-Python: >=3.9\n\n"
    )
    .unwrap();
    zip.finish().unwrap();
    path
}

/// Two bundles of a small generated mirror plus wheels: `old` with wheels a, b, c; `new`
/// drops b, adds d and a newer c, and its AppStream loses one package and gains another
/// (BaseOS and extras are the same).
pub fn bundles(tmp: &Path) -> (PathBuf, PathBuf) {
    let mirror = tmp.join("mirror");
    generate_mirror(&MirrorSpec::small(&mirror)).unwrap();
    let mirror2 = tmp.join("mirror2");
    assert!(
        Command::new("cp")
            .arg("-al")
            .arg(&mirror)
            .arg(&mirror2)
            .status()
            .unwrap()
            .success()
    );
    let appstream = mirror2.join("10/AppStream/x86_64/os/Packages");
    let victim = fs_err::read_dir(appstream.join("m"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("-gen"))
        .expect("a filler package in AppStream");
    fs_err::remove_file(victim).unwrap();
    write_package(
        &PackageSpec::new("kso-newcomer", "1.0", "noarch"),
        appstream.parent().unwrap(),
        true,
    )
    .unwrap();

    let old_wheels = tmp.join("wheels-old");
    let new_wheels = tmp.join("wheels-new");
    for d in [&old_wheels, &new_wheels] {
        fs_err::create_dir_all(d).unwrap();
    }
    for (n, v) in [("alpha", "1.0"), ("beta", "1.0"), ("gamma", "1.0")] {
        write_wheel(&old_wheels, n, v);
    }
    for (n, v) in [("alpha", "1.0"), ("gamma", "2.0"), ("delta", "0.1")] {
        write_wheel(&new_wheels, n, v);
    }
    let spec = |mirror: &Path, wheels: &Path, created: &str| LocalBundleSpec {
        mirror_root: Some(mirror.to_path_buf()),
        key: Some(mirror.join(e2e::rpmgen::TEST_KEY_FILE)),
        release: "10".into(),
        arches: vec!["x86_64".into(), "aarch64".into()],
        wheels: Some(wheels.to_path_buf()),
        created: created.into(),
    };
    let old = tmp.join("old.tar.zst");
    let new = tmp.join("new.tar.zst");
    build_local_bundle(
        &spec(&mirror, &old_wheels, "2026-09-01T00:00:00Z"),
        &tmp.join("w-old"),
        &old,
    )
    .unwrap();
    build_local_bundle(
        &spec(&mirror2, &new_wheels, "2026-10-01T00:00:00Z"),
        &tmp.join("w-new"),
        &new,
    )
    .unwrap();
    (old, new)
}

/// Every entry under `dir` with what a refused apply must not change: a file's size, mtime,
/// inode and sha256, a directory's inode (its own mtime may change). The lock file's mtime is
/// left out: every run takes the lock, and so writes the file.
pub fn exact_snapshot(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::MetadataExt;
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs_err::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = fs_err::symlink_metadata(&path).unwrap();
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            if meta.is_dir() {
                out.push(format!("{rel}/ ino={}", meta.ino()));
                walk(base, &path, out);
            } else {
                let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(
                    fs_err::read(&path).unwrap(),
                ));
                let mtime = if rel.ends_with(installer::lock::LOCK_FILE) {
                    "-".to_string()
                } else {
                    format!("{}.{}", meta.mtime(), meta.mtime_nsec())
                };
                out.push(format!(
                    "{rel} size={} mtime={mtime} ino={} sha256={digest}",
                    meta.len(),
                    meta.ino()
                ));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}
