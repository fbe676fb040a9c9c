//! The bundle file as the zstd decoder reads it: two threads read the file ahead in 1 MiB
//! windows, alternately (in direct mode from the page cache when it holds a window, else past
//! it, see [`super::reader`]), so that the synchronous disk reads do not wait in line with the
//! decompressing thread and the disk has two requests to work on. When the file's own sha256
//! (for `<bundle>.sha256`) is wanted, each window the decoder is done with goes through a
//! hashing thread on its way back to its reader. Read errors are remembered, so that the
//! caller can tell them from a corrupt stream (the decoder reports both as `io::Error`).

use std::fs::File;
use std::io::{self, BufRead, Read};
use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use super::reader::{open_direct, read_window_at};
use super::writer::DirectBuffer;
use super::{DIRECT_CHUNK, IoMode};

/// Reading threads; window `i` is read by thread `i % READERS`.
const READERS: usize = 2;
/// Windows per reading thread.
const WINDOWS: usize = 2;

type Filled = io::Result<(DirectBuffer, usize)>;
/// A reading thread's ends of its two channels: filled windows out, free windows in.
type ReaderEnds = (mpsc::SyncSender<Filled>, mpsc::Receiver<DirectBuffer>);

pub(crate) struct AheadReader {
    full: Vec<mpsc::Receiver<Filled>>,
    free: Vec<mpsc::SyncSender<DirectBuffer>>,
    /// Index of the next window to take.
    next: usize,
    /// The window being consumed: `current[pos..len]` is left.
    current: Option<DirectBuffer>,
    pos: usize,
    len: usize,
    eof: bool,
    /// The first read error, as text.
    pub(crate) failed: Option<String>,
    /// Where consumed windows go to be hashed (in order), when the digest is wanted.
    to_hasher: Option<mpsc::SyncSender<(DirectBuffer, usize, usize)>>,
    hasher: Option<JoinHandle<(String, u64)>>,
    threads: Vec<JoinHandle<()>>,
}

impl AheadReader {
    /// Opens `path` and starts reading it; with `digest`, every byte is hashed as it is taken.
    /// Only `len` bytes from `offset` of a regular file are read (the bundle stream inside a
    /// `.run`).
    pub(crate) fn open(
        path: &Path,
        digest: bool,
        (offset, len): (u64, u64),
        mode: IoMode,
    ) -> io::Result<Self> {
        let file = Arc::new(File::open(path)?);
        let meta = file.metadata()?;
        if !meta.is_file() {
            // A pipe or a device (`installer verify /dev/stdin`): no size, no positional
            // reads; one thread reads it in order and deals the windows out the same way.
            return Ok(Self::start(digest, move |ends| {
                vec![std::thread::spawn(move || read_in_order(&*file, &ends))]
            }));
        }
        let (size, direct) = (meta.len(), Arc::new(open_direct(path, mode)));
        let end = offset.saturating_add(len).min(size);
        Ok(Self::start(digest, move |ends| {
            ends.into_iter()
                .enumerate()
                .map(|(first, (full_tx, free_rx))| {
                    let (file, direct) = (file.clone(), direct.clone());
                    std::thread::spawn(move || {
                        let direct = direct.as_ref().as_ref();
                        let span = (offset, end, size);
                        read_ahead(&file, direct, span, first, &full_tx, &free_rx);
                    })
                })
                .collect()
        }))
    }

    /// Reads `stream` (the volumes of a split bundle, one after the other) in order on one
    /// thread, with plain reads: the windows do not line up with the volume boundaries.
    pub(crate) fn open_stream(stream: impl Read + Send + 'static, digest: bool) -> Self {
        Self::start(digest, move |ends| {
            vec![std::thread::spawn(move || read_in_order(stream, &ends))]
        })
    }

    /// Sets up the windows and their channels, and `spawn`s the reading threads on their ends.
    fn start(digest: bool, spawn: impl FnOnce(Vec<ReaderEnds>) -> Vec<JoinHandle<()>>) -> Self {
        let mut full = Vec::with_capacity(READERS);
        let mut free = Vec::with_capacity(READERS);
        let mut ends = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let (full_tx, full_rx) = mpsc::sync_channel::<Filled>(WINDOWS);
            let (free_tx, free_rx) = mpsc::sync_channel::<DirectBuffer>(WINDOWS);
            for _ in 0..WINDOWS {
                free_tx
                    .send(DirectBuffer::new())
                    .expect("room for every window");
            }
            full.push(full_rx);
            free.push(free_tx);
            ends.push((full_tx, free_rx));
        }
        let threads = spawn(ends);
        let (to_hasher, hasher) = if digest {
            let (tx, rx) = mpsc::sync_channel(READERS * WINDOWS);
            let free = free.clone();
            (Some(tx), Some(std::thread::spawn(move || hash(&rx, &free))))
        } else {
            (None, None)
        };
        AheadReader {
            full,
            free,
            next: 0,
            current: None,
            pos: 0,
            len: 0,
            eof: false,
            failed: None,
            to_hasher,
            hasher,
            threads,
        }
    }

    /// Once everything was read: the file's hex sha256 and size, when it was hashed.
    pub(crate) fn digest(&mut self) -> Option<(String, u64)> {
        if !self.eof {
            return None;
        }
        self.release();
        self.to_hasher = None;
        self.hasher.take()?.join().ok()
    }

    /// Hands the window the decoder is done with back: through the hasher, or to its reader.
    fn release(&mut self) {
        let Some(window) = self.current.take() else {
            return;
        };
        let (index, len) = (self.next - 1, self.len);
        // A thread may be gone after an error; the window is then dropped.
        match &self.to_hasher {
            Some(hasher) => {
                let _ = hasher.send((window, len, index));
            }
            None => {
                let _ = self.free[index % READERS].try_send(window);
            }
        }
    }
}

