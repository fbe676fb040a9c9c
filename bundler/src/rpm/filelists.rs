//! Streaming reader of `filelists.xml`, for the file requirements of slim mode that primary
//! cannot answer. Primary lists only the files createrepo_c's rules keep (`/etc/*`, `*bin/*`,
//! `/usr/lib/sendmail`); a requirement on any other path (`/usr/share/...`, `/usr/libexec/...`)
//! can only be met from filelists, which is also where dnf looks it up. Only the paths someone
//! requires are kept, so memory stays small even for AppStream's filelists (hundreds of MB of
//! XML): the file is streamed once and nothing else of it is held.

use std::collections::{HashMap, HashSet};
use std::io::BufRead;

use super::RpmMetaError;
use super::primary::PrimaryPackage;
use super::repomd::{XmlStep, attr, walk_xml};

/// Adds to each package's `files` the paths of `wanted` that filelists lists for it, and
/// returns how many were added. Packages are matched by `pkgid` (the sha256 primary names),
/// or by name, arch and EVR where primary has no sha256; filelists entries for packages not in
/// `packages` are skipped.
pub fn add_wanted_files(
    input: impl BufRead,
    url: &str,
    packages: &mut [PrimaryPackage],
    wanted: &HashSet<String>,
) -> Result<usize, RpmMetaError> {
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut by_nevra: HashMap<(String, String, String, String, String), usize> = HashMap::new();
    for (i, p) in packages.iter().enumerate() {
        if let Some(sha) = &p.sha256 {
            by_id.insert(sha.clone(), i);
        }
        by_nevra.insert(
            nevra_key(&p.name, &p.arch, &p.epoch, &p.version, &p.release),
            i,
        );
    }

    // The package being read (its name and arch, for the EVR match) and its index, once known.
    let mut current: Option<(String, String)> = None;
    let mut target: Option<usize> = None;
    let mut added = 0;
    walk_xml(input, url, "filelists", |step| {
        match step {
            XmlStep::Open { element: e, .. } => match e.local_name().as_ref() {
                b"package" => {
                    let id = attr(e, "pkgid").map(|s| s.to_ascii_lowercase());
                    target = id.and_then(|id| by_id.get(&id)).copied();
                    current = Some((
                        attr(e, "name").unwrap_or_default(),
                        attr(e, "arch").unwrap_or_default(),
                    ));
                }
                b"version" => {
                    if let (None, Some((name, arch))) = (target, &current) {
                        let key = nevra_key(
                            name,
                            arch,
                            &attr(e, "epoch").unwrap_or_else(|| "0".into()),
                            &attr(e, "ver").unwrap_or_default(),
                            &attr(e, "rel").unwrap_or_default(),
                        );
                        target = by_nevra.get(&key).copied();
                    }
                }
                _ => {}
            },
            XmlStep::Close { name, text } => match name {
                b"file" => {
                    let path = text.trim();
                    if let Some(i) = target
                        && wanted.contains(path)
                        && !packages[i].files.iter().any(|f| f == path)
                    {
                        packages[i].files.push(path.to_string());
                        added += 1;
                    }
                }
                b"package" => {
                    current = None;
                    target = None;
                }
                _ => {}
            },
        }
        Ok(())
    })?;
    Ok(added)
}

/// Name, arch and EVR, with an empty epoch read as 0 (as primary and filelists both may).
fn nevra_key(
    name: &str,
    arch: &str,
    epoch: &str,
    version: &str,
    release: &str,
) -> (String, String, String, String, String) {
    let epoch = if epoch.is_empty() { "0" } else { epoch };
    (
        name.to_string(),
        arch.to_string(),
        epoch.to_string(),
        version.to_string(),
        release.to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(name: &str, sha256: Option<&str>) -> PrimaryPackage {
        PrimaryPackage {
            name: name.into(),
            arch: "noarch".into(),
            epoch: "0".into(),
            version: "1".into(),
            release: "1.el10".into(),
            sha256: sha256.map(str::to_string),
            href: format!("Packages/{name}.rpm"),
            ..PrimaryPackage::default()
        }
    }

    #[test]
    fn only_wanted_paths_are_added_matched_by_pkgid_or_evr() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<filelists xmlns="http://linux.duke.edu/metadata/filelists" packages="3">
<package pkgid="AAAA" name="tzdata" arch="noarch"><version epoch="0" ver="1" rel="1.el10"/>
  <file>/usr/share/zoneinfo/UTC</file><file>/usr/share/zoneinfo/Etc/UTC</file>
  <file type="dir">/usr/share/zoneinfo</file></package>
<package pkgid="other" name="data" arch="noarch"><version ver="1" rel="1.el10"/>
  <file>/usr/share/data/a&amp;b</file></package>
<package pkgid="nope" name="absent" arch="noarch"><version epoch="0" ver="1" rel="1.el10"/>
  <file>/usr/share/zoneinfo/UTC</file></package>
</filelists>"#;
        // tzdata is matched by pkgid; data (no sha256 in primary) by name, arch and EVR.
        let mut pkgs = vec![package("tzdata", Some("aaaa")), package("data", None)];
        let wanted: HashSet<String> = [
            "/usr/share/zoneinfo/UTC",
            "/usr/share/zoneinfo",
            "/usr/share/data/a&b",
        ]
        .map(String::from)
        .into();
        let added = add_wanted_files(xml.as_bytes(), "t", &mut pkgs, &wanted).unwrap();
        assert_eq!(added, 3);
        assert_eq!(
            pkgs[0].files,
            ["/usr/share/zoneinfo/UTC", "/usr/share/zoneinfo"]
        );
        assert_eq!(pkgs[1].files, ["/usr/share/data/a&b"]);
    }

    #[test]
    fn not_a_filelists_document_is_an_error_naming_the_url() {
        let err = add_wanted_files(
            "<metadata/>".as_bytes(),
            "http://m/f.xml",
            &mut [],
            &HashSet::new(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("http://m/f.xml"), "{err}");
    }
}
