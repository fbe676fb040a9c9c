//! Path rules for bundle entries and the consistency checks a manifest must pass before any
//! payload is trusted. Both the writer and the reader call these, so a bundle this crate writes
//! is always one it will read.
//!
//! A payload path is relative, `/`-separated UTF-8 with no empty, `.` or `..` component, no
//! backslash, NUL or other control character, at most [`MAX_PATH_BYTES`] bytes, and is not one
//! of the reserved names of the first two entries. No file path may also be a directory of
//! another file path (`a` and `a/b`), because both could not exist on disk.

use std::collections::{HashMap, HashSet};

use crate::manifest::{BundleManifest, MANIFEST_NAME, SIGNATURE_NAME};

/// Longest accepted payload path in bytes (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest accepted path component in bytes (Linux `NAME_MAX`).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// Checks one payload path; the error says which rule it breaks.
pub fn check_entry_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty path".into());
    }
    if path.len() > MAX_PATH_BYTES {
        return Err(format!("longer than {MAX_PATH_BYTES} bytes"));
    }
    if path.starts_with('/') {
        return Err("absolute path".into());
    }
    if path.contains('\\') {
        return Err("contains a backslash".into());
    }
    if path.contains('\0') {
        return Err("contains a NUL byte".into());
    }
    if path.chars().any(char::is_control) {
        return Err("contains a control character".into());
    }
    for component in path.split('/') {
        match component {
            "" => return Err("empty path component (`//` or trailing `/`)".into()),
            "." => return Err("`.` component".into()),
            ".." => return Err("`..` component".into()),
            c if c.len() > MAX_COMPONENT_BYTES => {
                return Err(format!("component longer than {MAX_COMPONENT_BYTES} bytes"));
            }
            _ => {}
        }
    }
    if path == MANIFEST_NAME || path == SIGNATURE_NAME {
        return Err("reserved name".into());
    }
    Ok(())
}

/// Same as [`check_entry_path`] for raw archive bytes, which may not even be UTF-8.
pub fn check_entry_path_bytes(path: &[u8]) -> Result<&str, String> {
    let path = std::str::from_utf8(path).map_err(|_| "not valid UTF-8".to_string())?;
    check_entry_path(path)?;
    Ok(path)
}

/// Is `s` a lowercase hex sha256?
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Every rule a manifest's file list must satisfy. Returns the index of each path, which the
/// reader uses to tell an unknown entry from a misplaced one.
pub fn check_manifest(manifest: &BundleManifest) -> Result<HashMap<&str, usize>, String> {
    let mut index = HashMap::with_capacity(manifest.files.len());
    for (i, file) in manifest.files.iter().enumerate() {
        check_entry_path(&file.path).map_err(|why| format!("files[{i}] {:?}: {why}", file.path))?;
        if !is_sha256_hex(&file.sha256) {
            return Err(format!(
                "files[{i}] {:?}: sha256 {:?} is not 64 lowercase hex digits",
                file.path, file.sha256
            ));
        }
        if index.insert(file.path.as_str(), i).is_some() {
            return Err(format!("files[{i}] {:?}: listed twice", file.path));
        }
    }
    let mut dirs: HashSet<&str> = HashSet::new();
    for file in &manifest.files {
        let mut end = 0;
        while let Some(slash) = file.path[end..].find('/') {
            end += slash;
            dirs.insert(&file.path[..end]);
            end += 1;
        }
    }
    if let Some(file) = manifest
        .files
        .iter()
        .find(|f| dirs.contains(f.path.as_str()))
    {
        return Err(format!(
            "{:?} is listed as a file and is also the directory of other files",
            file.path
        ));
    }
    let bytes: u64 = manifest.files.iter().map(|f| f.size).sum();
    if manifest.totals.files != manifest.files.len() as u64 || manifest.totals.bytes != bytes {
        return Err(format!(
            "totals say {} files / {} bytes but the file list has {} files / {} bytes",
            manifest.totals.files,
            manifest.totals.bytes,
            manifest.files.len(),
            bytes
        ));
    }
    if manifest.base.is_some() || manifest.files.iter().any(|f| f.in_base) {
        check_differential(manifest, &index)?;
    }
    Ok(index)
}

