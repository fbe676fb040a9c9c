//! Split volumes: one bundle stream cut into `NAME.001`, `NAME.002`, … so that it fits media
//! with a per-file limit (FAT32's 4 GiB, a DVD). The writer ([`VolumeWriter`]) rolls over to the
//! next volume while packing, into temp files that are renamed into place only when the whole
//! set is written. Each volume ends with a fixed-size [`VolumeTrailer`] naming its set, its
//! place in the set and in the stream, so that a reader ([`open_set`]) checks the whole set from
//! the volumes' last bytes before it reads anything: a missing, reordered, truncated or foreign
//! volume is named before any payload is looked at.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use crate::error::BundleError;
use crate::files::{split_output, temp_beside};
use crate::io::IoMode;
use crate::io::sink::Output;
use crate::io::writer::{DirectBuffer, DirectWriter};

/// Bytes of the trailer at the end of every volume.
pub const TRAILER_LEN: u64 = 128;
/// Smallest volume size accepted: a trailer must leave room for a useful amount of stream.
pub const MIN_VOLUME_SIZE: u64 = 64 * 1024;
/// More volumes than this is a mistake in the size, not a plan.
const MAX_VOLUMES: u32 = 99_999;
const MAGIC: &str = "#koi-volume";

/// The last [`TRAILER_LEN`] bytes of a volume, one line of ASCII:
/// `#koi-volume 1 <set> <index> <offset> <length> <last|more>`, padded with spaces before the
/// final newline. `set` is the first 32 hex digits of sha256 over the exact `manifest.json`
/// bytes, so two builds of the same payload at different times are different sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeTrailer {
    pub set: String,
    /// 1 for `NAME.001`.
    pub index: u32,
    /// Where this volume's bytes start in the bundle stream.
    pub offset: u64,
    /// Bytes of bundle stream in this volume (the file is this plus the trailer).
    pub len: u64,
    /// No volume follows.
    pub last: bool,
}

impl VolumeTrailer {
    pub fn encode(&self) -> Vec<u8> {
        let more = if self.last { "last" } else { "more" };
        let line = format!(
            "{MAGIC} 1 {} {} {} {} {more}",
            self.set, self.index, self.offset, self.len
        );
        let mut bytes = line.into_bytes();
        bytes.resize(TRAILER_LEN as usize - 1, b' ');
        bytes.push(b'\n');
        bytes
    }

    pub fn parse(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != TRAILER_LEN as usize || bytes.last() != Some(&b'\n') {
            return None;
        }
        let text = std::str::from_utf8(bytes).ok()?;
        let fields: Vec<&str> = text.split_ascii_whitespace().collect();
        let [MAGIC, "1", set, index, offset, len, more] = fields[..] else {
            return None;
        };
        let last = match more {
            "last" => true,
            "more" => false,
            _ => return None,
        };
        Some(VolumeTrailer {
            set: set.to_string(),
            index: index.parse().ok()?,
            offset: offset.parse().ok()?,
            len: len.parse().ok()?,
            last,
        })
    }
}

/// The set id for a bundle whose `manifest.json` is `raw`.
pub fn set_id(raw_manifest: &[u8]) -> String {
    hex::encode(&Sha256::digest(raw_manifest)[..16])
}

/// `NAME.NNN` for volume `index` of the set written as `base` (`NAME`).
pub fn volume_path(base: &Path, index: u32) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(format!(".{index:03}"));
    PathBuf::from(name)
}

/// `NAME` when `path` is named like a volume (`NAME.001`, `NAME.017`).
fn base_of(path: &Path) -> Option<PathBuf> {
    let name = path.file_name()?.to_str()?;
    let (stem, digits) = name.rsplit_once('.')?;
    let volume = digits.len() >= 3 && digits.bytes().all(|b| b.is_ascii_digit());
    (volume && !stem.is_empty()).then(|| path.with_file_name(stem))
}

