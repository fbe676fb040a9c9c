//! The header-signature verifier the checks in [`super::verify`] run: RSA signatures, which
//! Rocky makes (RSA-4096 over SHA-256), are checked by `ring`; everything else goes to the
//! `rpm` crate's own verifier, because the `pgp` crate's RSA arithmetic was most of a cold
//! build's CPU on a Rocky-signed mirror (docs/BENCHMARKS.md, issue 18 signed mirror).
//!
//! Only success takes the fast path. A signature ring does not accept, or that is not plainly
//! a v4 binary RSA signature by a signing-capable key of the file, is handed to the `rpm`
//! verifier whole, so every refusal (and its message) is the one that verifier gives.

use std::io::Read;

use pgp::composed::SignedPublicKey;
use pgp::packet::{Signature, SubpacketData};
use pgp::types::{KeyDetails, PublicParams, SignatureBytes};
use rpm::signature::Verifying;
use rsa::traits::PublicKeyParts;

/// Verifies header and detached signatures for one certificate of the key file.
#[derive(Debug)]
pub struct SignatureVerifier {
    /// The `rpm` crate's verifier for this certificate: every case the fast path leaves.
    general: rpm::signature::pgp::Verifier,
    /// The certificate's RSA keys (primary or subkeys) that may sign, by fingerprint.
    rsa_keys: Vec<RsaKey>,
}

#[derive(Debug)]
struct RsaKey {
    fingerprint: Vec<u8>,
    /// The 8-byte key id, which older signatures name their issuer by.
    key_id: Vec<u8>,
    /// The certificate's primary key (not a subkey).
    primary: bool,
    /// Big-endian modulus and exponent, without leading zeros (as ring wants them).
    n: Vec<u8>,
    e: Vec<u8>,
}

impl SignatureVerifier {
    /// `general` is the `rpm` verifier loaded with `cert` alone.
    pub fn new(general: rpm::signature::pgp::Verifier, cert: &SignedPublicKey) -> Self {
        let mut rsa_keys = Vec::new();
        // A v6 certificate's keys make v6 signatures only; leave those to the general verifier.
        if cert.version() != pgp::types::KeyVersion::V4 {
            return Self { general, rsa_keys };
        }
        let primary_sigs = cert
            .details
            .direct_signatures
            .iter()
            .chain(cert.details.users.iter().flat_map(|u| u.signatures.iter()));
        if grants_signing(primary_sigs) {
            rsa_keys.extend(RsaKey::new(cert, true));
        }
        for sub in &cert.public_subkeys {
            if grants_signing(sub.signatures.iter()) {
                rsa_keys.extend(RsaKey::new(sub, false));
            }
        }
        Self { general, rsa_keys }
    }

    /// True when ring verified `signature` over `data`; false sends it to the general verifier.
    fn verified_by_ring(&self, data: &[u8], raw: &[u8]) -> bool {
        let Ok(signature) = rpm_signature_packet(raw) else {
            return false;
        };
        let Some(config) = signature.config() else {
            return false;
        };
        let params = match config.hash_alg {
            pgp::crypto::hash::HashAlgorithm::Sha256 => {
                &ring::signature::RSA_PKCS1_2048_8192_SHA256
            }
            pgp::crypto::hash::HashAlgorithm::Sha384 => {
                &ring::signature::RSA_PKCS1_2048_8192_SHA384
            }
            pgp::crypto::hash::HashAlgorithm::Sha512 => {
                &ring::signature::RSA_PKCS1_2048_8192_SHA512
            }
            _ => return false,
        };
        if signature.version() != pgp::packet::SignatureVersion::V4
            || signature.typ() != Some(pgp::packet::SignatureType::Binary)
            || config.pub_alg != pgp::crypto::public_key::PublicKeyAlgorithm::RSA
        {
            return false;
        }
        let issuers = signature.issuer_fingerprint();
        let key = if issuers.is_empty() {
            // Without an issuer fingerprint the rpm verifier tries primary keys only, and the
            // key id, when the signature names one, must match.
            let ids = signature.issuer_key_id();
            self.rsa_keys.iter().find(|k| {
                k.primary && (ids.is_empty() || ids.iter().any(|id| id.as_ref() == k.key_id))
            })
        } else {
            self.rsa_keys
                .iter()
                .find(|k| issuers.iter().any(|f| f.as_bytes() == k.fingerprint))
        };
        let Some(key) = key else {
            return false;
        };
        let (Some(SignatureBytes::Mpis(mpis)), Some(left16)) =
            (signature.signature(), signature.signed_hash_value())
        else {
            return false;
        };
        let [mpi] = &mpis[..] else {
            return false;
        };
        let Some(hashed) = v4_hashed_part(raw) else {
            return false;
        };
        // What an OpenPGP v4 signature is made over: the data, the hashed part of the packet
        // and a trailer with that part's length (RFC 9580, 5.2.4).
        let mut message = Vec::with_capacity(data.len() + hashed.len() + 6);
        message.extend_from_slice(data);
        message.extend_from_slice(hashed);
        message.extend_from_slice(&[4, 0xFF]);
        message.extend_from_slice(&(hashed.len() as u32).to_be_bytes());
        // The packet repeats the first two bytes of the digest; the general verifier refuses a
        // signature where they differ, so this one must too.
        let digest = ring::digest::digest(params_digest(config.hash_alg), &message);
        if digest.as_ref()[..2] != left16 {
            return false;
        }
        // OpenPGP drops the leading zero bytes of the signature value; ring wants it as long
        // as the modulus.
        let value = mpi.as_ref();
        if value.len() > key.n.len() {
            return false;
        }
        let mut padded = vec![0u8; key.n.len() - value.len()];
        padded.extend_from_slice(value);
        ring::signature::RsaPublicKeyComponents {
            n: &key.n,
            e: &key.e,
        }
        .verify(params, &message, &padded)
        .is_ok()
    }
}

