//! `repomd.xml.asc`, as Rocky signs every repo's metadata: a signature made by gpg with the
//! mirror's key over a repomd.xml without `<open-size>` (Rocky strips them before signing) lets
//! the build through and is recorded; an altered `repomd.xml` under the old
//! signature, a missing signature and a signature by another key each fail with exit status 3
//! naming the repo and the signature's URL, and write no bundle; `--no-gpgcheck` skips the
//! check and says so in the manifest. The other key is rpm-rs's Ed25519 v4 test key
//! (tests/fixtures/keys/v4).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bundle::progress::NoProgress;
use e2e::harness::assert_success as ok;
use e2e::mirror::{GeneratedMirror, MirrorSpec, generate_mirror};
use e2e::rpmgen::{TEST_KEY_FINGERPRINT, TEST_KEY_SECRET};
use e2e::server::{Faults, TestServer};
use e2e::workspace_bin;

const OTHER_KEY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/fixtures/keys/v4/rpm-testkey-v4-ed25519.secret"
);

/// A throwaway gpg home holding secret keys; its agent is stopped when dropped.
struct Gpg {
    home: tempfile::TempDir,
}

impl Gpg {
    fn new() -> Self {
        // Under /tmp: the agent's socket path must stay short.
        let home = tempfile::Builder::new()
            .prefix("gpg")
            .tempdir_in("/tmp")
            .unwrap();
        Self { home }
    }

    fn gpg(&self) -> Command {
        let mut cmd = Command::new("gpg");
        cmd.env("GNUPGHOME", self.home.path())
            .args(["--batch", "--yes", "--quiet"]);
        cmd
    }

    fn import(&self, secret: &Path) {
        ok(self.gpg().arg("--import").arg(secret).output().unwrap());
    }

    /// An armored detached signature of `file` by the key `fingerprint`, written to `sig`.
    fn sign(&self, fingerprint: &str, file: &Path, sig: &Path) {
        ok(self
            .gpg()
            .args(["--pinentry-mode", "loopback", "--passphrase", ""])
            .args(["--local-user", fingerprint, "--armor", "--detach-sign"])
            .arg("--output")
            .arg(sig)
            .arg(file)
            .output()
            .unwrap());
    }

    fn fingerprint_of(&self, secret: &Path) -> String {
        let out = ok(self
            .gpg()
            .args(["--show-keys", "--with-colons"])
            .arg(secret)
            .output()
            .unwrap());
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| {
                l.strip_prefix("fpr:")
                    .map(|r| r.trim_matches(':').to_string())
            })
            .expect("a fingerprint")
    }
}

impl Drop for Gpg {
    fn drop(&mut self) {
        let _ = Command::new("gpgconf")
            .env("GNUPGHOME", self.home.path())
            .args(["--kill", "gpg-agent"])
            .output();
    }
}

fn build(tmp: &Path, m: &GeneratedMirror, url: &str, out: &Path, more: &[&str]) -> Output {
    e2e::harness::rpm_only_build(&workspace_bin("bundler"))
        .args(["--no-installer", "--mirror", url])
        .arg("--gpg-key")
        .arg(&m.key_path)
        .arg("--cache")
        .arg(tmp.join("cache"))
        .arg("-o")
        .arg(out)
        .args(more)
        .output()
        .unwrap()
}

/// Exit status 3, an error naming the baseos repo and its signature URL, and no bundle.
fn refused(run: &Output, out: &Path, url: &str, why: &str) {
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{why}: {stderr}");
    assert!(stderr.contains("repo baseos/x86_64"), "{why}: {stderr}");
    let asc = format!("{url}/10/BaseOS/x86_64/os/repodata/repomd.xml.asc");
    assert!(stderr.contains(&asc), "{why}: {stderr}");
    assert!(!out.exists(), "{why}: no bundle is written");
    assert!(
        !out.with_extension("zst.sha256").exists(),
        "{why}: no checksum file either"
    );
}

