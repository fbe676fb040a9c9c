//! Small file operations the writer, the volumes and extraction share: temp files beside their
//! final name (and the cleanup of those a killed run left), atomic small writes, directory
//! syncs, and the size and sha256 of a file as a manifest records them.

use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::BundleError;
use crate::io::{CHUNK, read_some};

/// Size and lowercase hex sha256 of a file, read in chunks: what a [`crate::FileEntry`] records.
pub fn hash_file(path: &Path) -> Result<(u64, String), BundleError> {
    let mut file = fs_err::File::open(path).map_err(BundleError::Fs)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = read_some(&mut file, &mut buf).map_err(BundleError::Fs)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// The directory and UTF-8 file name of an output path.
pub(crate) fn split_output(output: &Path) -> Result<(&Path, String), BundleError> {
    let name =
        output
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| BundleError::InvalidInput {
                reason: format!("{}: output needs a UTF-8 file name", output.display()),
            })?;
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    Ok((dir, name.to_string()))
}

/// Writes a small file next to its final name, syncs it and renames it into place.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), BundleError> {
    let (dir, name) = split_output(path)?;
    let mut tmp = temp_beside(dir, &name)?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| BundleError::io(tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| BundleError::io(path, e.error))?;
    Ok(())
}

/// A temp file `<name>.tmp-<pid>-*` in `dir`, after removing the ones a killed run left behind
/// (a SIGKILL or Ctrl-C skips the cleanup, and a bundle's temp file is as large as the bundle).
/// A temp file whose process is still alive belongs to a concurrent run and is left alone.
pub(crate) fn temp_beside(dir: &Path, name: &str) -> Result<tempfile::NamedTempFile, BundleError> {
    let prefix = format!("{name}.tmp-");
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(rest) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
                continue;
            };
            if !Path::new("/proc").join(pid.to_string()).exists() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
    tempfile::Builder::new()
        .prefix(&format!("{prefix}{}-", std::process::id()))
        .tempfile_in(dir)
        .map_err(|e| BundleError::io(dir, e))
}

/// fsyncs `dir`, so that the names just created or renamed in it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), BundleError> {
    fs_err::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(BundleError::Fs)
}
