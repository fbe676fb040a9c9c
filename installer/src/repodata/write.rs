//! Writing metadata files: each stream is hashed twice on the way to disk (open and compressed
//! checksums, so nothing is read back), named by its checksum, and listed in repomd.xml.
//!
//! primary, filelists and other are written on three threads at once; with gzip the compressor is
//! the bottleneck, so this is where the time goes and where the concurrency pays.

use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use rpmrepo_metadata::{FilelistsXml, OtherXml, Package, PrimaryXml, utils::create_xml_writer};
use sha2::{Digest, Sha256};

use super::{Compression, Options, RepodataError};

/// One `<data>` record of repomd.xml, its file already in the staging directory.
#[derive(Clone, Debug)]
pub(crate) struct Record {
    pub kind: String,
    /// File name inside `repodata/` (content-addressed: `<checksum>-<name>`).
    pub file_name: String,
    pub checksum: String,
    pub size: u64,
    /// Checksum and size of the decompressed content (compressed records only).
    pub open: Option<(String, u64)>,
}

/// A writer that hashes and counts what passes through it.
pub(crate) struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, hex::encode(self.hasher.finalize()), self.count)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type FileSink = HashingWriter<BufWriter<fs_err::File>>;

/// The gzip level of every compressed record.
const GZIP_LEVEL: u32 = 4;

enum Encoder {
    Gzip(flate2::write::GzEncoder<FileSink>),
    Zstd(zstd::Encoder<'static, FileSink>),
}

impl Write for Encoder {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Encoder::Gzip(e) => e.write(buf),
            Encoder::Zstd(e) => e.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Encoder::Gzip(e) => e.flush(),
            Encoder::Zstd(e) => e.flush(),
        }
    }
}

impl Encoder {
    fn new(compression: Compression, sink: FileSink) -> io::Result<Encoder> {
        Ok(match compression {
            // Level 4, not zlib's default 6: on filelists, the largest record, it took a third
            // of level 6's time and came out smaller (docs/BENCHMARKS.md, issue 18, third
            // session); any level reads the same.
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                sink,
                flate2::Compression::new(GZIP_LEVEL),
            )),
            Compression::Zstd => Encoder::Zstd(zstd::Encoder::new(sink, 3)?),
        })
    }
    fn finish(self) -> io::Result<FileSink> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Zstd(e) => e.finish(),
        }
    }
}

/// Write `name` (e.g. `primary.xml`) compressed into `dir` by calling `fill` with a buffered
/// writer of the open content; returns the record with the file renamed to its checksum name.
pub(crate) fn write_compressed(
    dir: &Path,
    kind: &str,
    name: &str,
    options: &Options,
    fill: impl FnOnce(&mut (dyn Write + Send)) -> Result<(), RepodataError>,
) -> Result<Record, RepodataError> {
    let compressed_name = format!("{name}.{}", options.compression.suffix());
    let temp_path = dir.join(&compressed_name);
    let file = fs_err::File::create(&temp_path)?;
    let sink = HashingWriter::new(BufWriter::with_capacity(256 * 1024, file));
    let encoder = Encoder::new(options.compression, sink)?;
    let mut open = BufWriter::with_capacity(256 * 1024, HashingWriter::new(encoder));
    fill(&mut open)?;
    let (encoder, open_checksum, open_size) =
        open.into_inner().map_err(|e| e.into_error())?.finish();
    let (file, checksum, size) = encoder.finish()?.finish();
    let file = file.into_inner().map_err(|e| e.into_error())?;
    finish_file(&file, options)?;
    drop(file);
    let file_name = format!("{checksum}-{compressed_name}");
    fs_err::rename(&temp_path, dir.join(&file_name))?;
    Ok(Record {
        kind: kind.to_owned(),
        file_name,
        checksum,
        size,
        open: Some((open_checksum, open_size)),
    })
}

/// Write `content` as-is into `dir` as a record (used for the plain comps `group` record).
pub(crate) fn write_plain(
    dir: &Path,
    kind: &str,
    name: &str,
    content: &[u8],
    options: &Options,
) -> Result<Record, RepodataError> {
    let checksum = hex::encode(Sha256::digest(content));
    let file_name = format!("{checksum}-{name}");
    let file = fs_err::File::create(dir.join(&file_name))?;
    (&file).write_all(content)?;
    finish_file(&file, options)?;
    Ok(Record {
        kind: kind.to_owned(),
        file_name,
        checksum,
        size: content.len() as u64,
        open: None,
    })
}

/// Set the mtime to the revision (reproducible trees) and make the data durable (unless the
/// caller syncs the whole staged tree later).
fn finish_file(file: &fs_err::File, options: &Options) -> Result<(), RepodataError> {
    file.file()
        .set_modified(UNIX_EPOCH + Duration::from_secs(options.revision))?;
    options.durability.sync(file.file())?;
    Ok(())
}

fn xml_error(kind: &'static str) -> impl Fn(rpmrepo_metadata::MetadataError) -> RepodataError {
    move |e| RepodataError::Write {
        kind,
        message: e.to_string(),
    }
}

/// The packages of a repo in output order, as each of the three writers walks them: all at
/// hand (a slice), or arriving while the bundle unpacks (`feed::PackageFeed`).
pub(crate) trait Ordered: Sync {
    fn count(&self) -> usize;
    /// Calls `each` with every package in order, waiting for those not there yet.
    fn for_each(
        &self,
        each: &mut dyn FnMut(&Package) -> Result<(), RepodataError>,
    ) -> Result<(), RepodataError>;
}