/// One volume written and complete, still under its temp name.
pub(crate) struct WrittenVolume {
    pub(crate) tmp: tempfile::NamedTempFile,
    pub(crate) path: PathBuf,
    pub(crate) sha256: String,
}

/// Writes the bundle stream into volumes of at most `limit` bytes each, trailer included.
pub(crate) struct VolumeWriter {
    base: PathBuf,
    limit: u64,
    set: String,
    /// The volume being written, its hash and the bytes of stream it holds so far.
    current: Option<(tempfile::NamedTempFile, DirectWriter, Sha256, u64)>,
    spare: Option<DirectBuffer>,
    done: Vec<WrittenVolume>,
    /// Stream bytes in the volumes already closed.
    offset: u64,
    io: IoMode,
}

impl VolumeWriter {
    pub(crate) fn new(base: PathBuf, limit: u64, set: String, io: IoMode) -> Self {
        VolumeWriter {
            base,
            limit,
            set,
            current: None,
            spare: None,
            done: Vec::new(),
            offset: 0,
            io,
        }
    }

    fn open_next(&mut self) -> io::Result<()> {
        let index = self.done.len() as u32 + 1;
        if index > MAX_VOLUMES {
            return Err(io::Error::other(format!(
                "more than {MAX_VOLUMES} volumes; choose a larger --split size"
            )));
        }
        let path = volume_path(&self.base, index);
        let (dir, name) = split_output(&path).map_err(io::Error::other)?;
        let tmp = temp_beside(dir, &name).map_err(io::Error::other)?;
        let file = tmp.as_file().try_clone()?;
        let buf = self.spare.take().unwrap_or_default();
        let writer = DirectWriter::with_buffer(file, buf, self.io);
        self.current = Some((tmp, writer, Sha256::new(), 0));
        Ok(())
    }

    fn close(&mut self, last: bool) -> io::Result<()> {
        let Some((tmp, writer, mut hasher, len)) = self.current.take() else {
            return Ok(());
        };
        let (mut file, buf) = writer.finish_reusing()?;
        self.spare = Some(buf);
        let index = self.done.len() as u32 + 1;
        let trailer = VolumeTrailer {
            set: self.set.clone(),
            index,
            offset: self.offset,
            len,
            last,
        }
        .encode();
        file.write_all(&trailer)?;
        file.sync_all()?;
        hasher.update(&trailer);
        self.offset += len;
        self.done.push(WrittenVolume {
            tmp,
            path: volume_path(&self.base, index),
            sha256: hex::encode(hasher.finalize()),
        });
        Ok(())
    }

    /// Closes the last volume; every volume is synced and still under its temp name.
    pub(crate) fn finish(mut self) -> io::Result<Vec<WrittenVolume>> {
        if self.current.is_none() && self.done.is_empty() {
            self.open_next()?;
        }
        self.close(true)?;
        Ok(self.done)
    }
}

impl Output for VolumeWriter {
    type Done = Vec<WrittenVolume>;
    fn finish(self) -> io::Result<Vec<WrittenVolume>> {
        VolumeWriter::finish(self)
    }
}

impl Write for VolumeWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if data.is_empty() {
            return Ok(0);
        }
        let room = self.limit - TRAILER_LEN;
        if self.current.as_ref().is_some_and(|c| c.3 == room) {
            self.close(false)?;
        }
        if self.current.is_none() {
            self.open_next()?;
        }
        let (_, writer, hasher, len) = self.current.as_mut().expect("a volume is open");
        let n = data.len().min((room - *len) as usize);
        writer.write_all(&data[..n])?;
        hasher.update(&data[..n]);
        *len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The volumes of a set, checked, in order: each path with the bytes of stream it holds.
#[derive(Debug, Clone)]
pub struct VolumeSet {
    pub volumes: Vec<(PathBuf, u64)>,
}

