//! Writing a bundle: `manifest.json`, the optional `manifest.json.sig`, then every payload file
//! in manifest order, as one tar stream in one multi-threaded zstd frame.
//!
//! The manifest is written first, so the size and sha256 of every file must be known before
//! packing starts (the bundler learns them while fetching). They are checked again while the
//! bytes stream into the archive: a source file that changed in between aborts the write and no
//! bundle is left behind. Files are copied in fixed-size chunks, never whole.
//!
//! Three threads plus zstd's workers share the work: a reader reads and hashes the sources
//! ahead, the calling thread writes the tar stream into the encoder, and an output thread writes
//! and hashes the compressed bytes for `<bundle>.sha256`; bounded channels of reused buffers
//! connect them, so neither sha256 pass stalls the compressor and memory stays bounded.
//!
//! Output is deterministic: entries in manifest order, owner 0:0, no user or group names, mode
//! 0644, mtime = the manifest's `created`, and the same zstd parameters, so two builds from the
//! same manifest and files are byte-identical.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use crate::error::{BundleError, EntryProblem};
use crate::manifest::{BundleManifest, FORMAT_VERSION, MANIFEST_NAME, SIGNATURE_NAME, Totals};
use crate::paths::check_manifest;
use crate::progress::Reporter;
use crate::sign::{SigningKey, sign_manifest};
use crate::tarfmt::{file_headers, padding};

pub use crate::tree::{file_kind, hash_file, pack_tree};

/// Default zstd level. RPMs and wheels are already compressed, so higher levels cost time and
/// save almost nothing; see docs/BENCHMARKS.md ("Bundle format") for the measurement.
pub const DEFAULT_LEVEL: i32 = 1;

/// Size of the copy buffer: large enough for few syscalls, small enough to never matter.
pub(crate) const CHUNK: usize = 1 << 20;

/// Buffers in flight between two stages of the writer: enough for a stage to run ahead while the
/// next one is busy, few enough that memory stays at a handful of chunks.
const BUFFERS: usize = 4;

#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// zstd compression level (negative levels are the fast ones).
    pub level: i32,
    /// zstd worker threads; at least 1 (the output does not depend on the number).
    pub threads: u32,
    /// Sign the manifest with this key and add `manifest.json.sig`.
    pub signing_key: Option<SigningKey>,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            level: DEFAULT_LEVEL,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            signing_key: None,
        }
    }
}

/// What `write_bundle` produced.
#[derive(Debug, Clone)]
pub struct WrittenBundle {
    pub path: PathBuf,
    /// The `<bundle>.sha256` file beside it (`sha256sum -c` format).
    pub sha256_path: PathBuf,
    /// sha256 of the bundle file itself.
    pub sha256: String,
    /// Size of the bundle file in bytes.
    pub size: u64,
    pub signed: bool,
}

/// The exact bytes stored as `manifest.json` (and signed): pretty JSON and a final newline.
pub fn manifest_bytes(manifest: &BundleManifest) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(manifest).expect("manifest serializes");
    bytes.push(b'\n');
    bytes
}

/// Fills `totals` from the file list and `bundle_id` from the payload: the first 32 hex digits
/// of a sha256 over every file's path, size and sha256 in order. The same payload always gets
/// the same id, whatever the creation time or tool version.
pub fn finalize(manifest: &mut BundleManifest) {
    manifest.totals = Totals {
        files: manifest.files.len() as u64,
        bytes: manifest.files.iter().map(|f| f.size).sum(),
    };
    let mut id = Sha256::new();
    for file in &manifest.files {
        id.update(file.path.as_bytes());
        id.update([0]);
        id.update(file.size.to_string().as_bytes());
        id.update([0]);
        id.update(file.sha256.as_bytes());
        id.update([b'\n']);
    }
    manifest.bundle_id = hex::encode(&id.finalize()[..16]);
}

