//! `bundler build` pulls Kubespray's container images and files (issue 13, the online side),
//! against a real registry (Debian's `docker-registry`) behind a bearer-token front that
//! redirects blob downloads, and a test HTTP server as the files upstream: the bundle holds
//! every manifest byte-exact (digests equal upstream's), indexes narrowed to the target
//! platforms, blobs shared between images once, files pinned by their checksum; and hostile
//! upstreams (a blob that does not match its digest, a missing blob, an oversized manifest, a
//! file with the wrong checksum, an image name with `..`) fail the build naming the culprit.
//! And the whole way: the bundle `bundler` built, applied by `installer apply` and served by a
//! real nginx, gives skopeo every image with upstream's digests, containerd an image through the
//! hosts.toml that `installer node` wrote, and curl every file with its checksum.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bundle::progress::NoProgress;
use bundle::{BundleManifest, FileKind};
use e2e::authfront::{AuthFront, Fault};
use e2e::harness::{all_output, bundler, installer};
use e2e::ociimage::{TestImage, kubespray_like_set, sha256_digest};
use e2e::registry::Registry;
use e2e::server::{Faults, TestServer};
use sha2::{Digest, Sha256};

/// Where each generated image "comes from", as Kubespray names it.
fn upstream_reference(image: &TestImage) -> String {
    let host = match image.name.as_str() {
        "library/nginx" => "docker.io",
        n if n.starts_with("calico/") => "quay.io",
        _ => "registry.k8s.io",
    };
    format!("{host}/{}:{}", image.name, image.tag)
}

struct Upstream {
    _registry: Registry,
    front: AuthFront,
    files: TestServer,
    images: Vec<TestImage>,
    /// (URL as Kubespray names it, bytes) of every file.
    file_list: Vec<(String, Vec<u8>)>,
    dir: tempfile::TempDir,
}

fn upstream() -> Upstream {
    let registry = Registry::start().expect("start docker-registry");
    let images = kubespray_like_set(7);
    registry.push_all(&images).expect("push the test images");
    let front = AuthFront::start(&registry.url()).expect("start the token front");
    let dir = tempfile::tempdir().unwrap();
    let mut file_list = Vec::new();
    for (arch, seed) in [("amd64", 1u8), ("arm64", 2u8)] {
        for name in ["kubelet", "kubeadm"] {
            let path = format!("dl.k8s.io/release/v1.35.4/bin/linux/{arch}/{name}");
            let bytes: Vec<u8> = (0..200_000u32)
                .map(|i| (i as u8).wrapping_mul(seed).wrapping_add(name.len() as u8))
                .collect();
            let local = dir.path().join("files").join(&path);
            fs_err::create_dir_all(local.parent().unwrap()).unwrap();
            fs_err::write(&local, &bytes).unwrap();
            file_list.push((format!("https://{path}"), bytes));
        }
    }
    let files = TestServer::start(dir.path().join("files"), Faults::none()).unwrap();
    Upstream {
        _registry: registry,
        front,
        files,
        images,
        file_list,
        dir,
    }
}

/// The download lists (the shipped JSON form) for the upstream, with `tweak` applied.
fn lists(up: &Upstream, tweak: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let files: Vec<_> = up
        .file_list
        .iter()
        .map(|(url, bytes)| {
            let name = url.rsplit('/').next().unwrap();
            let arch = if url.contains("amd64") {
                "amd64"
            } else {
                "arm64"
            };
            serde_json::json!({
                "name": name, "arch": arch, "url": url,
                "sha256": hex::encode(Sha256::digest(bytes)),
            })
        })
        .collect();
    let images: Vec<_> = up
        .images
        .iter()
        .map(|i| serde_json::json!({ "name": i.name, "reference": upstream_reference(i) }))
        .collect();
    let mut value = serde_json::json!({
        "kubespray": "2.31.0", "files": files, "images": images,
    });
    tweak(&mut value);
    let path = up.dir.path().join(format!(
        "lists-{}.json",
        sha256_digest(value.to_string().as_bytes())
    ));
    fs_err::write(&path, serde_json::to_vec_pretty(&value).unwrap()).unwrap();
    path
}

