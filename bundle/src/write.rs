//! Writing a bundle: `manifest.json`, the optional `manifest.json.sig`, then every payload file
//! in manifest order, as one tar stream in one multi-threaded zstd frame.
//!
//! The manifest is written first, so the size and sha256 of every file must be known before
//! packing starts (the bundler knows them from upstream metadata before it downloads). They are
//! checked again while the bytes stream into the archive: a source file that differs aborts the
//! write and no bundle is left behind. Files are copied in fixed-size chunks, never whole.
//!
//! Sources are either all there ([`write_bundle`]) or handed over one by one, in manifest
//! order, as they come into existence ([`write_bundle_streaming`]): the bundler packs each
//! file as soon as it is downloaded and verified, so packing overlaps the download.
//!
//! Stages on their own threads plus zstd's workers share the work: read-ahead threads
//! (`io/readahead.rs`) load small source files, a reader (`io/source.rs`) hashes and checks
//! every source, the calling thread writes the tar stream into the encoder, and the output stage
//! (`io/sink.rs`) hashes the compressed bytes for `<bundle>.sha256` on one thread and writes
//! them on another, in the [`IoMode`] of [`WriteOptions::io`]; bounded channels of reused
//! buffers connect them, so neither sha256 pass stalls the compressor and memory stays bounded.
//!
//! Output is deterministic: entries in manifest order, owner 0:0, no user or group names, mode
//! 0644, mtime = the manifest's `created`, and the same zstd parameters, so two builds from the
//! same manifest and files are byte-identical.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use sha2::{Digest, Sha256};

use crate::error::BundleError;
pub use crate::files::{hash_file, write_atomic};
use crate::files::{split_output, sync_dir, temp_beside};
use crate::io::readahead::read_ahead;
use crate::io::sink::{Output, OutputSink};
pub use crate::io::source::Input;
use crate::io::source::{Chunk, read_sources};
use crate::io::{BUFFERS, CHUNK, IoMode};
use crate::manifest::{BundleManifest, MANIFEST_NAME, SIGNATURE_NAME};
pub use crate::manifest::{finalize, state_id};
use crate::paths::check_manifest;
use crate::progress::Reporter;
use crate::run::{self, RunInstaller};
use crate::sign::{SigningKey, sign_manifest};
use crate::tarfmt::{file_headers, padding};
use crate::volume::VolumeWriter;

/// Default zstd level. RPMs and wheels are already compressed, so higher levels cost time and
/// save almost nothing; see docs/BENCHMARKS.md ("Bundle format") for the measurement.
pub const DEFAULT_LEVEL: i32 = 1;

#[derive(Debug, Clone)]
pub struct WriteOptions {
    /// zstd compression level (negative levels are the fast ones).
    pub level: i32,
    /// zstd worker threads; at least 1 (the output does not depend on the number).
    pub threads: u32,
    /// Sign the manifest with this key and add `manifest.json.sig`.
    pub signing_key: Option<SigningKey>,
    /// Write a self-extracting `.run` around the bundle stream, carrying this installer.
    pub self_extracting: Option<RunInstaller>,
    /// Split the output into volumes `<output>.001`, … of at most this many bytes each.
    pub split: Option<u64>,
    /// How the sources are read and the bundle written (the binaries' `--io`).
    pub io: IoMode,
}

impl Default for WriteOptions {
    fn default() -> Self {
        WriteOptions {
            level: DEFAULT_LEVEL,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            signing_key: None,
            self_extracting: None,
            split: None,
            io: IoMode::default(),
        }
    }
}

/// What `write_bundle` produced.
#[derive(Debug, Clone)]
pub struct WrittenBundle {
    pub path: PathBuf,
    /// The `<bundle>.sha256` file beside it (`sha256sum -c` format).
    pub sha256_path: PathBuf,
    /// sha256 of the bundle file itself.
    pub sha256: String,
    /// Size of the bundle file in bytes.
    pub size: u64,
    pub signed: bool,
    /// The bundle already at the output path was kept: it held exactly this content (the
    /// bundler's up-to-date check) and nothing was rewritten. None for a bundle just written.
    pub reused: Option<Reuse>,
    /// The volumes, in order, of a bundle written with [`WriteOptions::split`] (`path` is the
    /// first; `sha256` and `size` are then those of the stream the volumes hold together).
    /// Empty for a single file.
    pub volumes: Vec<PathBuf>,
}

