//! Packages signed as Rocky signs them (RSA-4096, v4 signatures over SHA-256, here with the
//! project's RSA test key) through the bundler's check, whose RSA arithmetic is ring's: every
//! refusal the check made with the `rpm` crate's own verifier it still makes. For each package
//! the verdict is compared with two oracles: the `rpm` crate's verifier (what the bundler used
//! before) and Debian's rpm 4.18 (`rpmkeys -K`). Then `repomd.xml.asc` made with the same key.

use std::path::{Path, PathBuf};
use std::process::Command;

use bundler::rpm::verify::ReleaseKey;
use e2e::harness::assert_success as ok;
use e2e::rpmgen::{
    PackageSpec, RSA_TEST_KEY_FINGERPRINT, RSA_TEST_KEY_PUBLIC, RSA_TEST_KEY_SECRET,
    TEST_KEY_FINGERPRINT, TEST_KEY_PUBLIC, TEST_KEY_SECRET, detached_signature,
    write_package_signed,
};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/keys");

/// rpm-rs's RSA-4096 test key: an RSA key of the same size that the key file does not hold.
fn other_rsa_secret() -> String {
    fs_err::read_to_string(format!("{FIXTURES}/v4/rpm-testkey-v4-rsa4096.secret")).unwrap()
}

fn package(dir: &Path, name: &str, keys: &[&str]) -> PathBuf {
    let mut spec = PackageSpec::new(name, "1.0", "x86_64");
    // A header of a realistic size: a hundred files.
    spec.files = (0..100)
        .map(|i| (format!("/usr/lib/{name}/file{i}"), vec![b'x'; 10]))
        .collect();
    write_package_signed(&spec, dir, keys).unwrap()
}

/// The package at `from` with its one signature replaced by `edit(signature)`, written as
/// `name.rpm` in `dir`.
fn with_signature(from: &Path, dir: &Path, name: &str, edit: impl Fn(&mut Vec<u8>)) -> PathBuf {
    let mut pkg = rpm::Package::open(from).unwrap();
    let sigs = pkg.raw_signatures().unwrap();
    assert_eq!(sigs.len(), 1, "{}", from.display());
    let mut sig = sigs[0].to_vec();
    edit(&mut sig);
    pkg.clear_signatures().unwrap();
    pkg.apply_signature(sig).unwrap();
    let path = dir.join(format!("{name}.rpm"));
    pkg.write_file(&path).unwrap();
    path
}

/// Where the two bytes that repeat the digest's start sit in a v4 signature packet with a
/// two-byte new-format or legacy length (what the rpm crate writes).
fn left16_offset(sig: &[u8]) -> usize {
    let header = if sig[0] & 0x40 != 0 {
        if sig[1] < 192 { 2 } else { 3 }
    } else {
        [2, 3, 5][usize::from(sig[0] & 3)]
    };
    let body = &sig[header..];
    assert_eq!(body[0], 4, "a v4 signature");
    let hashed = usize::from(u16::from_be_bytes([body[4], body[5]]));
    let unhashed = usize::from(u16::from_be_bytes([body[6 + hashed], body[7 + hashed]]));
    header + 6 + hashed + 2 + unhashed
}

/// The verdict of the `rpm` crate's own verifier with the key file: what the bundler checked
/// with before ring did its RSA arithmetic.
fn rpm_crate_accepts(key_file: &str, rpm_path: &Path) -> bool {
    let verifier = rpm::signature::pgp::Verifier::from_asc(key_file).unwrap();
    let meta = rpm::PackageMetadata::open(rpm_path).unwrap();
    let Ok(report) = meta.check_signatures(&verifier) else {
        return false;
    };
    report.digests.result().is_ok()
        && !report.signatures.is_empty()
        && report.signatures.iter().all(|s| s.error.is_none())
}

/// `rpmkeys -Kv` with the key file imported into `db`: every check passes and a header
/// signature is among them (an unsigned package passes `-K` on its digests alone).
fn rpmkeys_accepts(db: &Path, rpm_path: &Path) -> bool {
    let out = Command::new("rpmkeys")
        .arg("--dbpath")
        .arg(db)
        .arg("-Kv")
        .arg(rpm_path)
        .output()
        .expect("rpmkeys runs");
    let text = String::from_utf8_lossy(&out.stdout);
    out.status.success()
        && text
            .lines()
            .any(|l| l.contains("Header V4 RSA/SHA256 Signature, key ID") && l.ends_with(": OK"))
}

