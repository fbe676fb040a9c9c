use std::collections::HashMap;

use bundle::manifest::{
    BundleManifest, FileEntry, FileKind, ImageEntry, ImageManifest, KubesprayDownloads,
};
use sha2::{Digest, Sha256};

use super::*;

/// A tiny bundle's worth of images, built from JSON documents and blobs held in memory.
#[derive(Default)]
struct Fixture {
    blobs: HashMap<String, Vec<u8>>,
    images: Vec<ImageEntry>,
    /// Hexes to leave out of the manifest's files (a blob the bundle "forgot").
    missing: Vec<String>,
}

fn hex_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Fixture {
    fn blob(&mut self, bytes: &[u8]) -> String {
        let hex = hex_of(bytes);
        self.blobs.insert(hex.clone(), bytes.to_vec());
        hex
    }

    /// An image manifest of `kind` with one config and the given layers; returns its hex.
    fn manifest(&mut self, kind: ManifestType, config: &str, layers: &[&str]) -> String {
        let desc = |hex: &str| serde_json::json!({"mediaType": "x", "digest": format!("sha256:{hex}"), "size": 1});
        let doc = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": kind.media_type(),
            "config": desc(config),
            "layers": layers.iter().map(|l| desc(l)).collect::<Vec<_>>(),
        });
        self.blob(&serde_json::to_vec(&doc).unwrap())
    }

    fn index(&mut self, kind: ManifestType, children: &[(&str, &str)]) -> String {
        let doc = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": kind.media_type(),
            "manifests": children.iter().map(|(hex, arch)| serde_json::json!({
                "mediaType": ManifestType::OciManifest.media_type(),
                "digest": format!("sha256:{hex}"),
                "size": 1,
                "platform": {"os": "linux", "architecture": arch},
            })).collect::<Vec<_>>(),
        });
        self.blob(&serde_json::to_vec(&doc).unwrap())
    }

    fn image(&mut self, reference: &str, name: &str, tag: &str, top: (&str, ManifestType)) {
        self.image_with(reference, name, tag, top, &[], &[]);
    }

    fn image_with(
        &mut self,
        reference: &str,
        name: &str,
        tag: &str,
        top: (&str, ManifestType),
        children: &[&str],
        platforms: &[&str],
    ) {
        let listed = |hex: &str, kind: ManifestType| ImageManifest {
            digest: format!("sha256:{hex}"),
            media_type: kind.media_type().into(),
            path: format!("{BUNDLE_BLOB_DIR}{hex}"),
        };
        let mut manifests = vec![listed(top.0, top.1)];
        manifests.extend(
            children
                .iter()
                .map(|c| listed(c, ManifestType::OciManifest)),
        );
        self.images.push(ImageEntry {
            reference: reference.into(),
            name: name.into(),
            tag: tag.into(),
            digest: format!("sha256:{}", top.0),
            media_type: top.1.media_type().into(),
            platforms: platforms.iter().map(|p| p.to_string()).collect(),
            manifests,
        });
    }

    fn bundle_manifest(&self) -> BundleManifest {
        let mut files: Vec<FileEntry> = self
            .blobs
            .iter()
            .filter(|(hex, _)| !self.missing.contains(hex))
            .map(|(hex, bytes)| FileEntry {
                path: format!("{BUNDLE_BLOB_DIR}{hex}"),
                size: bytes.len() as u64,
                sha256: hex.clone(),
                kind: FileKind::ImageBlob,
                origin: None,
                in_base: false,
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        BundleManifest {
            kubespray: Some(KubesprayDownloads {
                version: "2.31.0".into(),
                files: vec![],
                images: self.images.clone(),
            }),
            ..crate::test_manifest::manifest(files)
        }
    }

    fn read(&self) -> impl Fn(&str) -> std::io::Result<Vec<u8>> + '_ {
        |hex| {
            self.blobs
                .get(hex)
                .cloned()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
        }
    }
}