/// How a kept bundle was known to be up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reuse {
    /// The file is the one recorded when it was written or last checked, unchanged since.
    Unchanged,
    /// Every byte was read and checked.
    Verified,
}

/// The exact bytes stored as `manifest.json` (and signed): pretty JSON and a final newline.
pub fn manifest_bytes(manifest: &BundleManifest) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(manifest).expect("manifest serializes");
    bytes.push(b'\n');
    bytes
}

/// Writes the bundle to `output` (via `<output>.tmp-*`, renamed on success) and
/// `<output>.sha256`. `sources[i]` is the local file holding the `i`th file of
/// [`BundleManifest::payload`] (every file of a full bundle).
pub fn write_bundle(
    output: &Path,
    manifest: &BundleManifest,
    sources: &[PathBuf],
    opts: &WriteOptions,
    reporter: &dyn Reporter,
) -> Result<WrittenBundle, BundleError> {
    check_input(manifest, Some(sources.len()))?;
    write_bundle_streaming(output, manifest, sources.iter().cloned(), opts, reporter)
}

/// [`write_bundle`] for sources that become available one by one: the writer takes the local
/// file of each manifest entry from `sources`, in manifest order, as it needs it, and the
/// iterator may block until that file exists (a channel's receiver, fed while downloading).
/// Every file is still checked against its manifest size and sha256 as it streams in.
///
/// If `sources` ends before every manifest file was written (say the caller's download failed
/// and it dropped the sender), or holds more, the write fails with
/// [`BundleError::InvalidInput`] and nothing is left at `output`. The writer takes one more
/// item after the last file to make sure there is none, so a channel's sender must be dropped
/// for the write to finish.
pub fn write_bundle_streaming<I>(
    output: &Path,
    manifest: &BundleManifest,
    sources: I,
    opts: &WriteOptions,
    reporter: &dyn Reporter,
) -> Result<WrittenBundle, BundleError>
where
    I: IntoIterator,
    I::Item: Into<Input>,
    I::IntoIter: Send,
{
    let sources = sources.into_iter().map(Into::into);
    check_input(manifest, None)?;
    if let Some(limit) = opts.split {
        return write_volumes(output, manifest, sources, opts, reporter, limit);
    }
    let (dir, name) = split_output(output)?;
    let tmp = temp_beside(dir, &name)?;
    let mut file = tmp
        .as_file()
        .try_clone()
        .map_err(|e| BundleError::io(tmp.path(), e))?;
    let tmp_path = tmp.path().to_path_buf();
    let packing = Packing::new(manifest, opts, reporter, &tmp_path);
    let io_err = |e| BundleError::io(&tmp_path, e);
    let mut hasher = Sha256::new();
    let offset = match &opts.self_extracting {
        Some(installer) => {
            let mut out = io::BufWriter::with_capacity(CHUNK, &mut file);
            let offset = run::write_prefix(&mut out, &mut hasher, installer)?;
            out.flush().map_err(io_err)?;
            offset
        }
        None => 0,
    };

    let sink = OutputSink::new(file, hasher, offset, opts.io);
    let (mut file, mut hasher, mut size) = packing.pack(sink, sources)?;
    if opts.self_extracting.is_some() {
        let end = run::trailer(offset, size - offset);
        file.write_all(&end).map_err(io_err)?;
        hasher.update(&end);
        size += end.len() as u64;
    }
    let sha256 = hex::encode(hasher.finalize());
    file.sync_all().map_err(io_err)?;
    drop(file);
    tmp.persist(output)
        .map_err(|e| BundleError::io(output, e.error))?;

    let sha256_path = sidecar_path(output);
    write_atomic(&sha256_path, format!("{sha256}  {name}\n").as_bytes())?;
    write_atomic(&manifest_sidecar_path(output), &packing.raw)?;
    sync_dir(dir)?;
    reporter.finished();
    Ok(WrittenBundle {
        path: output.to_path_buf(),
        sha256_path,
        sha256,
        size,
        signed: opts.signing_key.is_some(),
        reused: None,
        volumes: Vec::new(),
    })
}

