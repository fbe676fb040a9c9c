//! Bulk files written once and not read back soon (the bundle itself, the payload unpacked by
//! `extract`) go to disk with `O_DIRECT`, past the page cache, and bulk reads take from the page
//! cache only what it already holds ([`DirectReader`]).
//!
//! Why: every byte written through the page cache is first copied into a newly allocated cache
//! page. On the virtual machines these tools run on, a page the host reclaimed while it was free
//! costs a fault into the host on first touch, and `perf` showed that copy
//! (`copy_folio_from_iter_atomic`) as more than half of a cold `bundler build`. A 500 MiB
//! buffered write took 0.2-2.2 s of system time depending on what the host had reclaimed; the
//! same write with `O_DIRECT` took 0.6-0.7 s of wall time and under 0.1 s of CPU, every time.
//! Both callers `fsync` what they write, so the disk time is paid either way; `O_DIRECT` only
//! removes the copy, and it leaves the cache to data that is read again (and does not push it
//! out for a 10 GB mirror).
//!
//! `O_DIRECT` needs buffers, lengths and file offsets aligned to the device's block size;
//! [`DirectWriter`] collects writes into one aligned buffer and writes whole blocks. The last,
//! partial block of a file is an ordinary write (one page-cache page per file). Where the
//! filesystem refuses `O_DIRECT` (at open or at the first write) the writer carries on with
//! ordinary buffered writes, so the result is the same file everywhere.

use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::fd::AsRawFd;

/// Alignment of buffer addresses, write lengths and offsets: the largest logical block size in
/// common use, so it suits every device.
pub const ALIGN: usize = 4096;

/// Bytes collected before one write: large enough that the device sees big requests.
pub const DIRECT_CHUNK: usize = 1 << 20;

/// The aligned window a [`DirectWriter`] collects writes in; keep it to reuse it for the next
/// file (allocating fresh pages is the very cost this module avoids).
pub struct DirectBuffer {
    /// Backing store; `start..start + DIRECT_CHUNK` is the aligned window that is used.
    store: Vec<u8>,
    start: usize,
}

impl DirectBuffer {
    pub fn new() -> Self {
        let store = vec![0u8; DIRECT_CHUNK + ALIGN];
        let start = store.as_ptr().align_offset(ALIGN);
        DirectBuffer { store, start }
    }

    pub(crate) fn window(&mut self) -> &mut [u8] {
        &mut self.store[self.start..self.start + DIRECT_CHUNK]
    }

    /// The first `n` bytes of the window.
    pub(crate) fn filled(&self, n: usize) -> &[u8] {
        &self.store[self.start..self.start + n]
    }
}

impl Default for DirectBuffer {
    fn default() -> Self {
        Self::new()
    }
}

/// Windows kept for reuse by writers on several threads.
#[derive(Default)]
pub struct BufferPool(std::sync::Mutex<Vec<DirectBuffer>>);

impl BufferPool {
    /// A kept window, or a new one.
    fn take(&self) -> DirectBuffer {
        self.0
            .lock()
            .expect("buffer pool")
            .pop()
            .unwrap_or_default()
    }

    /// Keeps `buf` for the next [`BufferPool::take`].
    fn put(&self, buf: DirectBuffer) {
        self.0.lock().expect("buffer pool").push(buf);
    }

    /// Writes `data` as the whole content of the new file `file`, with a pooled window.
    pub fn write_file(&self, file: File, data: &[u8]) -> io::Result<File> {
        let mut writer = DirectWriter::with_buffer(file, self.take());
        writer.write_all(data)?;
        let (file, buf) = writer.finish_reusing()?;
        self.put(buf);
        Ok(file)
    }
}

/// A writer for a new, empty file that bypasses the page cache where it can.
pub struct DirectWriter {
    file: File,
    buf: DirectBuffer,
    /// Bytes waiting in the window.
    filled: usize,
    /// Bytes of the file written so far.
    written: u64,
    direct: bool,
}

impl DirectWriter {
    /// Takes `file` (open for writing, empty, at offset 0) and switches it to `O_DIRECT` when
    /// the filesystem supports that.
    pub fn new(file: File) -> Self {
        Self::with_buffer(file, DirectBuffer::new())
    }

    /// [`DirectWriter::new`] with a window kept from an earlier writer.
    pub fn with_buffer(file: File, buf: DirectBuffer) -> Self {
        let direct = set_direct(&file, true).is_ok();
        Self::with_mode(file, buf, direct)
    }

