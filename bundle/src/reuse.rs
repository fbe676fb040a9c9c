//! "Output already up to date": when the bundle at the output path already holds exactly what a
//! new write would put there, keep it instead of rewriting hundreds of MB.
//!
//! Nothing is assumed from names or timestamps. The existing bundle is kept only when
//! - its `manifest.json` is byte for byte the manifest the caller is about to write, with only
//!   `created` taken from the existing one (a rebuild would otherwise differ in its timestamp
//!   alone), so every file's path, size and sha256, the tool version and every section agree;
//! - its signature is the one the caller's key would write (ed25519 signatures are
//!   deterministic), or both are unsigned;
//! - a full [`verify`](crate::read::verify) passes: every payload file is read and hashed
//!   against that manifest, so the content is checked, not assumed;
//! - its `<bundle>.sha256` file names it and matches the bundle's own sha256 (hashed in the
//!   same pass, from the bytes the verify reads).
//!
//! Anything else (no file, not a bundle, damaged, different content) means "not up to date"
//! and the caller writes a new bundle as usual, atomically replacing the old one.

use std::path::Path;

use crate::manifest::BundleManifest;
use crate::read::{read_manifest, verify_and_digest};
use crate::sign::sign_manifest;
use crate::write::{WriteOptions, WrittenBundle, manifest_bytes, sidecar_path};

/// If the bundle at `output` is what writing `manifest` with `opts` would produce (timestamp
/// aside) and checks out in full, describe it; else None. `manifest.created` is set to the
/// existing bundle's when it is kept, so the caller's manifest describes what is on disk.
pub fn reuse_if_up_to_date(
    output: &Path,
    manifest: &mut BundleManifest,
    opts: &WriteOptions,
) -> Option<WrittenBundle> {
    let sidecar = fs_err::read_to_string(sidecar_path(output)).ok()?;
    let name = output.file_name()?.to_str()?;
    let recorded = match sidecar.trim_end().split_once("  ") {
        Some((hash, file)) if file == name => hash.to_string(),
        _ => return None,
    };
    let existing = read_manifest(output).ok()?;
    let mut candidate = manifest.clone();
    candidate.created = existing.manifest.created;
    let raw = manifest_bytes(&candidate);
    if raw != existing.raw {
        return None;
    }
    let signature = opts
        .signing_key
        .as_ref()
        .map(|k| sign_manifest(k, &raw).to_vec());
    if signature != existing.signature {
        return None;
    }
    let (sha256, size) = verify_and_digest(output).ok()?;
    if sha256 != recorded {
        return None;
    }
    *manifest = candidate;
    Some(WrittenBundle {
        path: output.to_path_buf(),
        sha256_path: sidecar_path(output),
        sha256,
        size,
        signed: signature.is_some(),
        reused: true,
    })
}
