//! `installer apply` of a bundle with Kubespray's files and container images: the files repo
//! and the read-only registry, served by a real nginx through the generated conf.d file, give
//! `skopeo inspect` and `skopeo copy --all` every image with the generated digests, containerd
//! (`ctr images pull` through the hosts.toml files `installer node` wrote) pulls an upstream
//! name from the admin, and `curl` gets every file with its sha256. Hostile bundles (an image
//! name with `..`, a missing blob, an oversized manifest) are refused with exit 3 and change
//! nothing, and an apply killed while switching either tree ends, when rerun, as an
//! uninterrupted one.
//!
//! The images are made here, small and deterministic: real gzip tar layers whose configs carry
//! the right diff_ids (containerd unpacks them), one OCI index for linux/amd64 + linux/arm64,
//! one Docker schema 2 manifest and one OCI manifest sharing a layer.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::harness::*;
use bundle::manifest::{
    BundleManifest, DownloadFile, FileEntry, FileKind, ImageEntry, ImageManifest,
    KubesprayDownloads,
};
use e2e::containerd::Containerd;
use serde_json::json;
use sha2::{Digest, Sha256};

const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A gzip tar layer and its diff_id, from `(path, content)` pairs; fixed mtimes and owners.
struct Layer {
    gz: Vec<u8>,
    diff_id: String,
}

fn layer(files: &[(&str, &[u8])]) -> Layer {
    let mut tar = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_uid(0);
        header.set_gid(0);
        header.set_cksum();
        tar.append_data(&mut header, path, *content).unwrap();
    }
    let raw = tar.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&raw).unwrap();
    Layer {
        gz: gz.finish().unwrap(),
        diff_id: format!("sha256:{}", sha256_hex(&raw)),
    }
}

/// Images being generated: every manifest and blob by hex, and the manifest's image entries.
#[derive(Default)]
struct ImageSet {
    blobs: BTreeMap<String, (Vec<u8>, FileKind)>,
    images: Vec<ImageEntry>,
}

fn descriptor(media_type: &str, bytes: &[u8]) -> serde_json::Value {
    json!({"mediaType": media_type, "digest": format!("sha256:{}", sha256_hex(bytes)), "size": bytes.len()})
}

impl ImageSet {
    fn put(&mut self, bytes: Vec<u8>, kind: FileKind) -> String {
        let hex = sha256_hex(&bytes);
        self.blobs.insert(hex.clone(), (bytes, kind));
        hex
    }

    /// An image manifest (OCI or Docker) for `arch` over `layers`; returns its bytes.
    fn manifest(&mut self, docker: bool, arch: &str, layers: &[&Layer]) -> Vec<u8> {
        let config = serde_json::to_vec(&json!({
            "architecture": arch,
            "os": "linux",
            "config": {"Cmd": ["/pause"]},
            "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>()},
        }))
        .unwrap();
        let (manifest_type, config_type, layer_type) = if docker {
            (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER)
        } else {
            (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER)
        };
        let doc = json!({
            "schemaVersion": 2,
            "mediaType": manifest_type,
            "config": descriptor(config_type, &config),
            "layers": layers.iter().map(|l| descriptor(layer_type, &l.gz)).collect::<Vec<_>>(),
        });
        self.put(config, FileKind::ImageBlob);
        for l in layers {
            self.put(l.gz.clone(), FileKind::ImageBlob);
        }
        let bytes = serde_json::to_vec_pretty(&doc).unwrap();
        self.put(bytes.clone(), FileKind::ImageManifest);
        bytes
    }

    fn add(
        &mut self,
        reference: &str,
        name: &str,
        tag: &str,
        top: (&[u8], &str),
        children: &[(&[u8], &str)],
        platforms: &[&str],
    ) {
        let listed = |bytes: &[u8], media_type: &str| {
            let hex = sha256_hex(bytes);
            ImageManifest {
                digest: format!("sha256:{hex}"),
                media_type: media_type.into(),
                path: format!("images/blobs/sha256/{hex}"),
            }
        };
        let mut manifests = vec![listed(top.0, top.1)];
        manifests.extend(children.iter().map(|(b, t)| listed(b, t)));
        self.images.push(ImageEntry {
            reference: reference.into(),
            name: name.into(),
            tag: tag.into(),
            digest: format!("sha256:{}", sha256_hex(top.0)),
            media_type: top.1.into(),
            platforms: platforms.iter().map(|p| p.to_string()).collect(),
            manifests,
        });
    }
}

