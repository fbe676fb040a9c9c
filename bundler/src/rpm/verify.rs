//! Header-signature verification of downloaded packages against the release key (or the key
//! given with `--gpg-key`); the build runs one check per package on tokio's blocking pool as
//! each download completes. An unsigned package, a signature by another key, or a
//! header that does not match its digests fails the build, naming the package.

use std::path::Path;

use sha2::Digest;

use super::RpmMetaError;

/// The key packages must be signed with.
pub struct ReleaseKey {
    verifier: rpm::signature::pgp::Verifier,
    /// Uppercase hex fingerprint the release definition pins, if any.
    pub pinned: Option<String>,
    /// Names exactly what a check depends on besides the package: sha256 over the key file's
    /// bytes and the pin. Keys the cache of check results ([`crate::fetch::Cache`]).
    pub check_id: String,
}

impl std::fmt::Debug for ReleaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseKey")
            .field("pinned", &self.pinned)
            .field("check_id", &self.check_id)
            .finish_non_exhaustive()
    }
}

impl ReleaseKey {
    /// Load an ASCII-armored public key. When `pin` is given (the release file's fingerprint),
    /// only the certificate with that fingerprint is accepted.
    pub fn load(path: &Path, pin: Option<&str>) -> Result<Self, RpmMetaError> {
        let bad = |reason: String| RpmMetaError::Key {
            path: path.to_path_buf(),
            reason,
        };
        let armored = fs_err::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let mut verifier =
            rpm::signature::pgp::Verifier::from_asc(&armored).map_err(|e| bad(e.to_string()))?;
        let pinned = match pin {
            Some(pin) => {
                let pin: String = pin.chars().filter(|c| !c.is_whitespace()).collect();
                let bytes = hex::decode(&pin)
                    .map_err(|e| bad(format!("bad pinned fingerprint {pin}: {e}")))?;
                verifier = verifier
                    .with_key(&bytes)
                    .map_err(|_| bad(format!("the key file does not hold the pinned key {pin}")))?;
                Some(pin.to_ascii_uppercase())
            }
            None => None,
        };
        let mut id = sha2::Sha256::new();
        id.update(armored.as_bytes());
        id.update([0]);
        id.update(pinned.as_deref().unwrap_or_default().as_bytes());
        Ok(Self {
            verifier,
            check_id: hex::encode(id.finalize()),
            pinned,
        })
    }

    /// Verify one package's header signature; returns the signer's fingerprint when the
    /// signature names it.
    pub fn verify(&self, path: &Path, package: &str) -> Result<Option<String>, RpmMetaError> {
        self.check(rpm::PackageMetadata::open(path), path, package)
    }

    /// [`ReleaseKey::verify`] for a package whose bytes are in memory (`path` is where they are
    /// stored, for messages).
    pub fn verify_bytes(
        &self,
        data: &[u8],
        path: &Path,
        package: &str,
    ) -> Result<Option<String>, RpmMetaError> {
        self.check(rpm::PackageMetadata::parse(&mut &data[..]), path, package)
    }

    /// Checks the signature of a parsed header (or reports why it could not be parsed).
    fn check(
        &self,
        meta: Result<rpm::PackageMetadata, rpm::Error>,
        path: &Path,
        package: &str,
    ) -> Result<Option<String>, RpmMetaError> {
        let fail = |reason: String| RpmMetaError::Signature {
            package: package.to_string(),
            path: path.to_path_buf(),
            reason,
        };
        let meta = meta.map_err(|e| fail(e.to_string()))?;
        let signatures = meta.signatures().map_err(|e| fail(e.to_string()))?;
        if signatures.is_empty() {
            return Err(fail("the package is not signed".into()));
        }
        meta.verify_signature(&self.verifier)
            .map_err(|e| fail(e.to_string()))?;
        Ok(signatures
            .iter()
            .find_map(|s| s.fingerprint().map(str::to_ascii_uppercase)))
    }
}
