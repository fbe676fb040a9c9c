//! Shared helpers: a base manifest, trees of files, raw bundle crafting for hostile cases, and
//! a recursive listing to prove a destination was left alone.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use bundle::{BundleManifest, FORMAT_VERSION, FileEntry, FileKind, ToolInfo, Totals};
use sha2::{Digest, Sha256};

/// Packs the tree at `src` into `out` with the base manifest and default options but `io`.
pub fn pack_default(src: &Path, out: &Path, io: bundle::IoMode) -> bundle::write::WrittenBundle {
    let opts = bundle::write::WriteOptions {
        io,
        ..Default::default()
    };
    crate::tree::pack_tree(src, out, base_manifest(), &opts, &bundle::NoProgress).unwrap()
}

/// `verify` in the mode `io`.
pub fn verify_in(
    bundle: &Path,
    key: Option<&bundle::sign::VerifyingKey>,
    io: bundle::IoMode,
) -> Result<BundleManifest, bundle::BundleError> {
    bundle::read::verify_detailed(bundle, key, io, &bundle::NoProgress).map(|v| v.manifest)
}

/// `extract` in the mode `io`.
pub fn extract_in(
    bundle: &Path,
    dest: &Path,
    key: Option<&bundle::sign::VerifyingKey>,
    io: bundle::IoMode,
) -> Result<BundleManifest, bundle::BundleError> {
    let observer = bundle::read::NoObserver;
    bundle::read::extract_observed(bundle, dest, key, io, &observer, &bundle::NoProgress)
}

pub fn base_manifest() -> BundleManifest {
    BundleManifest {
        format: FORMAT_VERSION,
        min_installer_version: None,
        base: None,
        bundle_id: String::new(),
        created: time::macros::datetime!(2026-01-02 03:04:05 UTC),
        tool: ToolInfo {
            name: "bundle-tests".into(),
            version: "0.0.0".into(),
        },
        release: Some("10".into()),
        arches: vec!["x86_64".into()],
        rpm: None,
        pypi_targets: vec![],
        kubespray: None,
        files: vec![],
        totals: Totals::default(),
    }
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

pub fn entry(path: &str, data: &[u8]) -> FileEntry {
    FileEntry {
        path: path.into(),
        size: data.len() as u64,
        sha256: sha256_hex(data),
        kind: FileKind::Other,
        origin: None,
        in_base: false,
    }
}

/// Writes `files` under `dir`.
pub fn write_tree(dir: &Path, files: &[(&str, Vec<u8>)]) {
    for (rel, data) in files {
        let path = dir.join(rel);
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(&path, data).unwrap();
    }
}

/// Every file, directory and symlink under `root` with its type, mode, size and content hash.
pub fn listing(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, String>) {
    use std::os::unix::fs::PermissionsExt;
    for entry in fs_err::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = fs_err::symlink_metadata(entry.path()).unwrap();
        let rel = entry.path().strip_prefix(root).unwrap().to_path_buf();
        let mode = meta.permissions().mode();
        if meta.is_dir() {
            out.insert(rel, format!("dir {mode:o}"));
            walk(root, &entry.path(), out);
        } else if meta.is_file() {
            let data = fs_err::read(entry.path()).unwrap();
            out.insert(
                rel,
                format!("file {mode:o} {} {}", data.len(), sha256_hex(&data)),
            );
        } else {
            out.insert(rel, format!("other {mode:o}"));
        }
    }
}

/// One raw tar member for crafted bundles. `size` defaults to `data.len()`.
pub struct Raw {
    pub name: Vec<u8>,
    pub kind: tar::EntryType,
    pub data: Vec<u8>,
    pub size: Option<u64>,
    pub link: Vec<u8>,
}

impl Raw {
    pub fn file(name: &str, data: &[u8]) -> Raw {
        Raw {
            name: name.as_bytes().to_vec(),
            kind: tar::EntryType::Regular,
            data: data.to_vec(),
            size: None,
            link: vec![],
        }
    }

    pub fn manifest(manifest: &BundleManifest) -> Raw {
        Raw::file("manifest.json", &bundle::write::manifest_bytes(manifest))
    }
}

/// The tar bytes of `entries` followed by the end-of-archive blocks; names are set raw, with no
/// checks, and long names use a GNU long name entry.
pub fn raw_tar(entries: &[Raw]) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        if e.name.len() > 100 {
            push_member(
                &mut out,
                b"././@LongLink",
                tar::EntryType::GNULongName,
                &[e.name.clone(), vec![0]].concat(),
                None,
                b"",
            );
        }
        push_member(
            &mut out,
            &e.name[..e.name.len().min(100)],
            e.kind,
            &e.data,
            e.size,
            &e.link,
        );
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn push_member(
    out: &mut Vec<u8>,
    name: &[u8],
    kind: tar::EntryType,
    data: &[u8],
    size: Option<u64>,
    link: &[u8],
) {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name);
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    h.set_size(size.unwrap_or(data.len() as u64));
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(kind);
    h.set_cksum();
    out.extend_from_slice(h.as_bytes());
    out.extend_from_slice(data);
    out.resize(out.len().next_multiple_of(512), 0);
}

pub fn compress(tar: &[u8]) -> Vec<u8> {
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 1).unwrap();
    enc.include_checksum(true).unwrap();
    enc.write_all(tar).unwrap();
    enc.finish().unwrap()
}

/// An extraction observer that checks, for every file it is shown, that the file at the given
/// path already holds exactly the bytes the manifest names and that `head` is their start (long
/// enough), and records the entry paths.
#[derive(Default)]
pub struct CheckingObserver {
    pub seen: std::sync::Mutex<Vec<String>>,
    pub wrong: std::sync::Mutex<Vec<String>>,
}

impl bundle::read::EntryObserver for CheckingObserver {
    fn verified(&self, entry: &FileEntry, path: &Path, head: &[u8]) {
        let data = fs_err::read(path).unwrap();
        // At least the first OBSERVED_HEAD bytes, all of a file that fits the 1 MiB window.
        let at_least = if data.len() <= 1 << 20 {
            data.len()
        } else {
            bundle::read::OBSERVED_HEAD
        };
        if sha256_hex(&data) != entry.sha256 || head.len() < at_least || !data.starts_with(head) {
            self.wrong.lock().unwrap().push(entry.path.clone());
        }
        self.seen.lock().unwrap().push(entry.path.clone());
    }
}
