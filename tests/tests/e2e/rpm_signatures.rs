//! Package signatures against a key file holding a v4 RSA key and an OpenPGP v6 key, as Rocky
//! 10.2's does: packages signed v4 only, v6 only and both are accepted or refused as the pins
//! say, the recorded signers are the keys whose signatures verified, a bad second signature is
//! not hidden behind a good first one, and Debian's rpm 4.18 (`rpmkeys -K`, which reads v4 keys
//! and signatures only) agrees where it can read them. Then a whole build: the manifest records
//! each repo's signers and the bundle carries the whole key file.
//!
//! The keys are rpm-rs's test keys (tests/fixtures/keys): RSA-4096 v4 and ML-DSA-65+Ed25519
//! v6, with the Ed25519 v4 key as a key the file does not hold.

use std::path::{Path, PathBuf};
use std::process::Command;

use bundle::progress::NoProgress;
use bundler::rpm::RpmMetaError;
use bundler::rpm::verify::ReleaseKey;
use e2e::harness::assert_success as ok;
use e2e::harness::bundler;
use e2e::mirror::{MirrorKeys, MirrorSpec, generate_mirror};
use e2e::rpmgen::{PackageSpec, write_package_signed};
use e2e::server::{Faults, TestServer};
use e2e::workspace_bin;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/keys");
/// rpm-testkey-v4-rsa4096.
const V4: &str = "D996AEDC0D64D1E621B95AD2E964F9FB30D073B5";
/// rpm-testkey-v6-mldsa65-ed25519.
const V6: &str = "E52B3CB536BE98A1BD19500647E069157085E6F70608F0D32E0CDDD4720227E6";

fn fixture(name: &str) -> String {
    let dir = if name.contains("-v6-") { "v6" } else { "v4" };
    fs_err::read_to_string(format!("{FIXTURES}/{dir}/{name}")).unwrap()
}

/// The key file: the v4 RSA certificate and the v6 certificate, one armored block each.
fn key_file() -> String {
    fixture("rpm-testkey-v4-rsa4096.asc") + &fixture("rpm-testkey-v6-mldsa65-ed25519.asc")
}

fn v4_secret() -> String {
    fixture("rpm-testkey-v4-rsa4096.secret")
}

fn v6_secret() -> String {
    fixture("rpm-testkey-v6-mldsa65-ed25519.secret")
}

/// A package named `name` under `dir`, signed by each of `keys` in turn.
fn package(dir: &Path, name: &str, keys: &[&str]) -> PathBuf {
    write_package_signed(&PackageSpec::new(name, "1.0", "x86_64"), dir, keys).unwrap()
}

fn load(key: &Path, pins: Option<&[&str]>) -> Result<ReleaseKey, RpmMetaError> {
    let pins: Option<Vec<String>> = pins.map(|p| p.iter().map(|s| s.to_string()).collect());
    ReleaseKey::load(key, pins.as_deref())
}

/// Signers on success, else the reason.
fn check(key: &ReleaseKey, rpm: &Path) -> Result<Vec<String>, String> {
    key.verify(rpm, "pkg").map_err(|e| e.to_string())
}