/// A differential manifest must be complete: it describes the whole new state (its id is that
/// state's, every path its sections name is listed) and leaves out only files the installer can
/// take from the base, so that an apply builds exactly what the full bundle would.
fn check_differential(
    manifest: &BundleManifest,
    index: &HashMap<&str, usize>,
) -> Result<(), String> {
    if manifest.base.is_none() {
        let file = manifest
            .files
            .iter()
            .find(|f| f.in_base)
            .expect("caller checked");
        return Err(format!(
            "{:?} is marked in_base but the manifest names no base bundle",
            file.path
        ));
    }
    if manifest.format < crate::manifest::DELTA_FORMAT {
        return Err(format!(
            "a differential bundle is format {} or later, this one says {}",
            crate::manifest::DELTA_FORMAT,
            manifest.format
        ));
    }
    if let Some(file) = manifest
        .files
        .iter()
        .find(|f| f.in_base && f.kind.travels_in_full())
    {
        return Err(format!(
            "{:?} ({:?}) is marked in_base, but metadata always travels in full",
            file.path, file.kind
        ));
    }
    let id = crate::manifest::state_id(&manifest.files);
    if manifest.bundle_id != id {
        return Err(format!(
            "bundle_id {} is not the id of the listed files ({id}): the manifest is incomplete",
            manifest.bundle_id
        ));
    }
    let mut named: Vec<&str> = Vec::new();
    if let Some(rpm) = &manifest.rpm {
        named.extend(rpm.key_path.as_deref());
        for repo in &rpm.repos {
            named.extend(repo.metadata.iter().map(|r| r.path.as_str()));
        }
    }
    for target in &manifest.pypi_targets {
        named.extend(target.lock.iter().map(|l| l.path.as_str()));
    }
    if let Some(k) = &manifest.kubespray {
        named.extend(k.files.iter().map(|f| f.path.as_str()));
        for image in &k.images {
            named.extend(image.manifests.iter().map(|m| m.path.as_str()));
        }
    }
    if let Some(path) = named.into_iter().find(|p| !index.contains_key(p)) {
        return Err(format!(
            "{path:?} is named by the manifest but not among its files: the manifest is incomplete"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_paths() {
        for ok in [
            "repos/baseos/x86_64/Packages/b/bash-5.2.26-4.el10.x86_64.rpm",
            "pypi/files/six-1.16.0-py2.py3-none-any.whl",
            "keys/RPM-GPG-KEY-Rocky-10",
            "a",
            "..a/b..",
        ] {
            assert_eq!(check_entry_path(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_each_unsafe_form() {
        for (bad, why) in [
            ("", "empty"),
            ("/etc/passwd", "absolute"),
            ("../x", "`..`"),
            ("a/../../x", "`..`"),
            ("a/./b", "`.`"),
            ("a//b", "empty path component"),
            ("a/", "empty path component"),
            ("a\\b", "backslash"),
            ("a\0b", "NUL"),
            ("a\nb", "control"),
            ("manifest.json", "reserved"),
            ("manifest.json.sig", "reserved"),
        ] {
            let err = check_entry_path(bad).unwrap_err();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
        assert!(check_entry_path(&"x".repeat(256)).is_err());
        assert!(check_entry_path_bytes(b"a/\xff").is_err());
    }

    fn delta() -> BundleManifest {
        let file = |path: &str, kind, in_base| crate::FileEntry {
            path: path.into(),
            size: 1,
            sha256: "ab".repeat(32),
            kind,
            origin: None,
            in_base,
        };
        let mut m = BundleManifest {
            format: 1,
            min_installer_version: None,
            bundle_id: String::new(),
            base: Some(crate::BaseBundle {
                bundle_id: "0".repeat(32),
                created: time::OffsetDateTime::UNIX_EPOCH,
            }),
            created: time::OffsetDateTime::UNIX_EPOCH,
            tool: crate::ToolInfo {
                name: "t".into(),
                version: "0".into(),
            },
            release: None,
            arches: Vec::new(),
            rpm: None,
            pypi_targets: Vec::new(),
            kubespray: None,
            files: vec![
                file("repos/a/x.rpm", crate::FileKind::Rpm, true),
                file(
                    "repos/a/repodata/repomd.xml",
                    crate::FileKind::Repodata,
                    false,
                ),
            ],
            totals: Default::default(),
        };
        crate::manifest::finalize(&mut m);
        m
    }

    #[test]
    fn a_differential_manifest_must_be_complete() {
        let good = delta();
        assert_eq!(good.format, crate::DELTA_FORMAT);
        assert!(check_manifest(&good).is_ok());

        let mut m = good.clone();
        m.files[1].in_base = true;
        assert!(
            check_manifest(&m)
                .unwrap_err()
                .contains("metadata always travels in full")
        );
        let mut m = good.clone();
        m.base = None;
        assert!(check_manifest(&m).unwrap_err().contains("names no base"));
        let mut m = good.clone();
        m.format = crate::FORMAT_VERSION;
        assert!(
            check_manifest(&m)
                .unwrap_err()
                .contains("format 2 or later")
        );
        let mut m = good.clone();
        m.bundle_id = "f".repeat(32);
        assert!(check_manifest(&m).unwrap_err().contains("incomplete"));
        let mut m = good;
        m.rpm = Some(crate::RpmSection {
            distro: "rocky".into(),
            gpgcheck: false,
            key_path: Some("keys/missing".into()),
            key_fingerprint: None,
            pinned_fingerprints: Vec::new(),
            minor_release: None,
            repos: Vec::new(),
        });
        assert!(check_manifest(&m).unwrap_err().contains("keys/missing"));
    }
}
