//! Ed25519 signatures over the exact bytes of `manifest.json`. The manifest holds the size and
//! sha256 of every payload file, so a valid signature covers the whole bundle.
//!
//! Key files are standard PEM so that other tools can read them:
//! - `PREFIX.key`: the secret key as PKCS#8 (`-----BEGIN PRIVATE KEY-----`), created mode 0600;
//! - `PREFIX.pub`: the public key as SubjectPublicKeyInfo (`-----BEGIN PUBLIC KEY-----`).
//!
//! `openssl pkey -in PREFIX.key -pubout` prints the same public key. The signature entry
//! `manifest.json.sig` holds the raw 64-byte signature.

use fs_err::os::unix::fs::OpenOptionsExt;
use std::io::Write;
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer};
use sha2::{Digest, Sha256};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::error::BundleError;

/// Length of the `manifest.json.sig` entry.
pub const SIGNATURE_LEN: usize = 64;

/// The two files `generate_keypair` wrote.
#[derive(Debug, Clone)]
pub struct KeyPairFiles {
    pub secret: PathBuf,
    pub public: PathBuf,
    /// Short fingerprint of the public key, see [`key_fingerprint`].
    pub fingerprint: String,
}

/// Writes a new key pair to `PREFIX.key` (0600) and `PREFIX.pub`; refuses to overwrite either.
pub fn generate_keypair(prefix: &Path) -> Result<KeyPairFiles, BundleError> {
    let secret_path = with_suffix(prefix, "key");
    let public_path = with_suffix(prefix, "pub");
    for path in [&secret_path, &public_path] {
        if path.exists() {
            return Err(BundleError::Key {
                path: path.clone(),
                reason: "already exists; refusing to overwrite a key (remove it first)".into(),
            });
        }
    }
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|e| BundleError::Key {
        path: secret_path.clone(),
        reason: format!("no randomness from the operating system: {e}"),
    })?;
    let key = SigningKey::from_bytes(&seed);
    let secret_pem = key
        .to_pkcs8_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| key_error(&secret_path, e))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(ed25519_dalek::pkcs8::spki::der::pem::LineEnding::LF)
        .map_err(|e| key_error(&public_path, e))?;

    write_new_file(&secret_path, secret_pem.as_bytes(), 0o600)?;
    write_new_file(&public_path, public_pem.as_bytes(), 0o644)?;
    Ok(KeyPairFiles {
        secret: secret_path,
        public: public_path,
        fingerprint: key_fingerprint(&key.verifying_key()),
    })
}

/// Reads a PKCS#8 PEM secret key written by [`generate_keypair`].
pub fn load_signing_key(path: &Path) -> Result<SigningKey, BundleError> {
    let text = read_key_text(path)?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| BundleError::Key {
        path: path.to_path_buf(),
        reason: format!("not an ed25519 PKCS#8 PEM secret key ({e})"),
    })
}

/// Reads a SubjectPublicKeyInfo PEM public key written by [`generate_keypair`].
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, BundleError> {
    let text = read_key_text(path)?;
    VerifyingKey::from_public_key_pem(&text).map_err(|e| BundleError::Key {
        path: path.to_path_buf(),
        reason: format!("not an ed25519 PEM public key ({e})"),
    })
}

/// Signs the exact manifest bytes.
pub fn sign_manifest(key: &SigningKey, manifest_bytes: &[u8]) -> [u8; SIGNATURE_LEN] {
    key.sign(manifest_bytes).to_bytes()
}

/// Checks a `manifest.json.sig` entry against the manifest bytes; the error says why it fails.
pub fn verify_manifest(
    key: &VerifyingKey,
    manifest_bytes: &[u8],
    signature: &[u8],
) -> Result<(), String> {
    let bytes: [u8; SIGNATURE_LEN] = signature.try_into().map_err(|_| {
        format!(
            "manifest.json.sig is {} bytes, an ed25519 signature is {SIGNATURE_LEN}",
            signature.len()
        )
    })?;
    key.verify_strict(manifest_bytes, &Signature::from_bytes(&bytes))
        .map_err(|_| {
            format!(
                "does not match key {}: the manifest was changed after signing or was signed \
                 with another key",
                key_fingerprint(key)
            )
        })
}

/// `sha256:` and the first 16 bytes (hex) of the sha256 of the raw public key: short enough to
/// read aloud, long enough to compare.
pub fn key_fingerprint(key: &VerifyingKey) -> String {
    let digest = Sha256::digest(key.as_bytes());
    format!("sha256:{}", hex::encode(&digest[..16]))
}

fn with_suffix(prefix: &Path, suffix: &str) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

fn read_key_text(path: &Path) -> Result<String, BundleError> {
    std::fs::read_to_string(path).map_err(|e| BundleError::Key {
        path: path.to_path_buf(),
        reason: format!("cannot read key file: {e}"),
    })
}

fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), BundleError> {
    let mut file = fs_err::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(BundleError::Fs)?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(BundleError::Fs)
}

fn key_error(path: &Path, e: impl std::fmt::Display) -> BundleError {
    BundleError::Key {
        path: path.to_path_buf(),
        reason: format!("cannot encode key: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn keypair_round_trip_and_modes() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("site");
        let files = generate_keypair(&prefix).unwrap();
        let mode = fs_err::metadata(&files.secret)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
        let secret = load_signing_key(&files.secret).unwrap();
        let public = load_verifying_key(&files.public).unwrap();
        assert_eq!(secret.verifying_key(), public);
        assert_eq!(files.fingerprint, key_fingerprint(&public));

        let sig = sign_manifest(&secret, b"{\"format\":1}\n");
        verify_manifest(&public, b"{\"format\":1}\n", &sig).unwrap();
        let err = verify_manifest(&public, b"{\"format\":1} \n", &sig).unwrap_err();
        assert!(err.contains("does not match"), "{err}");
        assert!(verify_manifest(&public, b"x", &sig[..10]).is_err());

        let again = generate_keypair(&prefix).unwrap_err();
        assert!(again.to_string().contains("already exists"), "{again}");
        assert!(load_verifying_key(&files.secret).is_err());
    }
}