/// When `path` is a volume (`NAME.NNN`) or a directory, the set it belongs to, checked from
/// every volume's trailer: all present from `NAME.001` to the one marked last, in order, of one
/// set, each exactly as long as its trailer says. `None` for a plain bundle file.
pub fn open_set(path: &Path) -> Result<Option<VolumeSet>, BundleError> {
    let base = if path.is_dir() {
        find_in_dir(path)?
    } else {
        match base_of(path) {
            Some(base) => base,
            None => return Ok(None),
        }
    };
    let mut volumes = Vec::new();
    let mut set: Option<String> = None;
    let mut offset = 0u64;
    for index in 1..=MAX_VOLUMES {
        let volume = volume_path(&base, index);
        let fault = |reason: String| BundleError::Volume {
            volume: volume.clone(),
            reason,
        };
        let mut file = match File::open(&volume) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(fault(if index == 1 {
                    "missing: the first volume of the set is not there".into()
                } else {
                    format!(
                        "missing: volume {index} of the set ({} says more volumes follow)",
                        volume_path(&base, index - 1).display()
                    )
                }));
            }
            Err(e) => return Err(BundleError::io(&volume, e)),
        };
        let trailer = read_trailer(&mut file).map_err(|e| BundleError::io(&volume, e))?;
        let size = file
            .metadata()
            .map_err(|e| BundleError::io(&volume, e))?
            .len();
        let Some(trailer) = trailer else {
            return Err(fault(
                "no volume trailer at its end: truncated, or not a volume of a split bundle".into(),
            ));
        };
        let first = set.get_or_insert_with(|| trailer.set.clone());
        if trailer.set != *first {
            return Err(fault(format!(
                "belongs to another bundle (volume set {}; {} is of set {first})",
                trailer.set,
                volume_path(&base, 1).display()
            )));
        }
        if trailer.index != index {
            return Err(fault(format!(
                "holds volume {} of the set, not volume {index}: the volumes are out of order \
                 or renamed",
                trailer.index
            )));
        }
        if trailer.offset != offset || size != trailer.len + TRAILER_LEN {
            return Err(fault(format!(
                "{size} bytes holding stream bytes {}..{}, expected {} bytes from {offset}: \
                 truncated or from another build",
                trailer.offset,
                trailer.offset + trailer.len,
                trailer.len + TRAILER_LEN
            )));
        }
        offset += trailer.len;
        volumes.push((volume, trailer.len));
        if trailer.last {
            return Ok(Some(VolumeSet { volumes }));
        }
    }
    Err(BundleError::Volume {
        volume: volume_path(&base, MAX_VOLUMES),
        reason: format!("more than {MAX_VOLUMES} volumes without one marked last"),
    })
}

/// The trailer at the end of `file`, if it has one.
fn read_trailer(file: &mut File) -> io::Result<Option<VolumeTrailer>> {
    let size = file.metadata()?.len();
    if size < TRAILER_LEN {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(size - TRAILER_LEN))?;
    let mut bytes = vec![0u8; TRAILER_LEN as usize];
    file.read_exact(&mut bytes)?;
    Ok(VolumeTrailer::parse(&bytes))
}

/// The one volume set in `dir`: the `NAME` of its only `NAME.001`.
fn find_in_dir(dir: &Path) -> Result<PathBuf, BundleError> {
    let mut firsts: Vec<PathBuf> = fs_err::read_dir(dir)
        .map_err(BundleError::Fs)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "001") && p.is_file())
        .collect();
    firsts.sort();
    match firsts.as_slice() {
        [one] => Ok(one.with_extension("")),
        [] => Err(BundleError::Volume {
            volume: dir.to_path_buf(),
            reason: "no first volume (NAME.001) of a split bundle in this directory".into(),
        }),
        many => Err(BundleError::Volume {
            volume: dir.to_path_buf(),
            reason: format!(
                "{} volume sets in this directory ({}); name the first volume of one",
                many.len(),
                many.iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }),
    }
}

/// The stream of a checked set: each volume's bytes without its trailer, one after the other.
pub(crate) struct VolumeReader {
    volumes: std::vec::IntoIter<(PathBuf, u64)>,
    current: Option<(PathBuf, io::Take<File>)>,
    position: VolumePosition,
}

