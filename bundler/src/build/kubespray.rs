//! The Kubespray part of a bundle: the files of Kubespray's files repo and the container
//! images, both described before anything is packed (like RPMs and wheels) and fetched by the
//! one fetcher while the bundle is written.
//!
//! Files are pinned by Kubespray's own sha256 and their size (a `HEAD` asks for it), and live at
//! `files/<original host>/<path>`. Images are resolved over the OCI distribution API: the
//! manifest by tag, an index or manifest list narrowed to the target platforms (each child
//! manifest fetched by digest and checked), then every config and layer blob becomes a download
//! pinned by its descriptor's digest and size. Manifests keep their upstream bytes, so every
//! digest served by the admin equals upstream's; manifests and blobs are stored once by digest,
//! however many images share them.

use std::collections::HashSet;
use std::sync::Arc;

use bundle::progress::Reporter;
use bundle::{DownloadFile, FileEntry, FileKind, ImageEntry, ImageManifest, KubesprayDownloads};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use url::Url;

use super::{BuildError, BuildParts, Source, to_fetch};
use crate::fetch::{Download, Expected, FetchError, Fetcher, RegistryAuth};
use crate::kubespray::{DownloadLists, HostMirrors, ImageRef, kubespray_arch};

const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// What to take of Kubespray's lists, and from where.
#[derive(Debug, Clone)]
pub struct KubesprayOptions {
    pub lists: DownloadLists,
    /// RPM-style arches of the target (x86_64, aarch64).
    pub arches: Vec<String>,
    pub files: bool,
    pub images: bool,
    pub files_mirrors: HostMirrors,
    pub registry_mirrors: HostMirrors,
}

/// The descriptor fields a pull needs, the same in OCI and Docker v2 JSON.
#[derive(Debug, Clone, Deserialize)]
struct Descriptor {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    size: u64,
    #[serde(default)]
    platform: Option<Platform>,
}

#[derive(Debug, Clone, Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

/// An image manifest or an index, read loosely: which one it is comes from `mediaType` (or the
/// response's `Content-Type` when the body has none).
#[derive(Debug, Deserialize)]
struct ManifestDoc {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

/// The platform fields of an image config.
#[derive(Debug, Deserialize)]
struct ConfigDoc {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
}

/// One image, resolved: its manifest entry, the manifests' bytes and the blob downloads.
struct Resolved {
    entry: ImageEntry,
    manifests: Vec<(String, Vec<u8>)>,
    blobs: Vec<(Descriptor, Download)>,
}

/// Describe the Kubespray part into `parts`.
pub async fn add_kubespray_part(
    parts: &mut BuildParts,
    opts: &KubesprayOptions,
    fetcher: &Fetcher,
    reporter: &dyn Reporter,
) -> Result<(), BuildError> {
    let wanted: Vec<&str> = opts.arches.iter().map(|a| kubespray_arch(a)).collect();
    let mut section = KubesprayDownloads {
        version: opts.lists.version.clone(),
        files: Vec::new(),
        images: Vec::new(),
    };
    let mut paths: HashSet<String> = parts.files.iter().map(|(e, _)| e.path.clone()).collect();
    if opts.files {
        let listed: Vec<_> = opts
            .lists
            .files
            .iter()
            .filter(|f| f.arch.is_empty() || wanted.contains(&f.arch.as_str()))
            .collect();
        reporter.started("Kubespray files: sizes", listed.len() as u64, 0);
        let described: Vec<(DownloadFile, FileEntry, Source)> =
            futures::stream::iter(listed.into_iter().map(|f| describe_file(f, opts, fetcher)))
                .buffered(fetcher.jobs())
                .inspect(|_| reporter.advanced(1, 0))
                .try_collect()
                .await?;
        reporter.finished();
        for (file, entry, source) in described {
            if paths.insert(entry.path.clone()) {
                parts.files.push((entry, source));
            }
            section.files.push(file);
        }
    }
    if opts.images {
        let listed: Vec<(ImageRef, Vec<String>)> = opts
            .lists
            .images
            .iter()
            .filter_map(|i| {
                let arches: Vec<&str> = if i.arches.is_empty() {
                    wanted.clone()
                } else {
                    wanted
                        .iter()
                        .copied()
                        .filter(|a| i.arches.iter().any(|x| x == a))
                        .collect()
                };
                (!arches.is_empty()).then(|| {
                    ImageRef::parse(&i.reference)
                        .map(|r| (r, arches.iter().map(|a| format!("linux/{a}")).collect()))
                })
            })
            .collect::<Result<_, _>>()
            .map_err(BuildError::Usage)?;
        reporter.started("image manifests", listed.len() as u64, 0);
        let resolved: Vec<Resolved> = futures::stream::iter(
            listed
                .iter()
                .map(|(r, platforms)| resolve_image(r, platforms, opts, fetcher)),
        )
        .buffered(fetcher.jobs())
        .inspect(|_| reporter.advanced(1, 0))
        .try_collect()
        .await?;
        reporter.finished();
        for image in resolved {
            for (digest, bytes) in image.manifests {
                let path = blob_path(&digest);
                if paths.insert(path.clone()) {
                    let (stored, sha256) = fetcher.cache().store_bytes(&bytes)?;
                    let entry = FileEntry {
                        path,
                        size: bytes.len() as u64,
                        sha256,
                        kind: FileKind::ImageManifest,
                        origin: None,
                        in_base: false,
                    };
                    parts.files.push((entry, Source::Local(stored)));
                }
            }
            for (descriptor, download) in image.blobs {
                let path = blob_path(&descriptor.digest);
                if paths.insert(path.clone()) {
                    parts
                        .files
                        .push(to_fetch(path, FileKind::ImageBlob, download, None));
                }
            }
            section.images.push(image.entry);
        }
    }
    if !section.files.is_empty() || !section.images.is_empty() {
        parts.kubespray = Some(section);
    }
    Ok(())
}

/// `images/blobs/sha256/<hex>` for `sha256:<hex>`.
fn blob_path(digest: &str) -> String {
    format!(
        "images/blobs/sha256/{}",
        digest.trim_start_matches("sha256:")
    )
}

/// Sha256 hex of a `sha256:<hex>` digest, refusing any other algorithm or a malformed value.
fn digest_hex<'a>(digest: &'a str, what: &str) -> Result<&'a str, BuildError> {
    bundle::image::digest_hex(digest)
        .map_err(|why| BuildError::ImageInvalid(format!("{what}: {why}")))
}

