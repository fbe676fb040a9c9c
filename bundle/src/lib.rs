//! The contract between `bundler` and `installer`: what a bundle file is and how it is read and
//! written. Everything here is format knowledge only; no network, no service configuration.
//!
//! A bundle is one tar stream compressed with zstd. `manifest.json` is the first entry,
//! `manifest.json.sig` (optional) the second, then every payload file in manifest order.
//!
//! - [`write`]: `write_bundle`, `write_bundle_streaming`, `finalize`;
//! - [`read`]: `read_manifest`, `verify`, `extract`;
//! - [`sign`]: key files, signing and checking the manifest;
//! - [`run`]: the self-extracting `.run` around a bundle stream;
//! - [`volume`]: a bundle stream split into volumes (`NAME.001`, …) for size-limited media;
//! - [`summary`]: counts and sizes per repo and PyPI target, from the manifest alone;
//! - [`paths`]: the path rules; [`image`]: image names, tags and digests; [`progress`]: the `Reporter` seam; [`error`]: `BundleError`;
//! - [`IoMode`]: how bulk files are read and written (buffered, or past the page cache), chosen
//!   by the binaries and passed in; [`BulkWriter`] writes other bulk files the same way.
//!
//! Inside, the format modules sit above a private I/O engine (`io/`), and the dependency
//! graph between modules has no cycles.

pub mod error;
mod extract;
mod files;
pub mod image;
mod io;
pub mod manifest;
pub mod paths;
pub mod progress;
pub mod read;
pub mod run;
mod scan;
pub mod sign;
mod stream;
pub mod summary;
mod tarfmt;
pub mod volume;
pub mod write;

pub use error::{BundleError, EntryProblem};
pub use io::{BulkWriter, IO_MODE_ENV, IoMode};
pub use manifest::{
    BaseBundle, BundleManifest, DELTA_FORMAT, DownloadFile, FORMAT_VERSION, FileEntry, FileKind,
    ImageEntry, ImageManifest, KubesprayDownloads, LockedFile, NEWEST_FORMAT, PypiTarget, RpmRepo,
    RpmSection, ToolInfo, Totals, UpstreamRecord,
};
pub use progress::{NoProgress, Reporter};