/// pause (an OCI index for amd64 + arm64) and calico/node (a Docker manifest) sharing a layer.
fn two_images() -> (Fixture, [String; 5]) {
    let mut f = Fixture::default();
    let shared = f.blob(b"shared layer");
    let amd_cfg = f.blob(b"{\"architecture\":\"amd64\"}");
    let arm_cfg = f.blob(b"{\"architecture\":\"arm64\"}");
    let amd = f.manifest(ManifestType::OciManifest, &amd_cfg, &[&shared]);
    let arm = f.manifest(ManifestType::OciManifest, &arm_cfg, &[&shared]);
    let index = f.index(ManifestType::OciIndex, &[(&amd, "amd64"), (&arm, "arm64")]);
    f.image_with(
        "registry.k8s.io/pause:3.10",
        "pause",
        "3.10",
        (&index, ManifestType::OciIndex),
        &[&amd, &arm],
        &["linux/amd64", "linux/arm64"],
    );
    let node_cfg = f.blob(b"{\"os\":\"linux\"}");
    let own = f.blob(b"calico layer");
    let node = f.manifest(ManifestType::DockerManifest, &node_cfg, &[&shared, &own]);
    f.image(
        "quay.io/calico/node:v3.29.1",
        "calico/node",
        "v3.29.1",
        (&node, ManifestType::DockerManifest),
    );
    (f, [index, amd, arm, node, shared])
}

#[test]
fn names_and_tags_follow_the_distribution_grammar() {
    for ok in [
        "pause",
        "calico/node",
        "library/nginx",
        "a/b/c",
        "kube-vip/kube-vip",
        "x__y",
        "a.b",
        "a---b",
    ] {
        assert_eq!(check_name(ok), Ok(()), "{ok}");
    }
    for bad in [
        "", "..", "../etc", "/abs", "a//b", "a/", "Upper", "a..b", "-a", "a_", "a/./b", "a b",
        "a:b",
    ] {
        assert!(check_name(bad).is_err(), "{bad:?} accepted");
    }
    for ok in ["3.10", "v1.35.4", "latest", "_x", "1.0-alpine"] {
        assert_eq!(check_tag(ok), Ok(()), "{ok}");
    }
    for bad in ["", ".x", "-x", "a/b", "..", "a:b", &"x".repeat(129)] {
        assert!(check_tag(bad).is_err(), "{bad:?} accepted");
    }
    assert!(digest_hex("sha256:abc").is_err());
    assert!(digest_hex(&format!("sha512:{}", "a".repeat(64))).is_err());
    assert_eq!(
        digest_hex(&format!("sha256:{}", "a".repeat(64))),
        Ok(&*"a".repeat(64))
    );
}

#[test]
fn the_tree_links_each_name_to_exactly_what_it_needs() {
    let (f, [index, amd, arm, node, shared]) = two_images();
    let images = images_from_manifest(&f.bundle_manifest()).unwrap();
    assert_eq!(images.images.len(), 2);
    let content = check_content(&images, &f.read()).unwrap();
    let tree = tree(&images, &content).unwrap();
    let paths: Vec<&str> = tree.iter().map(|(p, _)| p.as_str()).collect();
    for expected in [
        format!("v2/pause/manifests/sha256:{index}.oci-index"),
        format!("v2/pause/manifests/sha256:{amd}.oci-manifest"),
        format!("v2/pause/manifests/sha256:{arm}.oci-manifest"),
        format!("v2/pause/blobs/sha256:{shared}"),
        "v2/pause/tags/list".to_string(),
        format!("v2/calico/node/manifests/sha256:{node}.docker-manifest"),
        format!("v2/calico/node/blobs/sha256:{shared}"),
        "v2/calico/node/tags/list".to_string(),
    ] {
        assert!(
            paths.contains(&expected.as_str()),
            "{expected} not in {paths:#?}"
        );
    }
    // pause: 3 manifests, 2 configs + 1 layer, tags list; calico/node: 1 manifest, config + 2
    // layers, tags list. Tags are routes in nginx, not files.
    assert_eq!(paths.len(), 3 + 3 + 1 + 1 + 3 + 1, "{paths:#?}");
    assert!(
        !paths
            .iter()
            .any(|p| p.starts_with("v2/pause/") && p.contains(&node)),
        "a name serves only its own manifests"
    );
    let tags = tree
        .iter()
        .find(|(p, _)| p == "v2/pause/tags/list")
        .unwrap();
    assert_eq!(
        tags.1,
        TreeSource::Text(b"{\"name\":\"pause\",\"tags\":[\"3.10\"]}\n".to_vec())
    );
    // Sizes count the shared layer once per image.
    let pause_bytes: u64 = [&index, &amd, &arm, &shared]
        .iter()
        .map(|h| f.blobs[h.as_str()].len() as u64)
        .sum::<u64>()
        + (b"{\"architecture\":\"amd64\"}".len() * 2) as u64;
    assert_eq!(content.bytes["pause:3.10"], pause_bytes);
    assert_eq!(
        tag_routes(&images),
        vec![
            (
                "/v2/calico/node/manifests/v3.29.1".to_string(),
                format!("/v2/calico/node/manifests/sha256:{node}")
            ),
            (
                "/v2/pause/manifests/3.10".to_string(),
                format!("/v2/pause/manifests/sha256:{index}")
            ),
        ]
    );
}