async fn describe_file(
    f: &crate::kubespray::ListedFile,
    opts: &KubesprayOptions,
    fetcher: &Fetcher,
) -> Result<(DownloadFile, FileEntry, Source), BuildError> {
    let original = Url::parse(&f.url)
        .map_err(|e| BuildError::Usage(format!("Kubespray file {}: {}: {e}", f.name, f.url)))?;
    let host = original.host_str().unwrap_or_default();
    let path = format!("files/{host}{}", original.path());
    bundle::paths::check_entry_path(&path)
        .map_err(|why| BuildError::Usage(format!("Kubespray file {}: {why}", f.url)))?;
    let url = opts.files_mirrors.rewrite(&original);
    let file = DownloadFile {
        name: f.name.clone(),
        arch: f.arch.clone(),
        url: f.url.clone(),
        path: path.clone(),
    };
    let (expected, source) = match &f.sha256 {
        Some(sha256) => {
            let expected = Expected {
                size: fetcher.content_length(&url).await?,
                sha256: sha256.clone(),
            };
            let download = Download {
                label: f.url.clone(),
                urls: vec![url],
                expected: expected.clone(),
                auth: None,
            };
            let source = Source::Fetch {
                download,
                signed_package: None,
            };
            (expected, source)
        }
        // A list from Kubespray's script has no checksums: what upstream serves now is pinned.
        None => {
            let (bytes, _) = fetcher.fetch_unpinned(&[url]).await?;
            let (stored, sha256) = fetcher.cache().store_bytes(&bytes)?;
            let size = bytes.len() as u64;
            (Expected { size, sha256 }, Source::Local(stored))
        }
    };
    // The origin is the URL Kubespray names, not the mirror's it was fetched from.
    let entry = FileEntry {
        path,
        size: expected.size,
        sha256: expected.sha256,
        kind: FileKind::Download,
        origin: Some(f.url.clone()),
        in_base: false,
    };
    Ok((file, entry, source))
}