fn build(up: &Upstream, lists: &Path, out: &Path, arches: &[&str]) -> Output {
    let mut cmd = bundler();
    cmd.args(["build", "--no-rpm", "--no-pypi", "--no-installer", "-q"])
        .arg("--download-lists")
        .arg(lists)
        .arg("--cache")
        .arg(up.dir.path().join("cache"))
        .arg("-o")
        .arg(out);
    for host in ["registry.k8s.io", "docker.io", "quay.io"] {
        cmd.arg("--registry-mirror")
            .arg(format!("{host}={}", up.front.url()));
    }
    cmd.arg("--files-mirror")
        .arg(format!("dl.k8s.io={}/dl.k8s.io", up.files.url()));
    for arch in arches {
        cmd.args(["--arch", arch]);
    }
    cmd.output().expect("run bundler")
}

fn verified(path: &Path) -> BundleManifest {
    bundle::read::verify(path, None, &NoProgress).unwrap()
}

#[test]
fn images_and_files_are_bundled_byte_exact_and_narrowed_to_the_target_platforms() {
    let up = upstream();
    let out = up.dir.path().join("b.tar.zst");
    let result = build(&up, &lists(&up, |_| {}), &out, &["x86_64", "aarch64"]);
    assert!(result.status.success(), "{}", all_output(&result));
    let manifest = verified(&out);
    let section = manifest.kubespray.as_ref().expect("a kubespray section");
    assert_eq!(section.version, "2.31.0");

    // Every image, under the name Kubespray's *_image_repo mapping gives it, with upstream's
    // top-level digest; every blob of it in the bundle once, with its digest as its sha256.
    assert_eq!(section.images.len(), up.images.len());
    let by_path: std::collections::HashMap<&str, &bundle::FileEntry> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    for image in &up.images {
        let entry = section
            .images
            .iter()
            .find(|e| e.reference == upstream_reference(image))
            .unwrap_or_else(|| panic!("{} missing", upstream_reference(image)));
        assert_eq!(entry.name, image.name);
        assert_eq!(entry.tag, image.tag);
        assert_eq!(entry.digest, image.top.digest, "{}", entry.reference);
        assert_eq!(entry.media_type, image.top.media_type);
        for blob in std::iter::once(&image.top).chain(&image.blobs) {
            let path = format!("images/blobs/sha256/{}", blob.hex());
            let file = by_path
                .get(path.as_str())
                .unwrap_or_else(|| panic!("{}: {path} missing", entry.reference));
            assert_eq!(file.sha256, blob.hex());
            assert_eq!(file.size, blob.bytes.len() as u64);
            let kind = if blob.is_manifest() {
                FileKind::ImageManifest
            } else {
                FileKind::ImageBlob
            };
            assert_eq!(file.kind, kind, "{path}");
        }
        if image.is_index() {
            assert_eq!(entry.platforms, ["linux/amd64", "linux/arm64"]);
        }
    }
    // The shared calico layer is one file.
    let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    let unique: BTreeSet<&str> = paths.iter().copied().collect();
    assert_eq!(paths.len(), unique.len());

    // Files at files/<original host>/<path>, pinned by the listed checksum, origin the
    // original URL (not the mirror's).
    assert_eq!(section.files.len(), up.file_list.len());
    for (url, bytes) in &up.file_list {
        let path = format!("files/{}", url.trim_start_matches("https://"));
        let file = by_path[path.as_str()];
        assert_eq!(file.kind, FileKind::Download);
        assert_eq!(file.sha256, hex::encode(Sha256::digest(bytes)));
        assert_eq!(file.origin.as_deref(), Some(url.as_str()));
    }

    // The bearer flow and the blob-storage redirects really happened.
    let stats = up.front.stats();
    assert!(stats.unauthorized() > 0 && stats.token_requests() > 0);
    assert!(stats.redirects() > 0);

    // One arch: indexes narrowed to it, the other platform's manifests never fetched.
    let before = stats.all_requests();
    let amd = up.dir.path().join("amd64.tar.zst");
    let result = build(&up, &lists(&up, |_| {}), &amd, &["x86_64"]);
    assert!(result.status.success(), "{}", all_output(&result));
    let manifest = verified(&amd);
    let section = manifest.kubespray.unwrap();
    let pause = section.images.iter().find(|i| i.name == "pause").unwrap();
    assert_eq!(pause.platforms, ["linux/amd64"]);
    let arm = up.images[0]
        .manifest_for(e2e::ociimage::LINUX_ARM64)
        .expect("pause has an arm64 manifest");
    assert!(
        !manifest.files.iter().any(|f| f.sha256 == arm.hex()),
        "the arm64 manifest was bundled"
    );
    assert!(section.files.iter().all(|f| f.arch == "amd64"));
    let after = stats.all_requests();
    let arm_path = format!("/v2/pause/manifests/{}", arm.digest);
    assert_eq!(
        after.get(&format!("GET {arm_path}")),
        before.get(&format!("GET {arm_path}")),
        "the arm64 manifest was fetched: {after:?}"
    );
}

