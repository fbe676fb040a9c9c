//! Extraction: the verify pass with a sink that writes each file into a staging directory next
//! to the destination (same filesystem), then, only after the last check passed, one `syncfs`
//! and an atomic rename of the staging directory to the destination. On any failure the staging
//! directory is removed and the destination never appears.
//!
//! The destination must not exist: replacing an installed tree is the caller's decision (the
//! installer's apply plan), not the format's.
//!
//! Files are written past the page cache ([`crate::direct`]): the one `syncfs` at the end has
//! to write them all anyway, and copying 600 MB into newly allocated cache pages first was the
//! largest cost of an unpack on the virtual machines measured.
//!
//! [`extract_observed`] lets the caller look at each file on the worker that wrote it, right
//! after its sha256 checked out, with its first bytes still in memory (an RPM header or a
//! wheel's metadata is parsed there instead of in a second pass over the unpacked tree).

use std::collections::HashSet;
use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

use fs_err::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::direct::{DIRECT_CHUNK, DirectBuffer, DirectWriter};
use crate::error::BundleError;
use crate::manifest::{BundleManifest, FileEntry};
use crate::progress::Reporter;
use crate::read::{open_checked, worker_count};
use crate::scan::{FileSink, scan};
use crate::sign::VerifyingKey;
use crate::write::sync_dir;

/// How many of a file's first bytes an [`EntryObserver`] is shown from memory.
pub const OBSERVED_HEAD: usize = 256 * 1024;

/// Sees every payload file once it is complete in the staging directory and its size and sha256
/// match the manifest; called on the worker thread that wrote it, several at a time.
///
/// `path` is where the file sits now (inside the staging directory, which becomes the
/// destination only if the whole bundle checks out); `head` holds its first bytes: all of it
/// when it is no longer than [`crate::direct::DIRECT_CHUNK`] (1 MiB), else its first
/// [`OBSERVED_HEAD`] bytes, so that most headers need no read from disk.
/// The observer may read the file; it must not change, move or remove it. It cannot fail the
/// extraction: an observer that cannot use a file keeps that to itself (and its caller falls
/// back to reading the unpacked tree).
pub trait EntryObserver: Sync {
    fn verified(&self, entry: &FileEntry, path: &Path, head: &[u8]);
}

/// An observer that looks at nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl EntryObserver for NoObserver {
    fn verified(&self, _: &FileEntry, _: &Path, _: &[u8]) {}
}

/// Verifies `bundle` (with `key`, a valid signature is required) and unpacks its payload to
/// `dest`, which must not exist. Files get mode 0644, directories 0755.
pub fn extract(
    bundle: &Path,
    dest: &Path,
    key: Option<&VerifyingKey>,
    reporter: &dyn Reporter,
) -> Result<BundleManifest, BundleError> {
    extract_observed(bundle, dest, key, &NoObserver, reporter)
}