async fn resolve_image(
    image: &ImageRef,
    platforms: &[String],
    opts: &KubesprayOptions,
    fetcher: &Fetcher,
) -> Result<Resolved, BuildError> {
    let reference = format!("{}/{}:{}", image.registry, image.repository, image.tag);
    let base = image.api_base(&opts.registry_mirrors);
    let api = |kind: &str, what: &str| -> Result<Url, BuildError> {
        base.join(&format!("/v2/{}/{kind}/{what}", image.repository))
            .map_err(|e| BuildError::Usage(format!("{reference}: {e}")))
    };
    let auth = Arc::new(RegistryAuth::new(&image.repository));
    let named = |e: FetchError| BuildError::Image {
        reference: reference.clone(),
        source: e,
    };
    let top = fetcher
        .registry_manifest(&api("manifests", &image.tag)?, &auth, None)
        .await
        .map_err(named)?;
    let doc = parse_doc(&top.bytes, &reference)?;
    let top_type = doc
        .media_type
        .clone()
        .unwrap_or_else(|| top.media_type.clone());
    let mut manifests = vec![ImageManifest {
        digest: top.digest.clone(),
        media_type: top_type.clone(),
        path: blob_path(&top.digest),
    }];
    let mut bytes = vec![(top.digest.clone(), top.bytes)];
    let mut images: Vec<ManifestDoc> = Vec::new();
    let mut carried = Vec::new();
    if INDEX_TYPES.contains(&top_type.as_str()) || !doc.manifests.is_empty() {
        for platform in platforms {
            let (os, arch) = platform.split_once('/').unwrap_or(("linux", platform));
            let child = doc
                .manifests
                .iter()
                .find(|d| {
                    d.platform
                        .as_ref()
                        .is_some_and(|p| p.os == os && p.architecture == arch)
                })
                .ok_or_else(|| {
                    BuildError::ImageUnavailable(format!(
                        "{reference}: upstream has no {platform} image (its index lists {})",
                        doc.manifests
                            .iter()
                            .filter_map(|d| d
                                .platform
                                .as_ref()
                                .map(|p| format!("{}/{}", p.os, p.architecture)))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?;
            digest_hex(&child.digest, &reference)?;
            let fetched = fetcher
                .registry_manifest(
                    &api("manifests", &child.digest)?,
                    &auth,
                    Some(&child.digest),
                )
                .await
                .map_err(named)?;
            if fetched.bytes.len() as u64 != child.size {
                return Err(BuildError::Image {
                    reference: reference.clone(),
                    source: FetchError::AllMirrorsFailed {
                        label: child.digest.clone(),
                        attempts: vec![(
                            child.digest.clone(),
                            format!(
                                "{} bytes, the index says {}",
                                fetched.bytes.len(),
                                child.size
                            ),
                        )],
                        checksum_mismatch: true,
                    },
                });
            }
            images.push(parse_doc(&fetched.bytes, &reference)?);
            manifests.push(ImageManifest {
                digest: child.digest.clone(),
                media_type: child.media_type.clone(),
                path: blob_path(&child.digest),
            });
            bytes.push((child.digest.clone(), fetched.bytes));
            carried.push(platform.clone());
        }
    } else {
        images.push(doc);
    }
    let mut blobs = Vec::new();
    for doc in &images {
        let config = doc.config.clone().ok_or_else(|| {
            BuildError::ImageInvalid(format!("{reference}: a manifest without a config"))
        })?;
        for descriptor in std::iter::once(config).chain(doc.layers.iter().cloned()) {
            let hex = digest_hex(&descriptor.digest, &reference)?.to_string();
            let download = Download {
                label: format!(
                    "{reference} {}",
                    &descriptor.digest[..19.min(descriptor.digest.len())]
                ),
                urls: vec![api("blobs", &descriptor.digest)?],
                expected: Expected {
                    size: descriptor.size,
                    sha256: hex,
                },
                auth: Some(auth.clone()),
            };
            blobs.push((descriptor, download));
        }
    }
    if carried.is_empty() {
        // A single-platform manifest: its config says which platform it is.
        let (config, download) = &blobs[0];
        let fetched = fetcher
            .fetch(download, &bundle::progress::NoProgress)
            .await
            .map_err(named)?;
        let text = match &fetched.data {
            Some(data) => data.to_vec(),
            None => fs_err::read(&fetched.path).map_err(FetchError::Fs)?,
        };
        let parsed: ConfigDoc = serde_json::from_slice(&text).map_err(|e| {
            BuildError::ImageInvalid(format!("{reference}: config {}: {e}", config.digest))
        })?;
        carried.push(format!("{}/{}", parsed.os, parsed.architecture));
    }
    Ok(Resolved {
        entry: ImageEntry {
            reference: reference.clone(),
            name: image.repository.clone(),
            tag: image.tag.clone(),
            digest: top.digest,
            media_type: top_type,
            platforms: carried,
            manifests,
        },
        manifests: bytes,
        blobs,
    })
}

fn parse_doc(bytes: &[u8], reference: &str) -> Result<ManifestDoc, BuildError> {
    serde_json::from_slice(bytes).map_err(|e| {
        BuildError::ImageInvalid(format!("{reference}: the manifest is not valid JSON: {e}"))
    })
}
