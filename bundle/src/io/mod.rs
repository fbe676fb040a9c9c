//! The bulk-I/O engine: how the bundle's bytes move between the disk and the format code, behind
//! one switch, [`IoMode`], that the binaries choose (`--io`, `KUBESPRAY_OFFLINE_IO`) and pass
//! down. The format modules (`write`, `read`, `extract`, `volume`) see only the stages here:
//!
//! - [`writer`]: aligned windows and the writer that bypasses the page cache in direct mode;
//! - [`reader`]: the reader that takes cached windows from memory and the rest past the cache;
//! - [`ahead`]: the bundle file read ahead for the zstd decoder (and hashed) on its own threads;
//! - [`readahead`]: small source files read ahead of the bundle writer;
//! - [`source`], [`sink`]: the bundle writer's reader and output stages.
//!
//! Why both modes exist, and the numbers behind the default: docs/BENCHMARKS.md, "Issue 16:
//! I/O mode".

pub(crate) mod ahead;
pub(crate) mod readahead;
pub(crate) mod reader;
pub(crate) mod sink;
pub(crate) mod source;
pub(crate) mod writer;

use std::fmt;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;

pub use writer::BulkWriter;

/// The environment variable that chooses the [`IoMode`] of both binaries (`--io` wins).
pub const IO_MODE_ENV: &str = "KUBESPRAY_OFFLINE_IO";

/// How bulk files (the bundle, the unpacked payload, the bundler's cache) are read and written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoMode {
    /// Through the page cache, like any program: works on every filesystem.
    Buffered,
    /// Past the page cache with `O_DIRECT` where the filesystem takes it (buffered where it
    /// does not): no copy into cache pages, and a large bundle does not push the cache out.
    Direct,
}

impl IoMode {
    /// Every mode, for tests that run both.
    pub const ALL: [IoMode; 2] = [IoMode::Buffered, IoMode::Direct];
    /// The names `--io` takes.
    pub const NAMES: [&'static str; 2] = ["buffered", "direct"];
}

/// Chosen by measurement and by what admin servers run on; see docs/BENCHMARKS.md.
impl Default for IoMode {
    fn default() -> Self {
        IoMode::Direct
    }
}

impl fmt::Display for IoMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IoMode::Buffered => "buffered",
            IoMode::Direct => "direct",
        })
    }
}

impl FromStr for IoMode {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "buffered" => Ok(IoMode::Buffered),
            "direct" => Ok(IoMode::Direct),
            other => Err(format!(
                "unknown I/O mode {other:?}; use `buffered` or `direct` (--io or {IO_MODE_ENV})"
            )),
        }
    }
}

/// Bytes read or written at once, and the size of the direct-I/O windows: large enough that the
/// device sees big requests, small enough to never matter for memory.
pub(crate) const DIRECT_CHUNK: usize = 1 << 20;

/// The bundle writer's and the payload pass's chunk size.
pub(crate) const CHUNK: usize = 1 << 20;

/// Buffers in flight between two stages of the writer: enough for a stage to run ahead while the
/// next one is busy, few enough that memory stays at a handful of chunks.
pub(crate) const BUFFERS: usize = 4;

/// Alignment of direct-I/O buffers, write lengths and offsets: the kernel's page size, which is
/// at least the logical block size of any device it drives.
pub(crate) fn alignment() -> usize {
    rustix::param::page_size()
}

/// Flushes everything written to the filesystem that holds `dir` in one call (`syncfs(2)`):
/// one device flush for a whole staged tree instead of one per file.
pub(crate) fn sync_filesystem(dir: &Path) -> io::Result<()> {
    let handle = std::fs::File::open(dir)?;
    rustix::fs::syncfs(&handle)?;
    Ok(())
}

/// `read`, retried on EINTR.
pub(crate) fn read_some(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match r.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 4093) as u8).collect()
    }

    /// A new named pipe at `path`.
    pub(crate) fn make_fifo(path: &Path) {
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            path,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .unwrap();
    }

    #[test]
    fn modes_parse_from_their_names() {
        for (mode, name) in IoMode::ALL.into_iter().zip(IoMode::NAMES) {
            assert_eq!(mode.to_string(), name);
            assert_eq!(name.parse::<IoMode>(), Ok(mode));
        }
        let err = "fast".parse::<IoMode>().unwrap_err();
        assert!(err.contains(IO_MODE_ENV), "{err}");
    }

    #[test]
    fn the_alignment_is_the_page_size_and_divides_the_window() {
        let align = alignment();
        assert!(align.is_power_of_two() && align >= 4096, "{align}");
        assert_eq!(DIRECT_CHUNK % align, 0);
    }
}
