//! Deterministic container images as content-addressed blobs, for the container-image tests and
//! benchmarks: gzip'd tar layers, config JSON, manifests and indexes in both media-type families
//! the bundler must keep byte-exact (OCI and Docker schema 2). Nothing here needs a registry;
//! `registry.rs` pushes these blobs into one.
//!
//! Same seed, same bytes: tar entries have fixed owners and mtimes, gzip headers carry no time,
//! and JSON is written with its keys in a fixed order and a 3-space indent (the shape Docker itself writes), so
//! a client that re-serialises a manifest instead of keeping its bytes changes its digest.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::rpmgen::SplitMix;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Fixed mtime of every tar entry and the config's `created` (2025-01-01T00:00:00Z).
const EPOCH: u64 = 1_735_689_600;
const CREATED: &str = "2025-01-01T00:00:00Z";

/// Which family of media types an image uses throughout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaFamily {
    Oci,
    Docker,
}

impl MediaFamily {
    pub fn index(self) -> &'static str {
        match self {
            MediaFamily::Oci => OCI_INDEX,
            MediaFamily::Docker => DOCKER_MANIFEST_LIST,
        }
    }
    pub fn manifest(self) -> &'static str {
        match self {
            MediaFamily::Oci => OCI_MANIFEST,
            MediaFamily::Docker => DOCKER_MANIFEST,
        }
    }
    pub fn config(self) -> &'static str {
        match self {
            MediaFamily::Oci => OCI_CONFIG,
            MediaFamily::Docker => DOCKER_CONFIG,
        }
    }
    pub fn layer(self) -> &'static str {
        match self {
            MediaFamily::Oci => OCI_LAYER_GZIP,
            MediaFamily::Docker => DOCKER_LAYER_GZIP,
        }
    }
}

/// True for the four manifest and index media types (what `PUT /v2/<name>/manifests/` takes).
pub fn is_manifest_type(media_type: &str) -> bool {
    [
        OCI_INDEX,
        OCI_MANIFEST,
        DOCKER_MANIFEST_LIST,
        DOCKER_MANIFEST,
    ]
    .contains(&media_type)
}

/// True for an index or manifest list.
pub fn is_index_type(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// One content-addressed object: a manifest, index, config or layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
    pub media_type: String,
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &str, bytes: Vec<u8>) -> Blob {
        Blob {
            digest: sha256_digest(&bytes),
            media_type: media_type.to_string(),
            bytes,
        }
    }

    /// The hex part of the digest (the file name in `blobs/sha256/` or a `dir:` copy).
    pub fn hex(&self) -> &str {
        self.digest.trim_start_matches("sha256:")
    }

    pub fn is_manifest(&self) -> bool {
        is_manifest_type(&self.media_type)
    }

    /// The descriptor that points at this blob from a manifest or index.
    pub fn descriptor(&self) -> Value {
        json!({
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.bytes.len(),
        })
    }
}

/// A gzip'd tar layer and the sha256 of its uncompressed tar (the config's `diff_id`).
#[derive(Debug, Clone)]
pub struct Layer {
    pub blob: Blob,
    pub diff_id: String,
}

/// An `os`/`architecture` pair as indexes and configs spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Platform {
    pub os: &'static str,
    pub architecture: &'static str,
}

pub const LINUX_AMD64: Platform = Platform {
    os: "linux",
    architecture: "amd64",
};
pub const LINUX_ARM64: Platform = Platform {
    os: "linux",
    architecture: "arm64",
};

/// One tagged image as a registry holds it.
#[derive(Debug, Clone)]
pub struct TestImage {
    /// Repository name, e.g. `pause` or `calico/node`.
    pub name: String,
    pub tag: String,
    /// What the tag points at: a manifest, or an index / manifest list.
    pub top: Blob,
    /// Every other blob the tag reaches: per-platform manifests, configs, layers; each once.
    pub blobs: Vec<Blob>,
}

impl TestImage {
    /// `name:tag`.
    pub fn reference(&self) -> String {
        format!("{}:{}", self.name, self.tag)
    }

    /// The top blob followed by every other blob.
    pub fn all_blobs(&self) -> impl Iterator<Item = &Blob> {
        std::iter::once(&self.top).chain(&self.blobs)
    }

    pub fn find(&self, digest: &str) -> Option<&Blob> {
        self.all_blobs().find(|b| b.digest == digest)
    }

    pub fn is_index(&self) -> bool {
        is_index_type(&self.top.media_type)
    }

