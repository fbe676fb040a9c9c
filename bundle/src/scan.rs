//! The payload pass shared by `verify` and `extract`: the calling thread decompresses and
//! parses tar headers, checks each one against the manifest, and streams the data of each file
//! to one of the workers in pooled chunks (runs of small files to the same one); a worker
//! hashes what it receives and passes it to its [`FileSink`] (nothing for `verify`, a file in the staging directory for `extract`).
//! A fixed pool of chunk buffers bounds memory, whatever the file sizes.
//!
//! When several things are wrong, the error reported is the one of the earliest entry, so the
//! outcome does not depend on thread timing.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, mpsc};

use sha2::{Digest, Sha256};

use crate::error::{BundleError, EntryProblem};
use crate::io::CHUNK;
use crate::manifest::{BundleManifest, FileEntry};
use crate::paths::check_entry_path_bytes;
use crate::progress::Reporter;
use crate::stream::BundleStream;
use crate::tarfmt::{Next, RawEntry};

/// Chunk buffers per worker in flight.
const BUFFERS_PER_WORKER: usize = 4;

/// Consecutive files go to one worker until it got this many bytes: a worker woken for every
/// small file cost more in context switches than its hashing (thousands of RPMs of a few
/// KiB); a file this large or larger still goes to a worker of its own.
const RUN_BYTES: u64 = 256 * 1024;

/// Hash workers for the payload pass: one per core, at most four.
pub(crate) fn worker_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

/// Payload path -> position, for telling an unknown entry from a misplaced one.
fn path_index<'a>(files: &[&'a FileEntry]) -> HashMap<&'a str, usize> {
    files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.path.as_str(), i))
        .collect()
}

/// Where a worker puts the verified bytes of the files it is given, one file at a time.
pub(crate) trait FileSink<'a>: Send {
    fn begin(&mut self, entry: &'a FileEntry) -> Result<(), BundleError>;
    fn write(&mut self, data: &[u8]) -> Result<(), BundleError>;
    fn end(&mut self) -> Result<(), BundleError>;
}

/// Hashes only.
pub(crate) struct VerifySink;

impl FileSink<'_> for VerifySink {
    fn begin(&mut self, _: &FileEntry) -> Result<(), BundleError> {
        Ok(())
    }
    fn write(&mut self, _: &[u8]) -> Result<(), BundleError> {
        Ok(())
    }
    fn end(&mut self) -> Result<(), BundleError> {
        Ok(())
    }
}

enum Msg {
    Begin(usize),
    Data(Vec<u8>, usize),
    End,
}

/// The earliest failure seen by any thread.
#[derive(Default)]
struct Failure {
    first: Mutex<Option<(usize, BundleError)>>,
    aborted: AtomicBool,
}

impl Failure {
    fn record(&self, index: usize, error: BundleError) {
        let mut first = self.first.lock().expect("failure lock");
        if first.as_ref().is_none_or(|(i, _)| index < *i) {
            *first = Some((index, error));
        }
        self.aborted.store(true, Ordering::Relaxed);
    }

    fn aborted(&self) -> bool {
        self.aborted.load(Ordering::Relaxed)
    }
}

/// Streams every payload entry through `sinks` (one per worker) and checks the archive's end;
/// returns the bundle file's digest when the stream hashes it.
pub(crate) fn scan<'a, S: FileSink<'a>>(
    mut stream: BundleStream,
    manifest: &'a BundleManifest,
    sinks: Vec<S>,
    what: &str,
    reporter: &dyn Reporter,
) -> Result<Option<(String, u64)>, BundleError> {
    let failure = Failure::default();
    let mut digest = None;
    // A differential bundle's archive holds only the files not in its base.
    let payload: Vec<&'a FileEntry> = manifest.payload().collect();
    let files = payload.as_slice();
    let workers = sinks.len().max(1);
    let (pool_tx, pool_rx) = mpsc::sync_channel::<Vec<u8>>(workers * BUFFERS_PER_WORKER);
    for _ in 0..workers * BUFFERS_PER_WORKER {
        pool_tx.send(vec![0u8; CHUNK]).expect("pool has room");
    }
    let totals = manifest.payload_totals();
    reporter.started(what, totals.files, totals.bytes);
    std::thread::scope(|scope| {
        let mut senders = Vec::with_capacity(workers);
        for sink in sinks {
            let (tx, rx) = mpsc::channel::<Msg>();
            senders.push(tx);
            let pool_tx = pool_tx.clone();
            let failure = &failure;
            let bundle = stream.bundle().to_path_buf();
            scope.spawn(move || work(rx, pool_tx, sink, files, &bundle, failure));
        }
        let feeder = Feeder {
            files,
            index: path_index(files),
            senders: &senders,
            pool: &pool_rx,
            failure: &failure,
            reporter,
        };
        if let Err((i, e)) = feeder.feed(&mut stream) {
            failure.record(i, e);
        } else if !failure.aborted() {
            match stream.finish() {
                Ok(d) => digest = d,
                Err(e) => failure.record(files.len(), e),
            }
        }
        drop(senders);
    });
    reporter.finished();
    match failure.first.into_inner().expect("failure lock") {
        Some((_, e)) => Err(e),
        None => Ok(digest),
    }
}

struct Feeder<'a> {
    files: &'a [&'a FileEntry],
    index: HashMap<&'a str, usize>,
    senders: &'a [mpsc::Sender<Msg>],
    pool: &'a mpsc::Receiver<Vec<u8>>,
    failure: &'a Failure,
    reporter: &'a dyn Reporter,
}

