//! The bundle writer's output stage: the zstd encoder writes into an [`OutputSink`], which
//! collects compressed bytes into chunks and hands them to a thread that hashes them for
//! `<bundle>.sha256` and passes them to one that writes them to the file, so that neither the
//! write nor the hash holds up the thread feeding the compressor. The output is anything that
//! implements [`Output`]: one file ([`DirectWriter`]) or a set of volumes (`volume.rs`).

use std::io::{self, Write};
use std::sync::mpsc;
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use super::writer::DirectWriter;
use super::{BUFFERS, CHUNK, IoMode};

/// Where the output stage writes: the bytes go in with `Write`, `finish` says what came out.
pub(crate) trait Output: Write + Send + 'static {
    type Done: Send + 'static;
    fn finish(self) -> io::Result<Self::Done>;
}

impl Output for DirectWriter {
    type Done = std::fs::File;
    fn finish(self) -> io::Result<std::fs::File> {
        DirectWriter::finish(self)
    }
}

/// What the output stage hands back: what it wrote, the sha256 state, the bytes written.
pub(crate) type Finished<O> = (<O as Output>::Done, Sha256, u64);

/// The zstd encoder's sink: collects the compressed bytes into chunks for the output stage.
pub(crate) struct OutputSink<O: Output> {
    buf: Vec<u8>,
    full: Option<mpsc::SyncSender<Vec<u8>>>,
    free: mpsc::Receiver<Vec<u8>>,
    thread: Option<JoinHandle<io::Result<Finished<O>>>>,
}

impl OutputSink<DirectWriter> {
    /// Writes at `file`'s position; `hasher` and `written` already hold what is before it (the
    /// header and installer of a `.run`, or nothing).
    pub(crate) fn new(file: std::fs::File, hasher: Sha256, written: u64, mode: IoMode) -> Self {
        Self::start(DirectWriter::new(file, mode), hasher, written)
    }
}

impl<O: Output> OutputSink<O> {
    /// Starts the output stage writing into `out`.
    pub(crate) fn start(out: O, hasher: Sha256, written: u64) -> Self {
        let (full_tx, full_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
        let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(2 * BUFFERS + 1);
        let thread =
            std::thread::spawn(move || write_output(out, hasher, written, &full_rx, &free_tx));
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

    /// Waits for the output thread: what it wrote, the sha256 state and the size of the stream.
    fn join(&mut self) -> io::Result<Finished<O>> {
        self.full = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Ok(done))) => Ok(done),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => Err(io::Error::other("bundle output thread already stopped")),
        }
    }

    pub(crate) fn finish(mut self) -> io::Result<Finished<O>> {
        self.send()?;
        self.join()
    }
}

impl<O: Output> Write for OutputSink<O> {
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

/// The output stage: hashes every chunk and hands it to a writer thread that writes it and
/// returns the buffer for reuse. Hash and write run on their own threads because a direct write
/// waits for the disk, and the hash need not wait with it.
fn write_output<O: Output>(
    mut out: O,
    mut hasher: Sha256,
    mut written: u64,
    full: &mpsc::Receiver<Vec<u8>>,
    free: &mpsc::SyncSender<Vec<u8>>,
) -> io::Result<Finished<O>> {
    let (to_writer, chunks) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
    std::thread::scope(|scope| {
        let writer = scope.spawn(move || -> io::Result<O::Done> {
            for mut chunk in chunks {
                out.write_all(&chunk)?;
                chunk.clear();
                let _ = free.try_send(chunk);
            }
            out.finish()
        });
        for chunk in full {
            hasher.update(&chunk);
            written += chunk.len() as u64;
            if to_writer.send(chunk).is_err() {
                break; // The writer failed; join says why.
            }
        }
        drop(to_writer);
        let done = writer
            .join()
            .unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        Ok((done, hasher, written))
    })
}
