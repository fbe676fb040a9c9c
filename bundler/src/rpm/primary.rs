//! Streaming reader of `primary.xml`: for every package what the mirror needs (location,
//! size, sha256) and what the slim closure needs (name, arch, EVR, provides, requires,
//! recommends, primary file list). Optional elements may be missing (Peridot omits empty
//! ones) and unknown elements are skipped.

use std::io::BufRead;

use super::RpmMetaError;
use super::repomd::{XmlStep, attr, walk_xml};

/// One dependency entry (`<rpm:entry>`). Rich dependencies have their whole expression in
/// `name` and no flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepEntry {
    pub name: String,
    /// EQ, LT, GT, LE, GE, or None for an unversioned entry.
    pub flags: Option<String>,
    pub epoch: Option<String>,
    pub ver: Option<String>,
    pub rel: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PrimaryPackage {
    pub name: String,
    pub arch: String,
    pub epoch: String,
    pub version: String,
    pub release: String,
    /// Lowercase hex sha256 of the .rpm file (None when primary uses another algorithm).
    pub sha256: Option<String>,
    pub size: u64,
    /// `location href`, relative to the repo base.
    pub href: String,
    pub provides: Vec<DepEntry>,
    pub requires: Vec<DepEntry>,
    pub recommends: Vec<DepEntry>,
    /// Files listed in primary (`/etc/*`, `*bin/*`, ...).
    pub files: Vec<String>,
}