    /// The manifest for `platform`: the top blob of a single-platform image when its config says
    /// that platform, or the index entry that names it.
    pub fn manifest_for(&self, platform: Platform) -> Option<&Blob> {
        let top: Value = serde_json::from_slice(&self.top.bytes).expect("generated JSON");
        if !self.is_index() {
            let config = self.find(top["config"]["digest"].as_str()?)?;
            let config: Value = serde_json::from_slice(&config.bytes).expect("generated JSON");
            let matches =
                config["os"] == platform.os && config["architecture"] == platform.architecture;
            return matches.then_some(&self.top);
        }
        let entry = top["manifests"].as_array()?.iter().find(|m| {
            m["platform"]["os"] == platform.os
                && m["platform"]["architecture"] == platform.architecture
        })?;
        self.find(entry["digest"].as_str()?)
    }

    /// Layer blobs (neither manifests nor configs).
    pub fn layers(&self) -> impl Iterator<Item = &Blob> {
        self.blobs
            .iter()
            .filter(|b| b.media_type == OCI_LAYER_GZIP || b.media_type == DOCKER_LAYER_GZIP)
    }

    /// Sum of every blob's size, the bytes a full pull moves.
    pub fn total_bytes(&self) -> u64 {
        self.all_blobs().map(|b| b.bytes.len() as u64).sum()
    }
}

/// A layer holding `etc/<label>-release` and `usr/share/<label>/payload.bin` of `payload_size`
/// bytes drawn from `seed`. The gzip'd blob is `payload_size` plus the tar headers and a few
/// bytes per 64 KiB: a layer size a benchmark can choose.
pub fn layer(family: MediaFamily, label: &str, seed: u64, payload_size: usize) -> Layer {
    let mut payload = vec![0u8; payload_size];
    SplitMix::new(seed).fill(&mut payload);
    let release = format!("NAME={label}\nSEED={seed}\n");
    let tar = tar_of(&[
        (format!("etc/{label}-release"), release.as_bytes()),
        (format!("usr/share/{label}/payload.bin"), &payload),
    ]);
    let diff_id = sha256_digest(&tar);
    // Stored deflate blocks: the payload is random, so compressing would gain nothing, and a
    // benchmark generating gigabytes should not wait on a compressor. Still real gzip, which
    // is all a registry client sees.
    let mut gz = GzEncoder::new(Vec::new(), Compression::none());
    gz.write_all(&tar).expect("gzip into memory");
    let gzipped = gz.finish().expect("gzip into memory");
    Layer {
        blob: Blob::new(family.layer(), gzipped),
        diff_id,
    }
}

/// A ustar archive of regular files (with their parent directories), root-owned, fixed mtime.
fn tar_of(files: &[(String, &[u8])]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut dirs_done: Vec<String> = Vec::new();
    for (path, content) in files {
        let mut parent = String::new();
        for component in path.split('/').take(path.split('/').count() - 1) {
            parent.push_str(component);
            parent.push('/');
            if !dirs_done.contains(&parent) {
                append(&mut builder, &parent, tar::EntryType::Directory, 0o755, &[]);
                dirs_done.push(parent.clone());
            }
        }
        append(&mut builder, path, tar::EntryType::Regular, 0o644, content);
    }
    builder.into_inner().expect("tar into memory")
}

fn append(
    builder: &mut tar::Builder<Vec<u8>>,
    path: &str,
    kind: tar::EntryType,
    mode: u32,
    content: &[u8],
) {
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(kind);
    header.set_mode(mode);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(EPOCH);
    header.set_size(content.len() as u64);
    builder
        .append_data(&mut header, path, content)
        .expect("tar into memory");
}

/// Pretty JSON with a 3-space indent.
fn json_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut out, formatter);
    serde::Serialize::serialize(value, &mut ser).expect("JSON into memory");
    out
}

/// The image config for `platform` over `layers`.
pub fn config(family: MediaFamily, label: &str, platform: Platform, layers: &[Layer]) -> Blob {
    let value = json!({
        "architecture": platform.architecture,
        "os": platform.os,
        "created": CREATED,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Entrypoint": [format!("/usr/bin/{label}")],
        },
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
        },
        "history": layers.iter().map(|_| json!({"created": CREATED, "created_by": label})).collect::<Vec<_>>(),
    });
    Blob::new(family.config(), json_bytes(&value))
}

/// A single-platform image manifest.
pub fn image_manifest(family: MediaFamily, config: &Blob, layers: &[Layer]) -> Blob {
    let value = json!({
        "schemaVersion": 2,
        "mediaType": family.manifest(),
        "config": config.descriptor(),
        "layers": layers.iter().map(|l| l.blob.descriptor()).collect::<Vec<_>>(),
    });
    Blob::new(family.manifest(), json_bytes(&value))
}