/// pause:3.10 as an OCI index (amd64 + arm64), library/nginx as a Docker schema 2 manifest and
/// calico/node as an OCI manifest; all three share the base layer.
fn generate_images() -> ImageSet {
    let mut set = ImageSet::default();
    let base = layer(&[("etc/os-release", b"NAME=kso-test\n")]);
    let pause_amd = layer(&[("pause", b"amd64 pause\n")]);
    let pause_arm = layer(&[("pause", b"arm64 pause\n")]);
    let nginx = layer(&[("usr/sbin/nginx", b"nginx\n")]);
    let calico = layer(&[("bin/calico-node", b"calico\n")]);
    let amd = set.manifest(false, "amd64", &[&base, &pause_amd]);
    let arm = set.manifest(false, "arm64", &[&base, &pause_arm]);
    let platform = |bytes: &[u8], arch: &str| {
        let mut d = descriptor(OCI_MANIFEST, bytes);
        d["platform"] = json!({"architecture": arch, "os": "linux"});
        d
    };
    let index = serde_json::to_vec_pretty(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [platform(&amd, "amd64"), platform(&arm, "arm64")],
    }))
    .unwrap();
    set.put(index.clone(), FileKind::ImageManifest);
    set.add(
        "registry.k8s.io/pause:3.10",
        "pause",
        "3.10",
        (&index, OCI_INDEX),
        &[(&amd, OCI_MANIFEST), (&arm, OCI_MANIFEST)],
        &["linux/amd64", "linux/arm64"],
    );
    let nginx_manifest = set.manifest(true, "amd64", &[&base, &nginx]);
    set.add(
        "docker.io/library/nginx:1.28.2-alpine",
        "library/nginx",
        "1.28.2-alpine",
        (&nginx_manifest, DOCKER_MANIFEST),
        &[],
        &["linux/amd64"],
    );
    let calico_manifest = set.manifest(false, "amd64", &[&base, &calico]);
    set.add(
        "quay.io/calico/node:v3.29.1",
        "calico/node",
        "v3.29.1",
        (&calico_manifest, OCI_MANIFEST),
        &[],
        &["linux/amd64"],
    );
    set
}

/// Kubespray's downloads: `(url, content)`.
fn downloads(extra: bool) -> Vec<(String, Vec<u8>)> {
    let mut files = vec![
        (
            "https://dl.k8s.io/release/v1.35.4/bin/linux/amd64/kubelet".to_string(),
            b"kubelet binary\n".repeat(5000),
        ),
        (
            "https://github.com/containernetworking/plugins/releases/download/v1.6.2/cni-plugins-linux-amd64-v1.6.2.tgz".to_string(),
            b"cni plugins\n".repeat(300),
        ),
        (
            "https://get.helm.sh/helm-v3.16.4-linux-amd64.tar.gz".to_string(),
            b"helm\n".to_vec(),
        ),
    ];
    if extra {
        files.push((
            "https://storage.googleapis.com/cri-o/artifacts/cri-o.amd64.v1.32.0.tar.gz".to_string(),
            b"cri-o\n".to_vec(),
        ));
    }
    files
}