#[test]
fn rsa_4096_packages_pass_and_every_refusal_stays_as_the_rpm_verifiers_make_it() {
    let tmp = tempfile::tempdir().unwrap();
    let key_path = tmp.path().join("RPM-GPG-KEY-rsa");
    fs_err::write(&key_path, RSA_TEST_KEY_PUBLIC).unwrap();
    let key = ReleaseKey::load(&key_path, Some(&[RSA_TEST_KEY_FINGERPRINT.to_string()])).unwrap();
    let dir = tmp.path().join("repo");
    let other = other_rsa_secret();

    let good = package(&dir, "good", &[RSA_TEST_KEY_SECRET]);
    let donor = package(&dir, "donor", &[RSA_TEST_KEY_SECRET]);
    let wrong_key = package(&dir, "wrongkey", &[&other]);
    let unsigned = package(&dir, "unsigned", &[]);
    // The signature value damaged: its last byte changed.
    let bad_value = with_signature(&good, &dir, "badvalue", |sig| {
        *sig.last_mut().unwrap() ^= 0x01;
    });
    // A good signature over another package's header.
    let donor_sig = rpm::Package::open(&donor)
        .unwrap()
        .raw_signatures()
        .unwrap()[0]
        .to_vec();
    let spliced = with_signature(&good, &dir, "spliced", |sig| *sig = donor_sig.clone());
    // The signature valid, but the two bytes that repeat the digest's start changed: the
    // `rpm` crate's verifier refuses that.
    let bad_left16 = with_signature(&good, &dir, "badleft16", |sig| {
        let at = left16_offset(sig);
        sig[at] ^= 0xFF;
    });
    // The header changed after signing: its digests and signature no longer match.
    let mut bytes = fs_err::read(&good).unwrap();
    let at = bytes
        .windows(b"Generated test package good".len())
        .position(|w| w == b"Generated test package good")
        .expect("summary in the header");
    bytes[at] = b'g';
    let tampered = dir.join("tampered.rpm");
    fs_err::write(&tampered, &bytes).unwrap();

    assert_eq!(
        key.verify(&good, "good").unwrap(),
        [RSA_TEST_KEY_FINGERPRINT]
    );
    let data = fs_err::read(&good).unwrap();
    assert_eq!(
        key.verify_bytes(&data, &good, "good").unwrap(),
        [RSA_TEST_KEY_FINGERPRINT]
    );

    let refusals: [(&Path, &str); 6] = [
        (&wrong_key, "(not in the key file)"),
        (&unsigned, "the package is not signed"),
        (&bad_value, "does not verify"),
        (&spliced, "does not verify"),
        (&bad_left16, "does not verify"),
        (&tampered, "does not match its digest"),
    ];
    for (rpm_path, reason) in refusals {
        let err = key.verify(rpm_path, "pkg").unwrap_err().to_string();
        assert!(err.contains(reason), "{}: {err}", rpm_path.display());
        let bytes = fs_err::read(rpm_path).unwrap();
        let err = key.verify_bytes(&bytes, rpm_path, "pkg").unwrap_err();
        assert!(err.to_string().contains(reason), "{err}");
    }

    // Both oracles agree on every package.
    let db = tmp.path().join("rpmdb");
    fs_err::create_dir_all(&db).unwrap();
    ok(Command::new("rpmkeys")
        .arg("--dbpath")
        .arg(&db)
        .arg("--import")
        .arg(&key_path)
        .output()
        .unwrap());
    for (rpm_path, accepted) in [
        (&good, true),
        (&wrong_key, false),
        (&unsigned, false),
        (&bad_value, false),
        (&spliced, false),
        (&tampered, false),
    ] {
        let name = rpm_path.display();
        assert_eq!(
            rpm_crate_accepts(RSA_TEST_KEY_PUBLIC, rpm_path),
            accepted,
            "rpm crate on {name}"
        );
        assert_eq!(
            rpmkeys_accepts(&db, rpm_path),
            accepted,
            "rpmkeys on {name}"
        );
    }
    // rpm 4.18 does not look at the repeated digest bytes; the rpm crate's verifier does, and
    // so does the bundler.
    assert!(!rpm_crate_accepts(RSA_TEST_KEY_PUBLIC, &bad_left16));
}