/// An index (OCI) or manifest list (Docker) over per-platform manifests.
pub fn index(family: MediaFamily, manifests: &[(Platform, &Blob)]) -> Blob {
    let entries: Vec<Value> = manifests
        .iter()
        .map(|(platform, manifest)| {
            let mut d = manifest.descriptor();
            d["platform"] = json!({"architecture": platform.architecture, "os": platform.os});
            d
        })
        .collect();
    let value = json!({
        "schemaVersion": 2,
        "mediaType": family.index(),
        "manifests": entries,
    });
    Blob::new(family.index(), json_bytes(&value))
}

/// Appends `blob` unless a blob with its digest is already there (a layer shared between
/// platforms is listed once).
fn push_unique(blobs: &mut Vec<Blob>, blob: Blob) {
    if !blobs.iter().any(|b| b.digest == blob.digest) {
        blobs.push(blob);
    }
}

/// A single-platform image whose tag points at its manifest.
pub fn single_image(
    name: &str,
    tag: &str,
    family: MediaFamily,
    platform: Platform,
    layers: Vec<Layer>,
) -> TestImage {
    let config = config(family, name, platform, &layers);
    let top = image_manifest(family, &config, &layers);
    let mut blobs = vec![config];
    for l in layers {
        push_unique(&mut blobs, l.blob);
    }
    TestImage {
        name: name.into(),
        tag: tag.into(),
        top,
        blobs,
    }
}

/// A multi-platform image whose tag points at an index over one manifest per platform.
pub fn multi_platform_image(
    name: &str,
    tag: &str,
    family: MediaFamily,
    per_platform: Vec<(Platform, Vec<Layer>)>,
) -> TestImage {
    let mut blobs = Vec::new();
    let mut manifests = Vec::new();
    for (platform, layers) in per_platform {
        let config = config(family, name, platform, &layers);
        manifests.push((platform, image_manifest(family, &config, &layers)));
        push_unique(&mut blobs, config);
        for l in layers {
            push_unique(&mut blobs, l.blob);
        }
    }
    let refs: Vec<(Platform, &Blob)> = manifests.iter().map(|(p, m)| (*p, m)).collect();
    let top = index(family, &refs);
    // Manifests first, so a pusher walking `blobs` in order still has to put the layers and
    // configs before the manifests that name them: it must sort by kind, not trust order.
    let mut all: Vec<Blob> = manifests.into_iter().map(|(_, m)| m).collect();
    all.append(&mut blobs);
    TestImage {
        name: name.into(),
        tag: tag.into(),
        top,
        blobs: all,
    }
}

/// Small layers: a few kilobytes each, so the whole set pushes and copies in a second or two.
const SMALL: usize = 3000;

/// The images a Kubespray-like list needs, small, covering every shape the bundler must handle:
///
/// - `pause:3.10`: an OCI index over linux/amd64 and linux/arm64 manifests;
/// - `library/nginx:1.28.2-alpine`: one Docker schema 2 manifest (linux/amd64);
/// - `coredns/coredns:v1.12.4`: one OCI manifest (linux/amd64);
/// - `calico/node:v3.31.5` and `calico/cni:v3.31.5`: Docker manifest lists over linux/amd64
///   and linux/arm64 that share exactly one layer blob (an arch-independent one, in both
///   platforms of both images); every other blob of theirs differs.
pub fn kubespray_like_set(seed: u64) -> Vec<TestImage> {
    use MediaFamily::{Docker, Oci};
    let s = |n: u64| seed.wrapping_mul(1000).wrapping_add(n);
    let per_arch = |family, label: &str, base: u64, extra: Option<&Layer>| {
        [LINUX_AMD64, LINUX_ARM64]
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                let own = layer(family, label, s(base + i as u64), SMALL);
                (p, std::iter::once(own).chain(extra.cloned()).collect())
            })
            .collect::<Vec<_>>()
    };
    let calico_shared = layer(Docker, "calico-licenses", s(50), SMALL);
    vec![
        multi_platform_image("pause", "3.10", Oci, per_arch(Oci, "pause", 10, None)),
        single_image(
            "library/nginx",
            "1.28.2-alpine",
            Docker,
            LINUX_AMD64,
            vec![
                layer(Docker, "alpine", s(20), SMALL),
                layer(Docker, "nginx", s(21), SMALL),
            ],
        ),
        single_image(
            "coredns/coredns",
            "v1.12.4",
            Oci,
            LINUX_AMD64,
            vec![layer(Oci, "coredns", s(30), SMALL)],
        ),
        multi_platform_image(
            "calico/node",
            "v3.31.5",
            Docker,
            per_arch(Docker, "calico-node", 40, Some(&calico_shared)),
        ),
        multi_platform_image(
            "calico/cni",
            "v3.31.5",
            Docker,
            per_arch(Docker, "calico-cni", 45, Some(&calico_shared)),
        ),
    ]
}

