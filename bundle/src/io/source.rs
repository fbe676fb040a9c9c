//! The bundle writer's reader stage: reads every source file in manifest order in chunks of
//! reused buffers, hashes it and checks it against its manifest entry, and hands the chunks to
//! the stage that feeds the tar stream into zstd. Sources come from an iterator, so a caller
//! can hand over each file as soon as it exists (the bundler does, while downloading).

use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};

use sha2::{Digest, Sha256};

use super::reader::DirectReader;
use super::writer::DirectBuffer;
use super::{IoMode, read_some};
use crate::error::{BundleError, EntryProblem};
use crate::manifest::{BundleManifest, FileEntry};

/// Where one payload file's bytes come from.
#[derive(Debug, Clone)]
pub enum Input {
    /// A file on disk.
    File(PathBuf),
    /// Bytes in memory (a download not read back from disk); `path` is where the same bytes
    /// are stored, for messages. `sha256` is the hex digest the caller computed over exactly
    /// these bytes as it received them, when it did: the writer then compares it with the
    /// manifest entry instead of hashing the bytes a second time in the same process (a mix-up
    /// of files is still caught); without it the bytes are hashed like a file's.
    Memory {
        data: Arc<Vec<u8>>,
        path: PathBuf,
        sha256: Option<String>,
    },
}

impl From<PathBuf> for Input {
    fn from(path: PathBuf) -> Self {
        Input::File(path)
    }
}

impl Input {
    fn path(&self) -> &Path {
        match self {
            Input::File(path) | Input::Memory { path, .. } => path,
        }
    }
}

/// What the reader thread hands to the tar/zstd stage, in manifest order.
pub(crate) enum Chunk {
    /// `buf[..n]` is the next piece of the current file (already hashed).
    Data(Vec<u8>, usize),
    /// The whole current file, from memory, checked against its manifest size and sha256: handed
    /// on as it is, since copying it into the stage's buffers would be one more pass over every
    /// downloaded byte. Complete in itself: no `EndOfFile` follows (one message, not two).
    Whole(Arc<Vec<u8>>),
    /// The current file is complete and matched its manifest size and sha256.
    EndOfFile,
    /// Every file was sent and the sources held no more.
    Done,
    /// A source could not be read or does not match, or the sources ended early or held too
    /// many; nothing follows.
    Failed(BundleError),
}

/// The reader stage: takes the source of every manifest file in order from `sources` (which may
/// block until the next file is ready), reads it in chunks taken from `free`, hashes it, checks
/// it against the manifest and sends the chunks on. Stops when the other side hangs up.
pub(crate) fn read_sources(
    manifest: &BundleManifest,
    sources: impl Iterator<Item = Input>,
    free: &mpsc::Receiver<Vec<u8>>,
    out: &mpsc::SyncSender<Chunk>,
    mode: IoMode,
) {
    let mut sources = sources;
    let mut spare = Some(DirectBuffer::new());
    let expected = manifest.payload_totals().files;
    for (i, entry) in manifest.payload().enumerate() {
        let msg = match sources.next() {
            None => Chunk::Failed(BundleError::InvalidInput {
                reason: format!("the sources ended after {i} of {expected} files"),
            }),
            Some(source) => match read_source(entry, &source, &mut spare, free, out, mode) {
                Ok(Some(last)) => last,
                // The consumer is gone (it failed): nothing left to do.
                Ok(None) => return,
                Err(e) => Chunk::Failed(e),
            },
        };
        let failed = matches!(msg, Chunk::Failed(_));
        if out.send(msg).is_err() || failed {
            return;
        }
    }
    let last = match sources.next() {
        None => Chunk::Done,
        Some(extra) => Chunk::Failed(BundleError::InvalidInput {
            reason: format!(
                "more sources than the {expected} manifest files (first extra: {})",
                extra.path().display()
            ),
        }),
    };
    let _ = out.send(last);
}

/// Streams one source and returns the message that ends it (`EndOfFile`, or `Whole` for bytes
/// in memory); None when the consumer hung up. A file is read with a
/// [`DirectReader`] and the window in `spare`, which is put back for the next file, and hashed
/// as it is read. Bytes in memory are checked like a file (a caller's mix-up must not reach
/// the bundle either), except that a digest the producer computed over them is compared
/// instead of hashing them again, and are sent on whole ([`check_whole`]).
fn read_source(
    entry: &FileEntry,
    input: &Input,
    spare: &mut Option<DirectBuffer>,
    free: &mpsc::Receiver<Vec<u8>>,
    out: &mpsc::SyncSender<Chunk>,
    mode: IoMode,
) -> Result<Option<Chunk>, BundleError> {
    let source = input.path();
    let mismatch = |reason| BundleError::SourceMismatch {
        source_path: source.to_path_buf(),
        entry: entry.path.clone(),
        reason,
    };
    if let Input::Memory { data, sha256, .. } = input {
        return check_whole(entry, data, sha256.as_deref())
            .map(|()| Some(Chunk::Whole(data.clone())))
            .map_err(mismatch);
    }
    let mut src = DirectReader::open(source, spare.take().unwrap_or_default(), mode)
        .map_err(|e| BundleError::io(source, e))?;
    let mut hasher = Sha256::new();
    let mut left = entry.size;
    while left > 0 {
        let Ok(mut buf) = free.recv() else {
            return Ok(None);
        };
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = read_some(&mut src, &mut buf[..want]).map_err(|e| BundleError::io(source, e))?;
        if n == 0 {
            return Err(mismatch(EntryProblem::SizeMismatch {
                expected: entry.size,
                actual: entry.size - left,
            }));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
        if out.send(Chunk::Data(buf, n)).is_err() {
            return Ok(None);
        }
    }
    let mut probe = [0u8; 1];
    if read_some(&mut src, &mut probe).map_err(|e| BundleError::io(source, e))? != 0 {
        let actual = fs_err::metadata(source).map_or(entry.size + 1, |m| m.len());
        return Err(mismatch(EntryProblem::Oversize {
            expected: entry.size,
            actual,
        }));
    }
    let actual = hex::encode(hasher.finalize());
    if actual != entry.sha256 {
        return Err(mismatch(EntryProblem::HashMismatch {
            expected: entry.sha256.clone(),
            actual,
        }));
    }
    *spare = Some(src.into_buffer());
    Ok(Some(Chunk::EndOfFile))
}

/// [`read_source`] for bytes in memory: checks their size and sha256 (hashing them only when
/// the producer did not).
fn check_whole(
    entry: &FileEntry,
    data: &Arc<Vec<u8>>,
    known: Option<&str>,
) -> Result<(), EntryProblem> {
    let size = data.len() as u64;
    if size < entry.size {
        return Err(EntryProblem::SizeMismatch {
            expected: entry.size,
            actual: size,
        });
    }
    if size > entry.size {
        return Err(EntryProblem::Oversize {
            expected: entry.size,
            actual: size,
        });
    }
    let actual = match known {
        Some(sha256) => sha256.to_string(),
        None => hex::encode(Sha256::digest(&data[..])),
    };
    if actual != entry.sha256 {
        return Err(EntryProblem::HashMismatch {
            expected: entry.sha256.clone(),
            actual,
        });
    }
    Ok(())
}
