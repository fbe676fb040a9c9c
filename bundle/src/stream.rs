//! The decompressed tar stream of one bundle: opening it (a plain file, the bundle inside a
//! `.run`, or a checked volume set) in the chosen [`IoMode`], reading `manifest.json` and
//! `manifest.json.sig` from its start, checking the signature, then handing out member headers
//! and data to the payload pass, and checking the end of the archive, of the zstd frame and of
//! the file.

use std::io::{self, BufRead, Read};
use std::path::{Path, PathBuf};

use crate::error::BundleError;
use crate::io::IoMode;
use crate::io::ahead::AheadReader;
use crate::manifest::{BundleManifest, MANIFEST_NAME, NEWEST_FORMAT, SIGNATURE_NAME};
use crate::paths::check_manifest;
use crate::progress::Reporter;
use crate::sign::{VerifyingKey, verify_manifest};
use crate::tarfmt::{self, Next, RawEntry, TarError, padding};
use crate::volume::{VolumePosition, VolumeReader};

/// Largest `manifest.json` accepted (a full Rocky mirror plus wheels needs a few MB).
pub const MAX_MANIFEST_BYTES: u64 = 256 << 20;
/// Largest `manifest.json.sig` accepted.
const MAX_SIGNATURE_BYTES: u64 = 4096;

/// The first entries of a bundle.
#[derive(Debug, Clone)]
pub struct ManifestInfo {
    pub manifest: BundleManifest,
    /// The exact bytes of `manifest.json` (what the signature covers).
    pub raw: Vec<u8>,
    /// The content of `manifest.json.sig`, when present.
    pub signature: Option<Vec<u8>>,
}

