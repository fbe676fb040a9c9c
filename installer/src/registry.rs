//! The admin's read-only image registry: the rules an image of the bundle must pass before it
//! is served, and the tree nginx serves it from. No registry daemon runs: nginx answers the
//! pull side of the distribution API from plain files (see `nginx.rs` for the locations).
//!
//! The tree, under `<data>/registry/`, mirrors the request paths so that nginx needs only a
//! `root`:
//!
//! ```text
//! blobs/sha256/<hex>                      every manifest and blob of the bundle, once
//! v2/<name>/manifests/sha256:<hex>.<ext>  hard link, each manifest the name needs
//! v2/<name>/blobs/sha256:<hex>            hard link, each config and layer the name needs
//! v2/<name>/tags/list                     {"name": ..., "tags": [...]}
//! ```
//!
//! The extension says the media type (`types {}` in the nginx location maps it back), so the
//! exact upstream bytes are served with the right `Content-Type`. A tag is not a file: nginx
//! rewrites each tag path to its digest path (see [`tag_routes`]), so a tag answers exactly
//! as its digest does, `Docker-Content-Digest` included. Per-name links, rather than one shared
//! blob directory, make a name serve exactly the blobs its manifests reference, as a real
//! registry does, and a 404 for anything else.
//!
//! Checks happen in two steps. From the bundle manifest alone (before anything is unpacked):
//! names and tags follow the distribution spec's grammar, digests are sha256, every listed
//! manifest is a bundle file of at most [`MAX_MANIFEST_BYTES`] whose sha256 is its digest.
//! From the manifests' content (after the unpack, before any tree is switched): each image
//! manifest's config and layers, and each carried platform's manifest of an index, are in the
//! bundle.

use bundle::image::{check_name, check_tag, digest_hex};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use bundle::BundleManifest;
use serde::Deserialize;

/// Largest manifest or index served; registries commonly refuse bigger ones, and a manifest is
/// read whole to find what it references.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

/// Bundle directory holding every manifest and blob by digest.
pub const BUNDLE_BLOB_DIR: &str = "images/blobs/sha256/";

/// The manifest media types the registry serves, each with the file extension that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ManifestType {
    OciIndex,
    OciManifest,
    DockerList,
    DockerManifest,
}

impl ManifestType {
    pub const ALL: [ManifestType; 4] = [
        ManifestType::OciIndex,
        ManifestType::OciManifest,
        ManifestType::DockerList,
        ManifestType::DockerManifest,
    ];

    pub fn from_media_type(media_type: &str) -> Option<ManifestType> {
        ManifestType::ALL
            .into_iter()
            .find(|t| t.media_type() == media_type)
    }

    pub fn media_type(self) -> &'static str {
        match self {
            ManifestType::OciIndex => "application/vnd.oci.image.index.v1+json",
            ManifestType::OciManifest => "application/vnd.oci.image.manifest.v1+json",
            ManifestType::DockerList => "application/vnd.docker.distribution.manifest.list.v2+json",
            ManifestType::DockerManifest => "application/vnd.docker.distribution.manifest.v2+json",
        }
    }

    /// File extension in the tree; nginx's `types {}` maps it back to the media type.
    pub fn extension(self) -> &'static str {
        match self {
            ManifestType::OciIndex => "oci-index",
            ManifestType::OciManifest => "oci-manifest",
            ManifestType::DockerList => "docker-list",
            ManifestType::DockerManifest => "docker-manifest",
        }
    }

    pub fn is_index(self) -> bool {
        matches!(self, ManifestType::OciIndex | ManifestType::DockerList)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("image {reference}: {reason}; the bundle cannot be served, rebuild it")]
    Image { reference: String, reason: String },
    #[error(
        "images {first} and {second} are both served as {name}:{tag} with different digests; the bundle is inconsistent, rebuild it"
    )]
    Conflict {
        first: String,
        second: String,
        name: String,
        tag: String,
    },
    #[error("image {reference}: manifest {digest}: {reason}")]
    Content {
        reference: String,
        digest: String,
        reason: String,
    },
    #[error(
        "bundle file {path} has sha256 {sha256}, not the digest its name says; rebuild the bundle"
    )]
    Misnamed { path: String, sha256: String },
    #[error("registry tree: {reason}")]
    Layout { reason: String },
}