#[test]
fn hostile_names_and_tags_are_refused_naming_the_image() {
    for (name, tag) in [
        ("../../etc", "x"),
        ("/abs", "x"),
        ("pause", "../x"),
        ("Pause", "1"),
    ] {
        let (mut f, _) = two_images();
        f.images[0].name = name.into();
        f.images[0].tag = tag.into();
        let err = images_from_manifest(&f.bundle_manifest())
            .unwrap_err()
            .to_string();
        assert!(err.contains("registry.k8s.io/pause:3.10"), "{err}");
    }
}

#[test]
fn manifests_must_be_carried_small_and_named_by_their_digest() {
    let (f, [index, ..]) = two_images();
    let mut m = f.bundle_manifest();
    m.files.iter_mut().find(|e| e.sha256 == index).unwrap().size = MAX_MANIFEST_BYTES + 1;
    let err = images_from_manifest(&m).unwrap_err().to_string();
    assert!(err.contains("more than the 4194304 bytes"), "{err}");

    let (mut f, [index, ..]) = two_images();
    f.missing.push(index.clone());
    let err = images_from_manifest(&f.bundle_manifest())
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not among the bundle's files"), "{err}");

    let (f, _) = two_images();
    let mut m = f.bundle_manifest();
    m.kubespray.as_mut().unwrap().images[1].media_type =
        "application/vnd.docker.distribution.manifest.v1+prettyjws".into();
    let err = images_from_manifest(&m).unwrap_err().to_string();
    assert!(err.contains("quay.io/calico/node:v3.29.1"), "{err}");
}

#[test]
fn a_missing_layer_or_platform_manifest_is_found_in_the_content() {
    let (mut f, [.., shared]) = two_images();
    f.missing.push(shared.clone());
    let images = images_from_manifest(&f.bundle_manifest()).unwrap();
    let err = check_content(&images, &f.read()).unwrap_err().to_string();
    assert!(
        err.contains(&format!("references blob sha256:{shared}")),
        "{err}"
    );

    // The index keeps listing arm64, the image says it carries it, but does not list it.
    let (mut f, [_, _, arm, ..]) = two_images();
    f.images[0]
        .manifests
        .retain(|m| m.digest != format!("sha256:{arm}"));
    let images = images_from_manifest(&f.bundle_manifest()).unwrap();
    let err = check_content(&images, &f.read()).unwrap_err().to_string();
    assert!(err.contains("for a carried platform"), "{err}");

    // Carrying amd64 only is fine: the index's arm64 entry is simply not served.
    let (mut f, [_, _, arm, ..]) = two_images();
    f.images[0]
        .manifests
        .retain(|m| m.digest != format!("sha256:{arm}"));
    f.images[0].platforms = vec!["linux/amd64".into()];
    let images = images_from_manifest(&f.bundle_manifest()).unwrap();
    check_content(&images, &f.read()).unwrap();
}

#[test]
fn one_tag_with_two_digests_is_a_conflict_and_names_that_collide_are_refused() {
    let (mut f, [.., node, _]) = two_images();
    let mut twin = f.images[0].clone();
    twin.reference = "docker.io/pause:3.10".into();
    twin.digest = format!("sha256:{node}");
    twin.media_type = ManifestType::DockerManifest.media_type().into();
    twin.manifests = f.images[1].manifests.clone();
    f.images.push(twin);
    let err = images_from_manifest(&f.bundle_manifest())
        .unwrap_err()
        .to_string();
    assert!(err.contains("both served as pause:3.10"), "{err}");

    let (mut f, _) = two_images();
    let mut nested = f.images[1].clone();
    nested.name = "calico/node/tags/list".into();
    f.images.push(nested);
    let images = images_from_manifest(&f.bundle_manifest()).unwrap();
    let content = check_content(&images, &f.read()).unwrap();
    let err = tree(&images, &content).unwrap_err().to_string();
    assert!(err.contains("a file and a directory"), "{err}");
}
