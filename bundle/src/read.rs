//! Reading a bundle. [`read_manifest`] looks at the first entries only; [`verify`] and
//! [`extract`] make one streaming pass over the whole archive and hold every entry to the
//! manifest: present, in manifest order, a regular file with a safe path, exactly the recorded
//! size (an oversize entry is refused from its header, before its data is read) and sha256,
//! nothing missing, extra or duplicated, then the end-of-archive blocks, the end of the zstd
//! frame and the end of the file. With a key, the signature over the exact manifest bytes must
//! check out before any payload is looked at. A split bundle (`NAME.001`, or the directory
//! holding its volumes) is read as the one stream its volumes hold, after the set is checked.
//!
//! The payload pass decompresses on the calling thread and hands fixed-size chunks to a few
//! worker threads that hash (and, for extraction, write) whole files, so hashing runs on every
//! core while memory stays bounded by a small buffer pool. [`verify_detailed`] and
//! [`extract_observed`] read in the [`IoMode`] they are given; [`verify`] and [`extract`] in
//! `IoMode::default()`.

use std::path::Path;

use crate::error::BundleError;
use crate::io::IoMode;
use crate::manifest::BundleManifest;
use crate::progress::Reporter;
use crate::scan::{VerifySink, scan, worker_count};
use crate::sign::VerifyingKey;
use crate::stream::{BundleStream, open_checked};

pub use crate::extract::{EntryObserver, NoObserver, OBSERVED_HEAD, extract, extract_observed};
pub use crate::stream::{MAX_MANIFEST_BYTES, ManifestInfo, parse_manifest};

/// What a successful [`verify_detailed`] established.
#[derive(Debug, Clone)]
pub struct Verified {
    pub manifest: BundleManifest,
    /// The bundle carries a signature entry.
    pub signed: bool,
    /// The signature was checked against a key (always true when a key was given).
    pub signature_checked: bool,
}

/// Reads `manifest.json` (and `manifest.json.sig`) from the start of the bundle; the payload
/// is not read or checked. Read with the cache-aware direct reader, whatever `--io`: reading the
/// start of a bundle just written past the page cache through the cache slowed the full check
/// that follows (the bundler's touched-output check; docs/BENCHMARKS.md, issue 16).
pub fn read_manifest(bundle: &Path) -> Result<ManifestInfo, BundleError> {
    let (_, info) = BundleStream::open(bundle, true, false, IoMode::Direct)?;
    Ok(info)
}

/// Checks the whole bundle without writing anything; see the module comment for what.
pub fn verify(
    bundle: &Path,
    key: Option<&VerifyingKey>,
    reporter: &dyn Reporter,
) -> Result<BundleManifest, BundleError> {
    verify_detailed(bundle, key, IoMode::default(), reporter).map(|v| v.manifest)
}

/// [`verify`] in the I/O mode `io`, also saying whether the bundle was signed and the
/// signature checked.
pub fn verify_detailed(
    bundle: &Path,
    key: Option<&VerifyingKey>,
    io: IoMode,
    reporter: &dyn Reporter,
) -> Result<Verified, BundleError> {
    verify_pass(bundle, key, false, io, reporter).map(|(verified, _)| verified)
}

/// [`verify`] without a key, also hashing the bundle file itself in the same pass: its hex
/// sha256 and size (what `<bundle>.sha256` records). The bundler's up-to-date check uses it.
pub fn verify_and_digest(bundle: &Path, io: IoMode) -> Result<(String, u64), BundleError> {
    let (_, digest) = verify_pass(bundle, None, true, io, &crate::progress::NoProgress)?;
    Ok(digest.expect("a hashing stream reports its digest"))
}

/// The verify pass; with `digest`, also the bundle file's own sha256 and size.
fn verify_pass(
    bundle: &Path,
    key: Option<&VerifyingKey>,
    digest: bool,
    io: IoMode,
    reporter: &dyn Reporter,
) -> Result<(Verified, Option<(String, u64)>), BundleError> {
    let (stream, info) = open_checked(bundle, key, digest, io)?;
    let sinks = (0..worker_count()).map(|_| VerifySink).collect();
    let digest = scan(stream, &info.manifest, sinks, "verify", reporter)?;
    let verified = Verified {
        signed: info.signature.is_some(),
        signature_checked: key.is_some(),
        manifest: info.manifest,
    };
    Ok((verified, digest))
}
