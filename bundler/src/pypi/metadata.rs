//! What a distribution file says about itself: the name/version/tags in its filename, and its
//! core metadata (METADATA in a wheel, PKG-INFO in an sdist): Requires-Dist, Requires-Python,
//! Provides-Extra and, for sdists, whether the dependencies are static (PEP 643).

use std::io::Read;

use pep440_rs::{Version, VersionSpecifiers};
use pep508_rs::{PackageName, Requirement};

/// Parses one PEP 508 requirement. pep508_rs 0.9.2 panics on some input its grammar lets
/// through (non-ASCII text it slices inside a character; a name or extra ending in `.`, `-` or
/// `_`, which its own name type then refuses; found by fuzzing, see docs/RELIABILITY.md), so
/// those are refused here first, and a panic left in it is an error, not a crash.
pub fn parse_requirement(text: &str) -> Result<Requirement, String> {
    if let Some(c) = text.chars().find(|c| !c.is_ascii()) {
        return Err(format!(
            "{c:?} is not ASCII; requirements are written in ASCII"
        ));
    }
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
    let rest = text.trim_start();
    let name_len = rest.find(|c: char| !is_name_char(c)).unwrap_or(rest.len());
    let mut names = vec![&rest[..name_len]];
    if let Some(extras) = rest[name_len..].trim_start().strip_prefix('[') {
        // Every run of name characters up to `]`, however they are separated.
        let extras = extras.split(']').next().unwrap_or_default();
        names.extend(
            extras
                .split(|c: char| !is_name_char(c))
                .filter(|e| !e.is_empty()),
        );
    }
    for name in names {
        if name.ends_with(['.', '-', '_']) || name.starts_with(['.', '-', '_']) {
            return Err(format!(
                "`{name}` is not a valid name: names start and end with a letter or digit"
            ));
        }
    }
    std::panic::catch_unwind(|| text.parse::<Requirement>())
        .map_err(|_| "the PEP 508 parser failed on it".to_string())?
        .map_err(|err| err.to_string())
}

/// Kinds of distribution files the bundler can carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DistFilename {
    Wheel {
        version: Version,
        python: String,
        abi: String,
        platform: String,
    },
    /// `.tar.gz` or `.zip` source distribution.
    Sdist { version: Version },
}

impl DistFilename {
    /// Parses `filename` as a file of `project`; `None` for other files (eggs, `.exe`, names that
    /// belong to another project, unparsable versions).
    pub fn parse(filename: &str, project: &PackageName) -> Option<Self> {
        if let Some(stem) = filename.strip_suffix(".whl") {
            let parts: Vec<&str> = stem.split('-').collect();
            let (name, version, python, abi, platform) = match parts.as_slice() {
                [name, version, python, abi, platform] => (name, version, python, abi, platform),
                [name, version, _build, python, abi, platform] => {
                    (name, version, python, abi, platform)
                }
                _ => return None,
            };
            if normalize(name) != project.as_ref() {
                return None;
            }
            return Some(DistFilename::Wheel {
                version: version.parse().ok()?,
                python: python.to_string(),
                abi: abi.to_string(),
                platform: platform.to_string(),
            });
        }
        let stem = filename
            .strip_suffix(".tar.gz")
            .or_else(|| filename.strip_suffix(".zip"))?;
        // Sdist names may contain dashes; the version is what follows the dash whose prefix
        // normalizes to the project name.
        for (at, _) in stem.match_indices('-') {
            if normalize(&stem[..at]) == project.as_ref() {
                return Some(DistFilename::Sdist {
                    version: stem[at + 1..].parse().ok()?,
                });
            }
        }
        None
    }

    pub fn version(&self) -> &Version {
        match self {
            DistFilename::Wheel { version, .. } | DistFilename::Sdist { version } => version,
        }
    }
}

/// PEP 503 normalization.
pub fn normalize(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut last_dash = false;
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !last_dash {
                out.push('-');
            }
            last_dash = true;
        } else {
            out.push(c.to_ascii_lowercase());
            last_dash = false;
        }
    }
    out
}

/// The fields of core metadata the resolver uses.
#[derive(Debug, Clone)]
pub struct CoreMetadata {
    pub metadata_version: String,
    pub name: String,
    pub version: Version,
    pub requires_dist: Vec<Requirement>,
    pub requires_python: Option<VersionSpecifiers>,
    pub provides_extra: Vec<String>,
    /// `Dynamic:` fields (PEP 643), lowercased.
    pub dynamic: Vec<String>,
}