impl Verifying for SignatureVerifier {
    type Signature = Vec<u8>;

    fn verify(&self, mut data: impl Read, signature: &[u8]) -> Result<(), rpm::Error> {
        let mut buf = Vec::new();
        data.read_to_end(&mut buf).map_err(rpm::Error::Io)?;
        if self.verified_by_ring(&buf, signature) {
            return Ok(());
        }
        self.general.verify(&buf[..], signature)
    }
}

impl RsaKey {
    fn new(key: &impl KeyDetails, primary: bool) -> Option<Self> {
        let PublicParams::RSA(rsa) = key.public_params() else {
            return None;
        };
        Some(Self {
            fingerprint: key.fingerprint().as_bytes().to_vec(),
            key_id: key.legacy_key_id().as_ref().to_vec(),
            primary,
            n: rsa.key.n().to_bytes_be(),
            e: rsa.key.e().to_bytes_be(),
        })
    }
}

fn params_digest(hash: pgp::crypto::hash::HashAlgorithm) -> &'static ring::digest::Algorithm {
    match hash {
        pgp::crypto::hash::HashAlgorithm::Sha384 => &ring::digest::SHA384,
        pgp::crypto::hash::HashAlgorithm::Sha512 => &ring::digest::SHA512,
        _ => &ring::digest::SHA256,
    }
}

/// The first packet of `raw`, as the `rpm` verifier reads it, when it is a signature.
fn rpm_signature_packet(raw: &[u8]) -> Result<Signature, ()> {
    let mut cursor = std::io::Cursor::new(raw);
    pgp::packet::PacketParser::new(&mut cursor)
        .find_map(|p| match p {
            Ok(pgp::packet::Packet::Signature(s)) => Some(s),
            _ => None,
        })
        .ok_or(())
}

/// The hashed part of a v4 signature packet (version to the end of the hashed subpackets),
/// taken from its bytes as signed rather than as the parser would write them again. None when
/// `raw` does not start with one v4 signature packet of definite length.
fn v4_hashed_part(raw: &[u8]) -> Option<&[u8]> {
    let tag = *raw.first()?;
    if tag & 0x80 == 0 {
        return None;
    }
    let header_len = if tag & 0x40 != 0 {
        // New format (RFC 9580, 4.2.1): tag 2 and a one, two or five byte length.
        if tag & 0x3F != 2 {
            return None;
        }
        match *raw.get(1)? {
            0..=191 => 2,
            192..=223 => 3,
            255 => 6,
            _ => return None,
        }
    } else {
        // Legacy format: the tag in bits 5-2, the length's size in bits 1-0.
        if (tag >> 2) & 0x0F != 2 {
            return None;
        }
        match tag & 3 {
            0 => 2,
            1 => 3,
            2 => 5,
            _ => return None,
        }
    };
    let body = raw.get(header_len..)?;
    if *body.first()? != 4 {
        return None;
    }
    let hashed_len = u16::from_be_bytes([*body.get(4)?, *body.get(5)?]) as usize;
    body.get(..6 + hashed_len)
}