impl Ordered for [Package] {
    fn count(&self) -> usize {
        self.len()
    }
    fn for_each(
        &self,
        each: &mut dyn FnMut(&Package) -> Result<(), RepodataError>,
    ) -> Result<(), RepodataError> {
        self.iter().try_for_each(each)
    }
}

/// primary, filelists and other for `packages` (in output order), written concurrently.
pub(crate) fn write_package_records<P: Ordered + ?Sized>(
    dir: &Path,
    packages: &P,
    options: &Options,
) -> Result<Vec<Record>, RepodataError> {
    std::thread::scope(|scope| {
        let filelists = scope.spawn(|| {
            write_compressed(dir, "filelists", "filelists.xml", options, |out| {
                write_filelists_xml(out, packages)
            })
        });
        let other = scope.spawn(|| {
            write_compressed(dir, "other", "other.xml", options, |out| {
                write_other_xml(out, packages)
            })
        });
        let primary = write_compressed(dir, "primary", "primary.xml", options, |out| {
            write_primary_xml(out, packages)
        });
        let join = |handle: std::thread::ScopedJoinHandle<'_, Result<Record, RepodataError>>| {
            handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        };
        let (filelists, other) = (join(filelists), join(other));
        Ok(vec![primary?, filelists?, other?])
    })
}

/// The open (uncompressed) content of primary.xml for `packages`, in their order.
pub(crate) fn write_primary_xml<P: Ordered + ?Sized>(
    out: &mut (dyn Write + Send),
    packages: &P,
) -> Result<(), RepodataError> {
    let mut writer = PrimaryXml::new_writer(create_xml_writer(out));
    writer
        .write_header(packages.count())
        .map_err(xml_error("primary"))?;
    packages
        .for_each(&mut |package| writer.write_package(package).map_err(xml_error("primary")))?;
    writer.finish().map_err(xml_error("primary"))
}

/// The open content of filelists.xml for `packages`, in their order.
pub(crate) fn write_filelists_xml<P: Ordered + ?Sized>(
    out: &mut (dyn Write + Send),
    packages: &P,
) -> Result<(), RepodataError> {
    let mut writer = FilelistsXml::new_writer(create_xml_writer(out));
    writer
        .write_header(packages.count())
        .map_err(xml_error("filelists"))?;
    packages.for_each(&mut |package| {
        writer
            .write_package(package)
            .map_err(xml_error("filelists"))
    })?;
    writer.finish().map_err(xml_error("filelists"))
}

/// The open content of other.xml for `packages`, in their order.
pub(crate) fn write_other_xml<P: Ordered + ?Sized>(
    out: &mut (dyn Write + Send),
    packages: &P,
) -> Result<(), RepodataError> {
    let mut writer = OtherXml::new_writer(create_xml_writer(out));
    writer
        .write_header(packages.count())
        .map_err(xml_error("other"))?;
    packages.for_each(&mut |package| writer.write_package(package).map_err(xml_error("other")))?;
    writer.finish().map_err(xml_error("other"))
}

/// createrepo_c's record order: primary, filelists, other, then by type name.
pub(crate) fn sort_records(records: &mut [Record]) {
    fn rank(kind: &str) -> u8 {
        match kind {
            "primary" => 0,
            "filelists" => 1,
            "other" => 2,
            _ => 3,
        }
    }
    records.sort_by(|a, b| {
        rank(&a.kind)
            .cmp(&rank(&b.kind))
            .then_with(|| a.kind.cmp(&b.kind))
            .then_with(|| a.file_name.cmp(&b.file_name))
    });
}

/// Write `repomd.xml` into `dir` (not renamed into place here; see `install`).
pub(crate) fn write_repomd(
    dir: &Path,
    records: &[Record],
    options: &Options,
) -> Result<(), RepodataError> {
    let mut xml = String::with_capacity(2048);
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(
        "<repomd xmlns=\"http://linux.duke.edu/metadata/repo\" \
         xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\">\n",
    );
    xml.push_str(&format!("  <revision>{}</revision>\n", options.revision));
    for record in records {
        xml.push_str(&format!("  <data type=\"{}\">\n", record.kind));
        xml.push_str(&format!(
            "    <checksum type=\"sha256\">{}</checksum>\n",
            record.checksum
        ));
        if let Some((open_checksum, _)) = &record.open {
            xml.push_str(&format!(
                "    <open-checksum type=\"sha256\">{open_checksum}</open-checksum>\n"
            ));
        }
        xml.push_str(&format!(
            "    <location href=\"repodata/{}\"/>\n",
            record.file_name
        ));
        xml.push_str(&format!(
            "    <timestamp>{}</timestamp>\n",
            options.revision
        ));
        xml.push_str(&format!("    <size>{}</size>\n", record.size));
        if let Some((_, open_size)) = &record.open {
            xml.push_str(&format!("    <open-size>{open_size}</open-size>\n"));
        }
        xml.push_str("  </data>\n");
    }
    xml.push_str("</repomd>\n");
    let file = fs_err::File::create(dir.join("repomd.xml"))?;
    (&file).write_all(xml.as_bytes())?;
    finish_file(&file, options)?;
    Ok(())
}