impl PrimaryPackage {
    /// `name-[epoch:]version-release.arch`, as dnf prints it.
    pub fn nevra(&self) -> String {
        let epoch = if self.epoch.is_empty() || self.epoch == "0" {
            String::new()
        } else {
            format!("{}:", self.epoch)
        };
        format!(
            "{}-{epoch}{}-{}.{}",
            self.name, self.version, self.release, self.arch
        )
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DepList {
    None,
    Provides,
    Requires,
    Recommends,
    Other,
}

/// Parse a (decompressed) primary.xml stream.
pub fn parse_primary(input: impl BufRead, url: &str) -> Result<Vec<PrimaryPackage>, RpmMetaError> {
    let mut packages = Vec::new();
    let mut pkg: Option<PrimaryPackage> = None;
    let mut list = DepList::None;
    let mut checksum_sha256 = false;
    walk_xml(input, url, "metadata", |step| {
        match step {
            XmlStep::Open { element: e, .. } => {
                let local = e.local_name();
                let name = local.as_ref();
                if name == b"package" {
                    pkg = Some(PrimaryPackage::default());
                }
                let Some(p) = pkg.as_mut() else {
                    return Ok(());
                };
                match name {
                    b"version" if list == DepList::None => {
                        p.epoch = attr(e, "epoch").unwrap_or_else(|| "0".into());
                        p.version = attr(e, "ver").unwrap_or_default();
                        p.release = attr(e, "rel").unwrap_or_default();
                    }
                    b"checksum" => checksum_sha256 = attr(e, "type").as_deref() == Some("sha256"),
                    b"size" => {
                        p.size = attr(e, "package").and_then(|s| s.parse().ok()).unwrap_or(0)
                    }
                    b"location" => p.href = attr(e, "href").unwrap_or_default(),
                    b"provides" => list = DepList::Provides,
                    b"requires" => list = DepList::Requires,
                    b"recommends" => list = DepList::Recommends,
                    b"conflicts" | b"obsoletes" | b"suggests" | b"enhances" | b"supplements" => {
                        list = DepList::Other
                    }
                    b"entry" => {
                        let entry = DepEntry {
                            name: attr(e, "name").unwrap_or_default(),
                            flags: attr(e, "flags"),
                            epoch: attr(e, "epoch"),
                            ver: attr(e, "ver"),
                            rel: attr(e, "rel"),
                        };
                        match list {
                            DepList::Provides => p.provides.push(entry),
                            DepList::Requires => p.requires.push(entry),
                            DepList::Recommends => p.recommends.push(entry),
                            DepList::None | DepList::Other => {}
                        }
                    }
                    _ => {}
                }
            }
            XmlStep::Close { name, text } => {
                let Some(p) = pkg.as_mut() else {
                    return Ok(());
                };
                match name {
                    b"name" => p.name = text.trim().to_string(),
                    b"arch" => p.arch = text.trim().to_string(),
                    b"checksum" if checksum_sha256 => {
                        p.sha256 = Some(text.trim().to_ascii_lowercase())
                    }
                    b"file" => p.files.push(text.trim().to_string()),
                    b"provides" | b"requires" | b"recommends" | b"conflicts" | b"obsoletes"
                    | b"suggests" | b"enhances" | b"supplements" => list = DepList::None,
                    b"package" => {
                        let done = pkg.take().expect("inside package");
                        if done.href.is_empty() || done.name.is_empty() {
                            return Err(RpmMetaError::Malformed {
                                url: url.to_string(),
                                reason: format!("package {:?} without name or location", done.name),
                            });
                        }
                        packages.push(done);
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    })?;
    Ok(packages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpm::repomd::{decompress, parse_repomd};

    fn fixtures() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures")
    }

    fn load(dir: &str) -> Vec<PrimaryPackage> {
        let root = fixtures().join("repodata").join(dir);
        let md = parse_repomd(
            &fs_err::read(root.join("repodata/repomd.xml")).unwrap(),
            dir,
        )
        .unwrap();
        let href = &md.record("primary").unwrap().href;
        let file = fs_err::File::open(root.join(href)).unwrap();
        parse_primary(decompress(file).unwrap(), href).unwrap()
    }

    #[test]
    fn centos_stream_baseos_primary_public_fixture() {
        let pkgs = load("cs9-baseos-2024-03");
        assert!(pkgs.len() > 1000, "{}", pkgs.len());
        assert!(
            pkgs.iter()
                .all(|p| p.sha256.as_deref().is_some_and(|s| s.len() == 64))
        );
        let bash = pkgs
            .iter()
            .find(|p| p.name == "bash" && p.arch == "x86_64")
            .unwrap();
        assert!(bash.files.iter().any(|f| f == "/usr/bin/bash"));
        assert!(
            bash.provides
                .iter()
                .any(|d| d.name == "/bin/sh" || d.name == "bash")
        );
        assert!(
            pkgs.iter()
                .any(|p| p.requires.iter().any(|d| d.name.starts_with('('))),
            "rich deps present"
        );
    }

    #[test]
    fn zstd_primary_public_fixture() {
        let pkgs = load("zstd-small");
        assert_eq!(pkgs.len(), 1);
        assert!(!pkgs[0].href.is_empty());
    }

    #[test]
    fn missing_optional_elements_are_fine() {
        let xml = r#"<metadata xmlns="http://linux.duke.edu/metadata/common" xmlns:rpm="http://linux.duke.edu/metadata/rpm" packages="1">
<package type="rpm"><name>a&amp;b</name><arch>noarch</arch><version epoch="0" ver="1" rel="1"/>
<checksum type="sha256" pkgid="YES">ABCD</checksum><size package="10"/><location href="Packages/a/a-1-1.noarch.rpm"/>
<format><rpm:requires><rpm:entry name="(x or y)"/><rpm:entry name="z" flags="GE" epoch="0" ver="2"/></rpm:requires><unknown-thing/></format></package>
</metadata>"#;
        let pkgs = parse_primary(xml.as_bytes(), "t").unwrap();
        assert_eq!(pkgs[0].name, "a&b");
        assert_eq!(pkgs[0].sha256.as_deref(), Some("abcd"));
        assert_eq!(pkgs[0].requires.len(), 2);
        assert_eq!(pkgs[0].requires[1].flags.as_deref(), Some("GE"));
    }
}
