//! Proves the upstream side of the container-image tests with real clients before the bundler
//! relies on it: generated images pushed into Debian's `docker-registry` come back byte-exact
//! through the token front, skopeo gets through its bearer tokens and blob redirects, reqwest (the
//! bundler's client) can walk the same flow by hand, and each injected fault breaks a real pull.

use std::path::Path;
use std::process::{Command, Output};

use e2e::authfront::{AuthFront, Fault, SERVICE};
use e2e::harness::run_ok;
use e2e::ociimage::{
    Blob, DOCKER_MANIFEST_LIST, LINUX_ARM64, OCI_INDEX, TestImage, kubespray_like_set,
    sha256_digest,
};
use e2e::registry::Registry;

/// A registry filled with the Kubespray-like set, and the token front before it.
fn upstream(seed: u64) -> (Registry, AuthFront, Vec<TestImage>) {
    let registry = Registry::start().expect("start docker-registry");
    let images = kubespray_like_set(seed);
    registry.push_all(&images).expect("push the test images");
    let front = AuthFront::start(&registry.url()).expect("start the token front");
    (registry, front, images)
}

fn skopeo(args: &[&str]) -> Output {
    // --insecure-policy: the test machine need not have /etc/containers/policy.json.
    Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("run skopeo (scripts/install-test-deps installs it)")
}

fn docker_ref(front: &AuthFront, image: &TestImage) -> String {
    format!("docker://{}/{}", front.host(), image.reference())
}

/// Every blob of `image` is in the `dir:` copy under its hex name (manifests of an index as
/// `<hex>.manifest.json`), with its exact bytes.
fn assert_dir_copy_has(dir: &Path, image: &TestImage) {
    let top = fs_err::read(dir.join("manifest.json")).unwrap();
    assert_eq!(
        sha256_digest(&top),
        image.top.digest,
        "{}",
        image.reference()
    );
    for blob in &image.blobs {
        let plain = dir.join(blob.hex());
        let path = if plain.exists() {
            plain
        } else {
            dir.join(format!("{}.manifest.json", blob.hex()))
        };
        let bytes = fs_err::read(&path).unwrap_or_else(|e| {
            panic!(
                "{}: {} missing from the copy: {e}",
                image.reference(),
                blob.digest
            )
        });
        assert_eq!(sha256_digest(&bytes), blob.digest, "{}", path.display());
    }
}

#[test]
fn skopeo_pulls_every_image_byte_exact_through_tokens_and_redirects() {
    let (_registry, front, images) = upstream(1);
    let work = tempfile::tempdir().unwrap();
    for image in &images {
        let reference = docker_ref(&front, image);
        let out = run_ok(Command::new("skopeo").args([
            "inspect",
            "--raw",
            "--tls-verify=false",
            &reference,
        ]));
        assert_eq!(
            out.stdout, image.top.bytes,
            "{reference}: raw manifest differs"
        );

        let dest = work.path().join(image.name.replace('/', "_"));
        let out = skopeo(&[
            "copy",
            "--all",
            "--src-tls-verify=false",
            &reference,
            &format!("dir:{}", dest.display()),
        ]);
        e2e::harness::assert_success(out);
        assert_dir_copy_has(&dest, image);
    }

    let stats = front.stats();
    assert!(stats.unauthorized() > 0, "no 401 challenge was sent");
    assert!(
        stats.token_requests() >= images.len() as u64,
        "tokens: {}",
        stats.token_requests()
    );
    for image in &images {
        for blob in image.blobs.iter().filter(|b| !b.is_manifest()) {
            let path = format!("/blobs/{}/{}", image.name, blob.digest);
            assert!(
                stats.requests("GET", &path) >= 1,
                "{path} never fetched from blob storage; saw {:#?}",
                stats.all_requests()
            );
        }
    }
    let non_manifest: usize = images
        .iter()
        .map(|i| i.blobs.iter().filter(|b| !b.is_manifest()).count())
        .sum();
    assert!(
        stats.redirects() >= non_manifest as u64,
        "redirects: {}",
        stats.redirects()
    );
}