/// [`write_bundle_streaming`] into volumes `<output>.001`, … of at most `limit` bytes, and one
/// `<output>.sha256` listing them all. Every volume stays under a temp name until the last one
/// is complete; a failed write leaves none behind.
fn write_volumes(
    output: &Path,
    manifest: &BundleManifest,
    sources: impl Iterator<Item = Input> + Send,
    opts: &WriteOptions,
    reporter: &dyn Reporter,
    limit: u64,
) -> Result<WrittenBundle, BundleError> {
    if opts.self_extracting.is_some() {
        return Err(BundleError::InvalidInput {
            reason: "a self-extracting bundle cannot be split into volumes".into(),
        });
    }
    if limit < crate::volume::MIN_VOLUME_SIZE {
        return Err(BundleError::InvalidInput {
            reason: format!(
                "volume size {limit} is below the smallest accepted, {} bytes",
                crate::volume::MIN_VOLUME_SIZE
            ),
        });
    }
    let (dir, _) = split_output(output)?;
    let packing = Packing::new(manifest, opts, reporter, output);
    let set = crate::volume::set_id(&packing.raw);
    let out = VolumeWriter::new(output.to_path_buf(), limit, set, opts.io);
    let (volumes, hasher, size) =
        packing.pack(OutputSink::start(out, Sha256::new(), 0), sources)?;
    let mut listing = String::new();
    let mut paths = Vec::with_capacity(volumes.len());
    for volume in volumes {
        let file_name = volume.path.file_name().expect("a volume has a file name");
        listing.push_str(&format!(
            "{}  {}\n",
            volume.sha256,
            file_name.to_string_lossy()
        ));
        volume
            .tmp
            .persist(&volume.path)
            .map_err(|e| BundleError::io(&volume.path, e.error))?;
        paths.push(volume.path);
    }
    // Volumes past the new last one are left from an earlier, larger set of the same name.
    for index in paths.len() as u32 + 1.. {
        let stale = crate::volume::volume_path(output, index);
        if std::fs::remove_file(&stale).is_err() {
            break;
        }
    }
    let sha256_path = sidecar_path(output);
    write_atomic(&sha256_path, listing.as_bytes())?;
    write_atomic(&manifest_sidecar_path(output), &packing.raw)?;
    sync_dir(dir)?;
    reporter.finished();
    Ok(WrittenBundle {
        path: paths[0].clone(),
        sha256_path,
        sha256: hex::encode(hasher.finalize()),
        size,
        signed: opts.signing_key.is_some(),
        reused: None,
        volumes: paths,
    })
}

/// What packing one bundle stream needs, whatever it is written into.
struct Packing<'a> {
    manifest: &'a BundleManifest,
    /// The exact `manifest.json` bytes.
    raw: Vec<u8>,
    opts: &'a WriteOptions,
    reporter: &'a dyn Reporter,
    /// The path named by a write error.
    err_path: &'a Path,
}

impl<'a> Packing<'a> {
    fn new(
        manifest: &'a BundleManifest,
        opts: &'a WriteOptions,
        reporter: &'a dyn Reporter,
        err_path: &'a Path,
    ) -> Self {
        Packing {
            manifest,
            raw: manifest_bytes(manifest),
            opts,
            reporter,
            err_path,
        }
    }