/// Whether a key may sign, from its self-signatures: some key-flags subpacket grants it, or
/// none of them carries key flags at all (RFC 9580, 5.2.3.29), as the `rpm` verifier decides.
fn grants_signing<'a>(signatures: impl Iterator<Item = &'a Signature>) -> bool {
    let mut flagged = false;
    for sig in signatures {
        let has_flags = sig.config().is_some_and(|c| {
            c.hashed_subpackets()
                .any(|p| matches!(p.data, SubpacketData::KeyFlags(_)))
        });
        if has_flags {
            flagged = true;
            if sig.key_flags().sign() {
                return true;
            }
        }
    }
    !flagged
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: &str =
        include_str!("../../../tests/fixtures/keys/project/kubespray-test-rsa4096.asc");
    const SECRET: &str =
        include_str!("../../../tests/fixtures/keys/project/kubespray-test-rsa4096.secret");

    /// A package's header bytes and its RSA-4096 signature, and the verifier for the key.
    fn signed() -> (Vec<u8>, Vec<u8>, SignatureVerifier) {
        let mut pkg = rpm::PackageBuilder::new("t", "1", "MIT", "noarch", "test")
            .build()
            .unwrap();
        pkg.sign_with_timestamp(rpm::signature::pgp::Signer::from_asc(SECRET).unwrap(), 1u32)
            .unwrap();
        let header = pkg.metadata.header_bytes().unwrap();
        let sig = pkg.raw_signatures().unwrap()[0].to_vec();
        let (cert, _) =
            <SignedPublicKey as pgp::composed::Deserializable>::from_string(PUBLIC).unwrap();
        let general = rpm::signature::pgp::Verifier::from_asc(PUBLIC).unwrap();
        (header, sig, SignatureVerifier::new(general, &cert))
    }

    #[test]
    fn ring_verifies_rsa_signatures_and_leaves_the_rest_to_the_rpm_verifier() {
        let (header, sig, verifier) = signed();
        assert_eq!(verifier.rsa_keys.len(), 1);
        assert!(verifier.verified_by_ring(&header, &sig));
        assert!(verifier.verify(&header[..], &sig).is_ok());

        // Other bytes: ring declines, and the rpm verifier gives its refusal.
        let mut other = header.clone();
        other[20] ^= 1;
        assert!(!verifier.verified_by_ring(&other, &sig));
        assert!(matches!(
            verifier.verify(&other[..], &sig),
            Err(rpm::Error::VerificationError { .. })
        ));

        // A damaged signature value, or not a signature at all.
        let mut damaged = sig.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert!(!verifier.verified_by_ring(&header, &damaged));
        assert!(verifier.verify(&header[..], &damaged).is_err());
        assert!(!verifier.verified_by_ring(&header, b"not a packet"));
        assert!(verifier.verify(&header[..], b"not a packet").is_err());
    }

    /// A v4 signature over `data` that names its issuer by key id only, as older signing
    /// tools wrote them.
    fn key_id_only_signature(data: &[u8]) -> Vec<u8> {
        use pgp::packet::{SignatureConfig, SignatureType, Subpacket};
        let (secret, _) =
            <pgp::composed::SignedSecretKey as pgp::composed::Deserializable>::from_string(SECRET)
                .unwrap();
        let mut config = SignatureConfig::v4(
            SignatureType::Binary,
            pgp::crypto::public_key::PublicKeyAlgorithm::RSA,
            pgp::crypto::hash::HashAlgorithm::Sha256,
        );
        config.hashed_subpackets = vec![
            Subpacket::regular(SubpacketData::SignatureCreationTime(
                pgp::types::Timestamp::from_secs(1),
            ))
            .unwrap(),
            Subpacket::regular(SubpacketData::IssuerKeyId(secret.legacy_key_id())).unwrap(),
        ];
        let sig = config
            .sign(&secret.primary_key, &pgp::types::Password::empty(), data)
            .unwrap();
        let mut raw = Vec::new();
        pgp::packet::PacketTrait::to_writer_with_header(&sig, &mut raw).unwrap();
        raw
    }

    #[test]
    fn a_signature_naming_its_key_by_id_only_takes_the_ring_path_too() {
        let (header, _, verifier) = signed();
        let sig = key_id_only_signature(&header);
        assert!(verifier.verified_by_ring(&header, &sig));
        assert!(verifier.verify(&header[..], &sig).is_ok());
        let mut other = header.clone();
        other[20] ^= 1;
        assert!(!verifier.verified_by_ring(&other, &sig));
        assert!(verifier.verify(&other[..], &sig).is_err());
    }
}
