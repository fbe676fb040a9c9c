//! Reading bulk files in the chosen [`IoMode`]. In [`IoMode::Direct`] a window the page cache
//! holds is read from memory and any other past the cache with `O_DIRECT`, so a file this
//! process wrote past the cache (the bundle, the bundler's cache files) is read at disk speed
//! without filling the cache. In [`IoMode::Buffered`] every read is a plain `pread`.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use rustix::io::Errno;

use super::writer::DirectBuffer;
use super::{DIRECT_CHUNK, IoMode};

/// A reader of a whole file (or a pipe) in [`DIRECT_CHUNK`] windows.
pub(crate) struct DirectReader {
    file: File,
    /// The same file opened with `O_DIRECT`, in direct mode when the filesystem takes it.
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
    pub(crate) fn open(path: &Path, buf: DirectBuffer, mode: IoMode) -> io::Result<Self> {
        let file = File::open(path)?;
        let meta = file.metadata()?;
        let stream = !meta.is_file();
        Ok(DirectReader {
            file,
            direct: if stream {
                None
            } else {
                open_direct(path, mode)
            },
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
    pub(crate) fn size(&self) -> Option<u64> {
        (!self.stream).then_some(self.size)
    }

    /// The window, for the next file.
    pub(crate) fn into_buffer(self) -> DirectBuffer {
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
        out[..n].copy_from_slice(&self.buf.filled(self.len)[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Whether the page cache holds all of the window at `offset` of a file of `size` bytes, asked
/// with `cachestat(2)` (Linux 6.5+), which, unlike a non-blocking read, does not start a
/// readahead when it does not. Where the call does not exist, nothing counts as cached.
///
/// rustix 1.x does not wrap `cachestat` (it lists it as not implemented) and libc defines its
/// number only for a few targets, so the raw call stays here. 451 is its number on every
/// architecture (it was added after the syscall tables were unified). The kernel counts pages of
/// the running kernel's size, so the window is measured in those (64 KiB on some aarch64).
fn window_cached(file: &File, offset: u64, size: u64) -> bool {
    use std::os::fd::AsRawFd;
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
    rc == 0 && stat.nr_cache >= pages_spanned(offset, end)
}

/// Pages of the running kernel's size that the bytes `offset..end` touch.
fn pages_spanned(offset: u64, end: u64) -> u64 {
    let page = rustix::param::page_size() as u64;
    end.div_ceil(page) - offset / page
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
            Err(e) if Errno::from_io_error(&e) == Some(Errno::INVAL) => {}
            other => return other,
        }
    }
    pread(file, buf.window(), offset)
}

/// In direct mode, `path` opened with `O_DIRECT` when its filesystem allows.
pub(crate) fn open_direct(path: &Path, mode: IoMode) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    if mode != IoMode::Direct {
        return None;
    }
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::DIRECT.bits() as i32)
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

#[cfg(test)]
mod tests {
    use super::super::tests::{make_fifo, pattern};
    use super::super::writer::DirectWriter;
    use super::*;
    use std::io::Write;

    #[test]
    fn the_reader_returns_every_byte_whatever_the_piece_size() {
        let dir = tempfile::tempdir().unwrap();
        for size in [0, 1, 4095, 4096, DIRECT_CHUNK, DIRECT_CHUNK + 4096 + 9] {
            let data = pattern(size);
            let path = dir.path().join(format!("f{size}"));
            std::fs::write(&path, &data).unwrap();
            for mode in IoMode::ALL {
                for piece in [1, 4096, 100_000, 2 * DIRECT_CHUNK] {
                    let mut r = DirectReader::open(&path, DirectBuffer::new(), mode).unwrap();
                    let mut back = Vec::new();
                    let mut buf = vec![0u8; piece];
                    loop {
                        let n = r.read(&mut buf).unwrap();
                        if n == 0 {
                            break;
                        }
                        back.extend_from_slice(&buf[..n]);
                    }
                    assert!(back == data, "size {size}, piece {piece}, {mode}");
                    assert_eq!(r.read(&mut buf).unwrap(), 0, "stays at the end");
                }
            }
        }
    }

    #[test]
    fn the_reader_takes_a_pipe_too() {
        for mode in IoMode::ALL {
            let dir = tempfile::tempdir().unwrap();
            let fifo = dir.path().join("fifo");
            make_fifo(&fifo);
            let data = pattern(2 * DIRECT_CHUNK + 99);
            let writer = {
                let (fifo, data) = (fifo.clone(), data.clone());
                std::thread::spawn(move || std::fs::write(fifo, data).unwrap())
            };
            let mut r = DirectReader::open(&fifo, DirectBuffer::new(), mode).unwrap();
            let mut back = Vec::new();
            r.read_to_end(&mut back).unwrap();
            writer.join().unwrap();
            assert!(back == data, "{mode}");
        }
    }

    #[test]
    fn the_reader_mixes_cached_and_uncached_parts() {
        // Written past the cache, then part of the second window read through it: the reader
        // gets that window from memory only if all of it is cached, the others from the disk.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed");
        let data = pattern(3 * DIRECT_CHUNK + 1234);
        let mut w = DirectWriter::new(File::create(&path).unwrap(), IoMode::Direct);
        w.write_all(&data).unwrap();
        drop(w.finish().unwrap());
        let mut middle = vec![0u8; 5000];
        let f = File::open(&path).unwrap();
        std::os::unix::fs::FileExt::read_exact_at(&f, &mut middle, DIRECT_CHUNK as u64 + 77)
            .unwrap();
        let mut r = DirectReader::open(&path, DirectBuffer::new(), IoMode::Direct).unwrap();
        let mut back = Vec::new();
        r.read_to_end(&mut back).unwrap();
        assert!(back == data);
    }

    #[test]
    fn a_window_read_whole_counts_as_cached() {
        // The check compares page counts in the kernel's page size: a window just read through
        // the cache must count as cached whatever that size is (it was inverted at 64 KiB).
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cached");
        let data = pattern(2 * DIRECT_CHUNK + 100);
        std::fs::write(&path, &data).unwrap();
        let file = File::open(&path).unwrap();
        let mut back = Vec::new();
        (&file).read_to_end(&mut back).unwrap();
        let size = data.len() as u64;
        // Fails on a kernel before 6.5 (no cachestat), where nothing counts as cached: safe,
        // but then this machine does not test the check.
        assert!(
            window_cached(&file, 0, size),
            "cachestat said a cached window is not"
        );
        assert!(window_cached(&file, DIRECT_CHUNK as u64, size));
        assert!(window_cached(&file, 2 * DIRECT_CHUNK as u64, size));
        let page = rustix::param::page_size() as u64;
        assert_eq!(
            pages_spanned(0, DIRECT_CHUNK as u64),
            DIRECT_CHUNK as u64 / page
        );
        assert_eq!(pages_spanned(page - 1, page + 1), 2);
    }
}