    /// Writes the tar stream of the manifest, signature and every source through zstd into
    /// `sink`; returns what the sink wrote, the sha256 state and the size of its output.
    fn pack<O: Output>(
        &self,
        sink: OutputSink<O>,
        sources: impl Iterator<Item = Input> + Send,
    ) -> Result<(O::Done, Sha256, u64), BundleError> {
        let (manifest, opts) = (self.manifest, self.opts);
        // Every entry carries the manifest's creation time, so two builds are byte-identical.
        let mtime = manifest.created.unix_timestamp().max(0) as u64;
        let payload = manifest.payload_totals();
        self.reporter.started("pack", payload.files, payload.bytes);
        let io_err = |e| BundleError::io(self.err_path, e);
        // Three stages on their own threads, so that neither sha256 pass waits for the
        // compressor or the other: a reader reads and hashes source files ahead, this thread
        // writes the tar stream into zstd (whose workers compress), and an output thread writes
        // the compressed bytes and hashes them. Buffers circulate through bounded channels, so
        // memory stays at a few chunks per stage whatever the file sizes.
        std::thread::scope(|scope| -> Result<_, BundleError> {
            let (data_tx, data_rx) = mpsc::sync_channel::<Chunk>(BUFFERS);
            let (free_tx, free_rx) = mpsc::sync_channel::<Vec<u8>>(BUFFERS);
            for _ in 0..BUFFERS {
                free_tx.send(vec![0u8; CHUNK]).expect("receiver is alive");
            }
            let sources = read_ahead(scope, sources, opts.io);
            scope.spawn(move || read_sources(manifest, sources, &free_rx, &data_tx, opts.io));

            let mut encoder = zstd::stream::write::Encoder::new(sink, opts.level)
                .and_then(|mut e| {
                    e.multithread(opts.threads.max(1))?;
                    e.include_checksum(true)?;
                    Ok(e)
                })
                .map_err(io_err)?;
            write_memory_entry(&mut encoder, MANIFEST_NAME, &self.raw, mtime).map_err(io_err)?;
            if let Some(key) = &opts.signing_key {
                let sig = sign_manifest(key, &self.raw);
                write_memory_entry(&mut encoder, SIGNATURE_NAME, &sig, mtime).map_err(io_err)?;
            }
            for entry in manifest.payload() {
                encoder
                    .write_all(&file_headers(&entry.path, entry.size, mtime))
                    .map_err(io_err)?;
                loop {
                    // A closed channel means the reader returned early, which it only does
                    // after sending its error; so Err here cannot happen before it was seen.
                    match data_rx.recv().expect("reader reports before it stops") {
                        Chunk::Data(buf, n) => {
                            encoder.write_all(&buf[..n]).map_err(io_err)?;
                            self.reporter.advanced(0, n as u64);
                            // The reader may be gone after an error; the buffer is then dropped.
                            let _ = free_tx.send(buf);
                        }
                        Chunk::Whole(data) => {
                            encoder.write_all(&data).map_err(io_err)?;
                            self.reporter.advanced(0, data.len() as u64);
                            break;
                        }
                        Chunk::EndOfFile => break,
                        Chunk::Failed(e) => return Err(e),
                        Chunk::Done => {
                            unreachable!("the reader sends Done only after the last file")
                        }
                    }
                }
                encoder
                    .write_all(&[0u8; 512][..padding(entry.size)])
                    .map_err(io_err)?;
                self.reporter.advanced(1, 0);
            }
            match data_rx.recv().expect("reader reports before it stops") {
                Chunk::Done => {}
                Chunk::Failed(e) => return Err(e),
                Chunk::Data(..) | Chunk::Whole(_) | Chunk::EndOfFile => {
                    unreachable!("the reader sent every file")
                }
            }
            encoder.write_all(&[0u8; 1024]).map_err(io_err)?;
            let sink = encoder.finish().map_err(io_err)?;
            sink.finish().map_err(io_err)
            // On an early return, dropping data_rx and free_tx stops the reader at its next
            // send or receive, and dropping the sink stops the output thread; the scope joins
            // both.
        })
    }
}

/// `<bundle>.sha256`.
pub fn sidecar_path(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".sha256");
    PathBuf::from(name)
}

/// `<bundle>.manifest.json`: the exact `manifest.json` bytes beside every bundle written, so
/// that a later differential build (`bundler build --since`) needs only this small file, not
/// the bundle.
pub fn manifest_sidecar_path(bundle: &Path) -> PathBuf {
    let mut name = bundle.as_os_str().to_owned();
    name.push(".manifest.json");
    PathBuf::from(name)
}

/// Checks the manifest, and the number of sources when it is known up front.
fn check_input(manifest: &BundleManifest, sources: Option<usize>) -> Result<(), BundleError> {
    let invalid = |reason: String| BundleError::InvalidInput { reason };
    if manifest.format != manifest.required_format() {
        return Err(invalid(format!(
            "format is {}, this manifest is written as format {} (call finalize())",
            manifest.format,
            manifest.required_format()
        )));
    }
    let carried = manifest.payload_totals().files as usize;
    if let Some(n) = sources.filter(|&n| n != carried) {
        return Err(invalid(format!(
            "{n} source paths for {carried} files the bundle carries"
        )));
    }
    check_manifest(manifest)
        .map_err(|why| invalid(format!("{why} (call finalize() after filling files)")))?;
    Ok(())
}

fn write_memory_entry(w: &mut impl Write, name: &str, data: &[u8], mtime: u64) -> io::Result<()> {
    w.write_all(&file_headers(name, data.len() as u64, mtime))?;
    w.write_all(data)?;
    w.write_all(&[0u8; 512][..padding(data.len() as u64)])
}
