//! The tar layer of format 1, written and parsed by hand on top of `tar::Header` so that every
//! byte is under our control: the writer emits only GNU regular-file headers (plus a GNU long
//! name entry for paths over 100 bytes) with fixed owner, mode and mtime; the parser turns raw
//! 512-byte blocks into [`RawEntry`] values without interpreting or unpacking anything, so the
//! reader can refuse whatever it does not expect.

use std::io::{self, Read};

use tar::{EntryType, Header};

pub(crate) const BLOCK: usize = 512;
const GNU_LONG_NAME: &str = "././@LongLink";
/// A GNU long name entry longer than this is refused before it is read.
const MAX_LONG_NAME: u64 = crate::paths::MAX_PATH_BYTES as u64 + 1;

/// Bytes of zero padding after `size` bytes of entry data.
pub(crate) fn padding(size: u64) -> usize {
    (BLOCK - (size % BLOCK as u64) as usize) % BLOCK
}

/// Header block(s) for one regular file: owner 0:0, no user/group names, mode 0644.
pub(crate) fn file_headers(path: &str, size: u64, mtime: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(BLOCK);
    let name = path.as_bytes();
    if name.len() > 100 {
        let long_size = name.len() as u64 + 1;
        out.extend_from_slice(
            header(
                GNU_LONG_NAME.as_bytes(),
                long_size,
                0,
                EntryType::GNULongName,
            )
            .as_bytes(),
        );
        out.extend_from_slice(name);
        out.push(0);
        out.resize(out.len() + padding(long_size), 0);
    }
    let short = &name[..name.len().min(100)];
    out.extend_from_slice(header(short, size, mtime, EntryType::Regular).as_bytes());
    out
}

fn header(name: &[u8], size: u64, mtime: u64, kind: EntryType) -> Header {
    let mut h = Header::new_gnu();
    h.as_gnu_mut().expect("new_gnu is GNU").name[..name.len()].copy_from_slice(name);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_entry_type(kind);
    h.set_cksum();
    h
}

/// One archive member as found in the stream, before any rule is applied.
#[derive(Debug)]
pub(crate) struct RawEntry {
    pub path: Vec<u8>,
    pub size: u64,
    pub kind: EntryType,
}

impl RawEntry {
    /// Human name of a non-regular kind, or None for a regular file.
    pub fn forbidden_kind(&self) -> Option<&'static str> {
        Some(match self.kind {
            EntryType::Regular => return None,
            EntryType::Link => "hard link",
            EntryType::Symlink => "symbolic link",
            EntryType::Char => "character device",
            EntryType::Block => "block device",
            EntryType::Directory => "directory",
            EntryType::Fifo => "fifo",
            EntryType::Continuous => "contiguous file",
            EntryType::GNULongLink => "GNU long link name",
            EntryType::GNULongName => "second GNU long name",
            EntryType::GNUSparse => "sparse file",
            EntryType::XGlobalHeader => "pax global header",
            EntryType::XHeader => "pax extended header",
            _ => "unknown tar entry type",
        })
    }

    pub fn display_path(&self) -> String {
        String::from_utf8_lossy(&self.path).into_owned()
    }
}

/// Either the next member or the end-of-archive marker (a zero block).
pub(crate) enum Next {
    Entry(RawEntry),
    End,
}

/// Why the tar structure could not be parsed.
pub(crate) enum TarError {
    /// Reading the decompressed stream failed (corrupt zstd, disk error).
    Read(io::Error),
    /// The decompressed stream ended where more was required.
    Truncated,
    /// The bytes are there but are not a valid archive.
    Malformed(String),
}

impl From<io::Error> for TarError {
    fn from(e: io::Error) -> Self {
        TarError::Read(e)
    }
}

/// Reads `buf.len()` bytes or reports where the stream ended.
pub(crate) fn read_exact_or_truncated(r: &mut impl Read, buf: &mut [u8]) -> Result<(), TarError> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Err(TarError::Truncated),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(TarError::Read(e)),
        }
    }
    Ok(())
}

/// Parses the next member header (following a GNU long name entry when present).
pub(crate) fn next_entry(r: &mut impl Read) -> Result<Next, TarError> {
    let mut block = [0u8; BLOCK];
    read_exact_or_truncated(r, &mut block)?;
    if block.iter().all(|&b| b == 0) {
        return Ok(Next::End);
    }
    let first = parse_header(&block)?;
    if first.kind != EntryType::GNULongName {
        return Ok(Next::Entry(first));
    }
    if first.size > MAX_LONG_NAME {
        return Err(TarError::Malformed(format!(
            "GNU long name entry of {} bytes (longest accepted path is {} bytes)",
            first.size,
            crate::paths::MAX_PATH_BYTES
        )));
    }
    let mut name = vec![0u8; first.size as usize + padding(first.size)];
    read_exact_or_truncated(r, &mut name)?;
    name.truncate(first.size as usize);
    if name.last() == Some(&0) {
        name.pop();
    }
    read_exact_or_truncated(r, &mut block)?;
    if block.iter().all(|&b| b == 0) {
        return Err(TarError::Malformed(
            "GNU long name entry not followed by a member".into(),
        ));
    }
    let mut entry = parse_header(&block)?;
    entry.path = name;
    Ok(Next::Entry(entry))
}

fn parse_header(block: &[u8; BLOCK]) -> Result<RawEntry, TarError> {
    let header = Header::from_byte_slice(block);
    let sum: u32 = block[..148]
        .iter()
        .chain(&block[156..])
        .map(|&b| u32::from(b))
        .sum::<u32>()
        + 8 * u32::from(b' ');
    let recorded = header
        .cksum()
        .map_err(|e| TarError::Malformed(format!("unreadable header checksum: {e}")))?;
    if sum != recorded {
        return Err(TarError::Malformed("tar header checksum mismatch".into()));
    }
    let size = header
        .entry_size()
        .map_err(|e| TarError::Malformed(format!("unreadable entry size: {e}")))?;
    Ok(RawEntry {
        path: header.path_bytes().into_owned(),
        size,
        kind: header.entry_type(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_round_trip_through_the_parser() {
        for path in [
            "short.rpm".to_string(),
            format!("{}/x.whl", "d".repeat(150)),
        ] {
            let bytes = file_headers(&path, 1234, 0);
            assert_eq!(bytes.len() % BLOCK, 0);
            let Ok(Next::Entry(entry)) = next_entry(&mut bytes.as_slice()) else {
                panic!("no entry for {path}");
            };
            assert_eq!(entry.path, path.as_bytes());
            assert_eq!(entry.size, 1234);
            assert!(entry.forbidden_kind().is_none());
        }
    }

    #[test]
    fn corrupted_header_is_refused() {
        let mut bytes = file_headers("a", 1, 0);
        bytes[3] ^= 1;
        assert!(matches!(
            next_entry(&mut bytes.as_slice()),
            Err(TarError::Malformed(_))
        ));
    }
}
