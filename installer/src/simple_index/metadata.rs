//! PEP 658/714 side files: the core metadata of a wheel, taken byte-for-byte out of its
//! `<name>-<version>.dist-info/METADATA` member. pip 26.2+ refuses a side file that disagrees
//! with the wheel, so the bytes are never re-synthesised.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("cannot read wheel {path}: {source}")]
    Zip {
        path: PathBuf,
        source: zip::result::ZipError,
    },
    #[error("{path}: no top-level *.dist-info/METADATA in the wheel (is it a wheel?)")]
    Missing { path: PathBuf },
    #[error("{path}: more than one top-level *.dist-info/METADATA ({first}, {second})")]
    Ambiguous {
        path: PathBuf,
        first: String,
        second: String,
    },
    #[error("{path}: {name} is larger than {MAX_METADATA_BYTES} bytes; is the wheel damaged?")]
    TooLarge { path: PathBuf, name: String },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Largest METADATA taken from a wheel (real ones are a few kB, the largest about 100 kB).
pub const MAX_METADATA_BYTES: u64 = 16 << 20;

/// Metadata bytes of one wheel with their sha256 (the hash PEP 658 advertises).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreMetadata {
    pub bytes: Vec<u8>,
    pub sha256: String,
}

/// Read the `METADATA` member of the wheel at `path`.
///
/// The wheel spec names the directory `{name}-{version}.dist-info` with the escaped name; real
/// wheels vary in case and escaping, so any single top-level `*.dist-info/METADATA` is taken,
/// and more than one is an error rather than a guess.
pub fn read_wheel_metadata(path: &Path) -> Result<CoreMetadata, MetadataError> {
    let file = fs_err::File::open(path)?;
    wheel_metadata_from(std::io::BufReader::new(file), path)
}

/// [`read_wheel_metadata`] on an open wheel that `path` names in errors.
pub fn wheel_metadata_from<R: Read + std::io::Seek>(
    wheel: R,
    path: &Path,
) -> Result<CoreMetadata, MetadataError> {
    let zip_err = |source| MetadataError::Zip {
        path: path.to_path_buf(),
        source,
    };
    let mut archive = zip::ZipArchive::new(wheel).map_err(zip_err)?;
    let mut found: Option<String> = None;
    for name in archive.file_names() {
        let Some((dir, member)) = name.split_once('/') else {
            continue;
        };
        if member == "METADATA" && dir.ends_with(".dist-info") {
            if let Some(first) = &found {
                return Err(MetadataError::Ambiguous {
                    path: path.to_path_buf(),
                    first: first.clone(),
                    second: name.to_string(),
                });
            }
            found = Some(name.to_string());
        }
    }
    let name = found.ok_or_else(|| MetadataError::Missing {
        path: path.to_path_buf(),
    })?;
    let entry = archive.by_name(&name).map_err(zip_err)?;
    // The sizes in a zip's headers are the wheel's word, not a fact: capacity and read are
    // bounded (a declared 4 GB METADATA aborted the process; found by fuzzing).
    let mut bytes = Vec::with_capacity(entry.size().min(1 << 20) as usize);
    entry.take(MAX_METADATA_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_METADATA_BYTES {
        return Err(MetadataError::TooLarge {
            path: path.to_path_buf(),
            name,
        });
    }
    let sha256 = hex::encode(Sha256::digest(&bytes));
    Ok(CoreMetadata { bytes, sha256 })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// Write a minimal wheel holding `members` (name, bytes) to `path`.
    pub(crate) fn write_wheel(path: &Path, members: &[(&str, &[u8])]) {
        let file = fs_err::File::create(path).unwrap();
        let mut zip = zip::ZipWriter::new(file);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in members {
            zip.start_file(*name, opts).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }

    #[test]
    fn extracts_metadata_bytes_verbatim() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("demo_pkg-1.0-py3-none-any.whl");
        // CRLF and a trailing blank line must survive untouched.
        let meta = b"Metadata-Version: 2.1\r\nName: demo-pkg\r\nVersion: 1.0\r\n\r\n";
        write_wheel(
            &wheel,
            &[
                ("demo_pkg/__init__.py", b""),
                ("demo_pkg-1.0.dist-info/METADATA", meta),
                ("demo_pkg-1.0.dist-info/RECORD", b""),
            ],
        );
        let got = read_wheel_metadata(&wheel).unwrap();
        assert_eq!(got.bytes, meta);
        assert_eq!(got.sha256, hex::encode(Sha256::digest(meta)));
    }

    #[test]
    fn nested_metadata_is_not_taken_and_missing_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let wheel = dir.path().join("x-1.0-py3-none-any.whl");
        write_wheel(&wheel, &[("x/vendored.dist-info/METADATA", b"Name: y\n")]);
        assert!(matches!(
            read_wheel_metadata(&wheel),
            Err(MetadataError::Missing { .. })
        ));
        let not_zip = dir.path().join("bad.whl");
        fs_err::write(&not_zip, b"not a zip").unwrap();
        assert!(matches!(
            read_wheel_metadata(&not_zip),
            Err(MetadataError::Zip { .. })
        ));
    }
}