#[test]
fn skopeo_picks_the_arm64_manifest_from_an_index() {
    let (_registry, front, images) = upstream(2);
    for image in images.iter().filter(|i| i.is_index()) {
        assert!([OCI_INDEX, DOCKER_MANIFEST_LIST].contains(&image.top.media_type.as_str()));
        let out = run_ok(Command::new("skopeo").args([
            "inspect",
            "--override-arch",
            "arm64",
            "--tls-verify=false",
            &docker_ref(&front, image),
        ]));
        let inspected: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(inspected["Architecture"], "arm64", "{}", image.reference());
        // `Digest` is the index's; the layers show which manifest was read.
        assert_eq!(inspected["Digest"], image.top.digest.as_str());
        let arm64: &Blob = image.manifest_for(LINUX_ARM64).unwrap();
        let arm64: serde_json::Value = serde_json::from_slice(&arm64.bytes).unwrap();
        let layers: Vec<&serde_json::Value> = arm64["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| &l["digest"])
            .collect();
        assert_eq!(
            inspected["Layers"],
            serde_json::json!(layers),
            "{}",
            image.reference()
        );
    }
}

#[test]
fn injected_faults_break_a_real_pull() {
    let (_registry, front, images) = upstream(3);
    let nginx = images.iter().find(|i| i.name == "library/nginx").unwrap();
    let layer = nginx.layers().next().unwrap();
    let blob_path = format!("/v2/{}/blobs/{}", nginx.name, layer.digest);
    let manifest_path = format!("/v2/{}/manifests/{}", nginx.name, nginx.tag);
    let work = tempfile::tempdir().unwrap();
    let copy = |n: usize| {
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &docker_ref(&front, nginx),
            &format!("dir:{}", work.path().join(n.to_string()).display()),
        ])
    };
    let stderr = |out: &Output| String::from_utf8_lossy(&out.stderr).into_owned();

    front.inject(&blob_path, Fault::CorruptBody);
    let out = copy(1);
    assert!(!out.status.success(), "a corrupt layer was accepted");
    assert!(
        stderr(&out).contains("Digest did not match"),
        "{}",
        stderr(&out)
    );

    front.inject(&blob_path, Fault::NotFound);
    let out = copy(2);
    assert!(!out.status.success(), "a missing layer was accepted");
    assert!(stderr(&out).contains("404"), "{}", stderr(&out));

    front.clear_faults();
    // containers/image refuses manifests over 4 MiB.
    front.inject(&manifest_path, Fault::Oversized(5 << 20));
    let out = copy(3);
    assert!(!out.status.success(), "an oversized manifest was accepted");
    assert!(
        stderr(&out).contains("maximum allowed size"),
        "{}",
        stderr(&out)
    );

    front.clear_faults();
    e2e::harness::assert_success(copy(4));
}

/// The bundler's client walks the flow by hand: challenge, token, manifest, redirected blob.
#[tokio::test]
async fn reqwest_follows_the_token_flow_and_the_redirect() {
    let (_registry, front, images) = upstream(4);
    let pause = &images[0];
    let client = reqwest::Client::new();
    let base = front.url();

    let ping = client.get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!(ping.status(), 401);
    let challenge = ping.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(
        challenge,
        format!("Bearer realm=\"{base}/token\",service=\"{SERVICE}\"")
    );

    let manifest_url = format!("{base}/v2/{}/manifests/{}", pause.name, pause.tag);
    let denied = client.get(&manifest_url).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    let challenge = denied.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.ends_with(",scope=\"repository:pause:pull\""),
        "{challenge}"
    );

    let token = client
        .get(format!("{base}/token"))
        .query(&[("service", SERVICE), ("scope", "repository:pause:pull")])
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let token: serde_json::Value = serde_json::from_slice(&token).unwrap();
    let token = token["token"].as_str().unwrap().to_string();

    let manifest = client
        .get(&manifest_url)
        .bearer_auth(&token)
        .header("Accept", OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200);
    assert_eq!(manifest.headers()["content-type"], OCI_INDEX);
    assert_eq!(
        manifest.headers()["docker-content-digest"],
        pause.top.digest.as_str()
    );
    assert_eq!(manifest.bytes().await.unwrap(), pause.top.bytes);

    let head = client
        .head(&manifest_url)
        .bearer_auth(&token)
        .header("Accept", OCI_INDEX)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(
        head.headers()["content-length"],
        pause.top.bytes.len().to_string().as_str()
    );
    assert_eq!(
        head.headers()["docker-content-digest"],
        pause.top.digest.as_str()
    );

    let layer = pause.layers().next().unwrap();
    let blob = client
        .get(format!("{base}/v2/{}/blobs/{}", pause.name, layer.digest))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(blob.status(), 200);
    assert!(
        blob.url().as_str().starts_with(&front.blob_storage_url()),
        "{}",
        blob.url()
    );
    assert_eq!(blob.bytes().await.unwrap(), layer.bytes);

    // A token for one repository opens no other.
    let other = format!("{base}/v2/calico/node/manifests/v3.31.5");
    let denied = client.get(other).bearer_auth(&token).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(front.stats().redirects(), 1);
    assert_eq!(front.stats().token_requests(), 1);
}