#[test]
fn rsa_and_ed25519_keys_in_one_file_each_verify_their_own_packages() {
    let tmp = tempfile::tempdir().unwrap();
    let key_path = tmp.path().join("RPM-GPG-KEY-two");
    fs_err::write(
        &key_path,
        format!("{RSA_TEST_KEY_PUBLIC}\n{TEST_KEY_PUBLIC}"),
    )
    .unwrap();
    let dir = tmp.path().join("repo");
    let rsa = package(&dir, "rsa", &[RSA_TEST_KEY_SECRET]);
    let ed = package(&dir, "ed", &[TEST_KEY_SECRET]);
    let both = package(&dir, "both", &[RSA_TEST_KEY_SECRET, TEST_KEY_SECRET]);

    let pin_rsa =
        ReleaseKey::load(&key_path, Some(&[RSA_TEST_KEY_FINGERPRINT.to_string()])).unwrap();
    assert_eq!(
        pin_rsa.verify(&rsa, "rsa").unwrap(),
        [RSA_TEST_KEY_FINGERPRINT]
    );
    assert_eq!(
        pin_rsa.verify(&both, "both").unwrap(),
        [RSA_TEST_KEY_FINGERPRINT, TEST_KEY_FINGERPRINT]
    );
    let err = pin_rsa.verify(&ed, "ed").unwrap_err().to_string();
    assert!(err.contains("in the key file, not pinned"), "{err}");

    // A good Ed25519 signature does not hide a broken RSA one beside it.
    let broken = with_two_signatures_first_damaged(&both, &dir);
    let err = pin_rsa.verify(&broken, "broken").unwrap_err().to_string();
    assert!(
        err.contains(&format!(
            "signature by {RSA_TEST_KEY_FINGERPRINT} does not verify"
        )),
        "{err}"
    );
}

/// `from` (signed RSA then Ed25519) with the RSA signature's value damaged.
fn with_two_signatures_first_damaged(from: &Path, dir: &Path) -> PathBuf {
    let mut pkg = rpm::Package::open(from).unwrap();
    let sigs: Vec<Vec<u8>> = pkg
        .raw_signatures()
        .unwrap()
        .iter()
        .map(|s| s.to_vec())
        .collect();
    assert_eq!(sigs.len(), 2);
    pkg.clear_signatures().unwrap();
    for (n, mut sig) in sigs.into_iter().enumerate() {
        if n == 0 {
            *sig.last_mut().unwrap() ^= 0x01;
        }
        pkg.apply_signature(sig).unwrap();
    }
    let path = dir.join("broken.rpm");
    pkg.write_file(&path).unwrap();
    path
}

#[test]
fn repomd_signed_with_the_rsa_key_is_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let key_path = tmp.path().join("RPM-GPG-KEY-rsa");
    fs_err::write(&key_path, RSA_TEST_KEY_PUBLIC).unwrap();
    let key = ReleaseKey::load(&key_path, None).unwrap();
    let repomd = b"<repomd>generated</repomd>\n".to_vec();
    let asc = detached_signature(RSA_TEST_KEY_SECRET, &repomd).unwrap();
    assert_eq!(
        key.verify_detached(&repomd, asc.as_bytes()).unwrap(),
        RSA_TEST_KEY_FINGERPRINT
    );
    let mut changed = repomd.clone();
    changed[1] = b'R';
    let err = key.verify_detached(&changed, asc.as_bytes()).unwrap_err();
    assert!(err.contains("does not verify"), "{err}");
    let by_other = detached_signature(&other_rsa_secret(), &repomd).unwrap();
    let err = key
        .verify_detached(&repomd, by_other.as_bytes())
        .unwrap_err();
    assert!(err.contains("not signed by a pinned key"), "{err}");
}