type Located = (usize, BundleError);

impl Feeder<'_> {
    fn feed(&self, stream: &mut BundleStream) -> Result<(), Located> {
        let (mut worker_index, mut run_bytes) = (self.senders.len() - 1, u64::MAX);
        for (i, expected) in self.files.iter().enumerate() {
            if self.failure.aborted() {
                return Ok(());
            }
            let at = |e| (i, e);
            stream.report_volume(self.reporter);
            let raw = match stream.next_entry(&expected.path).map_err(at)? {
                Next::End => {
                    return Err((
                        i,
                        entry_error(stream, &expected.path, EntryProblem::Missing),
                    ));
                }
                Next::Entry(raw) => raw,
            };
            let path = self.check_header(stream, &raw).map_err(at)?;
            if path != expected.path {
                let problem = match self.index.get(path) {
                    None => return Err(at(entry_error(stream, path, EntryProblem::NotInManifest))),
                    Some(&j) if j < i => {
                        return Err(at(entry_error(stream, path, EntryProblem::Duplicate)));
                    }
                    Some(_) => EntryProblem::Missing,
                };
                return Err(at(entry_error(stream, &expected.path, problem)));
            }
            if raw.size > expected.size {
                let problem = EntryProblem::Oversize {
                    expected: expected.size,
                    actual: raw.size,
                };
                return Err(at(entry_error(stream, path, problem)));
            }
            if raw.size < expected.size {
                let problem = EntryProblem::SizeMismatch {
                    expected: expected.size,
                    actual: raw.size,
                };
                return Err(at(entry_error(stream, path, problem)));
            }
            if run_bytes >= RUN_BYTES {
                worker_index = (worker_index + 1) % self.senders.len();
                run_bytes = 0;
            }
            run_bytes += raw.size.max(1);
            let worker = &self.senders[worker_index];
            // A send fails only when the worker is gone, which `scope` reports as a panic.
            let _ = worker.send(Msg::Begin(i));
            let mut left = raw.size;
            while left > 0 {
                if self.failure.aborted() {
                    return Ok(());
                }
                let mut buf = self.pool.recv().expect("workers return buffers");
                let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                stream.read_data(&mut buf[..n], path).map_err(at)?;
                let _ = worker.send(Msg::Data(buf, n));
                left -= n as u64;
                self.reporter.advanced(0, n as u64);
            }
            stream.skip_padding(raw.size, path).map_err(at)?;
            let _ = worker.send(Msg::End);
            self.reporter.advanced(1, 0);
        }
        let end = self.files.len();
        stream.report_volume(self.reporter);
        match stream
            .next_entry("the end of the archive")
            .map_err(|e| (end, e))?
        {
            Next::End => Ok(()),
            Next::Entry(raw) => {
                let path = self.check_header(stream, &raw).map_err(|e| (end, e))?;
                let problem = if self.index.contains_key(path) {
                    EntryProblem::Duplicate
                } else {
                    EntryProblem::NotInManifest
                };
                Err((end, entry_error(stream, path, problem)))
            }
        }
    }

    /// Path and type rules for one header, before anything else is looked at.
    fn check_header<'r>(
        &self,
        stream: &BundleStream,
        raw: &'r RawEntry,
    ) -> Result<&'r str, BundleError> {
        let path = check_entry_path_bytes(&raw.path).map_err(|why| {
            entry_error(stream, &raw.display_path(), EntryProblem::UnsafePath(why))
        })?;
        if let Some(kind) = raw.forbidden_kind() {
            return Err(entry_error(
                stream,
                path,
                EntryProblem::NotARegularFile(kind),
            ));
        }
        Ok(path)
    }
}

fn entry_error(stream: &BundleStream, entry: &str, reason: EntryProblem) -> BundleError {
    BundleError::Entry {
        bundle: stream.bundle().to_path_buf(),
        entry: entry.to_string(),
        reason,
    }
}

/// One worker: hash and sink whole files, return buffers to the pool. After a failure it only
/// drains its queue so the feeder never blocks on a full pool.
fn work<'a, S: FileSink<'a>>(
    rx: mpsc::Receiver<Msg>,
    pool: mpsc::SyncSender<Vec<u8>>,
    mut sink: S,
    files: &[&'a FileEntry],
    bundle: &Path,
    failure: &Failure,
) {
    let mut current: Option<(usize, Sha256)> = None;
    for msg in rx {
        match msg {
            Msg::Begin(i) => {
                current = None;
                if failure.aborted() {
                    continue;
                }
                match sink.begin(files[i]) {
                    Ok(()) => current = Some((i, Sha256::new())),
                    Err(e) => failure.record(i, e),
                }
            }
            Msg::Data(buf, n) => {
                if let Some((i, hasher)) = &mut current {
                    hasher.update(&buf[..n]);
                    if let Err(e) = sink.write(&buf[..n]) {
                        failure.record(*i, e);
                        current = None;
                    }
                }
                let _ = pool.send(buf);
            }
            Msg::End => {
                let Some((i, hasher)) = current.take() else {
                    continue;
                };
                let actual = hex::encode(hasher.finalize());
                let result = if actual == files[i].sha256 {
                    sink.end()
                } else {
                    Err(BundleError::Entry {
                        bundle: bundle.to_path_buf(),
                        entry: files[i].path.clone(),
                        reason: EntryProblem::HashMismatch {
                            expected: files[i].sha256.clone(),
                            actual,
                        },
                    })
                };
                if let Err(e) = result {
                    failure.record(i, e);
                }
            }
        }
    }
}