    /// A writer that never uses `O_DIRECT` (for filesystems known not to take it, and tests).
    pub fn buffered(file: File) -> Self {
        Self::with_mode(file, DirectBuffer::new(), false)
    }

    fn with_mode(file: File, buf: DirectBuffer, direct: bool) -> Self {
        DirectWriter {
            file,
            buf,
            filled: 0,
            written: 0,
            direct,
        }
    }

    /// Whether the page cache is being bypassed (false after a fallback).
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// Bytes accepted so far.
    pub fn len(&self) -> u64 {
        self.written + self.filled as u64
    }

    /// True before the first byte.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes what is left and returns the file, at its exact length, no longer in `O_DIRECT`
    /// mode. The data is not synced: that stays the caller's decision.
    pub fn finish(self) -> io::Result<File> {
        self.finish_reusing().map(|(file, _)| file)
    }

    /// [`DirectWriter::finish`], handing back the window for the next file.
    pub fn finish_reusing(mut self) -> io::Result<(File, DirectBuffer)> {
        // Whole blocks past the cache, then the partial last block as an ordinary write.
        // (Padding that block and truncating the file back made ext4 read the block from the
        // disk to zero its tail: one synchronous read per file, which a profile of `extract`
        // showed as a wait in `notify_change` for every file.)
        let tail = if self.direct {
            self.filled % ALIGN
        } else {
            self.filled
        };
        let whole = self.filled - tail;
        if whole > 0 {
            self.write_window(whole)?;
        }
        if self.direct {
            set_direct(&self.file, false)?;
        }
        if tail > 0 {
            self.file
                .write_all(&self.buf.filled(whole + tail)[whole..])?;
        }
        Ok((self.file, self.buf))
    }

    /// Writes the first `len` bytes of the window at the current end of the file.
    fn write_window(&mut self, len: usize) -> io::Result<()> {
        let window = &self.buf.window()[..len];
        match self.file.write_all(window) {
            Ok(()) => {}
            // A filesystem that accepted the flag but not the request: go on buffered, from
            // the first byte the failed call did not write (the file position is there).
            Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                set_direct(&self.file, false)?;
                self.direct = false;
                let done = self.file.stream_position()?.saturating_sub(self.written);
                let done = usize::try_from(done).unwrap_or(len).min(len);
                let rest = &self.buf.window()[done..len];
                self.file.write_all(rest)?;
            }
            Err(e) => return Err(e),
        }
        self.written += self.filled.min(len) as u64;
        self.filled = 0;
        Ok(())
    }
}

impl Write for DirectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(DIRECT_CHUNK - self.filled);
        let filled = self.filled;
        self.buf.window()[filled..filled + n].copy_from_slice(&data[..n]);
        self.filled += n;
        if self.filled == DIRECT_CHUNK {
            self.write_window(DIRECT_CHUNK)?;
        }
        Ok(n)
    }

    /// Does nothing: only whole blocks can be written before [`DirectWriter::finish`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A reader of a whole file that takes what the page cache holds and reads the rest past it.
///
/// Before each refill it asks whether the page cache holds that window (`cachestat`); what is
/// not cached is read with `O_DIRECT` from a second descriptor, so a file this process wrote
/// with [`DirectWriter`] (the bundle, the bundler's cache files) is read at disk speed without
/// filling the cache, and a file that is cached (a bundle just copied in) is read from memory.
/// (A non-blocking read, `RWF_NOWAIT`, was tried first: on a miss it starts a readahead into
/// the cache, which is the very cost avoided here, and then the bytes were read twice.)
pub struct DirectReader {
    file: File,
    /// The same file opened with `O_DIRECT`, when the filesystem takes it.
    direct: Option<File>,
    buf: DirectBuffer,
    /// `pos..len` of the window is what was read and not yet returned.
    pos: usize,
    len: usize,
    /// File offset of the next refill.
    offset: u64,
    /// The file's size when it was opened.
    size: u64,
    /// Not a regular file (a pipe): plain reads in order, no offsets.
    stream: bool,
    eof: bool,
}

