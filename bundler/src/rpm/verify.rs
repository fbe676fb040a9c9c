//! Signature checks against the release key file: package header signatures (one check per
//! package on tokio's blocking pool as each download completes) and the detached signature of
//! `repomd.xml`.
//!
//! A key file may hold several certificates, OpenPGP v4 and v6 (Rocky 10.2's holds the RSA
//! release key and a post-quantum v6 key). The release definition pins one or more of them by
//! fingerprint; the others are kept (the nodes' rpm reads the whole file) and reported. A
//! package passes when a signature by a pinned certificate verifies. Every signature it carries
//! by a certificate in the file is checked, and one that does not verify fails the package, so
//! a tampered second signature is not hidden behind a good first one; signatures by keys not in
//! the file cannot be checked and are ignored. The check returns every certificate whose
//! signature verified: what the manifest records as the repo's signers.

use std::path::Path;

use pgp::types::KeyDetails;
use rpm::signature::Verifying;
use sha2::Digest;

use super::RpmMetaError;
use super::rsa_ring::SignatureVerifier;

/// One certificate of the key file.
pub struct Certificate {
    /// Uppercase hex fingerprint of the primary key (40 digits for v4, 64 for v6).
    pub fingerprint: String,
    /// OpenPGP key version: 4 or 6.
    pub version: u8,
    /// Public-key algorithm, e.g. `RSA`, `MlDsa65Ed25519`.
    pub algorithm: String,
    /// The first user id, when it is UTF-8.
    pub user_id: Option<String>,
    /// The release definition (or `--gpg-key`) trusts this certificate to sign packages.
    pub pinned: bool,
    /// None when the rpm crate cannot verify with this algorithm.
    verifier: Option<SignatureVerifier>,
}

impl Certificate {
    /// True when signatures by this certificate can be checked.
    pub fn usable(&self) -> bool {
        self.verifier.is_some()
    }
}

/// The key file packages and metadata are checked against.
pub struct ReleaseKey {
    /// Every certificate in the file, in file order.
    pub certificates: Vec<Certificate>,
    /// Names exactly what a check depends on besides the package: sha256 over the key file's
    /// bytes, the pins and the form of the result. Keys the cache of check results
    /// ([`crate::fetch::Cache`]).
    pub check_id: String,
}

impl std::fmt::Debug for ReleaseKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReleaseKey")
            .field("pinned", &self.pinned())
            .field("check_id", &self.check_id)
            .finish_non_exhaustive()
    }
}

/// Uppercase hex without spaces, as fingerprints are compared and recorded.
pub fn normalize_fingerprint(fpr: &str) -> String {
    fpr.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase()
}