/// [`extract`], showing each verified file to `observer` as it is unpacked.
pub fn extract_observed(
    bundle: &Path,
    dest: &Path,
    key: Option<&VerifyingKey>,
    observer: &dyn EntryObserver,
    reporter: &dyn Reporter,
) -> Result<BundleManifest, BundleError> {
    if fs_err::symlink_metadata(dest).is_ok() {
        return Err(BundleError::DestinationExists {
            path: dest.to_path_buf(),
        });
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = dest
        .file_name()
        .ok_or_else(|| BundleError::InvalidInput {
            reason: format!(
                "{}: destination needs a final path component",
                dest.display()
            ),
        })?
        .to_string_lossy();
    let (stream, info) = open_checked(bundle, key, false)?;

    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.staging-"))
        .tempdir_in(parent)
        .map_err(|e| BundleError::io(parent, e))?;
    // Each worker hashes a file and then waits for its synchronous direct write, so the number
    // of workers is the number of writes in flight: writing 2,000 files of 256 KiB with
    // `O_DIRECT` here ran at 430 MB/s from one thread, 640 MB/s from four and 900 MB/s from
    // eight. Eight also keep every core hashing (`worker_count` is at most 4).
    let sinks = (0..UNPACK_WORKERS.max(worker_count()))
        .map(|_| StagingSink::new(staging.path(), observer))
        .collect();
    scan(stream, &info.manifest, sinks, "extract", reporter)?;

    fs_err::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(BundleError::Fs)?;
    syncfs(staging.path())?;
    rename_noreplace(staging.path(), dest)?;
    // The staging path no longer exists; keep TempDir from trying to remove it.
    let _ = staging.keep();
    sync_dir(parent)?;
    Ok(info.manifest)
}

/// Unpack workers (see `extract_observed`).
const UNPACK_WORKERS: usize = 8;

/// Writes the files one worker is given under the staging root.
struct StagingSink<'a> {
    root: PathBuf,
    made_dirs: HashSet<PathBuf>,
    /// The file being written, its path and its manifest entry.
    current: Option<(DirectWriter, PathBuf, &'a FileEntry)>,
    /// The write window, kept between files.
    spare: Option<DirectBuffer>,
    /// The current file's first bytes, for the observer.
    head: Vec<u8>,
    observer: &'a dyn EntryObserver,
}

impl<'a> StagingSink<'a> {
    fn new(root: &Path, observer: &'a dyn EntryObserver) -> Self {
        StagingSink {
            root: root.to_path_buf(),
            made_dirs: HashSet::new(),
            current: None,
            spare: Some(DirectBuffer::new()),
            head: Vec::with_capacity(OBSERVED_HEAD),
            observer,
        }
    }
}

impl<'a> FileSink<'a> for StagingSink<'a> {
    fn begin(&mut self, entry: &'a FileEntry) -> Result<(), BundleError> {
        // Paths were checked (relative, no `..`, no links in the archive), so joining is safe.
        let target = self.root.join(&entry.path);
        if let Some(dir) = target.parent()
            && !self.made_dirs.contains(dir)
        {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|e| BundleError::io(dir, e))?;
            self.made_dirs.insert(dir.to_path_buf());
        }
        let file = fs_err::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&target)
            .map_err(BundleError::Fs)?;
        let buffer = self.spare.take().unwrap_or_default();
        let writer = DirectWriter::with_buffer(file.into_parts().0, buffer);
        self.head.clear();
        self.current = Some((writer, target, entry));
        Ok(())
    }

    fn write(&mut self, data: &[u8]) -> Result<(), BundleError> {
        let (writer, path, entry) = self.current.as_mut().expect("begin before write");
        // A file that fits the write window is still in it at the end; only larger ones keep a
        // copy of their start.
        if entry.size > DIRECT_CHUNK as u64 {
            let room = OBSERVED_HEAD - self.head.len();
            self.head.extend_from_slice(&data[..room.min(data.len())]);
        }
        writer
            .write_all(data)
            .map_err(|e| BundleError::io(path.as_path(), e))
    }

    fn end(&mut self) -> Result<(), BundleError> {
        let (writer, path, entry) = self.current.take().expect("begin before end");
        let (file, buffer) = writer
            .finish_reusing()
            .map_err(|e| BundleError::io(&path, e))?;
        drop(file);
        let head = match usize::try_from(entry.size) {
            Ok(size) if size <= DIRECT_CHUNK => buffer.filled(size),
            _ => &self.head[..],
        };
        self.observer.verified(entry, &path, head);
        self.spare = Some(buffer);
        Ok(())
    }
}

fn c_path(path: &Path) -> Result<CString, BundleError> {
    CString::new(path.as_os_str().as_bytes()).map_err(|_| BundleError::InvalidInput {
        reason: format!("{}: path contains a NUL byte", path.display()),
    })
}

/// Flushes everything written to the staging directory's filesystem in one call, instead of an
/// fsync per file.
fn syncfs(dir: &Path) -> Result<(), BundleError> {
    crate::direct::sync_filesystem(dir).map_err(|e| BundleError::io(dir, e))
}

/// Renames `from` to `to`, failing if `to` appeared meanwhile (plain rename would silently
/// replace an empty directory).
fn rename_noreplace(from: &Path, to: &Path) -> Result<(), BundleError> {
    let (cfrom, cto) = (c_path(from)?, c_path(to)?);
    // SAFETY: both are valid NUL-terminated strings that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            cfrom.as_ptr(),
            libc::AT_FDCWD,
            cto.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            return Err(BundleError::DestinationExists {
                path: to.to_path_buf(),
            });
        }
        return Err(BundleError::io(to, e));
    }
    Ok(())
}