impl DirectReader {
    /// Opens `path` for reading with the window `buf`.
    pub fn open(path: &std::path::Path, buf: DirectBuffer) -> io::Result<Self> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let stream = !meta.is_file();
        Ok(DirectReader {
            file,
            direct: if stream { None } else { open_direct(path) },
            buf,
            pos: 0,
            len: 0,
            offset: 0,
            size: meta.len(),
            stream,
            eof: false,
        })
    }

    /// The file's size when opened; None for a pipe or device.
    pub fn size(&self) -> Option<u64> {
        (!self.stream).then_some(self.size)
    }

    /// The window, for the next file.
    pub fn into_buffer(self) -> DirectBuffer {
        self.buf
    }

    /// Refills the window from `offset`.
    fn fill(&mut self) -> io::Result<()> {
        self.pos = 0;
        let n = if self.stream {
            loop {
                match (&self.file).read(self.buf.window()) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other?,
                }
            }
        } else {
            // Offsets stay multiples of the window: every read but the last is whole.
            read_window_at(
                &self.file,
                self.direct.as_ref(),
                self.size,
                &mut self.buf,
                self.offset,
            )?
        };
        self.eof = n == 0;
        self.len = n;
        self.offset += n as u64;
        Ok(())
    }
}

impl Read for DirectReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.len {
            if self.eof || out.is_empty() {
                return Ok(0);
            }
            self.fill()?;
        }
        let n = out.len().min(self.len - self.pos);
        let start = self.buf.start + self.pos;
        out[..n].copy_from_slice(&self.buf.store[start..start + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Whether the page cache holds all of the window at `offset` of a file of `size` bytes, asked
/// with `cachestat(2)` (Linux 6.5+), which unlike a non-blocking read does not start a readahead
/// when it does not. Where the call does not exist, nothing counts as cached.
fn window_cached(file: &File, offset: u64, size: u64) -> bool {
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    const SYS_CACHESTAT: libc::c_long = 451;
    let page = 4096u64;
    let end = (offset + DIRECT_CHUNK as u64).min(size);
    if end <= offset {
        return true; // At the end: a plain read says so.
    }
    let range = Range {
        off: offset,
        len: end - offset,
    };
    let mut stat = Stat::default();
    // SAFETY: cachestat reads `range` and writes `stat`, both live for the call; the
    // descriptor is open.
    let rc = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file.as_raw_fd(),
            &range as *const Range,
            &mut stat as *mut Stat,
            0u32,
        )
    };
    let pages = end.div_ceil(page) - offset / page;
    rc == 0 && stat.nr_cache >= pages
}

/// Reads the window at `offset` (a multiple of [`DIRECT_CHUNK`]) of a file of `size` bytes into
/// `buf`: from the page cache when it holds it all, else through `direct` (the same file opened
/// with `O_DIRECT`) when there is one. Returns the bytes read (short only at the end).
pub(crate) fn read_window_at(
    file: &File,
    direct: Option<&File>,
    size: u64,
    buf: &mut DirectBuffer,
    offset: u64,
) -> io::Result<usize> {
    if let Some(direct) = direct.filter(|_| !window_cached(file, offset, size)) {
        match pread(direct, buf.window(), offset) {
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
            other => return other,
        }
    }
    pread(file, buf.window(), offset)
}

/// Opens `path` with `O_DIRECT`, when its filesystem allows.
pub(crate) fn open_direct(path: &std::path::Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .ok()
}

