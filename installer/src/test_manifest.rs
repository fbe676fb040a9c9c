//! A bundle manifest for unit tests that build served trees (simple index, registry) straight
//! from manifest entries: every field a test does not care about is fixed here, once.

use bundle::manifest::{BundleManifest, FileEntry, ToolInfo, Totals};

/// A manifest holding `files` and nothing else; tests fill in the part they exercise.
pub(crate) fn manifest(files: Vec<FileEntry>) -> BundleManifest {
    BundleManifest {
        format: bundle::FORMAT_VERSION,
        min_installer_version: None,
        base: None,
        bundle_id: "00".into(),
        created: time::OffsetDateTime::UNIX_EPOCH,
        tool: ToolInfo {
            name: "test".into(),
            version: "0".into(),
        },
        release: None,
        arches: vec![],
        rpm: None,
        pypi_targets: vec![],
        kubespray: None,
        files,
        totals: Totals::default(),
    }
}