/// Writes the bundle to `output` (via `<output>.tmp-*`, renamed on success) and
/// `<output>.sha256`. `sources[i]` is the local file holding `manifest.files[i]`.
pub fn write_bundle(
    output: &Path,
    manifest: &BundleManifest,
    sources: &[PathBuf],
    opts: &WriteOptions,
    reporter: &dyn Reporter,
) -> Result<WrittenBundle, BundleError> {
    check_input(manifest, sources)?;
    let (dir, name) = split_output(output)?;
    let tmp = tempfile::Builder::new()
        .prefix(&format!("{name}.tmp-"))
        .tempfile_in(dir)
        .map_err(|e| BundleError::io(dir, e))?;
    let file = tmp
        .as_file()
        .try_clone()
        .map_err(|e| BundleError::io(tmp.path(), e))?;
    let tmp_path = tmp.path().to_path_buf();
    let io_err = |e| BundleError::io(&tmp_path, e);
    let mtime = manifest.created.unix_timestamp().max(0) as u64;
    let raw = manifest_bytes(manifest);

    reporter.started("pack", manifest.totals.files, manifest.totals.bytes);
    // Three stages on their own threads, so that neither sha256 pass waits for the compressor
    // or the other: a reader reads and hashes source files ahead, this thread writes the tar
    // stream into zstd (whose workers compress), and an output thread writes the compressed
    // bytes to the file and hashes them. Buffers circulate through bounded channels, so memory
    // stays at a few chunks per stage whatever the file sizes.
    let (file, sha256, size) = std::thread::scope(|scope| -> Result<_, BundleError> {
        let (data_tx, data_rx) = mpsc::sync_channel::<Chunk>(BUFFERS);
        let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
        for _ in 0..BUFFERS {
            free_tx.send(vec![0u8; CHUNK]).expect("receiver is alive");
        }
        scope.spawn(move || read_sources(manifest, sources, &free_rx, &data_tx));

        let sink = OutputSink::new(file);
        let mut encoder = zstd::stream::write::Encoder::new(sink, opts.level)
            .and_then(|mut e| {
                e.multithread(opts.threads.max(1))?;
                e.include_checksum(true)?;
                Ok(e)
            })
            .map_err(io_err)?;
        write_memory_entry(&mut encoder, MANIFEST_NAME, &raw, mtime).map_err(io_err)?;
        if let Some(key) = &opts.signing_key {
            let sig = sign_manifest(key, &raw);
            write_memory_entry(&mut encoder, SIGNATURE_NAME, &sig, mtime).map_err(io_err)?;
        }
        for entry in &manifest.files {
            encoder
                .write_all(&file_headers(&entry.path, entry.size, mtime))
                .map_err(io_err)?;
            loop {
                // A closed channel means the reader returned early, which it only does after
                // sending its error; so Err here cannot happen before the error was seen.
                match data_rx.recv().expect("reader reports before it stops") {
                    Chunk::Data(buf, n) => {
                        encoder.write_all(&buf[..n]).map_err(io_err)?;
                        reporter.advanced(0, n as u64);
                        // The reader may be gone after an error; the buffer is then dropped.
                        let _ = free_tx.send(buf);
                    }
                    Chunk::EndOfFile => break,
                    Chunk::Failed(e) => return Err(e),
                }
            }
            encoder
                .write_all(&[0u8; 512][..padding(entry.size)])
                .map_err(io_err)?;
            reporter.advanced(1, 0);
        }
        encoder.write_all(&[0u8; 1024]).map_err(io_err)?;
        let sink = encoder.finish().map_err(io_err)?;
        sink.finish().map_err(io_err)
        // On an early return, dropping data_rx and free_tx stops the reader at its next send
        // or receive, and dropping the sink stops the output thread; the scope joins both.
    })?;
    file.sync_all().map_err(io_err)?;
    drop(file);
    tmp.persist(output)
        .map_err(|e| BundleError::io(output, e.error))?;

    let sha256_path = sidecar_path(output);
    write_atomic(&sha256_path, format!("{sha256}  {name}\n").as_bytes())?;
    sync_dir(dir)?;
    reporter.finished();
    Ok(WrittenBundle {
        path: output.to_path_buf(),
        sha256_path,
        sha256,
        size,
        signed: opts.signing_key.is_some(),
    })
}