/// A bigger image for benchmarks: an OCI index over linux/amd64 and linux/arm64, each manifest
/// with `layer_count` layers of about `layer_size` bytes.
pub fn large_image(
    name: &str,
    tag: &str,
    seed: u64,
    layer_count: usize,
    layer_size: usize,
) -> TestImage {
    let per_platform = [LINUX_AMD64, LINUX_ARM64]
        .into_iter()
        .enumerate()
        .map(|(p, platform)| {
            let layers = (0..layer_count)
                .map(|i| {
                    let layer_seed = seed ^ ((p as u64) << 32 | i as u64).wrapping_mul(0x9E37_79B9);
                    layer(MediaFamily::Oci, name, layer_seed, layer_size)
                })
                .collect();
            (platform, layers)
        })
        .collect();
    multi_platform_image(name, tag, MediaFamily::Oci, per_platform)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let a = kubespray_like_set(7);
        let b = kubespray_like_set(7);
        let c = kubespray_like_set(8);
        for ((x, y), z) in a.iter().zip(&b).zip(&c) {
            assert_eq!(x.top, y.top, "{}", x.reference());
            assert_eq!(x.blobs, y.blobs, "{}", x.reference());
            assert_ne!(x.top.digest, z.top.digest, "{}", x.reference());
        }
    }

    #[test]
    fn set_has_every_shape_and_one_shared_layer() {
        let set = kubespray_like_set(1);
        let types: Vec<&str> = set.iter().map(|i| i.top.media_type.as_str()).collect();
        assert_eq!(
            types,
            [
                OCI_INDEX,
                DOCKER_MANIFEST,
                OCI_MANIFEST,
                DOCKER_MANIFEST_LIST,
                DOCKER_MANIFEST_LIST
            ]
        );
        let (node, cni) = (&set[3], &set[4]);
        let shared: Vec<&Blob> = node
            .layers()
            .filter(|l| cni.find(&l.digest).is_some())
            .collect();
        assert_eq!(shared.len(), 1);
        let node_layers: Vec<&Blob> = node.layers().collect();
        let node_others = node.blobs.iter().filter(|b| !node_layers.contains(b));
        assert!(
            node_others
                .into_iter()
                .all(|b| cni.find(&b.digest).is_none())
        );
        let pause = &set[0];
        assert!(pause.manifest_for(LINUX_ARM64).is_some());
        assert!(set[1].manifest_for(LINUX_AMD64).is_some());
        assert!(set[1].manifest_for(LINUX_ARM64).is_none());
    }

    #[test]
    fn every_descriptor_resolves_and_layers_match_diff_ids() {
        for image in kubespray_like_set(3)
            .iter()
            .chain([large_image("big", "1", 3, 2, 10_000)].iter())
        {
            for blob in image.all_blobs() {
                assert_eq!(blob.digest, sha256_digest(&blob.bytes));
                if !blob.is_manifest() {
                    continue;
                }
                let m: Value = serde_json::from_slice(&blob.bytes).unwrap();
                assert_eq!(m["mediaType"], blob.media_type.as_str());
                let mut descriptors: Vec<&Value> = Vec::new();
                descriptors.extend(m["manifests"].as_array().into_iter().flatten());
                descriptors.extend(m["layers"].as_array().into_iter().flatten());
                descriptors.extend(m.get("config"));
                for d in descriptors {
                    let target = image.find(d["digest"].as_str().unwrap()).unwrap();
                    assert_eq!(d["size"], target.bytes.len());
                    assert_eq!(d["mediaType"], target.media_type.as_str());
                }
                if let Some(config) = m.get("config") {
                    let config = image.find(config["digest"].as_str().unwrap()).unwrap();
                    let config: Value = serde_json::from_slice(&config.bytes).unwrap();
                    let diff_ids: Vec<String> = m["layers"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|l| {
                            let gz = &image.find(l["digest"].as_str().unwrap()).unwrap().bytes;
                            let mut tar = Vec::new();
                            flate2::read::GzDecoder::new(&gz[..])
                                .read_to_end(&mut tar)
                                .unwrap();
                            sha256_digest(&tar)
                        })
                        .collect();
                    assert_eq!(config["rootfs"]["diff_ids"], json!(diff_ids));
                }
            }
        }
    }

    #[test]
    fn layer_size_follows_the_parameter() {
        let l = layer(MediaFamily::Oci, "x", 1, 1 << 20);
        let size = l.blob.bytes.len();
        assert!((1 << 20..(1 << 20) + 8192).contains(&size), "{size}");
    }
}