/// `pread` of `buf` at `offset`, retried on EINTR.
fn pread(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    loop {
        match file.read_at(buf, offset) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// Flushes everything written to the filesystem that holds `dir` in one call (`syncfs(2)`):
/// one device flush for a whole staged tree instead of one per file.
pub fn sync_filesystem(dir: &std::path::Path) -> io::Result<()> {
    let handle = File::open(dir)?;
    // SAFETY: the descriptor is open and owned by `handle` for the duration of the call.
    if unsafe { libc::syncfs(handle.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Turns `O_DIRECT` on or off for `file`.
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let fd = file.as_raw_fd();
    // SAFETY: fd is an open descriptor owned by `file` for the duration of both calls.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    let wanted = if on {
        flags | libc::O_DIRECT
    } else {
        flags & !libc::O_DIRECT
    };
    // SAFETY: as above; F_SETFL only changes the descriptor's status flags.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, wanted) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    /// Writes `data` in pieces of `piece` bytes and returns what ended up in the file.
    fn round_trip(data: &[u8], piece: usize, direct: bool) -> (Vec<u8>, bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let file = File::create(&path).unwrap();
        let mut w = if direct {
            DirectWriter::new(file)
        } else {
            DirectWriter::buffered(file)
        };
        for part in data.chunks(piece.max(1)) {
            w.write_all(part).unwrap();
        }
        assert_eq!(w.len(), data.len() as u64);
        let was_direct = w.is_direct();
        drop(w.finish().unwrap());
        (std::fs::read(&path).unwrap(), was_direct)
    }

    #[test]
    fn files_of_every_tail_length_come_out_exact() {
        let sizes = [
            0,
            1,
            511,
            ALIGN - 1,
            ALIGN,
            ALIGN + 1,
            DIRECT_CHUNK - 1,
            DIRECT_CHUNK,
            DIRECT_CHUNK + 3,
            3 * DIRECT_CHUNK + ALIGN + 17,
        ];
        for direct in [true, false] {
            for &size in &sizes {
                for piece in [1000, 65536, DIRECT_CHUNK + 5] {
                    let data = pattern(size);
                    let (back, _) = round_trip(&data, piece, direct);
                    assert_eq!(
                        back.len(),
                        size,
                        "size {size}, piece {piece}, direct {direct}"
                    );
                    assert!(back == data, "content, size {size}, piece {piece}");
                }
            }
        }
    }

    #[test]
    fn the_temp_directory_takes_o_direct_here() {
        // ext4 and tmpfs (since Linux 6.6) both do; if this fails, the machine's temp dir is on
        // a filesystem that does not, and the fallback above is what the other tests covered.
        let (_, direct) = round_trip(&pattern(ALIGN * 3), ALIGN, true);
        assert!(direct, "O_DIRECT was refused in the temp directory");
    }

    #[test]
    fn the_reader_returns_every_byte_whatever_the_piece_size() {
        let dir = tempfile::tempdir().unwrap();
        for size in [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            DIRECT_CHUNK,
            DIRECT_CHUNK + ALIGN + 9,
        ] {
            let data = pattern(size);
            let path = dir.path().join(format!("f{size}"));
            std::fs::write(&path, &data).unwrap();
            for piece in [1, 4096, 100_000, 2 * DIRECT_CHUNK] {
                let mut r = DirectReader::open(&path, DirectBuffer::new()).unwrap();
                let mut back = Vec::new();
                let mut buf = vec![0u8; piece];
                loop {
                    let n = r.read(&mut buf).unwrap();
                    if n == 0 {
                        break;
                    }
                    back.extend_from_slice(&buf[..n]);
                }
                assert!(back == data, "size {size}, piece {piece}");
                assert_eq!(r.read(&mut buf).unwrap(), 0, "stays at the end");
            }
        }
    }

    /// A new named pipe at `path`.
    pub(crate) fn make_fifo(path: &std::path::Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: c is a valid NUL-terminated path for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn the_reader_takes_a_pipe_too() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        make_fifo(&fifo);
        let data = pattern(2 * DIRECT_CHUNK + 99);
        let writer = {
            let (fifo, data) = (fifo.clone(), data.clone());
            std::thread::spawn(move || std::fs::write(fifo, data).unwrap())
        };
        let mut r = DirectReader::open(&fifo, DirectBuffer::new()).unwrap();
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        writer.join().unwrap();
        assert!(back == data);
    }

    #[test]
    fn the_reader_mixes_cached_and_uncached_parts() {
        // Written past the cache, then part of the second window read through it: the reader
        // gets that window from memory only if all of it is cached, the others from the disk.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed");
        let data = pattern(3 * DIRECT_CHUNK + 1234);
        let mut w = DirectWriter::new(File::create(&path).unwrap());
        w.write_all(&data).unwrap();
        drop(w.finish().unwrap());
        let mut middle = vec![0u8; 5000];
        let f = File::open(&path).unwrap();
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut middle, DIRECT_CHUNK as u64 + 77)
            .unwrap();
        let mut r = DirectReader::open(&path, DirectBuffer::new()).unwrap();
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert!(back == data);
    }

    #[test]
    fn the_returned_file_takes_ordinary_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut w = DirectWriter::new(File::create(&path).unwrap());
        w.write_all(&pattern(ALIGN + 5)).unwrap();
        let mut file = w.finish().unwrap();
        // Not aligned: would fail with EINVAL if O_DIRECT were still on.
        file.write_all(b"abc").unwrap();
        drop(file);
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len(), ALIGN + 5 + 3);
        assert_eq!(&back[ALIGN + 5..], b"abc");
    }
}