impl CoreMetadata {
    /// Parses the RFC 822 style header block (mailparse: folded lines, repeated fields, RFC 2047
    /// words as `packaging` reads them); the body (the description) is not read.
    pub fn parse(bytes: &[u8]) -> Result<Self, String> {
        let (headers, _) =
            mailparse::parse_headers(bytes).map_err(|err| format!("malformed header: {err}"))?;
        let fields: Vec<(String, String)> = headers
            .iter()
            .map(|h| {
                let value = h.get_value();
                (
                    h.get_key().trim().to_ascii_lowercase(),
                    value.trim().to_string(),
                )
            })
            .collect();
        let get = |key: &str| {
            fields
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        };
        let all = |key: &str| {
            fields
                .iter()
                .filter(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
                .collect::<Vec<_>>()
        };
        let name = get("name").ok_or("no Name field")?;
        let version = get("version").ok_or("no Version field")?;
        let version: Version = version
            .parse()
            .map_err(|err| format!("Version `{version}`: {err}"))?;
        let requires_dist = all("requires-dist")
            .iter()
            .map(|line| {
                parse_requirement(line).map_err(|err| format!("Requires-Dist `{line}`: {err}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let requires_python = match get("requires-python") {
            Some(value) if !value.is_empty() => Some(
                value
                    .parse()
                    .map_err(|err| format!("Requires-Python `{value}`: {err}"))?,
            ),
            _ => None,
        };
        Ok(CoreMetadata {
            metadata_version: get("metadata-version").unwrap_or_default(),
            name,
            version,
            requires_dist,
            requires_python,
            provides_extra: all("provides-extra"),
            dynamic: all("dynamic")
                .iter()
                .map(|field| field.to_ascii_lowercase())
                .collect(),
        })
    }

    /// PEP 643: sdist metadata can be trusted when it is 2.2+ and Requires-Dist is not dynamic.
    pub fn dependencies_are_static(&self) -> bool {
        let mut parts = self
            .metadata_version
            .split('.')
            .map(|part| part.parse::<u32>().unwrap_or(0));
        let version = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        version >= (2, 2) && !self.dynamic.iter().any(|field| field == "requires-dist")
    }
}

/// Reads `*.dist-info/METADATA` out of a wheel. `archive` may be sparse: a reader that fails
/// with [`MissingRange`] for bytes it does not hold yet, so callers can fetch them and retry.
pub fn wheel_metadata<R: std::io::Read + std::io::Seek>(
    archive: R,
) -> Result<Vec<u8>, std::io::Error> {
    let mut zip = zip::ZipArchive::new(archive).map_err(zip_to_io)?;
    let name = zip
        .file_names()
        .filter(|name| {
            let mut parts = name.split('/');
            matches!((parts.next(), parts.next(), parts.next()), (Some(dir), Some("METADATA"), None) if dir.ends_with(".dist-info"))
        })
        .min_by_key(|name| name.len())
        .map(str::to_string)
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "no *.dist-info/METADATA in wheel"))?;
    let file = zip.by_name(&name).map_err(zip_to_io)?;
    read_bounded(file, &name)
}

/// Largest METADATA or PKG-INFO read (real ones are a few kB): a compressed member can expand
/// to any size its archive likes.
const MAX_METADATA_BYTES: u64 = 16 << 20;

fn read_bounded(member: impl Read, name: &str) -> Result<Vec<u8>, std::io::Error> {
    let mut bytes = Vec::new();
    member
        .take(MAX_METADATA_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_METADATA_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{name} is larger than {MAX_METADATA_BYTES} bytes"),
        ));
    }
    Ok(bytes)
}

/// Reads `<name>-<version>/PKG-INFO` out of a `.tar.gz` sdist.
pub fn sdist_pkg_info(bytes: &[u8]) -> Result<Vec<u8>, std::io::Error> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    for entry in archive.entries()? {
        let entry = entry?;
        let path = entry.path()?.to_path_buf();
        if path.components().count() == 2 && path.file_name().is_some_and(|name| name == "PKG-INFO")
        {
            return read_bounded(entry, "PKG-INFO");
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        "no top-level PKG-INFO in sdist",
    ))
}

fn zip_to_io(err: zip::result::ZipError) -> std::io::Error {
    match err {
        zip::result::ZipError::Io(err) => err,
        other => std::io::Error::new(std::io::ErrorKind::InvalidData, other.to_string()),
    }
}

/// Marker error of [`SparseFile`]: the reader needs bytes starting at `offset`.
#[derive(Debug)]
pub struct MissingRange {
    pub offset: u64,
}

impl std::fmt::Display for MissingRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bytes at offset {} not fetched yet", self.offset)
    }
}

impl std::error::Error for MissingRange {}

/// A file of known length of which only some ranges are present (fetched with HTTP Range).
#[derive(Debug, Default)]
pub struct SparseFile {
    pub len: u64,
    chunks: Vec<(u64, Vec<u8>)>,
    position: u64,
}

impl SparseFile {
    pub fn new(len: u64) -> Self {
        Self {
            len,
            chunks: Vec::new(),
            position: 0,
        }
    }