/// `<bundle>.sha256`.
pub fn sidecar_path(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

fn check_input(manifest: &BundleManifest, sources: &[PathBuf]) -> Result<(), BundleError> {
    let invalid = |reason: String| BundleError::InvalidInput { reason };
    if manifest.format != FORMAT_VERSION {
        return Err(invalid(format!(
            "format is {}, this writer writes format {FORMAT_VERSION}",
            manifest.format
        )));
    }
    if sources.len() != manifest.files.len() {
        return Err(invalid(format!(
            "{} source paths for {} manifest files",
            sources.len(),
            manifest.files.len()
        )));
    }
    check_manifest(manifest)
        .map_err(|why| invalid(format!("{why} (call finalize() after filling files)")))?;
    Ok(())
}

fn split_output(output: &Path) -> Result<(&Path, String), BundleError> {
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

fn write_memory_entry(w: &mut impl Write, name: &str, data: &[u8], mtime: u64) -> io::Result<()> {
    w.write_all(&file_headers(name, data.len() as u64, mtime))?;
    w.write_all(data)?;
    w.write_all(&[0u8; 512][..padding(data.len() as u64)])
}

fn read_some(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// Writes a small file next to its final name, syncs it and renames it into place.
pub(crate) fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), BundleError> {
    let (dir, name) = split_output(path)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{name}.tmp-"))
        .tempfile_in(dir)
        .map_err(|e| BundleError::io(dir, e))?;
    tmp.write_all(contents)
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| BundleError::io(tmp.path(), e))?;
    tmp.persist(path)
        .map_err(|e| BundleError::io(path, e.error))?;
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), BundleError> {
    fs_err::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(BundleError::Fs)
}

/// What the reader thread hands to the tar/zstd stage, in manifest order.
enum Chunk {
    /// `buf[..n]` is the next piece of the current file (already hashed).
    Data(Vec<u8>, usize),
    /// The current file is complete and matched its manifest size and sha256.
    EndOfFile,
    /// The current file could not be read or does not match; nothing follows.
    Failed(BundleError),
}

/// The reader stage: reads every source in order, in chunks taken from `free`, hashes it and
/// checks it against the manifest, and sends the chunks on. Stops when the other side hangs up.
fn read_sources(
    manifest: &BundleManifest,
    sources: &[PathBuf],
    free: &mpsc::Receiver<Vec<u8>>,
    out: &mpsc::SyncSender<Chunk>,
) {
    for (entry, source) in manifest.files.iter().zip(sources) {
        let result = read_source(entry, source, free, out);
        let msg = match result {
            Ok(true) => Chunk::EndOfFile,
            // The consumer is gone (it failed): nothing left to do.
            Ok(false) => return,
            Err(e) => Chunk::Failed(e),
        };
        let failed = matches!(msg, Chunk::Failed(_));
        if out.send(msg).is_err() || failed {
            return;
        }
    }
}

/// Streams one source file; Ok(false) when the consumer hung up.
fn read_source(
    entry: &crate::manifest::FileEntry,
    source: &Path,
    free: &mpsc::Receiver<Vec<u8>>,
    out: &mpsc::SyncSender<Chunk>,
) -> Result<bool, BundleError> {
    let mismatch = |reason| BundleError::SourceMismatch {
        source_path: source.to_path_buf(),
        entry: entry.path.clone(),
        reason,
    };
    let mut src = fs_err::File::open(source).map_err(BundleError::Fs)?;
    let mut hasher = Sha256::new();
    let mut left = entry.size;
    while left > 0 {
        let Ok(mut buf) = free.recv() else {
            return Ok(false);
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
            return Ok(false);
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
    Ok(true)
}

/// The zstd encoder's sink: collects the compressed bytes into chunks and hands them to an
/// output thread that writes them to the file and hashes them for `<bundle>.sha256`, so that
/// neither the write syscall nor the hash holds up the thread feeding the compressor.
struct OutputSink {
    buf: Vec<u8>,
    full: Option<mpsc::SyncSender<Vec<u8>>>,
    free: mpsc::Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<(std::fs::File, String, u64)>>>,
}

impl OutputSink {
    fn new(file: std::fs::File) -> Self {
        let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
        let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS + 1);
        let thread = std::thread::spawn(move || write_output(file, &full_rx, &free_tx));
        OutputSink {
            buf: Vec::with_capacity(CHUNK),
            full: Some(full_tx),
            free: free_rx,
            thread: Some(thread),
        }
    }

    /// Sends the current chunk to the output thread; on failure, returns that thread's error.
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let next = self
            .free
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        let chunk = std::mem::replace(&mut self.buf, next);
        let sent = self.full.as_ref().is_some_and(|tx| tx.send(chunk).is_ok());
        if sent {
            Ok(())
        } else {
            self.join().map(|_| ())
        }
    }

    /// Waits for the output thread: the file, the hex sha256 and the size of what was written.
    fn join(&mut self) -> io::Result<(std::fs::File, String, u64)> {
        self.full = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Ok(done))) => Ok(done),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Err(io::Error::other("bundle output thread already stopped")),
        }
    }

    fn finish(mut self) -> io::Result<(std::fs::File, String, u64)> {
        self.send()?;
        self.join()
    }
}

impl Write for OutputSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(CHUNK - self.buf.len());
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() == CHUNK {
            self.send()?;
        }
        Ok(n)
    }

    /// Nothing to do: the output thread writes every chunk it gets, and `finish` sends the last.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The output stage: writes and hashes every chunk and returns the buffers for reuse.
fn write_output(
    mut file: std::fs::File,
    full: &mpsc::Receiver<Vec<u8>>,
    free: &mpsc::SyncSender<Vec<u8>>,
) -> io::Result<(std::fs::File, String, u64)> {
    let mut hasher = Sha256::new();
    let mut written = 0u64;
    for mut chunk in full {
        file.write_all(&chunk)?;
        hasher.update(&chunk);
        written += chunk.len() as u64;
        chunk.clear();
        let _ = free.try_send(chunk);
    }
    Ok((file, hex::encode(hasher.finalize()), written))
}