impl VolumeReader {
    pub(crate) fn new(set: VolumeSet) -> Self {
        let position = VolumePosition {
            opened: Arc::new(AtomicUsize::new(0)),
            paths: Arc::new(set.volumes.iter().map(|(p, _)| p.clone()).collect()),
        };
        VolumeReader {
            volumes: set.volumes.into_iter(),
            current: None,
            position,
        }
    }

    /// Where this reader is, for progress reports from another thread.
    pub(crate) fn position(&self) -> VolumePosition {
        self.position.clone()
    }
}

/// Which volume of a set its reader (on a read-ahead thread) has reached.
#[derive(Debug, Clone)]
pub(crate) struct VolumePosition {
    /// Volumes opened so far: the one being read is this one (from 1).
    opened: Arc<AtomicUsize>,
    paths: Arc<Vec<PathBuf>>,
}

impl VolumePosition {
    /// The volume being read (from 1), how many there are, and its path; None before the first.
    pub(crate) fn current(&self) -> Option<(usize, usize, &Path)> {
        let index = self.opened.load(Ordering::Relaxed);
        let path = self.paths.get(index.checked_sub(1)?)?;
        Some((index, self.paths.len(), path))
    }

    /// The path of volume `index` (from 1).
    pub(crate) fn path(&self, index: usize) -> &Path {
        &self.paths[index - 1]
    }
}

impl Read for VolumeReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.current.is_none() {
                let Some((path, len)) = self.volumes.next() else {
                    return Ok(0);
                };
                let file = File::open(&path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
                self.current = Some((path, file.take(len)));
                self.position.opened.fetch_add(1, Ordering::Relaxed);
            }
            let (path, reader) = self.current.as_mut().expect("a volume is open");
            match reader.read(buf) {
                Ok(0) if !buf.is_empty() => {
                    if reader.limit() > 0 {
                        return Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            format!("{}: shorter than when the set was checked", path.display()),
                        ));
                    }
                    self.current = None;
                }
                Ok(n) => return Ok(n),
                Err(e) => {
                    return Err(io::Error::new(e.kind(), format!("{}: {e}", path.display())));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailer_reads_back_and_is_fixed_size() {
        let t = VolumeTrailer {
            set: "0123456789abcdef0123456789abcdef".into(),
            index: 12,
            offset: 4_700_000_000,
            len: 4_699_999_872,
            last: false,
        };
        let bytes = t.encode();
        assert_eq!(bytes.len() as u64, TRAILER_LEN);
        assert_eq!(VolumeTrailer::parse(&bytes), Some(t));
        assert_eq!(VolumeTrailer::parse(&bytes[1..]), None);
    }

    #[test]
    fn volumes_roll_over_at_the_limit_and_read_back_as_one_stream() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("b.tar.zst");
        let limit = MIN_VOLUME_SIZE;
        let data: Vec<u8> = (0..3 * limit as usize).map(|i| (i % 251) as u8).collect();
        let mut w = VolumeWriter::new(base.clone(), limit, "ab".repeat(16), IoMode::Direct);
        for chunk in data.chunks(10_000) {
            w.write_all(chunk).unwrap();
        }
        let done = w.finish().unwrap();
        assert_eq!(done.len(), 4);
        for v in done {
            v.tmp.persist(&v.path).unwrap();
            assert!(std::fs::metadata(&v.path).unwrap().len() <= limit);
        }
        let set = open_set(&volume_path(&base, 1)).unwrap().unwrap();
        let mut back = Vec::new();
        VolumeReader::new(set).read_to_end(&mut back).unwrap();
        assert_eq!(back, data);
        assert!(open_set(dir.path()).unwrap().is_some());

        std::fs::remove_file(volume_path(&base, 3)).unwrap();
        let err = open_set(&volume_path(&base, 1)).unwrap_err().to_string();
        assert!(
            err.contains("b.tar.zst.003") && err.contains("missing"),
            "{err}"
        );
    }
}
