//! The registry part of apply: the tree `crate::registry` describes, under
//! `<data>/registry/`. The manifest-level checks run while planning, so a hostile image name
//! or an oversized manifest stops apply before anything is written; the content checks (is
//! every referenced blob carried?) run right after the unpack, before any tree is switched.
//! A changed registry is built complete in staging (every manifest and blob moved into the
//! store once, hard links per name) and switched in with one atomic exchange.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bundle::BundleManifest;
use serde::{Deserialize, Serialize};

use super::state;
use super::{ApplyError, Layout};
use crate::fsutil::Durability;
use crate::registry::{
    self, BUNDLE_BLOB_DIR, BundleImages, CheckedImage, ImageContent, TreeSource,
};

/// Content of the installed registry, and what the landing page shows of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryState {
    /// One line per served image: `name:tag digest media-type manifests...`.
    pub images: Vec<String>,
    /// Hex -> size of every stored manifest and blob.
    pub stored: BTreeMap<String, u64>,
    /// `name:tag` -> bytes of its manifests and blobs (derived, not compared).
    #[serde(default)]
    pub bytes: BTreeMap<String, u64>,
}

impl RegistryState {
    fn same_content(&self, other: &RegistryState) -> bool {
        self.images == other.images && self.stored == other.stored
    }
}

fn image_line(image: &CheckedImage) -> String {
    let mut line = format!(
        "{}:{} {} {}",
        image.name,
        image.tag,
        image.digest(),
        image.kind.media_type()
    );
    for m in &image.manifests {
        line.push_str(&format!(" sha256:{}={}", m.hex, m.kind.extension()));
    }
    line
}

/// What the registry step will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImagesPlan {
    pub live_dir: PathBuf,
    pub images: BundleImages,
    pub state: RegistryState,
    /// Bytes per `name:tag` of the installed registry, when it is left as it is.
    pub live_bytes: Option<BTreeMap<String, u64>>,
    pub added: usize,
    pub removed: usize,
    pub unchanged: bool,
}

impl ImagesPlan {
    pub fn describe(&self) -> String {
        let bytes: u64 = self.state.stored.values().sum();
        let what = format!(
            "{} images, {} manifests and blobs, {bytes} bytes",
            self.images.images.len(),
            self.state.stored.len()
        );
        if self.unchanged {
            format!("unchanged ({what})")
        } else {
            format!("rebuild: +{} -{} images ({what})", self.added, self.removed)
        }
    }
}

/// The registry the bundle asks for. None when the bundle has no images and none are served.
pub fn plan(manifest: &BundleManifest, layout: &Layout) -> Result<Option<ImagesPlan>, ApplyError> {
    let images = registry::images_from_manifest(manifest)?;
    let live: Option<RegistryState> = state::load(&layout.registry);
    if images.images.is_empty() && live.is_none() {
        return Ok(None);
    }
    let state = RegistryState {
        images: images.images.iter().map(image_line).collect(),
        stored: images.stored.clone(),
        bytes: BTreeMap::new(),
    };
    let live = live.unwrap_or_default();
    let unchanged = layout.registry.exists() && live.same_content(&state);
    let tag = |line: &String| line.split(' ').next().unwrap_or_default().to_string();
    let live_tags: Vec<String> = live.images.iter().map(tag).collect();
    let new_tags: Vec<String> = state.images.iter().map(tag).collect();
    Ok(Some(ImagesPlan {
        live_dir: layout.registry.clone(),
        added: new_tags.iter().filter(|t| !live_tags.contains(t)).count(),
        removed: live_tags.iter().filter(|t| !new_tags.contains(t)).count(),
        live_bytes: unchanged.then(|| live.bytes.clone()),
        images,
        state,
        unchanged,
    }))
}

/// The content checks, on the unpacked bundle.
pub fn check(plan: &ImagesPlan, extracted: &Path) -> Result<ImageContent, ApplyError> {
    let dir = extracted.join(BUNDLE_BLOB_DIR);
    let read = |hex: &str| fs_err::read(dir.join(hex));
    Ok(registry::check_content(&plan.images, &read)?)
}

/// Build the checked registry in staging and switch it live.
pub fn execute(
    plan: &ImagesPlan,
    content: &ImageContent,
    layout: &Layout,
    extracted: &Path,
) -> Result<(), ApplyError> {
    if plan.unchanged {
        return Ok(());
    }
    let tree = registry::tree(&plan.images, content)?;
    let stage = layout.staging.join("registry");
    let store = stage.join("blobs/sha256");
    fs_err::create_dir_all(&store)?;
    let unpacked = extracted.join(BUNDLE_BLOB_DIR);
    for hex in plan.state.stored.keys() {
        fs_err::rename(unpacked.join(hex), store.join(hex))?;
    }
    let mut made_dirs = std::collections::HashSet::new();
    for (rel, source) in &tree {
        let dest = stage.join(rel);
        if let Some(parent) = dest.parent()
            && made_dirs.insert(parent.to_path_buf())
        {
            fs_err::create_dir_all(parent)?;
        }
        match source {
            TreeSource::Stored(hex) => {
                fs_err::hard_link(stage.join(registry::store_path(hex)), &dest)?
            }
            TreeSource::Text(bytes) => {
                crate::fsutil::write_atomic_as(&dest, bytes, 0o644, Durability::Staged)?
            }
        }
    }
    let mut state = plan.state.clone();
    state.bytes = content.bytes.clone();
    state::store(&stage, &state)?;
    crate::fsutil::sync_filesystem(&stage)?;
    state::kill_point("registry-staged");
    crate::fsutil::replace_dir(&stage, &plan.live_dir)?;
    state::kill_point("registry-switched");
    Ok(())
}