/// One manifest (or index) an image needs, as the bundle lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListedManifest {
    pub hex: String,
    pub kind: ManifestType,
}

/// An image that passed the manifest-level checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedImage {
    pub reference: String,
    pub name: String,
    pub tag: String,
    /// Hex of the top-level manifest or index.
    pub hex: String,
    pub kind: ManifestType,
    pub platforms: Vec<String>,
    /// Every manifest the image needs, the top-level one included, by digest.
    pub manifests: Vec<ListedManifest>,
}

impl CheckedImage {
    pub fn digest(&self) -> String {
        format!("sha256:{}", self.hex)
    }
}

/// The images of a bundle, checked against the manifest alone, and the size of every file
/// stored by digest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BundleImages {
    /// Sorted by name, then tag; one entry per name:tag.
    pub images: Vec<CheckedImage>,
    /// Hex -> size of every file under `images/blobs/sha256/`.
    pub stored: BTreeMap<String, u64>,
}

/// Checks every image of `manifest` from the manifest alone; see the module comment.
pub fn images_from_manifest(manifest: &BundleManifest) -> Result<BundleImages, RegistryError> {
    let mut stored = BTreeMap::new();
    for f in &manifest.files {
        if let Some(hex) = f.path.strip_prefix(BUNDLE_BLOB_DIR)
            && !hex.contains('/')
        {
            if f.sha256 != hex {
                return Err(RegistryError::Misnamed {
                    path: f.path.clone(),
                    sha256: f.sha256.clone(),
                });
            }
            stored.insert(hex.to_string(), f.size);
        }
    }
    let Some(kubespray) = &manifest.kubespray else {
        return Ok(BundleImages {
            images: Vec::new(),
            stored,
        });
    };
    let mut by_tag: BTreeMap<(String, String), CheckedImage> = BTreeMap::new();
    for image in &kubespray.images {
        let bad = |reason: String| RegistryError::Image {
            reference: image.reference.clone(),
            reason,
        };
        check_name(&image.name).map_err(bad)?;
        check_tag(&image.tag).map_err(bad)?;
        let hex = digest_hex(&image.digest).map_err(bad)?.to_string();
        let kind = ManifestType::from_media_type(&image.media_type).ok_or_else(|| {
            bad(format!(
                "media type {:?} is not an OCI or Docker schema 2 manifest or index",
                image.media_type
            ))
        })?;
        let mut manifests = Vec::new();
        for m in &image.manifests {
            let m_hex = digest_hex(&m.digest).map_err(bad)?;
            let m_kind = ManifestType::from_media_type(&m.media_type).ok_or_else(|| {
                bad(format!(
                    "manifest {} has media type {:?}, not an OCI or Docker schema 2 manifest or index",
                    m.digest, m.media_type
                ))
            })?;
            let expected_path = format!("{BUNDLE_BLOB_DIR}{m_hex}");
            if m.path != expected_path {
                return Err(bad(format!(
                    "manifest {} is at {}, expected {expected_path}",
                    m.digest, m.path
                )));
            }
            let size = *stored.get(m_hex).ok_or_else(|| {
                bad(format!(
                    "manifest {} ({}) is not among the bundle's files",
                    m.digest, m.path
                ))
            })?;
            if size > MAX_MANIFEST_BYTES {
                return Err(bad(format!(
                    "manifest {} is {size} bytes, more than the {MAX_MANIFEST_BYTES} bytes a registry serves",
                    m.digest
                )));
            }
            manifests.push(ListedManifest {
                hex: m_hex.to_string(),
                kind: m_kind,
            });
        }
        manifests.sort();
        manifests.dedup();
        match manifests.iter().find(|m| m.hex == hex) {
            Some(top) if top.kind == kind => {}
            Some(top) => {
                return Err(bad(format!(
                    "the top-level manifest is listed as {} but the image says {}",
                    top.kind.media_type(),
                    kind.media_type()
                )));
            }
            None => {
                return Err(bad(format!(
                    "the top-level manifest {} is not among its manifests",
                    image.digest
                )));
            }
        }
        if manifests
            .windows(2)
            .any(|w| w[0].hex == w[1].hex && w[0].kind != w[1].kind)
        {
            return Err(bad("a manifest is listed with two media types".into()));
        }
        let checked = CheckedImage {
            reference: image.reference.clone(),
            name: image.name.clone(),
            tag: image.tag.clone(),
            hex,
            kind,
            platforms: image.platforms.clone(),
            manifests,
        };
        let key = (checked.name.clone(), checked.tag.clone());
        match by_tag.get(&key) {
            Some(other) if other.hex != checked.hex => {
                return Err(RegistryError::Conflict {
                    first: other.reference.clone(),
                    second: checked.reference,
                    name: key.0,
                    tag: key.1,
                });
            }
            // The same image listed twice (two references for one name:tag): serve it once,
            // with every manifest either listing carries.
            Some(other) => {
                let mut merged = other.clone();
                merged.manifests.extend(checked.manifests);
                merged.manifests.sort();
                merged.manifests.dedup();
                by_tag.insert(key, merged);
            }
            None => {
                by_tag.insert(key, checked);
            }
        }
    }
    Ok(BundleImages {
        images: by_tag.into_values().collect(),
        stored,
    })
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    digest: String,
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    os: String,
    architecture: String,
    variant: Option<String>,
}