/// `rpmkeys -K` with only the v4 key imported: Ok when rpm says the signatures are OK.
fn rpmkeys_checksig(dbpath: &Path, rpm: &Path) -> Result<String, String> {
    let out = Command::new("rpmkeys")
        .arg("--dbpath")
        .arg(dbpath)
        .arg("-Kv")
        .arg(rpm)
        .output()
        .expect("rpmkeys runs");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

#[test]
fn v4_v6_and_dual_signatures_against_pins_and_rpmkeys_public_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("RPM-GPG-KEY-test");
    fs_err::write(&keys, key_file()).unwrap();
    let (v4s, v6s) = (v4_secret(), v6_secret());
    let other = fixture("rpm-testkey-v4-ed25519.secret");
    let dir = tmp.path().join("repo");
    let v4_only = package(&dir, "v4only", &[&v4s]);
    let v6_only = package(&dir, "v6only", &[&v6s]);
    let both = package(&dir, "both", &[&v4s, &v6s]);
    let foreign = package(&dir, "foreign", &[&other]);
    let unsigned = package(&dir, "unsigned", &[]);

    // The file's certificates, as `bundler plan` reports them.
    let all = load(&keys, None).unwrap();
    let certs: Vec<(String, u8, bool)> = all
        .certificates
        .iter()
        .map(|c| (c.fingerprint.clone(), c.version, c.usable()))
        .collect();
    assert_eq!(certs, [(V4.into(), 4, true), (V6.into(), 6, true)]);

    // Pinned v4 (Rocky's RSA release key): the v6 signature is checked and recorded too.
    let pin_v4 = load(&keys, Some(&[V4])).unwrap();
    assert_eq!(check(&pin_v4, &v4_only), Ok(vec![V4.to_string()]));
    assert_eq!(
        check(&pin_v4, &both),
        Ok(vec![V4.to_string(), V6.to_string()])
    );
    let refused = check(&pin_v4, &v6_only).unwrap_err();
    assert!(
        refused.contains("no signature by a pinned key"),
        "{refused}"
    );
    assert!(refused.contains("in the key file, not pinned"), "{refused}");
    let refused = check(&pin_v4, &foreign).unwrap_err();
    assert!(refused.contains("not in the key file"), "{refused}");
    let refused = check(&pin_v4, &unsigned).unwrap_err();
    assert!(refused.contains("not signed"), "{refused}");

    // Pinned v6 only.
    let pin_v6 = load(&keys, Some(&[V6])).unwrap();
    assert_eq!(check(&pin_v6, &v6_only), Ok(vec![V6.to_string()]));
    assert_eq!(
        check(&pin_v6, &both),
        Ok(vec![V4.to_string(), V6.to_string()])
    );
    assert!(check(&pin_v6, &v4_only).is_err());

    // Both pinned (`fingerprints = [..]`), or every key of a `--gpg-key` file trusted.
    for key in [load(&keys, Some(&[V4, &V6.to_lowercase()])).unwrap(), all] {
        assert_eq!(check(&key, &v4_only), Ok(vec![V4.to_string()]));
        assert_eq!(check(&key, &v6_only), Ok(vec![V6.to_string()]));
        assert_eq!(check(&key, &both), Ok(vec![V4.to_string(), V6.to_string()]));
    }

    // A pin the file does not hold refuses the key file itself.
    let err = load(&keys, Some(&["58562246DEFF51EF0457D4A8F55ECD569E520ECC"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not hold the pinned key"), "{err}");

    // A good v4 signature does not hide a v6 signature that does not verify: take the v6
    // signature of another package and put it on this one.
    let mut spliced = rpm::Package::open(&v4_only).unwrap();
    let donor = rpm::Package::open(&v6_only).unwrap();
    let v6_sig = donor.raw_signatures().unwrap()[0].to_vec();
    spliced.apply_signature(v6_sig).unwrap();
    let spliced_path = dir.join("spliced.rpm");
    spliced.write_file(&spliced_path).unwrap();
    let refused = check(&pin_v4, &spliced_path).unwrap_err();
    assert!(
        refused.contains(&format!("signature by {V6} does not verify")),
        "{refused}"
    );

    // A header changed after signing fails its digest.
    let mut bytes = fs_err::read(&v4_only).unwrap();
    let at = bytes
        .windows(b"Generated test package v4only".len())
        .position(|w| w == b"Generated test package v4only")
        .expect("summary in the header");
    bytes[at] = b'g';
    let tampered = dir.join("tampered.rpm");
    fs_err::write(&tampered, &bytes).unwrap();
    assert!(check(&pin_v4, &tampered).is_err());

    // Debian's rpm 4.18 reads v4 keys and v4 signatures only: with the v4 key imported it
    // agrees on everything it can read.
    let db = tmp.path().join("rpmdb");
    fs_err::create_dir_all(&db).unwrap();
    let v4_public = tmp.path().join("v4.asc");
    fs_err::write(&v4_public, fixture("rpm-testkey-v4-rsa4096.asc")).unwrap();
    ok(Command::new("rpmkeys")
        .arg("--dbpath")
        .arg(&db)
        .arg("--import")
        .arg(&v4_public)
        .output()
        .unwrap());
    for accepted in [&v4_only, &both] {
        let said = rpmkeys_checksig(&db, accepted).unwrap();
        assert!(said.contains("Header V4 RSA/SHA256 Signature"), "{said}");
        assert!(check(&pin_v4, accepted).is_ok());
    }
    for refused in [&foreign, &tampered] {
        assert!(
            rpmkeys_checksig(&db, refused).is_err(),
            "{}",
            refused.display()
        );
        assert!(check(&pin_v4, refused).is_err());
    }
    // The v6-only package carries no signature rpm 4.18 can read: it does not call it signed.
    let said = rpmkeys_checksig(&db, &v6_only).unwrap_or_else(|e| e);
    assert!(!said.contains("Signature, key ID"), "{said}");
}

/// A Rocky-10.2-like release definition for a mirror on 127.0.0.1: the two-key file, the RSA
/// key pinned, signed metadata.
fn release_definition(dir: &Path, mirror: &str) -> PathBuf {
    let manifests = dir.join("manifests");
    fs_err::create_dir_all(&manifests).unwrap();
    fs_err::write(
        manifests.join("rocky-10.toml"),
        format!(
            r#"release = "10"
distro = "rocky"
mirrors = ["{mirror}"]
path = "{{release}}/{{dir}}/{{arch}}/os"
arches = ["x86_64"]
default_arches = ["x86_64"]
release_package = "rocky-release"

[key]
file = "RPM-GPG-KEY-Rocky-10"
fingerprints = ["{V4}"]
signed_metadata = true

[[repos]]
id = "baseos"
dir = "BaseOS"

[[repos]]
id = "appstream"
dir = "AppStream"

[[repos]]
id = "extras"
dir = "extras"
"#
        ),
    )
    .unwrap();
    manifests
}

/// A small mirror under `tmp` with `filler` packages besides the core ones, every package
/// signed with `packages` but those of extras, signed with `extras`, and the metadata with the
/// v4 key; served on 127.0.0.1, with a release definition pointing at it.
fn signed_mirror(
    tmp: &Path,
    filler: usize,
    packages: Vec<String>,
    extras: Vec<String>,
) -> (TestServer, PathBuf) {
    let mut spec = MirrorSpec::small(tmp.join("mirror"));
    spec.filler_packages = filler;
    spec.keys = MirrorKeys {
        file: "RPM-GPG-KEY-Rocky-10".into(),
        public: key_file(),
        packages,
        per_repo: vec![("extras".into(), extras)],
        metadata: v4_secret(),
    };
    let m = generate_mirror(&spec).unwrap();
    let server = TestServer::start(&m.root, Faults::none()).unwrap();
    let manifests = release_definition(tmp, &server.url());
    (server, manifests)
}

/// `bundler build` of the RPM part alone, from the release definitions in `manifests`, with
/// the cache under `tmp`, into `out`.
fn rpm_build(tmp: &Path, manifests: &Path, out: &Path) -> Command {
    let mut command = e2e::harness::rpm_only_build(&workspace_bin("bundler"));
    command
        .arg("--no-installer")
        .arg("--manifests")
        .arg(manifests)
        .arg("--cache")
        .arg(tmp.join("cache"))
        .arg("-o")
        .arg(out);
    command
}

#[test]
fn build_records_each_repos_signers_and_carries_the_whole_key_file_public_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let (v4s, v6s) = (v4_secret(), v6_secret());
    // RHEL 10.1's way: an RSA v4 signature and a v6 one on every package; extras has the RSA
    // one only.
    let (_server, manifests) = signed_mirror(tmp.path(), 4, vec![v4s.clone(), v6s], vec![v4s]);
    let out = tmp.path().join("b.tar.zst");
    let build = |out: &Path| ok(rpm_build(tmp.path(), &manifests, out).output().unwrap());
    build(&out);
    let manifest = bundle::read::verify(&out, None, &NoProgress).unwrap();
    let rpm = manifest.rpm.as_ref().unwrap();
    assert_eq!(rpm.pinned_fingerprints, [V4]);
    assert_eq!(rpm.key_fingerprint.as_deref(), Some(V4));
    assert_eq!(rpm.minor_release.as_deref(), Some("10.0"));
    let signers = |id: &str| {
        let repo = rpm.repos.iter().find(|r| r.id == id).unwrap();
        assert_eq!(repo.metadata_signer.as_deref(), Some(V4), "{id}");
        repo.signers.clone()
    };
    assert_eq!(signers("baseos"), [V4, V6]);
    assert_eq!(signers("appstream"), [V4, V6]);
    assert_eq!(signers("extras"), [V4]);

    // The bundle carries the upstream key file whole, so rpm on the nodes finds the v6 key.
    let tree = tmp.path().join("tree");
    bundle::read::extract(&out, &tree, None, &NoProgress).unwrap();
    assert_eq!(
        fs_err::read_to_string(tree.join("keys/RPM-GPG-KEY-Rocky-10")).unwrap(),
        key_file()
    );

    // A rebuild takes the signers from the cache's records of the checks and writes the same
    // manifest.
    let again = tmp.path().join("again.tar.zst");
    build(&again);
    let second = bundle::read::verify(&again, None, &NoProgress).unwrap();
    assert_eq!(second.rpm, manifest.rpm);

    // `bundler plan` names both keys and which one is pinned.
    let plan = ok(bundler()
        .args([
            "plan",
            "--release",
            "10",
            "--no-pypi",
            "--no-files",
            "--no-images",
        ])
        .arg("--manifests")
        .arg(&manifests)
        .arg("--cache")
        .arg(tmp.path().join("cache"))
        .output()
        .unwrap());
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.contains(&format!("key {V4} (v4 RSA")), "{text}");
    assert!(
        text.contains(&format!("key {V6} (v6 MlDsa65Ed25519")),
        "{text}"
    );
    assert!(text.contains("not pinned: kept in the bundle"), "{text}");
    assert!(text.contains("minor release in the repos: 10.0"), "{text}");
}

#[test]
fn a_package_signed_only_by_the_unpinned_v6_key_fails_the_build_public_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let (_server, manifests) = signed_mirror(tmp.path(), 0, vec![v4_secret()], vec![v6_secret()]);
    let out = tmp.path().join("b.tar.zst");
    let run = rpm_build(tmp.path(), &manifests, &out).output().unwrap();
    assert_eq!(run.status.code(), Some(3), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("no signature by a pinned key"), "{stderr}");
    assert!(!out.exists(), "no bundle is written");
}