impl ReleaseKey {
    /// Load an ASCII-armored key file. `pins` are the fingerprints packages must be signed by
    /// (the release definition's); each must be a certificate in the file. `None` trusts every
    /// certificate in the file (a key file the operator gave with `--gpg-key`).
    pub fn load(path: &Path, pins: Option<&[String]>) -> Result<Self, RpmMetaError> {
        let armored = fs_err::read_to_string(path).map_err(|e| RpmMetaError::Key {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_armored(&armored, path, pins)
    }

    /// [`ReleaseKey::load`] for a key file already read; `path` is for messages.
    pub fn from_armored(
        armored: &str,
        path: &Path,
        pins: Option<&[String]>,
    ) -> Result<Self, RpmMetaError> {
        let bad = |reason: String| RpmMetaError::Key {
            path: path.to_path_buf(),
            reason,
        };
        let mut certificates = Vec::new();
        for block in armored_blocks(armored) {
            let (keys, _) = <pgp::composed::SignedPublicKey as pgp::composed::Deserializable>::from_string_many(block)
                .map_err(|e| bad(e.to_string()))?;
            for key in keys {
                let key = key.map_err(|e| bad(e.to_string()))?;
                let fpr = key.fingerprint();
                let fingerprint = hex::encode_upper(fpr.as_bytes());
                // The rpm crate loads only the algorithms it can verify with; `with_key`
                // fails for the others.
                let verifier = rpm::signature::pgp::Verifier::from_asc(block)
                    .and_then(|v| v.with_key(fpr.as_bytes()))
                    .ok()
                    .map(|v| SignatureVerifier::new(v, &key));
                certificates.push(Certificate {
                    version: u8::from(key.version()),
                    algorithm: format!("{:?}", key.algorithm()),
                    user_id: key
                        .details
                        .users
                        .first()
                        .and_then(|u| std::str::from_utf8(u.id.id()).ok())
                        .map(str::to_string),
                    pinned: pins.is_none(),
                    verifier,
                    fingerprint,
                });
            }
        }
        if certificates.is_empty() {
            return Err(bad("no OpenPGP public key in the file".into()));
        }
        let mut pinned: Vec<String> = Vec::new();
        for pin in pins.unwrap_or_default() {
            let pin = normalize_fingerprint(pin);
            hex::decode(&pin).map_err(|e| bad(format!("bad pinned fingerprint {pin}: {e}")))?;
            let Some(cert) = certificates.iter().position(|c| c.fingerprint == pin) else {
                return Err(bad(format!(
                    "the key file does not hold the pinned key {pin}; it holds {}",
                    describe_fingerprints(&certificates)
                )));
            };
            certificates[cert].pinned = true;
            pinned.push(pin);
        }
        if let Some(cert) = certificates.iter().find(|c| c.pinned && !c.usable()) {
            return Err(bad(format!(
                "the pinned key {} uses {}, which this bundler cannot verify",
                cert.fingerprint, cert.algorithm
            )));
        }
        if !certificates.iter().any(|c| c.pinned) {
            return Err(bad(
                "no key in the file can verify package signatures".into()
            ));
        }
        pinned.sort();
        let mut id = sha2::Sha256::new();
        id.update(armored.as_bytes());
        id.update([0]);
        id.update(pinned.join(",").as_bytes());
        // Results are every verified signer since the key file may hold several keys; the
        // records of the single-signer form are not read back as these.
        id.update(b"\0signers-v2");
        Ok(Self {
            certificates,
            check_id: hex::encode(id.finalize()),
        })
    }

    /// Fingerprints a package (and repomd.xml) must be signed by, in file order.
    pub fn pinned(&self) -> Vec<String> {
        self.certificates
            .iter()
            .filter(|c| c.pinned)
            .map(|c| c.fingerprint.clone())
            .collect()
    }

    /// The one certificate that can verify anything, when the file holds just one: every
    /// package that passes was signed by it, so its signers are known without the package.
    pub fn sole_signer(&self) -> Option<String> {
        let mut usable = self.certificates.iter().filter(|c| c.usable());
        match (usable.next(), usable.next()) {
            (Some(only), None) => Some(only.fingerprint.clone()),
            _ => None,
        }
    }

    /// Verify one package's header signatures; returns the fingerprints of the certificates
    /// whose signatures verified (at least one of them pinned).
    pub fn verify(&self, path: &Path, package: &str) -> Result<Vec<String>, RpmMetaError> {
        self.check(rpm::PackageMetadata::open(path), path, package)
    }

    /// [`ReleaseKey::verify`] for a package whose bytes are in memory (`path` is where they are
    /// stored, for messages).
    pub fn verify_bytes(
        &self,
        data: &[u8],
        path: &Path,
        package: &str,
    ) -> Result<Vec<String>, RpmMetaError> {
        self.check(rpm::PackageMetadata::parse(&mut &data[..]), path, package)
    }

    fn check(
        &self,
        meta: Result<rpm::PackageMetadata, rpm::Error>,
        path: &Path,
        package: &str,
    ) -> Result<Vec<String>, RpmMetaError> {
        let fail = |reason: String| RpmMetaError::Signature {
            package: package.to_string(),
            path: path.to_path_buf(),
            reason,
        };
        let meta = meta.map_err(|e| fail(e.to_string()))?;
        let infos = meta.signatures().map_err(|e| fail(e.to_string()))?;
        if infos.is_empty() {
            return Err(fail("the package is not signed".into()));
        }
        // For each signature, the certificate that verified it.
        let mut verified_by: Vec<Option<usize>> = vec![None; infos.len()];
        let mut broken = Vec::new();
        for (c, cert) in self.certificates.iter().enumerate() {
            let Some(verifier) = &cert.verifier else {
                continue;
            };
            let report = meta
                .check_signatures(verifier)
                .map_err(|e| fail(e.to_string()))?;
            report
                .digests
                .result()
                .map_err(|e| fail(format!("the header does not match its digest: {e}")))?;
            for (s, result) in report.signatures.iter().enumerate() {
                match &result.error {
                    None => verified_by[s] = Some(c),
                    Some(e) if cannot_check(e) => {}
                    Some(e) => broken.push(format!(
                        "its signature by {} does not verify ({})",
                        cert.fingerprint,
                        why_not(e)
                    )),
                }
            }
        }
        if !broken.is_empty() {
            return Err(fail(broken.join("; ")));
        }
        let mut signers: Vec<usize> = verified_by.iter().flatten().copied().collect();
        signers.sort_unstable();
        signers.dedup();
        if !signers.iter().any(|&c| self.certificates[c].pinned) {
            let by: Vec<String> = infos
                .iter()
                .zip(&verified_by)
                .map(|(info, by)| {
                    let who = info
                        .fingerprint()
                        .or(info.key_id())
                        .map_or_else(|| "an unnamed key".to_string(), str::to_ascii_uppercase);
                    match by {
                        Some(_) => format!("{who} (in the key file, not pinned)"),
                        None => format!("{who} (not in the key file)"),
                    }
                })
                .collect();
            return Err(fail(format!(
                "no signature by a pinned key: signed by {}; pinned: {}",
                by.join(", "),
                self.pinned().join(", ")
            )));
        }
        Ok(signers
            .into_iter()
            .map(|c| self.certificates[c].fingerprint.clone())
            .collect())
    }

    /// Check a detached ASCII-armored signature (`repomd.xml.asc`) over `data` against the
    /// pinned certificates; returns the fingerprint of the one that verified it, or why none did.
    pub fn verify_detached(&self, data: &[u8], armored: &[u8]) -> Result<String, String> {
        let mut raw = Vec::new();
        std::io::Read::read_to_end(
            &mut pgp::armor::Dearmor::new(std::io::BufReader::new(armored)),
            &mut raw,
        )
        .map_err(|e| format!("not an ASCII-armored OpenPGP signature: {e}"))?;
        let mut errors = Vec::new();
        for cert in self.certificates.iter().filter(|c| c.pinned) {
            let Some(verifier) = &cert.verifier else {
                continue;
            };
            match verifier.verify(data, &raw) {
                Ok(()) => return Ok(cert.fingerprint.clone()),
                Err(rpm::Error::KeyNotFoundError { .. }) => {}
                Err(e) => errors.push(format!("{}: {}", cert.fingerprint, why_not(&e))),
            }
        }
        Err(if errors.is_empty() {
            format!(
                "it is not signed by a pinned key ({})",
                self.pinned().join(", ")
            )
        } else {
            format!("the signature does not verify ({})", errors.join("; "))
        })
    }
}

/// Errors that mean a signature cannot be checked with a certificate (another key made it, or
/// its algorithm is unknown to us), as opposed to a signature that names the certificate and
/// does not verify.
fn cannot_check(e: &rpm::Error) -> bool {
    matches!(
        e,
        rpm::Error::KeyNotFoundError { .. }
            | rpm::Error::UnsupportedPGPKeyType(_)
            | rpm::Error::NoSignatureFound
            | rpm::Error::UnknownVersionSignature
    )
}

/// Why a signature that names a key does not verify, in words: the crypto library's own
/// message for a wrong hash is an assertion dump.
fn why_not(e: &rpm::Error) -> String {
    match e {
        rpm::Error::VerificationError { .. } => {
            "made over other bytes than these, or damaged".to_string()
        }
        other => other.to_string(),
    }
}

/// The armored blocks of a key file: upstream files may concatenate several.
fn armored_blocks(text: &str) -> Vec<&str> {
    const BEGIN: &str = "-----BEGIN PGP PUBLIC KEY BLOCK-----";
    let starts: Vec<usize> = text.match_indices(BEGIN).map(|(i, _)| i).collect();
    starts
        .iter()
        .enumerate()
        .map(|(n, &start)| &text[start..starts.get(n + 1).copied().unwrap_or(text.len())])
        .collect()
}

fn describe_fingerprints(certs: &[Certificate]) -> String {
    certs
        .iter()
        .map(|c| format!("{} (v{} {})", c.fingerprint, c.version, c.algorithm))
        .collect::<Vec<_>>()
        .join(", ")
}