#[test]
fn hostile_upstreams_fail_the_build_naming_what_was_wrong() {
    let up = upstream();
    let good = lists(&up, |_| {});
    let nginx = up
        .images
        .iter()
        .find(|i| i.name == "library/nginx")
        .unwrap();
    let layer = nginx.layers().last().unwrap().digest.clone();
    let blob_path = format!("/v2/library/nginx/blobs/{layer}");
    // (what, the fault to inject, the lists, the exit status, what the error must name)
    type Case<'a> = (&'a str, Box<dyn Fn() + 'a>, PathBuf, i32, String);
    let cases: Vec<Case> = vec![
        (
            "a blob whose bytes do not match its digest",
            Box::new(|| up.front.inject(&blob_path, Fault::CorruptBody)),
            good.clone(),
            3,
            layer.clone(),
        ),
        (
            "a manifest naming a blob the registry does not have",
            Box::new(|| up.front.inject(&blob_path, Fault::NotFound)),
            good.clone(),
            1,
            "404".into(),
        ),
        (
            "an oversized manifest",
            Box::new(|| {
                up.front.inject(
                    "/v2/coredns/coredns/manifests/v1.12.4",
                    Fault::Oversized(5 << 20),
                )
            }),
            good.clone(),
            3,
            "coredns".into(),
        ),
        (
            "an image name with ..",
            Box::new(|| {}),
            lists(&up, |v| {
                v["images"][0]["reference"] = "registry.k8s.io/../etc/passwd:1".into();
            }),
            2,
            "../etc/passwd".into(),
        ),
        (
            "a file whose checksum is not Kubespray's",
            Box::new(|| {}),
            lists(&up, |v| {
                v["files"][0]["sha256"] = "0".repeat(64).into();
            }),
            3,
            up.file_list[0].0.rsplit('/').next().unwrap().to_string(),
        ),
    ];
    for (i, (what, inject, lists, code, names)) in cases.into_iter().enumerate() {
        up.front.clear_faults();
        inject();
        let out = up.dir.path().join(format!("bad-{i}.tar.zst"));
        let cmd = build(&up, &lists, &out, &["x86_64"]);
        assert_eq!(
            cmd.status.code(),
            Some(code),
            "{what}: {}",
            all_output(&cmd)
        );
        assert!(
            all_output(&cmd).contains(&names),
            "{what}: {}",
            all_output(&cmd)
        );
        assert!(!out.exists(), "{what}: a bundle was written");
        // A fresh cache for the next case, so that nothing fetched here hides its fault.
        let _ = fs_err::remove_dir_all(up.dir.path().join("cache"));
    }
}