/// Parses manifest bytes: `format` first (refusing newer formats with the installer version
/// they need), then the full schema, then the file-list rules.
pub fn parse_manifest(bundle: &Path, raw: &[u8]) -> Result<BundleManifest, BundleError> {
    let bad = |reason: String| BundleError::Manifest {
        bundle: bundle.to_path_buf(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(raw).map_err(|e| bad(format!("not valid JSON: {e}")))?;
    let format = value
        .get("format")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| bad("no numeric `format` field; this is not a bundle manifest".into()))?;
    if format > u64::from(NEWEST_FORMAT) {
        return Err(BundleError::UnsupportedFormat {
            bundle: bundle.to_path_buf(),
            found: format,
            needed: value
                .get("min_installer_version")
                .and_then(serde_json::Value::as_str)
                .map(str::to_string),
            ours: env!("CARGO_PKG_VERSION"),
            supported: NEWEST_FORMAT,
        });
    }
    if format == 0 {
        return Err(bad("format 0 does not exist".into()));
    }
    let manifest: BundleManifest = serde_json::from_value(value)
        .map_err(|e| bad(format!("does not match the format {format} schema: {e}")))?;
    check_manifest(&manifest).map_err(bad)?;
    Ok(manifest)
}

/// Opens the bundle and, when a key is given, requires a valid signature; with `digest`, the
/// bundle file itself is hashed as it is read.
pub(crate) fn open_checked(
    bundle: &Path,
    key: Option<&VerifyingKey>,
    digest: bool,
    io: IoMode,
) -> Result<(BundleStream, ManifestInfo), BundleError> {
    let (stream, info) = BundleStream::open(bundle, false, digest, io)?;
    if let Some(key) = key {
        let signature = info
            .signature
            .as_deref()
            .ok_or_else(|| BundleError::Signature {
                bundle: bundle.to_path_buf(),
                reason: "a key was given but the bundle is not signed (no manifest.json.sig)"
                    .into(),
            })?;
        verify_manifest(key, &info.raw, signature).map_err(|reason| BundleError::Signature {
            bundle: bundle.to_path_buf(),
            reason,
        })?;
    }
    Ok((stream, info))
}

type Decoder = zstd::stream::read::Decoder<'static, AheadReader>;

/// The decompressed tar stream of one bundle, positioned after the manifest and signature.
pub(crate) struct BundleStream {
    bundle: PathBuf,
    decoder: Decoder,
    pending: Option<Next>,
    /// For a volume set: which volume the reading has reached, and the last one reported.
    volumes: Option<(VolumePosition, usize)>,
}

impl BundleStream {
    /// Opens `bundle` and reads its manifest (and signature); with `digest`, every byte read
    /// from the file is hashed for [`BundleStream::finish`].
    pub(crate) fn open(
        bundle: &Path,
        lenient_tail: bool,
        digest: bool,
        io: IoMode,
    ) -> Result<(Self, ManifestInfo), BundleError> {
        let mut volumes = None;
        let source = match crate::volume::open_set(bundle)? {
            Some(set) => {
                let reader = VolumeReader::new(set);
                volumes = Some((reader.position(), 0));
                AheadReader::open_stream(reader, digest)
            }
            None => {
                let mut file =
                    std::fs::File::open(bundle).map_err(|e| BundleError::io(bundle, e))?;
                let region = crate::run::locate(bundle, &mut file)?;
                drop(file);
                let span = (region.offset, region.len);
                AheadReader::open(bundle, digest, span, io)
                    .map_err(|e| BundleError::io(bundle, e))?
            }
        };
        let decoder = zstd::stream::read::Decoder::with_buffer(source)
            .map(|d| d.single_frame())
            .map_err(|e| BundleError::io(bundle, e))?;
        let mut stream = BundleStream {
            bundle: bundle.to_path_buf(),
            decoder,
            pending: None,
            volumes,
        };
        let not_bundle = |reason: String| BundleError::Manifest {
            bundle: bundle.to_path_buf(),
            reason,
        };
        let first = match stream.next_entry(MANIFEST_NAME)? {
            Next::Entry(e) => e,
            Next::End => return Err(not_bundle("the archive is empty".into())),
        };
        if first.path != MANIFEST_NAME.as_bytes() || first.forbidden_kind().is_some() {
            return Err(not_bundle(format!(
                "the first entry is {:?}, not the regular file manifest.json; is this a bundle?",
                first.display_path()
            )));
        }
        if first.size > MAX_MANIFEST_BYTES {
            return Err(not_bundle(format!(
                "{} bytes, more than the {MAX_MANIFEST_BYTES} accepted",
                first.size
            )));
        }
        let raw = stream.read_small(&first, MANIFEST_NAME)?;
        let manifest = parse_manifest(bundle, &raw)?;

        let second = match stream.next_entry(SIGNATURE_NAME) {
            Ok(next) => Some(next),
            Err(_) if lenient_tail => None,
            Err(e) => return Err(e),
        };
        let mut signature = None;
        if let Some(Next::Entry(second)) = second {
            if second.path == SIGNATURE_NAME.as_bytes() && second.forbidden_kind().is_none() {
                if second.size > MAX_SIGNATURE_BYTES {
                    return Err(BundleError::Signature {
                        bundle: bundle.to_path_buf(),
                        reason: format!("manifest.json.sig is {} bytes", second.size),
                    });
                }
                match stream.read_small(&second, SIGNATURE_NAME) {
                    Ok(sig) => signature = Some(sig),
                    Err(_) if lenient_tail => {}
                    Err(e) => return Err(e),
                }
            } else {
                stream.pending = Some(Next::Entry(second));
            }
        } else {
            stream.pending = second;
        }
        Ok((
            stream,
            ManifestInfo {
                manifest,
                raw,
                signature,
            },
        ))
    }

    pub(crate) fn bundle(&self) -> &Path {
        &self.bundle
    }

    /// Tells `reporter` when the reading has moved on to another volume of a split bundle:
    /// each volume once, in order, even when the read-ahead passed a small one between two
    /// calls.
    pub(crate) fn report_volume(&mut self, reporter: &dyn Reporter) {
        if let Some((position, reported)) = &mut self.volumes
            && let Some((index, count, _)) = position.current()
        {
            while *reported < index {
                *reported += 1;
                reporter.volume(*reported, count, position.path(*reported));
            }
        }
    }

    /// The next member header; `context` names what was expected there, for errors.
    pub(crate) fn next_entry(&mut self, context: &str) -> Result<Next, BundleError> {
        if let Some(next) = self.pending.take() {
            return Ok(next);
        }
        tarfmt::next_entry(&mut self.decoder).map_err(|e| {
            self.stream_error(
                e,
                &format!("reading the header of the entry expected to be {context:?}"),
            )
        })
    }

    /// Reads exactly `buf.len()` data bytes of the current entry.
    pub(crate) fn read_data(&mut self, buf: &mut [u8], entry: &str) -> Result<(), BundleError> {
        tarfmt::read_exact_or_truncated(&mut self.decoder, buf)
            .map_err(|e| self.stream_error(e, &format!("reading the data of entry {entry:?}")))
    }

    /// Skips the zero padding after an entry of `size` bytes.
    pub(crate) fn skip_padding(&mut self, size: u64, entry: &str) -> Result<(), BundleError> {
        let mut pad = [0u8; tarfmt::BLOCK];
        let pad = &mut pad[..padding(size)];
        self.read_data(pad, entry)
    }

    fn read_small(&mut self, entry: &RawEntry, name: &str) -> Result<Vec<u8>, BundleError> {
        let mut data = vec![0u8; entry.size as usize];
        self.read_data(&mut data, name)?;
        self.skip_padding(entry.size, name)?;
        Ok(data)
    }

    /// After the first end-of-archive block: only zero blocks (at least one more) up to the end
    /// of the zstd frame, and the file ends with the frame. Returns the file's hex sha256 and
    /// size when the stream was opened to hash it.
    pub(crate) fn finish(mut self) -> Result<Option<(String, u64)>, BundleError> {
        let mut zeros = 0u64;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match self.decoder.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(
                        self.stream_error(TarError::Read(e), "reading the end of the archive")
                    );
                }
            };
            if buf[..n].iter().any(|&b| b != 0) {
                return Err(self.corrupt("data after the end-of-archive marker".into()));
            }
            zeros += n as u64;
        }
        if zeros < tarfmt::BLOCK as u64 || !zeros.is_multiple_of(tarfmt::BLOCK as u64) {
            return Err(
                self.corrupt("the archive does not end with two zero blocks (truncated?)".into())
            );
        }
        let bundle = self.bundle.clone();
        let mut rest = self.decoder.finish();
        match rest.fill_buf() {
            Ok([]) => Ok(rest.digest()),
            Ok(_) => Err(BundleError::CorruptStream {
                bundle,
                reason: "garbage after the end of the zstd frame".into(),
            }),
            Err(e) => Err(BundleError::io(&bundle, e)),
        }
    }

    fn corrupt(&self, reason: String) -> BundleError {
        BundleError::CorruptStream {
            bundle: self.bundle.clone(),
            reason,
        }
    }

    fn stream_error(&self, e: TarError, doing: &str) -> BundleError {
        match e {
            TarError::Truncated => {
                self.corrupt(format!("truncated: the archive ends while {doing}"))
            }
            TarError::Malformed(why) => self.corrupt(format!("{why}, while {doing}")),
            TarError::Read(e) => match &self.decoder.get_ref().failed {
                Some(io_error) => BundleError::Io {
                    path: self.bundle.clone(),
                    source: io::Error::other(io_error.clone()),
                },
                None if e.kind() == io::ErrorKind::UnexpectedEof => {
                    self.corrupt(format!("truncated zstd stream ({e}), while {doing}"))
                }
                None => self.corrupt(format!("corrupt zstd stream ({e}), while {doing}")),
            },
        }
    }
}