#[test]
fn repomd_signatures_are_checked_before_the_metadata_is_used_public_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = MirrorSpec::small(tmp.path().join("mirror"));
    spec.filler_packages = 0;
    let m = generate_mirror(&spec).unwrap();
    let server = TestServer::start(&m.root, Faults::none()).unwrap();
    let url = server.url();
    let repodata: PathBuf = m.repo("BaseOS", "x86_64").path.join("repodata");
    let (repomd, asc) = (repodata.join("repomd.xml"), repodata.join("repomd.xml.asc"));

    let gpg = Gpg::new();
    let test_secret = tmp.path().join("test.secret.asc");
    fs_err::write(&test_secret, TEST_KEY_SECRET).unwrap();
    gpg.import(&test_secret);
    gpg.import(Path::new(OTHER_KEY));
    let other = gpg.fingerprint_of(Path::new(OTHER_KEY));
    assert_ne!(other, TEST_KEY_FINGERPRINT);

    // Signed by gpg with the mirror's key, the way Rocky's compose signs: accepted. Rocky's
    // sync strips `<open-size>` lines before signing, so the metadata goes without them.
    let stripped: String = fs_err::read_to_string(&repomd)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("<open-size>"))
        .map(|l| format!("{l}\n"))
        .collect();
    fs_err::write(&repomd, stripped).unwrap();
    gpg.sign(TEST_KEY_FINGERPRINT, &repomd, &asc);
    let out = tmp.path().join("good.tar.zst");
    ok(build(tmp.path(), &m, &url, &out, &[]));
    let manifest = bundle::read::verify(&out, None, &NoProgress).unwrap();
    let rpm = manifest.rpm.unwrap();
    for repo in &rpm.repos {
        assert_eq!(
            repo.metadata_signer.as_deref(),
            Some(TEST_KEY_FINGERPRINT),
            "{}",
            repo.id
        );
    }
    assert!(
        manifest
            .files
            .iter()
            .any(|f| f.path == "repos/baseos/x86_64/repodata/repomd.xml.asc"),
        "the signature travels with the metadata"
    );

    // repomd.xml altered (still valid XML) under the old signature: a mirror serving
    // metadata it did not get from Rocky.
    let original = fs_err::read_to_string(&repomd).unwrap();
    fs_err::write(&repomd, original.replace("</repomd>", "  \n</repomd>")).unwrap();
    let out = tmp.path().join("altered.tar.zst");
    refused(
        &build(tmp.path(), &m, &url, &out, &[]),
        &out,
        &url,
        "altered repomd.xml",
    );

    // --no-gpgcheck takes it, and the manifest says nothing was checked.
    let out = tmp.path().join("unchecked.tar.zst");
    ok(build(tmp.path(), &m, &url, &out, &["--no-gpgcheck"]));
    let manifest = bundle::read::verify(&out, None, &NoProgress).unwrap();
    let rpm = manifest.rpm.unwrap();
    assert!(!rpm.gpgcheck);
    assert!(rpm.repos.iter().all(|r| r.metadata_signer.is_none()));
    fs_err::write(&repomd, &original).unwrap();

    // No signature where the release definition says every repo has one.
    fs_err::remove_file(&asc).unwrap();
    let out = tmp.path().join("unsigned.tar.zst");
    let run = build(tmp.path(), &m, &url, &out, &[]);
    refused(&run, &out, &url, "missing repomd.xml.asc");
    assert!(String::from_utf8_lossy(&run.stderr).contains("has no signature"));

    // Signed, but by a key the mirror's key file does not hold.
    gpg.sign(&other, &repomd, &asc);
    let out = tmp.path().join("other.tar.zst");
    let run = build(tmp.path(), &m, &url, &out, &[]);
    refused(&run, &out, &url, "signature by another key");
    assert!(String::from_utf8_lossy(&run.stderr).contains("not signed by a pinned key"));
}