/// Writes the bundle: downloads under `files/<host>/<path>`, every manifest and blob once under
/// `images/blobs/sha256/`, and the kubespray section describing them.
fn write_images_bundle(work: &Path, set: &ImageSet, files: &[(String, Vec<u8>)]) -> PathBuf {
    let tree = work.join("tree");
    let _ = fs_err::remove_dir_all(&tree);
    let mut manifest: BundleManifest = base_manifest("2026-12-01T00:00:00Z");
    let mut entries = Vec::new();
    let mut sources = Vec::new();
    let mut add = |path: String, bytes: &[u8], kind: FileKind, origin: Option<String>| {
        let on_disk = tree.join(&path);
        fs_err::create_dir_all(on_disk.parent().unwrap()).unwrap();
        fs_err::write(&on_disk, bytes).unwrap();
        entries.push(FileEntry {
            path,
            size: bytes.len() as u64,
            sha256: sha256_hex(bytes),
            kind,
            origin,
            in_base: false,
        });
        sources.push(on_disk);
    };
    let mut download_list = Vec::new();
    for (url, bytes) in files {
        let path = format!("files/{}", url.strip_prefix("https://").unwrap());
        add(path.clone(), bytes, FileKind::Download, Some(url.clone()));
        download_list.push(DownloadFile {
            name: url.rsplit('/').next().unwrap().to_string(),
            arch: "amd64".into(),
            url: url.clone(),
            path,
        });
    }
    for (hex, (bytes, kind)) in &set.blobs {
        add(format!("images/blobs/sha256/{hex}"), bytes, *kind, None);
    }
    manifest.kubespray = Some(KubesprayDownloads {
        version: "2.31.0".into(),
        files: download_list,
        images: set.images.clone(),
    });
    manifest.files = entries;
    bundle::write::finalize(&mut manifest);
    let output = work.join("bundle.tar.zst");
    bundle::write::write_bundle(
        &output,
        &manifest,
        &sources,
        &bundle::write::WriteOptions::default(),
        &bundle::NoProgress,
    )
    .unwrap();
    output
}

/// A site on loopback: the admin is 127.0.0.1 with nginx on `port`; named and chronyd on ports
/// nothing listens on (status reports them down, which these tests do not look at).
fn require_tool(name: &str) {
    assert!(
        Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success(),
        "{name} is not installed: run scripts/install-test-deps"
    );
}

/// `curl` GET (`-D -`) or HEAD (`-I`): status, lowercased headers and body.
fn http(method: &str, url: &str) -> (u16, BTreeMap<String, String>, Vec<u8>) {
    let mut cmd = Command::new("curl");
    cmd.arg("-sS");
    if method == "HEAD" {
        cmd.arg("-I");
    } else {
        cmd.args(["-D", "-"]);
    }
    let out = run_ok(cmd.arg(url)).stdout;
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..end]).to_string();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (
        status,
        headers,
        out.get(end + 4..).unwrap_or_default().to_vec(),
    )
}