/// The hashing thread: hashes consumed windows in order and returns each to its reader.
fn hash(
    windows: &mpsc::Receiver<(DirectBuffer, usize, usize)>,
    free: &[mpsc::SyncSender<DirectBuffer>],
) -> (String, u64) {
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    for (window, len, index) in windows {
        hasher.update(window.filled(len));
        total += len as u64;
        let _ = free[index % READERS].try_send(window);
    }
    (hex::encode(hasher.finalize()), total)
}

impl Drop for AheadReader {
    fn drop(&mut self) {
        // Hanging up stops the threads at their next send or receive.
        self.to_hasher = None;
        if let Some(hasher) = self.hasher.take() {
            let _ = hasher.join();
        }
        self.full.clear();
        self.free.clear();
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl BufRead for AheadReader {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.pos == self.len && !self.eof {
            let from = self.next % READERS;
            self.release();
            let (window, n) = match self.full[from].recv() {
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
            self.next += 1;
            self.current = Some(window);
            self.pos = 0;
            self.len = n;
            self.eof = n == 0;
        }
        Ok(match &self.current {
            Some(window) => &window.filled(self.len)[self.pos..],
            None => &[],
        })
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

/// The reading thread for a file that is not a regular file: window `i` filled by plain reads
/// and sent to the channels of reader `i % READERS`.
fn read_in_order(mut file: impl Read, ends: &[ReaderEnds]) {
    for index in 0.. {
        let (full, free) = &ends[index % READERS];
        let Ok(mut window) = free.recv() else {
            return;
        };
        let mut n = 0;
        let read = loop {
            match file.read(&mut window.window()[n..]) {
                Ok(0) => break Ok(n),
                Ok(k) => {
                    n += k;
                    if n == DIRECT_CHUNK {
                        break Ok(n);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let last = !matches!(read, Ok(n) if n > 0);
        if full.send(read.map(|n| (window, n))).is_err() || last {
            return;
        }
    }
}

/// One reading thread: windows `first`, `first + READERS`, ... in order, into free windows; a
/// window of length 0 marks the end. Stops when the other side hangs up.
/// `span` is (start, end, file size): the windows cover `start..end` of the file.
fn read_ahead(
    file: &File,
    direct: Option<&File>,
    (start, end, size): (u64, u64, u64),
    first: usize,
    full: &mpsc::SyncSender<Filled>,
    free: &mpsc::Receiver<DirectBuffer>,
) {
    let mut index = first as u64;
    loop {
        let Ok(mut window) = free.recv() else {
            return;
        };
        let offset = start + index * DIRECT_CHUNK as u64;
        let read = if offset >= end {
            Ok(0)
        } else {
            read_window_at(file, direct, size, &mut window, offset)
        };
        // Every window but the last is whole; a short one elsewhere would drop bytes silently.
        let whole = (end.saturating_sub(offset)).min(DIRECT_CHUNK as u64) as usize;
        let read = read.map(|n| n.min(whole)).and_then(|n| {
            if n == whole {
                Ok(n)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("read {n} of {whole} bytes at offset {offset}; did the file change?"),
                ))
            }
        });
        match read {
            Ok(n) => {
                if full.send(Ok((window, n))).is_err() || n == 0 {
                    return;
                }
            }
            Err(e) => {
                let _ = full.send(Err(e));
                return;
            }
        }
        index += READERS as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WHOLE: (u64, u64) = (0, u64::MAX);

    #[test]
    fn a_pipe_is_read_in_order_to_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        super::super::tests::make_fifo(&fifo);
        let data: Vec<u8> = (0..3 * DIRECT_CHUNK + 12345)
            .map(|i| (i % 251) as u8)
            .collect();
        let writer = {
            let (fifo, data) = (fifo.clone(), data.clone());
            // Small writes, so that the reader sees short reads from the pipe.
            std::thread::spawn(move || {
                let mut out = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
                for piece in data.chunks(70_000) {
                    std::io::Write::write_all(&mut out, piece).unwrap();
                }
            })
        };
        let mut reader = AheadReader::open(&fifo, true, WHOLE, IoMode::Direct).unwrap();
        let mut back = Vec::new();
        reader.read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        assert!(back == data);
        let (sha, len) = reader.digest().unwrap();
        assert_eq!(len, data.len() as u64);
        assert_eq!(sha, hex::encode(Sha256::digest(&data)));
    }

    #[test]
    fn a_file_is_read_whole_by_the_alternating_readers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        for len in [0, 1, DIRECT_CHUNK, 2 * DIRECT_CHUNK, 5 * DIRECT_CHUNK + 7] {
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            for mode in IoMode::ALL {
                let mut reader = AheadReader::open(&path, true, WHOLE, mode).unwrap();
                let mut back = Vec::new();
                reader.read_to_end(&mut back).unwrap();
                assert!(back == data, "len {len}, {mode}");
                let (sha, n) = reader.digest().unwrap();
                assert_eq!((sha, n), (hex::encode(Sha256::digest(&data)), len as u64));
            }
        }
    }
}
