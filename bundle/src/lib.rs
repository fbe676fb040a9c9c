//! The contract between `bundler` and `installer`: what a bundle file is and how it is read and
//! written. Everything here is format knowledge only; no network, no service configuration.
//!
//! A bundle is one tar stream compressed with zstd. `manifest.json` is the first entry,
//! `manifest.json.sig` (optional) the second, then every payload file in manifest order.

pub mod manifest;

pub use manifest::{
    BundleManifest, FORMAT_VERSION, FileEntry, FileKind, LockedFile, PypiTarget, RpmRepo,
    RpmSection, ToolInfo, Totals, UpstreamRecord,
};