    pub fn insert(&mut self, offset: u64, bytes: Vec<u8>) {
        self.chunks.push((offset, bytes));
    }

    /// Start of the first held chunk after `offset` (or the file length): where a fetch that
    /// fills the gap at `offset` should stop.
    pub fn next_present(&self, offset: u64) -> u64 {
        self.chunks
            .iter()
            .map(|(start, _)| *start)
            .filter(|&start| start > offset)
            .min()
            .unwrap_or(self.len)
    }

    pub fn rewind(&mut self) {
        self.position = 0;
    }

    /// The offset a failed read wanted, if `err` came from this reader.
    pub fn missing(err: &std::io::Error) -> Option<u64> {
        err.get_ref()
            .and_then(|inner| inner.downcast_ref::<MissingRange>())
            .map(|missing| missing.offset)
    }
}

impl std::io::Read for SparseFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.position >= self.len || buf.is_empty() {
            return Ok(0);
        }
        let position = self.position;
        let chunk = self
            .chunks
            .iter()
            .find(|(start, bytes)| *start <= position && position < start + bytes.len() as u64);
        let Some((start, bytes)) = chunk else {
            return Err(std::io::Error::other(MissingRange { offset: position }));
        };
        let from = (position - start) as usize;
        let count = buf.len().min(bytes.len() - from);
        buf[..count].copy_from_slice(&bytes[from..from + count]);
        self.position += count as u64;
        Ok(count)
    }
}

impl std::io::Seek for SparseFile {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        let target = match pos {
            std::io::SeekFrom::Start(offset) => offset as i128,
            std::io::SeekFrom::End(delta) => self.len as i128 + delta as i128,
            std::io::SeekFrom::Current(delta) => self.position as i128 + delta as i128,
        };
        if target < 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before start",
            ));
        }
        self.position = target as u64;
        Ok(self.position)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames() {
        let project: PackageName = "markupsafe".parse().unwrap();
        let wheel = DistFilename::parse(
            "MarkupSafe-3.0.2-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
            &project,
        )
        .unwrap();
        assert!(matches!(&wheel, DistFilename::Wheel { abi, .. } if abi == "cp312"));
        assert_eq!(wheel.version().to_string(), "3.0.2");
        let sdist = DistFilename::parse("markupsafe-3.0.2.tar.gz", &project).unwrap();
        assert_eq!(
            sdist,
            DistFilename::Sdist {
                version: "3.0.2".parse().unwrap()
            }
        );
        let dashed: PackageName = "python-dateutil".parse().unwrap();
        assert!(DistFilename::parse("python-dateutil-2.8.2.tar.gz", &dashed).is_some());
        assert!(DistFilename::parse("other-1.0-py3-none-any.whl", &project).is_none());
        assert!(DistFilename::parse("markupsafe-1.0.win32.exe", &project).is_none());
        assert_eq!(normalize("Foo.Bar__baz"), "foo-bar-baz");
    }

    #[test]
    fn core_metadata_fields() {
        let text = b"Metadata-Version: 2.5\nName: Demo\nVersion: 1.0\nRequires-Python: >=3.11\n\
Requires-Dist: six>=1 ; extra == 'x'\nRequires-Dist: idna\nProvides-Extra: x\nDynamic: Requires-Dist\n\
Description: a\n  continued\n\nRequires-Dist: body-not-a-header\n";
        let meta = CoreMetadata::parse(text).unwrap();
        assert_eq!(meta.name, "Demo");
        assert_eq!(meta.requires_dist.len(), 2);
        assert_eq!(meta.provides_extra, ["x"]);
        assert!(
            meta.requires_python
                .as_ref()
                .unwrap()
                .contains(&"3.12".parse().unwrap())
        );
        assert!(!meta.dependencies_are_static());
        // CRLF lines, a folded Requires-Dist, a multi-line Description in the old style, and
        // a body that holds header-like lines.
        let folded = b"Metadata-Version: 2.1\r\nName: b\r\nVersion: 2\r\nDescription: one\r\n        |two\r\n        |Requires-Dist: nope\r\nRequires-Dist: six\r\n  >=1\r\nRequires-Dist: idna\r\n\r\nRequires-Dist: body\r\n";
        let meta = CoreMetadata::parse(folded).unwrap();
        let names: Vec<String> = meta.requires_dist.iter().map(|r| r.to_string()).collect();
        assert_eq!(names, ["six>=1", "idna"]);
        let plain = CoreMetadata::parse(b"Metadata-Version: 2.1\nName: a\nVersion: 1\n").unwrap();
        assert!(!plain.dependencies_are_static());
        let static22 =
            CoreMetadata::parse(b"Metadata-Version: 2.2\nName: a\nVersion: 1\n").unwrap();
        assert!(static22.dependencies_are_static());
    }
}