#[test]
fn apply_serves_files_and_images_to_skopeo_containerd_and_curl() {
    for tool in ["nginx", "skopeo", "containerd", "ctr", "curl"] {
        require_tool(tool);
    }
    let work = tempfile::tempdir().unwrap();
    let set = generate_images();
    let files = downloads(false);
    let bundle = write_images_bundle(work.path(), &set, &files);
    let root = work.path().join("admin");
    let port = free_port();
    let site = loopback_site_file(work.path(), port);
    let site_arg = ["--site", site.to_str().unwrap()];

    let inspect = run_ok(installer().arg("inspect").arg(&bundle));
    let inspect = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.contains("KUBESPRAY 2.31.0"), "{inspect}");
    assert!(inspect.contains("images:    3 ("), "{inspect}");
    assert!(inspect.contains("files:     3 ("), "{inspect}");

    let dry = run_ok(&mut installer_apply(
        &bundle,
        &root,
        port,
        &[&site_arg[..], &["--dry-run"]].concat(),
    ));
    let dry = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.contains("image registry    rebuild: +3 -0 images"),
        "{dry}"
    );
    assert!(
        dry.contains("files repo        rebuild: +3 -0 files"),
        "{dry}"
    );
    assert!(!root.join("data").exists(), "a dry run writes nothing");

    run_ok(&mut installer_apply(&bundle, &root, port, &site_arg));
    let data = root.join("data");
    // Every manifest and blob is stored once; the names hold hard links to the store.
    let nginx_manifest = &set.images[1].digest;
    let stored = data.join("registry/blobs/sha256");
    assert_eq!(fs_err::read_dir(&stored).unwrap().count(), set.blobs.len());
    let nginx_doc: serde_json::Value = serde_json::from_slice(
        &fs_err::read(stored.join(nginx_manifest.trim_start_matches("sha256:"))).unwrap(),
    )
    .unwrap();
    let base_hex = nginx_doc["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .trim_start_matches("sha256:")
        .to_string();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        fs_err::metadata(stored.join(&base_hex)).unwrap().nlink(),
        1 + 3,
        "the shared base layer: one store entry, linked by pause, library/nginx and calico/node"
    );

    let nginx = Nginx::start(&root, port);
    let registry = format!("127.0.0.1:{port}");

    // The API root, each manifest by tag and by digest (GET and HEAD), a tags list, and 404s
    // for what the bundle does not hold.
    let (status, headers, _) = http("GET", &nginx.url("/v2/"));
    assert_eq!(status, 200);
    assert_eq!(headers["docker-distribution-api-version"], "registry/2.0");
    for image in &set.images {
        for reference in [image.tag.clone(), image.digest.clone()] {
            let url = nginx.url(&format!("/v2/{}/manifests/{reference}", image.name));
            let (status, headers, body) = http("GET", &url);
            assert_eq!(status, 200, "{url}");
            assert_eq!(headers["content-type"], image.media_type, "{url}");
            assert_eq!(headers["docker-content-digest"], image.digest, "{url}");
            assert_eq!(
                format!("sha256:{}", sha256_hex(&body)),
                image.digest,
                "{url}"
            );
            let (status, headers, _) = http("HEAD", &url);
            assert_eq!(status, 200, "HEAD {url}");
            assert_eq!(headers["content-length"], body.len().to_string());
            assert_eq!(headers["docker-content-digest"], image.digest, "HEAD {url}");
        }
        let (status, _, body) = http("GET", &nginx.url(&format!("/v2/{}/tags/list", image.name)));
        assert_eq!(status, 200);
        let list: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(list, json!({"name": image.name, "tags": [image.tag]}));
    }
    let calico_hex = set.images[2].digest.trim_start_matches("sha256:");
    for missing in [
        "/v2/pause/manifests/3.9".to_string(),
        "/v2/nothere/manifests/3.10".to_string(),
        "/v2/pause/manifests/3.10.oci-index".to_string(),
        format!("/v2/pause/manifests/sha256:{calico_hex}"),
        format!("/v2/pause/blobs/sha256:{calico_hex}"),
        format!("/registry/blobs/sha256/{base_hex}"),
        "/v2/pause/../../registry/.installer-state.json".to_string(),
        "/files/.installer-state.json".to_string(),
    ] {
        let (status, _, _) = http("GET", &nginx.url(&missing));
        assert_eq!(status, 404, "{missing} must not be served");
    }

    // skopeo: inspect every image, copy each with every platform, digests as generated.
    for image in &set.images {
        let source = format!("docker://{registry}/{}:{}", image.name, image.tag);
        let raw = run_ok(Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &source,
        ]));
        assert_eq!(format!("sha256:{}", sha256_hex(&raw.stdout)), image.digest);
        let out = run_ok(Command::new("skopeo").args(["inspect", "--tls-verify=false", &source]));
        let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(inspected["Digest"], image.digest.as_str(), "{source}");
        assert_eq!(inspected["RepoTags"], json!([image.tag]), "{source}");

        let dest = work
            .path()
            .join(format!("copy-{}", image.name.replace('/', "-")));
        run_ok(Command::new("skopeo").args([
            "copy",
            "--all",
            "--src-tls-verify=false",
            &source,
            &format!("dir:{}", dest.display()),
        ]));
        let top = fs_err::read(dest.join("manifest.json")).unwrap();
        assert_eq!(format!("sha256:{}", sha256_hex(&top)), image.digest);
        for entry in fs_err::read_dir(&dest).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            if name.len() == 64 {
                assert_eq!(sha256_hex(&fs_err::read(&path).unwrap()), name);
                assert!(
                    set.blobs.contains_key(&name),
                    "{name} is one of the generated blobs"
                );
            }
        }
        for m in &image.manifests[1..] {
            let hex = m.digest.trim_start_matches("sha256:");
            let copied = fs_err::read(dest.join(format!("{hex}.manifest.json"))).unwrap();
            assert_eq!(sha256_hex(&copied), hex, "{source}: platform manifest kept");
        }
    }

    // A node: installer node writes containerd's host files, ctr pulls the upstream name
    // through them from the admin.
    let node_root = work.path().join("node");
    run_ok(
        installer()
            .args(["node", "--admin", &registry, "--no-services", "--root"])
            .arg(&node_root),
    );
    // Every host file the generator gives for this site, written as it gives it (its text is
    // pinned by the installer's snapshots), the admin's own registry name among them.
    let certs = node_root.join("etc/containerd/certs.d");
    let config = installer::site::SiteConfig::load(Some(&site), &[]).unwrap();
    let generated = installer::node::containerd::node_files(&config);
    assert!(
        generated
            .iter()
            .any(|(f, _)| f.path.ends_with(&format!("/{registry}/hosts.toml")))
    );
    for (file, text) in generated {
        assert_eq!(
            fs_err::read_to_string(node_root.join(file.path.trim_start_matches('/'))).unwrap(),
            text,
            "{}",
            file.path
        );
    }
    let containerd_dir = tempfile::tempdir().unwrap();
    let containerd = Containerd::start(containerd_dir.path());
    nginx.clear_access_log();
    let pull = containerd.pull_through(&certs, "registry.k8s.io/pause:3.10");
    assert!(
        pull.status.success(),
        "ctr pull: {}\n{}",
        String::from_utf8_lossy(&pull.stdout),
        String::from_utf8_lossy(&pull.stderr)
    );
    let listed = String::from_utf8_lossy(&containerd.ctr(&["images", "ls"]).stdout).to_string();
    assert!(
        listed
            .lines()
            .any(|l| l.starts_with("registry.k8s.io/pause:3.10")
                && l.contains(&set.images[0].digest)),
        "{listed}"
    );
    assert!(
        nginx.access_log().contains("/v2/pause/manifests/3.10"),
        "pulled from the admin: {}",
        nginx.access_log()
    );
    drop(containerd);

    // curl: every file of the files repo with its sha256.
    for (url, bytes) in &files {
        let path = url.strip_prefix("https://").unwrap();
        let out =
            run_ok(Command::new("curl").args(["-sSf", &nginx.url(&format!("/files/{path}"))]));
        assert_eq!(sha256_hex(&out.stdout), sha256_hex(bytes), "{path}");
    }

    // The Kubespray variables, status, the landing page.
    // The Kubespray variables, as YAML (Ansible's own parser, PyYAML) reads them.
    let vars = run_ok(
        Command::new("python3")
            .args([
                "-c",
                "import json, sys, yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
            ])
            .arg(data.join("node/kubespray-offline.yml")),
    );
    let vars: serde_json::Value = serde_json::from_slice(&vars.stdout).unwrap();
    assert_eq!(vars["registry_host"], registry.as_str());
    assert_eq!(vars["quay_image_repo"], "{{ registry_host }}");
    assert_eq!(vars["files_repo"], format!("http://{registry}/files"));
    assert_eq!(vars["dl_k8s_io_url"], "{{ files_repo }}/dl.k8s.io");
    assert_eq!(
        vars["containerd_registries_mirrors"][0],
        json!({"prefix": "registry.k8s.io", "server": "https://registry.k8s.io", "mirrors": [
            {"host": format!("http://{registry}"), "capabilities": ["pull", "resolve"], "skip_verify": true}
        ]})
    );
    let status = installer()
        .args(["status", "--json"])
        .args(site_arg)
        .arg("--root")
        .arg(&root)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    for name in ["registry", "registry-image", "files-repo"] {
        let check = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("no {name} check: {report}"));
        assert_eq!(check["passed"], true, "{check}");
    }
    let (_, _, page) = http("GET", &nginx.url("/"));
    let page = String::from_utf8_lossy(&page);
    assert!(
        page.contains(&format!(
            "<td>registry.k8s.io/pause:3.10</td><td>{registry}/pause:3.10</td><td>"
        )),
        "{page}"
    );
    assert!(
        !page.contains("<td>-</td>"),
        "sizes known after apply: {page}"
    );
    assert!(
        page.contains("dl.k8s.io/release/v1.35.4/bin/linux/amd64/kubelet</a>"),
        "{page}"
    );

    // A second apply of the same bundle changes nothing.
    let again = run_ok(&mut installer_apply(&bundle, &root, port, &site_arg));
    let again = String::from_utf8_lossy(&again.stdout);
    assert!(again.contains("no changes"), "{again}");
}

