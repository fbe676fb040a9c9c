//! Extraction: the verify pass with a sink that writes each file into a staging directory next
//! to the destination (same filesystem), then, only after the last check passed, one `syncfs`
//! and an atomic rename of the staging directory to the destination. On any failure the staging
//! directory is removed and the destination never appears.
//!
//! The destination must not exist: replacing an installed tree is the caller's decision (the
//! installer's apply plan), not the format's.
//!
//! Files are written in the chosen [`IoMode`]; in direct mode past the page cache, since the
//! one `syncfs` at the end has to write them all anyway (all but small files, see
//! `BUFFERED_BELOW`).
//!
//! [`extract_observed`] lets the caller look at each file on the worker that wrote it, right
//! after its sha256 checked out, with its first bytes still in memory (an RPM header or a
//! wheel's metadata is parsed there instead of in a second pass over the unpacked tree).
//! It may also [place](EntryObserver::place) a file elsewhere on the same filesystem (apply
//! writes each RPM straight into its repo's staged tree, one directory operation per file
//! instead of a create and a move).

use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};

use fs_err::os::unix::fs::OpenOptionsExt;
use rustix::fs::{CWD, RenameFlags};
use rustix::io::Errno;
use std::path::{Path, PathBuf};

use crate::error::BundleError;
use crate::files::sync_dir;
use crate::io::writer::{DirectBuffer, DirectWriter};
use crate::io::{DIRECT_CHUNK, IoMode, sync_filesystem};
use crate::manifest::{BundleManifest, FileEntry};
use crate::progress::Reporter;
use crate::scan::{FileSink, scan, worker_count};
use crate::sign::VerifyingKey;
use crate::stream::open_checked;

/// Files smaller than this are written through the page cache even in direct mode: for a file
/// of a few pages, a synchronous device request of its own costs more than the copy into the
/// cache, and the final `syncfs` writes such files together.
const BUFFERED_BELOW: u64 = 64 * 1024;

/// How many of a file's first bytes an [`EntryObserver`] is shown from memory.
pub const OBSERVED_HEAD: usize = 256 * 1024;

/// Sees every payload file once it is complete in the staging directory and its size and sha256
/// match the manifest; called on the worker thread that wrote it, several at a time.
///
/// `path` is where the file sits now (inside the staging directory, which becomes the
/// destination only if the whole bundle checks out); `head` holds its first bytes: all of it
/// when it is no longer than 1 MiB (the write window), else its first
/// [`OBSERVED_HEAD`] bytes, so that most headers need no read from disk.
/// The observer may read the file; it must not change, move or remove it. It cannot fail the
/// extraction: an observer that cannot use a file keeps that to itself (and its caller falls
/// back to reading the unpacked tree).
pub trait EntryObserver: Sync {
    fn verified(&self, entry: &FileEntry, path: &Path, head: &[u8]);

    /// Where to write `entry` instead of its path under the staging directory: a path that
    /// does not exist yet (its missing directories are created). Files placed there are the
    /// caller's: a failed extraction does not remove them. `None`, the default: under staging.
    fn place(&self, _entry: &FileEntry) -> Option<PathBuf> {
        None
    }
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
    extract_observed(bundle, dest, key, IoMode::default(), &NoObserver, reporter)
}

/// [`extract`] in the I/O mode `io`, showing each verified file to `observer` as it is
/// unpacked.
pub fn extract_observed(
    bundle: &Path,
    dest: &Path,
    key: Option<&VerifyingKey>,
    io: IoMode,
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
    let (stream, info) = open_checked(bundle, key, false, io)?;

    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.staging-"))
        .tempdir_in(parent)
        .map_err(|e| BundleError::io(parent, e))?;
    let sinks = (0..unpack_workers(io))
        .map(|_| StagingSink::new(staging.path(), observer, io))
        .collect();
    scan(stream, &info.manifest, sinks, "extract", reporter)?;

    fs_err::set_permissions(staging.path(), std::fs::Permissions::from_mode(0o755))
        .map_err(BundleError::Fs)?;
    sync_filesystem(staging.path()).map_err(|e| BundleError::io(staging.path(), e))?;
    rename_noreplace(staging.path(), dest)?;
    // The staging path no longer exists; keep TempDir from trying to remove it.
    let _ = staging.keep();
    sync_dir(parent)?;
    Ok(info.manifest)
}

/// Unpack workers. A worker waits for each direct write it makes, so in direct mode the
/// workers are the writes in flight and eight measured best; buffered writes do not wait, and
/// one worker per core (at most four) keeps every core hashing.
fn unpack_workers(io: IoMode) -> usize {
    match io {
        IoMode::Direct => 8.max(worker_count()),
        IoMode::Buffered => worker_count(),
    }
}

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
    io: IoMode,
}

impl<'a> StagingSink<'a> {
    fn new(root: &Path, observer: &'a dyn EntryObserver, io: IoMode) -> Self {
        StagingSink {
            root: root.to_path_buf(),
            made_dirs: HashSet::new(),
            current: None,
            spare: Some(DirectBuffer::new()),
            head: Vec::with_capacity(OBSERVED_HEAD),
            observer,
            io,
        }
    }
}

impl<'a> FileSink<'a> for StagingSink<'a> {
    fn begin(&mut self, entry: &'a FileEntry) -> Result<(), BundleError> {
        // Paths were checked (relative, no `..`, no links in the archive), so joining is safe;
        // a placed path is the observer's own.
        let target = self
            .observer
            .place(entry)
            .unwrap_or_else(|| self.root.join(&entry.path));
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
        let io = if entry.size < BUFFERED_BELOW {
            IoMode::Buffered
        } else {
            self.io
        };
        let writer = DirectWriter::with_buffer(file.into_parts().0, buffer, io);
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

/// Renames `from` to `to`, failing if `to` appeared meanwhile (plain rename would silently
/// replace an empty directory).
fn rename_noreplace(from: &Path, to: &Path) -> Result<(), BundleError> {
    match rustix::fs::renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(Errno::EXIST) => Err(BundleError::DestinationExists {
            path: to.to_path_buf(),
        }),
        Err(e) => Err(BundleError::io(to, e.into())),
    }
}
