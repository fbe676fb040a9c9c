//! Read-ahead for the bundle writer's file sources. Read one after the other by the thread that
//! also hashes them, cold source files left the disk idle while hashing and the CPU idle while
//! reading (their reads are synchronous, past the cache in direct mode). Here a few threads
//! each read every few-th file whole into memory, ahead of the reader stage, and hand it on as
//! [`Input::Memory`] in the original order; the reader stage hashes and checks it as before
//! (numbers: docs/BENCHMARKS.md, "Issue 16: I/O mode").
//!
//! Only files up to [`READ_AHEAD_MAX`] are read ahead, so memory stays bounded; larger ones,
//! and any file that cannot be read here, pass on as paths and the reader stage streams them
//! (and reports their errors) as before. Sources already in memory (the bundler's fresh
//! downloads) go straight on, in their place in the order: a read-ahead thread has nothing to
//! do for them, and the hop through one was a thread wake-up per file.

use std::io::Read;
use std::sync::{Arc, mpsc};

use super::IoMode;
use super::reader::DirectReader;
use super::source::Input;
use super::writer::DirectBuffer;

/// Threads reading ahead, so requests in flight on the device (eight measured best).
const READERS: usize = 8;
/// Files each thread may have read and not yet handed on.
const DEPTH: usize = 1;
/// Largest file read ahead whole: with up to sixteen files held by the threads and their
/// channels, 64 MiB at most; most RPMs and wheels are well under it, and larger files stream.
const READ_AHEAD_MAX: u64 = 4 << 20;

/// Runs `sources` through the read-ahead threads (spawned in `scope`) and returns the inputs in
/// the same order. Dropping the returned iterator stops the threads at their next send.
pub(crate) fn read_ahead<'scope, 'env, I>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    sources: I,
    mode: IoMode,
) -> impl Iterator<Item = Input> + Send + 'scope
where
    I: Iterator<Item = Input> + Send + 'scope,
{
    let mut to_workers = Vec::with_capacity(READERS);
    let mut from_workers = Vec::with_capacity(READERS);
    // What comes next, in order: a source as it is, or the next result of a worker. Room for
    // every worker's jobs and results, so the workers are never starved by this queue.
    let (order_tx, order_rx) = mpsc::sync_channel::<Next>(READERS * 2 * DEPTH);
    for _ in 0..READERS {
        let (job_tx, job_rx) = mpsc::sync_channel::<Input>(DEPTH);
        let (done_tx, done_rx) = mpsc::sync_channel::<Input>(DEPTH);
        scope.spawn(move || {
            let mut spare = Some(DirectBuffer::new());
            for input in job_rx {
                if done_tx.send(load(input, &mut spare, mode)).is_err() {
                    return;
                }
            }
        });
        to_workers.push(job_tx);
        from_workers.push(done_rx);
    }
    // The dispatcher deals the files out in turn; each worker returns its results in the
    // order it got the jobs, so naming the worker is enough to find the next result.
    scope.spawn(move || {
        let mut turn = 0usize;
        for input in sources {
            let next = match input {
                Input::File(_) => {
                    let worker = turn % READERS;
                    turn += 1;
                    if to_workers[worker].send(input).is_err() {
                        return;
                    }
                    Next::FromWorker(worker)
                }
                Input::Memory { .. } => Next::Ready(input),
            };
            if order_tx.send(next).is_err() {
                return;
            }
        }
    });
    std::iter::from_fn(move || match order_rx.recv().ok()? {
        Next::Ready(input) => Some(input),
        Next::FromWorker(worker) => from_workers[worker].recv().ok(),
    })
}

/// The next source in order: one that needs no reading, or the next one a worker has read.
enum Next {
    Ready(Input),
    FromWorker(usize),
}

/// A small file read whole into memory; anything else as it came.
fn load(input: Input, spare: &mut Option<DirectBuffer>, mode: IoMode) -> Input {
    let Input::File(path) = input else {
        return input;
    };
    let Ok(mut reader) = DirectReader::open(&path, spare.take().unwrap_or_default(), mode) else {
        return Input::File(path);
    };
    let size = match reader.size() {
        Some(size) if size <= READ_AHEAD_MAX => size,
        _ => {
            *spare = Some(reader.into_buffer());
            return Input::File(path);
        }
    };
    let mut data = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    let read = reader.read_to_end(&mut data);
    *spare = Some(reader.into_buffer());
    match read {
        // A file that changed size since the check is the reader stage's to report.
        Ok(n) if n as u64 == size => Input::Memory {
            data: Arc::new(data),
            path,
            sha256: None,
        },
        _ => Input::File(path),
    }
}
