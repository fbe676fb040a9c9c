//! The bundle file as the zstd decoder reads it: a thread reads the file ahead in 1 MiB
//! chunks ([`DirectReader`]: from the page cache what it holds, past it the rest), so that the
//! synchronous disk reads do not wait in line with the decompressing thread, which hashes each
//! chunk as it takes it when the file's own sha256 (for `<bundle>.sha256`) is wanted.
//!
//! Measured on the bundler's up-to-date check (a 521 MB bundle written past the cache): reading
//! and hashing on the decompressing thread took 1.8-2.0 s, most of it waiting for the disk;
//! reading and hashing on this thread 1.3 s; reading here and hashing there about 1 s.
//!
//! Read errors are remembered, so that the caller can tell them from a corrupt stream (the
//! decoder reports both as `io::Error`).

use std::io::{self, BufRead, Read};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use crate::direct::{DirectBuffer, DirectReader};

/// Chunks read ahead (and in flight back), each of this size.
const CHUNKS: usize = 4;
const CHUNK: usize = 1 << 20;

type Filled = io::Result<(Vec<u8>, usize)>;

pub(crate) struct AheadReader {
    full: mpsc::Receiver<Filled>,
    free: mpsc::SyncSender<Vec<u8>>,
    /// The chunk being consumed: `current[pos..len]` is left.
    current: Vec<u8>,
    pos: usize,
    len: usize,
    eof: bool,
    /// The first read error, as text.
    pub(crate) failed: Option<String>,
    /// sha256 and length of the chunks taken so far, when asked for.
    hasher: Option<(Sha256, u64)>,
    thread: Option<JoinHandle<()>>,
}

impl AheadReader {
    /// Opens `path` and starts reading it; with `digest`, every byte is hashed as it is taken.
    pub(crate) fn open(path: &Path, digest: bool) -> io::Result<Self> {
        let reader = DirectReader::open(path, DirectBuffer::new())?;
        let (full_tx, full_rx) = mpsc::sync_channel::<Filled>(CHUNKS);
        let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(CHUNKS);
        for _ in 0..CHUNKS {
            free_tx
                .send(vec![0u8; CHUNK])
                .expect("room for every chunk");
        }
        let thread = std::thread::spawn(move || read_ahead(reader, &full_tx, &free_rx));
        Ok(AheadReader {
            full: full_rx,
            free: free_tx,
            current: Vec::new(),
            pos: 0,
            len: 0,
            eof: false,
            failed: None,
            hasher: digest.then(|| (Sha256::new(), 0)),
            thread: Some(thread),
        })
    }

    /// Once everything was read: the file's hex sha256 and size, when it was hashed.
    pub(crate) fn digest(&mut self) -> Option<(String, u64)> {
        if !self.eof {
            return None;
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        let (hasher, len) = self.hasher.take()?;
        Some((hex::encode(hasher.finalize()), len))
    }
}

impl BufRead for AheadReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.len && !self.eof {
            if !self.current.is_empty() {
                // The thread may be gone after an error; the chunk is then dropped.
                let _ = self.free.try_send(std::mem::take(&mut self.current));
            }
            let (chunk, n) = match self.full.recv() {
                Ok(Ok(filled)) => filled,
                Ok(Err(e)) => {
                    self.failed = Some(e.to_string());
                    return Err(e);
                }
                Err(_) => {
                    let reason = self
                        .failed
                        .clone()
                        .unwrap_or_else(|| "reader stopped".into());
                    return Err(io::Error::other(reason));
                }
            };
            if let Some((hasher, len)) = &mut self.hasher {
                hasher.update(&chunk[..n]);
                *len += n as u64;
            }
            self.current = chunk;
            self.pos = 0;
            self.len = n;
            self.eof = n == 0;
        }
        Ok(&self.current[self.pos..self.len])
    }

    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.len);
    }
}

impl Read for AheadReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let available = self.fill_buf()?;
        let n = available.len().min(out.len());
        out[..n].copy_from_slice(&available[..n]);
        self.consume(n);
        Ok(n)
    }
}

/// The thread: fills free chunks from the file in order; a chunk of length 0 marks the end.
/// Stops when the other side hangs up.
fn read_ahead(
    mut reader: DirectReader,
    full: &mpsc::SyncSender<Filled>,
    free: &mpsc::Receiver<Vec<u8>>,
) {
    loop {
        let Ok(mut chunk) = free.recv() else {
            return;
        };
        let mut n = 0;
        while n < chunk.len() {
            match reader.read(&mut chunk[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = full.send(Err(e));
                    return;
                }
            }
        }
        if full.send(Ok((chunk, n))).is_err() || n == 0 {
            return;
        }
    }
}