#[test]
fn hostile_image_bundles_are_refused_and_change_nothing() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("admin");
    let port = free_port();
    let good = write_images_bundle(
        &work.path().join("good"),
        &generate_images(),
        &downloads(false),
    );
    run_ok(&mut installer_apply(&good, &root, port, &[]));
    let before = tree_listing(&root);

    // Each hostile bundle also carries one more download, so a files repo switched before the
    // refusal would show.
    let mut dotdot = generate_images();
    dotdot.images[1].name = "../../etc".into();
    let mut missing_blob = generate_images();
    let calico = missing_blob.images[2]
        .digest
        .trim_start_matches("sha256:")
        .to_string();
    let doc: serde_json::Value = serde_json::from_slice(&missing_blob.blobs[&calico].0).unwrap();
    let own_layer = doc["layers"][1]["digest"].as_str().unwrap().to_string();
    missing_blob
        .blobs
        .remove(own_layer.trim_start_matches("sha256:"));
    let mut oversized = generate_images();
    let big = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": format!("sha256:{}", "0".repeat(64)), "size": 1},
        "layers": [],
        "annotations": {"padding": "x".repeat(4 << 20)},
    }))
    .unwrap();
    oversized.put(big.clone(), FileKind::ImageManifest);
    oversized.add(
        "docker.io/library/big:1",
        "library/big",
        "1",
        (&big, OCI_MANIFEST),
        &[],
        &[],
    );
    for (case, set, expected) in [
        ("dotdot", dotdot, "docker.io/library/nginx:1.28.2-alpine"),
        ("missing-blob", missing_blob, own_layer.as_str()),
        ("oversized", oversized, "more than the 4194304 bytes"),
    ] {
        let bundle = write_images_bundle(&work.path().join(case), &set, &downloads(true));
        let out = installer_apply(&bundle, &root, port, &[]).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(3), "{case}: {stderr}");
        assert!(stderr.contains(expected), "{case}: {stderr}");
        assert_eq!(tree_listing(&root), before, "{case}: the admin changed");
    }

    // A newer bundle replaces both trees: one more file, calico/node gone with its own blobs.
    let newer = without_calico();
    let bundle = write_images_bundle(&work.path().join("newer"), &newer, &downloads(true));
    let out = run_ok(&mut installer_apply(&bundle, &root, port, &[]));
    let out = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.contains("image registry    rebuild: +0 -1 images"),
        "{out}"
    );
    assert!(
        out.contains("files repo        rebuild: +1 -0 files"),
        "{out}"
    );
    let data = root.join("data");
    assert!(
        data.join("files/storage.googleapis.com/cri-o/artifacts/cri-o.amd64.v1.32.0.tar.gz")
            .is_file()
    );
    assert!(!data.join("registry/v2/calico").exists());
    assert_eq!(
        fs_err::read_dir(data.join("registry/blobs/sha256"))
            .unwrap()
            .count(),
        newer.blobs.len()
    );
    assert!(!data.join(".installer-staging").exists());
    let again = run_ok(&mut installer_apply(&bundle, &root, port, &[]));
    assert!(String::from_utf8_lossy(&again.stdout).contains("no changes"));
}

