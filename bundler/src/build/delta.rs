//! Differential builds (`bundler build --since BASE`): which files of the new state the base
//! already holds, so that the bundle leaves them out. The manifest still lists every file (it
//! describes the whole new state, as a full bundle would) and marks the omitted ones `in_base`;
//! metadata always travels in full (`FileKind::travels_in_full`).

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use bundle::{BaseBundle, BundleManifest};

use super::{BuildError, BuildParts};

/// The manifest of BASE: a bundle in any form the installer reads (`.tar.zst`, `.run`, a
/// volume set) or the `<bundle>.manifest.json` written beside it.
pub fn read_base(path: &Path) -> Result<BundleManifest, BuildError> {
    let mut head = [0u8; 64];
    let n = fs_err::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .map_err(|e| BuildError::Usage(format!("--since {}: {e}", path.display())))
        .or_else(|e| {
            // A directory holding a volume set cannot be read as a file.
            if path.is_dir() { Ok(0) } else { Err(e) }
        })?;
    if head[..n].iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{') {
        let raw = fs_err::read(path).map_err(|e| BuildError::Usage(format!("--since: {e}")))?;
        return Ok(bundle::read::parse_manifest(path, &raw)?);
    }
    Ok(bundle::read::read_manifest(path)?.manifest)
}

/// Per file of `parts` (in order): does the base hold a file with its sha256, so that the
/// bundle can leave it out? All false without a base.
pub(super) fn in_base(parts: &BuildParts) -> Vec<bool> {
    let Some(base) = &parts.base else {
        return vec![false; parts.files.len()];
    };
    let held: HashSet<&str> = base.files.iter().map(|f| f.sha256.as_str()).collect();
    parts
        .files
        .iter()
        .map(|(entry, _)| !entry.kind.travels_in_full() && held.contains(entry.sha256.as_str()))
        .collect()
}

/// What the manifest records of the base.
pub(super) fn base_record(base: &BundleManifest) -> BaseBundle {
    BaseBundle {
        bundle_id: base.bundle_id.clone(),
        created: base.created,
    }
}