#[derive(Deserialize)]
struct ManifestDoc {
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

/// Whether an index entry's platform is one the image carries (`linux/arm64` also matches
/// `linux/arm64/v8`).
fn carried(platform: &Platform, platforms: &[String]) -> bool {
    let os_arch = format!("{}/{}", platform.os, platform.architecture);
    let full = match &platform.variant {
        Some(v) => format!("{os_arch}/{v}"),
        None => os_arch.clone(),
    };
    if platforms.is_empty() {
        // No platform list: every real platform of the index is carried (attestations and
        // other `unknown/unknown` entries are not images).
        return platform.os != "unknown";
    }
    platforms.iter().any(|p| *p == full || *p == os_arch)
}

/// What the manifests' content says, for serving.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageContent {
    /// Per name: every config and layer hex its manifests reference.
    pub blobs: BTreeMap<String, BTreeSet<String>>,
    /// Per `name:tag`: bytes of its manifests and of the blobs they reference, each once.
    pub bytes: BTreeMap<String, u64>,
}

/// Checks what each image's manifests reference against what the bundle stores; `read` gives
/// the bytes of a stored file by hex. See the module comment.
pub fn check_content(
    images: &BundleImages,
    read: &dyn Fn(&str) -> std::io::Result<Vec<u8>>,
) -> Result<ImageContent, RegistryError> {
    let mut content = ImageContent::default();
    let mut parsed: HashMap<String, ManifestDoc> = HashMap::new();
    for image in &images.images {
        let mut own: BTreeSet<String> = BTreeSet::new();
        for m in &image.manifests {
            let bad = |reason: String| RegistryError::Content {
                reference: image.reference.clone(),
                digest: format!("sha256:{}", m.hex),
                reason,
            };
            if !parsed.contains_key(&m.hex) {
                let bytes = read(&m.hex).map_err(|e| bad(format!("cannot read: {e}")))?;
                let doc: ManifestDoc = serde_json::from_slice(&bytes)
                    .map_err(|e| bad(format!("not a manifest: {e}")))?;
                parsed.insert(m.hex.clone(), doc);
            }
            let doc = &parsed[&m.hex];
            if let Some(t) = &doc.media_type
                && t != m.kind.media_type()
            {
                return Err(bad(format!(
                    "its mediaType is {t} but the bundle lists it as {}",
                    m.kind.media_type()
                )));
            }
            if m.kind.is_index() {
                for child in &doc.manifests {
                    let wanted = child
                        .platform
                        .as_ref()
                        .is_some_and(|p| carried(p, &image.platforms));
                    let hex = digest_hex(&child.digest).map_err(&bad)?;
                    match image.manifests.iter().find(|l| l.hex == hex) {
                        Some(listed) => {
                            if let Some(t) = &child.media_type
                                && t != listed.kind.media_type()
                            {
                                return Err(bad(format!(
                                    "it lists {} as {t}, the bundle as {}",
                                    child.digest,
                                    listed.kind.media_type()
                                )));
                            }
                        }
                        None if wanted => {
                            return Err(bad(format!(
                                "it references {} for a carried platform, which the bundle does not carry",
                                child.digest
                            )));
                        }
                        None => {}
                    }
                }
                continue;
            }
            let config = doc
                .config
                .as_ref()
                .ok_or_else(|| bad("an image manifest without a config".into()))?;
            for blob in std::iter::once(config).chain(&doc.layers) {
                let hex = digest_hex(&blob.digest).map_err(&bad)?;
                if !images.stored.contains_key(hex) {
                    return Err(bad(format!(
                        "it references blob {}, which the bundle does not carry",
                        blob.digest
                    )));
                }
                own.insert(hex.to_string());
            }
        }
        let bytes = image
            .manifests
            .iter()
            .map(|m| &m.hex)
            .chain(&own)
            .collect::<HashSet<_>>()
            .into_iter()
            .map(|hex| images.stored.get(hex).copied().unwrap_or(0))
            .sum();
        content
            .bytes
            .insert(format!("{}:{}", image.name, image.tag), bytes);
        content
            .blobs
            .entry(image.name.clone())
            .or_default()
            .extend(own);
    }
    Ok(content)
}

