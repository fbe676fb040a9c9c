//! "Output already up to date": when the bundle at the output path already holds exactly what a
//! new build would write there, keep it instead of rewriting hundreds of MB. The bundler's
//! policy, built on the format's public reading and writing API.
//!
//! The existing bundle is kept only when
//! - its `manifest.json` is byte for byte the manifest the caller is about to write, with only
//!   `created` taken from the existing one (a rebuild would otherwise differ in its timestamp
//!   alone), so every file's path, size and sha256, the tool version and every section agree;
//! - its signature is the one the caller's key would write (ed25519 signatures are
//!   deterministic), or both are unsigned;
//! - its `<bundle>.sha256` file names it, and the bundle's content is that of the manifest and
//!   of that sha256. That is known in one of two ways:
//!   - **unchanged since written**: an [`OutputStamps`] record, made when this tool wrote (or
//!     last checked) the file, names the same device, inode, size, mtime and ctime and the same
//!     sha256. Any write, truncation, `chmod`, `touch` or replacement of the file changes its
//!     ctime or inode, which no user can set back; this is the check `make`, `rsync` and git's
//!     index make, and it costs one `stat` instead of reading the whole bundle.
//!     `installer verify` and `installer apply` still check every byte where the bundle is
//!     used;
//!   - **checked in full**: otherwise a full verify ([`bundle::read::verify_and_digest`]) reads
//!     and hashes every payload file against the manifest, and the bundle's own sha256 (hashed
//!     in the same pass) must match `<bundle>.sha256`.
//!
//! Anything else (no file, not a bundle, damaged, different content) means "not up to date"
//! and the caller writes a new bundle as usual, atomically replacing the old one.

use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use bundle::BundleManifest;
use bundle::read::{read_manifest, verify_and_digest};
use bundle::sign::sign_manifest;
use bundle::write::{
    Reuse, WriteOptions, WrittenBundle, manifest_bytes, manifest_sidecar_path, sidecar_path,
    write_atomic,
};

/// Records of bundles as this tool left them (see the module doc): one small file per output
/// path in a directory the caller owns (the bundler keeps it in its cache).
#[derive(Debug, Clone)]
pub struct OutputStamps {
    dir: PathBuf,
}

const STAMP_FORMAT: &str = "bundle-output-stamp 1";

impl OutputStamps {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        OutputStamps { dir: dir.into() }
    }

    /// Records `written` as it is on disk now; call it right after the bundle is in place.
    pub fn record(&self, written: &WrittenBundle) -> io::Result<()> {
        let record = format!(
            "{STAMP_FORMAT}\n{}\n{}\n",
            file_identity(&written.path)?,
            written.sha256
        );
        fs_err::create_dir_all(&self.dir)?;
        let path = self.record_path(&written.path)?;
        // A temp file of its own: builds sharing the cache may record the same output at once.
        let mut temp = tempfile::NamedTempFile::new_in(&self.dir)?;
        temp.write_all(record.as_bytes())?;
        temp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }

    /// True when `output` is the very file recorded with `sha256`, unchanged since.
    fn unchanged(&self, output: &Path, sha256: &str) -> bool {
        let (Ok(path), Ok(now)) = (self.record_path(output), file_identity(output)) else {
            return false;
        };
        let Ok(record) = fs_err::read_to_string(path) else {
            return false;
        };
        record == format!("{STAMP_FORMAT}\n{now}\n{sha256}\n")
    }

    /// The record's file: named by the sha256 of the output's absolute path.
    fn record_path(&self, output: &Path) -> io::Result<PathBuf> {
        let absolute = std::path::absolute(output)?;
        let key = Sha256::digest(absolute.as_os_str().as_encoded_bytes());
        Ok(self.dir.join(hex::encode(key)))
    }
}

/// What identifies one state of a file: device, inode, size, mtime and ctime (nanoseconds).
fn file_identity(path: &Path) -> io::Result<String> {
    let m = fs_err::metadata(path)?;
    Ok(format!(
        "{} {} {} {}.{:09} {}.{:09}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec()
    ))
}

/// If the bundle at `output` is what writing `manifest` with `opts` would produce (timestamp
/// aside) and is either unchanged since `stamps` recorded it or checks out in full, describe it;
/// else None. `manifest.created` is set to the existing bundle's when it is kept, so the
/// caller's manifest describes what is on disk. The caller records a bundle checked in full
/// (`reused == Some(Reuse::Verified)`), so that the next check is a `stat`.
pub fn reuse_if_up_to_date(
    output: &Path,
    manifest: &mut BundleManifest,
    opts: &WriteOptions,
    stamps: Option<&OutputStamps>,
) -> Option<WrittenBundle> {
    let sidecar = fs_err::read_to_string(sidecar_path(output)).ok()?;
    let name = output.file_name()?.to_str()?;
    let recorded = match sidecar.trim_end().split_once("  ") {
        Some((hash, file)) if file == name => hash.to_string(),
        _ => return None,
    };
    let existing = read_manifest(output).ok()?;
    let mut candidate = manifest.clone();
    candidate.created = existing.manifest.created;
    let raw = manifest_bytes(&candidate);
    if raw != existing.raw {
        return None;
    }
    let signature = opts
        .signing_key
        .as_ref()
        .map(|k| sign_manifest(k, &raw).to_vec());
    if signature != existing.signature {
        return None;
    }
    let (sha256, size, how) = if stamps.is_some_and(|s| s.unchanged(output, &recorded)) {
        let size = fs_err::metadata(output).ok()?.len();
        (recorded, size, Reuse::Unchanged)
    } else {
        let (sha256, size) = verify_and_digest(output, opts.io).ok()?;
        if sha256 != recorded {
            return None;
        }
        (sha256, size, Reuse::Verified)
    };
    // A bundle written before `<bundle>.manifest.json` existed gets it now; one that cannot be
    // written makes the caller write the bundle anew, which reports the error.
    let beside = manifest_sidecar_path(output);
    if fs_err::read(&beside).ok().as_deref() != Some(raw.as_slice()) {
        write_atomic(&beside, &raw).ok()?;
    }
    *manifest = candidate;
    Some(WrittenBundle {
        path: output.to_path_buf(),
        sha256_path: sidecar_path(output),
        sha256,
        size,
        signed: signature.is_some(),
        reused: Some(how),
        volumes: Vec::new(),
    })
}