/// The images with calico/node and the blobs only it uses left out.
fn without_calico() -> ImageSet {
    let mut set = generate_images();
    let calico = set.images.pop().unwrap();
    let hex = calico.digest.trim_start_matches("sha256:").to_string();
    let doc: serde_json::Value = serde_json::from_slice(&set.blobs[&hex].0).unwrap();
    set.blobs.remove(&hex);
    for own in [&doc["config"]["digest"], &doc["layers"][1]["digest"]] {
        set.blobs
            .remove(own.as_str().unwrap().trim_start_matches("sha256:"));
    }
    set
}

#[test]
fn apply_killed_while_switching_files_or_registry_and_rerun_matches_uninterrupted() {
    let work = tempfile::tempdir().unwrap();
    let port = free_port();
    let old = write_images_bundle(
        &work.path().join("old"),
        &generate_images(),
        &downloads(false),
    );
    let new = write_images_bundle(
        &work.path().join("new"),
        &without_calico(),
        &downloads(true),
    );
    let want = uninterrupted_tree(work.path(), &old, &new, port);
    for point in [
        "unpacked",
        "files-staged",
        "files-switched",
        "registry-staged",
        "registry-switched",
        "file:/etc/nginx/conf.d/kubespray-offline.conf",
    ] {
        let root = work
            .path()
            .join(format!("root-{}", point.replace('/', "_")));
        run_ok(&mut installer_apply(&old, &root, port, &[]));
        apply_killed_at(&new, &root, port, point);
        run_ok(&mut installer_apply(&new, &root, port, &[]));
        assert_eq!(tree_listing(&root), want, "after a kill at {point}");
    }
}