/// What one file of the tree holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TreeSource {
    /// A hard link to `blobs/sha256/<hex>`.
    Stored(String),
    /// Generated bytes (the tags list).
    Text(Vec<u8>),
}

/// Where the store lives inside the tree.
pub fn store_path(hex: &str) -> String {
    format!("blobs/sha256/{hex}")
}

/// `{"name": ..., "tags": [...]}`, as `GET /v2/<name>/tags/list` answers.
pub fn tags_list(name: &str, tags: &[&str]) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(&serde_json::json!({ "name": name, "tags": tags }))
        .expect("tags list serializes");
    bytes.push(b'\n');
    bytes
}

/// Every file of the tree below `v2/` (paths relative to the registry directory), sorted.
/// Fails when one path would be both a file and a directory (a name ending in `/tags/list`
/// beside its parent name, say).
pub fn tree(
    images: &BundleImages,
    content: &ImageContent,
) -> Result<Vec<(String, TreeSource)>, RegistryError> {
    let mut files: BTreeMap<String, TreeSource> = BTreeMap::new();
    let mut tags: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for image in &images.images {
        let dir = format!("v2/{}", image.name);
        for m in &image.manifests {
            files.insert(
                format!("{dir}/manifests/sha256:{}.{}", m.hex, m.kind.extension()),
                TreeSource::Stored(m.hex.clone()),
            );
        }
        tags.entry(&image.name).or_default().push(&image.tag);
    }
    for (name, blobs) in &content.blobs {
        for hex in blobs {
            files.insert(
                format!("v2/{name}/blobs/sha256:{hex}"),
                TreeSource::Stored(hex.clone()),
            );
        }
    }
    for (name, name_tags) in &tags {
        files.insert(
            format!("v2/{name}/tags/list"),
            TreeSource::Text(tags_list(name, name_tags)),
        );
    }
    let mut dirs: HashSet<&str> = HashSet::new();
    for path in files.keys() {
        let mut end = 0;
        while let Some(slash) = path[end..].find('/') {
            end += slash;
            dirs.insert(&path[..end]);
            end += 1;
        }
    }
    if let Some(path) = files.keys().find(|p| dirs.contains(p.as_str())) {
        return Err(RegistryError::Layout {
            reason: format!(
                "{path} would be a file and a directory at once; two image names collide"
            ),
        });
    }
    Ok(files.into_iter().collect())
}

/// Where each tag request is answered: `/v2/<name>/manifests/<tag>` ->
/// `/v2/<name>/manifests/sha256:<hex>`, sorted by name and tag.
pub fn tag_routes(images: &BundleImages) -> Vec<(String, String)> {
    images
        .images
        .iter()
        .map(|i| {
            (
                format!("/v2/{}/manifests/{}", i.name, i.tag),
                format!("/v2/{}/manifests/{}", i.name, i.digest()),
            )
        })
        .collect()
}

#[cfg(test)]
mod tests;
