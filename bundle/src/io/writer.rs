//! Writing bulk files that are not read back soon (the bundle, its volumes, the unpacked
//! payload, the bundler's cache files). In [`IoMode::Direct`] they go past the page cache with
//! `O_DIRECT`: the copy into freshly allocated cache pages is what costs on the VMs measured
//! (docs/BENCHMARKS.md, "Issue 16: I/O mode"). In [`IoMode::Buffered`] they are plain writes.
//!
//! `O_DIRECT` needs buffers, lengths and file offsets aligned to the device's block size:
//! [`DirectWriter`] collects writes into one page-aligned window and writes whole pages; the
//! last partial page of a file is an ordinary write. Where the filesystem refuses `O_DIRECT`
//! (at open or at the first write) the writer carries on buffered, so the file is the same
//! everywhere.

use std::fs::File;
use std::io::{self, Seek, Write};

use rustix::fs::OFlags;
use rustix::io::Errno;

use super::{DIRECT_CHUNK, IoMode, alignment};

/// The aligned window a [`DirectWriter`] collects writes in (and a [`super::DirectReader`]
/// reads into); kept for the next file, since fresh pages are the very cost avoided here.
pub(crate) struct DirectBuffer {
    /// Backing store; `start..start + DIRECT_CHUNK` is the aligned window that is used.
    store: Vec<u8>,
    start: usize,
}

impl DirectBuffer {
    pub(crate) fn new() -> Self {
        let align = alignment();
        let store = vec![0u8; DIRECT_CHUNK + align];
        let start = store.as_ptr().align_offset(align);
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

/// Writes whole files that are not read back soon, in the chosen [`IoMode`], from several
/// threads at once; the aligned windows are kept between files. The bundler writes its
/// download cache with it.
pub struct BulkWriter {
    mode: IoMode,
    spare: std::sync::Mutex<Vec<DirectBuffer>>,
}

impl BulkWriter {
    pub fn new(mode: IoMode) -> Self {
        BulkWriter {
            mode,
            spare: std::sync::Mutex::default(),
        }
    }

    /// Writes `data` as the whole content of `file` (new, empty, at offset 0) and returns the
    /// file, not synced: that stays the caller's decision.
    pub fn write_file(&self, file: File, data: &[u8]) -> io::Result<File> {
        let buf = self
            .spare
            .lock()
            .expect("bulk writer")
            .pop()
            .unwrap_or_default();
        let mut writer = DirectWriter::with_buffer(file, buf, self.mode);
        writer.write_all(data)?;
        let (file, buf) = writer.finish_reusing()?;
        self.spare.lock().expect("bulk writer").push(buf);
        Ok(file)
    }
}

/// A writer for a new, empty file that bypasses the page cache in [`IoMode::Direct`] where the
/// filesystem allows.
pub(crate) struct DirectWriter {
    file: File,
    buf: DirectBuffer,
    /// Bytes waiting in the window.
    filled: usize,
    /// Bytes of the file written so far.
    written: u64,
    direct: bool,
}

impl DirectWriter {
    /// Takes `file` (open for writing, empty, at offset 0) with a window kept from an earlier
    /// writer; in [`IoMode::Direct`] it is switched to `O_DIRECT` when the filesystem takes it.
    pub(crate) fn with_buffer(file: File, buf: DirectBuffer, mode: IoMode) -> Self {
        let direct = mode == IoMode::Direct && set_direct(&file, true).is_ok();
        DirectWriter {
            file,
            buf,
            filled: 0,
            written: 0,
            direct,
        }
    }

    pub(crate) fn new(file: File, mode: IoMode) -> Self {
        Self::with_buffer(file, DirectBuffer::new(), mode)
    }

    /// Whether the page cache is being bypassed (false after a fallback).
    #[cfg(test)]
    pub(crate) fn is_direct(&self) -> bool {
        self.direct
    }

    /// Bytes accepted so far.
    #[cfg(test)]
    pub(crate) fn len(&self) -> u64 {
        self.written + self.filled as u64
    }

    /// Writes what is left and returns the file, at its exact length, no longer in `O_DIRECT`
    /// mode. The data is not synced: that stays the caller's decision.
    pub(crate) fn finish(self) -> io::Result<File> {
        self.finish_reusing().map(|(file, _)| file)
    }

    /// [`DirectWriter::finish`], handing back the window for the next file.
    pub(crate) fn finish_reusing(mut self) -> io::Result<(File, DirectBuffer)> {
        // Whole blocks past the cache, then the partial last one as an ordinary write: padding
        // it and truncating made ext4 read the block back, one synchronous read per file.
        let tail = if self.direct {
            self.filled % alignment()
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
            Err(e) if self.direct && Errno::from_io_error(&e) == Some(Errno::INVAL) => {
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

/// Turns `O_DIRECT` on or off for `file`.
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(file)?;
    let wanted = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    rustix::fs::fcntl_setfl(file, wanted)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::pattern;
    use super::*;

    /// Writes `data` in pieces of `piece` bytes and returns what ended up in the file.
    fn round_trip(data: &[u8], piece: usize, mode: IoMode) -> (Vec<u8>, bool) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut w = DirectWriter::new(File::create(&path).unwrap(), mode);
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
        let align = alignment();
        let sizes = [
            0,
            1,
            511,
            align - 1,
            align,
            align + 1,
            DIRECT_CHUNK - 1,
            DIRECT_CHUNK,
            DIRECT_CHUNK + 3,
            3 * DIRECT_CHUNK + align + 17,
        ];
        for mode in IoMode::ALL {
            for &size in &sizes {
                for piece in [1000, 65536, DIRECT_CHUNK + 5] {
                    let data = pattern(size);
                    let (back, _) = round_trip(&data, piece, mode);
                    assert_eq!(back.len(), size, "size {size}, piece {piece}, {mode}");
                    assert!(back == data, "content, size {size}, piece {piece}, {mode}");
                }
            }
        }
    }

    #[test]
    fn the_temp_directory_takes_o_direct_here() {
        // ext4 and tmpfs (since Linux 6.6) both do; if this fails, the machine's temp dir is on
        // a filesystem that does not, and the fallback is what the other tests covered.
        let (_, direct) = round_trip(&pattern(alignment() * 3), alignment(), IoMode::Direct);
        assert!(direct, "O_DIRECT was refused in the temp directory");
        let (_, direct) = round_trip(&pattern(alignment() * 3), alignment(), IoMode::Buffered);
        assert!(!direct, "buffered mode used O_DIRECT");
    }

    #[test]
    fn the_returned_file_takes_ordinary_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let align = alignment();
        let mut w = DirectWriter::new(File::create(&path).unwrap(), IoMode::Direct);
        w.write_all(&pattern(align + 5)).unwrap();
        let mut file = w.finish().unwrap();
        // Not aligned: would fail with EINVAL if O_DIRECT were still on.
        file.write_all(b"abc").unwrap();
        drop(file);
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len(), align + 5 + 3);
        assert_eq!(&back[align + 5..], b"abc");
    }

    #[test]
    fn the_bulk_writer_writes_whole_files_in_both_modes() {
        let dir = tempfile::tempdir().unwrap();
        for mode in IoMode::ALL {
            let pool = BulkWriter::new(mode);
            for size in [0, 7, DIRECT_CHUNK + 9] {
                let path = dir.path().join(format!("{mode}-{size}"));
                let data = pattern(size);
                drop(
                    pool.write_file(File::create(&path).unwrap(), &data)
                        .unwrap(),
                );
                assert!(std::fs::read(&path).unwrap() == data, "{mode} {size}");
            }
        }
    }
}