#[test]
fn built_bundle_applied_serves_skopeo_containerd_and_curl() {
    let up = upstream();
    let out = up.dir.path().join("b.tar.zst");
    let result = build(&up, &lists(&up, |_| {}), &out, &["x86_64", "aarch64"]);
    assert!(result.status.success(), "{}", all_output(&result));

    let root = up.dir.path().join("admin");
    let port = crate::harness::free_port();
    let site = crate::harness::loopback_site_file(up.dir.path(), port);
    e2e::harness::run_ok(&mut crate::harness::installer_apply(
        &out,
        &root,
        port,
        &["--site", site.to_str().unwrap()],
    ));
    let _nginx = crate::harness::Nginx::start(&root, port);
    let admin = format!("127.0.0.1:{port}");

    // skopeo, as a node's tools would: every image by the name the admin serves it under,
    // the top-level manifest byte-exact, every blob with its digest.
    for image in &up.images {
        let dest = up
            .dir
            .path()
            .join(format!("copy-{}", image.name.replace('/', "-")));
        let source = format!("docker://{admin}/{}:{}", image.name, image.tag);
        let copy = Command::new("skopeo")
            .args([
                "--insecure-policy",
                "copy",
                "--all",
                "--src-tls-verify=false",
            ])
            .arg(&source)
            .arg(format!("dir:{}", dest.display()))
            .output()
            .expect("run skopeo");
        assert!(copy.status.success(), "{source}: {}", all_output(&copy));
        let top = fs_err::read(dest.join("manifest.json")).unwrap();
        assert_eq!(sha256_digest(&top), image.top.digest, "{source}");
        for blob in &image.blobs {
            let plain = dest.join(blob.hex());
            let path = if plain.exists() {
                plain
            } else {
                dest.join(format!("{}.manifest.json", blob.hex()))
            };
            let bytes = fs_err::read(&path).unwrap_or_else(|e| panic!("{source}: {e}"));
            assert_eq!(sha256_digest(&bytes), blob.digest, "{source}");
        }
    }

    // containerd on a node pulls the upstream name through the admin.
    let node_root = up.dir.path().join("node");
    e2e::harness::run_ok(
        installer()
            .args(["node", "--admin", &admin, "--no-services", "--root"])
            .arg(&node_root),
    );
    let certs = node_root.join("etc/containerd/certs.d");
    let containerd_dir = tempfile::tempdir().unwrap();
    let containerd = e2e::containerd::Containerd::start(containerd_dir.path());
    let pause = up.images.iter().find(|i| i.name == "pause").unwrap();
    let pulled = containerd.pull_through(&certs, "registry.k8s.io/pause:3.10");
    assert!(pulled.status.success(), "ctr pull: {}", all_output(&pulled));
    let listed = all_output(&containerd.ctr(&["images", "ls"]));
    assert!(listed.contains(&pause.top.digest), "{listed}");

    // Every file of the files repo, with its checksum.
    for (url, bytes) in &up.file_list {
        let path = url.trim_start_matches("https://");
        let got = Command::new("curl")
            .args(["-fsS"])
            .arg(format!("http://{admin}/files/{path}"))
            .output()
            .unwrap();
        assert!(got.status.success(), "{path}: {}", all_output(&got));
        assert_eq!(Sha256::digest(&got.stdout), Sha256::digest(bytes), "{path}");
    }
}

#[test]
fn a_missing_kubespray_inventory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = bundler()
        .args(["build", "--no-rpm", "--no-pypi", "--no-installer", "-q"])
        .arg("--kubespray-inventory")
        .arg(dir.path().join("no-such-inventory"))
        .arg("--kubespray-tree")
        .arg(dir.path())
        .arg("-o")
        .arg(dir.path().join("b.tar.zst"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", all_output(&out));
    assert!(
        all_output(&out).contains("--kubespray-inventory")
            && all_output(&out).contains("no-such-inventory"),
        "{}",
        all_output(&out)
    );
}
