//! The content-addressed download cache: a verified file lives at `<cache>/sha256/ab/abcdef...`
//! (named by its own sha256), a download in progress at `<cache>/partial/<sha256>.part` (named by
//! the sha256 it is expected to have). A re-run finds what it already has by hash alone, so it
//! fetches only what is new, and a killed run resumes its partial files with Range requests.
//!
//! It also remembers passed signature checks, at `<cache>/signatures/<check id>/<sha256>`
//! (holding the signer's fingerprint, possibly empty): the result of checking a package's header
//! signature depends only on the package's bytes (its sha256) and on the key (the check id, a
//! hash of the key file and the pin), so a warm rebuild does not redo 2,000 RSA checks. Only
//! passes are recorded; a failure is checked again every time.

use std::path::{Path, PathBuf};

use super::FetchError;

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, FetchError> {
        let root = root.into();
        for sub in ["sha256", "partial"] {
            fs_err::create_dir_all(root.join(sub)).map_err(FetchError::Io)?;
        }
        Ok(Self { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a verified file with this sha256 lives (whether or not it is there yet).
    pub fn entry_path(&self, sha256: &str) -> PathBuf {
        let prefix = sha256.get(..2).unwrap_or("xx");
        self.root.join("sha256").join(prefix).join(sha256)
    }

    /// Where the partial download of a file expected to hash to `sha256` is kept.
    pub fn partial_path(&self, sha256: &str) -> PathBuf {
        self.root.join("partial").join(format!("{sha256}.part"))
    }

    /// The cached file, if present with the expected size. Content was verified when it was
    /// admitted; the bundle writer hashes every byte again while packing, so a file damaged on
    /// disk since then still cannot reach a bundle.
    pub fn lookup(&self, sha256: &str, size: u64) -> Option<PathBuf> {
        let path = self.entry_path(sha256);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() && meta.len() == size => Some(path),
            _ => None,
        }
    }

    /// The recorded result of a passed signature check of the package `sha256` with the key
    /// `check_id`: Some(signer fingerprint, if the signature named one), None if never passed.
    pub fn signature_passed(&self, check_id: &str, sha256: &str) -> Option<Option<String>> {
        let recorded = std::fs::read_to_string(self.signature_path(check_id, sha256)).ok()?;
        let mut lines = recorded.lines();
        if lines.next() != Some("passed") {
            return None;
        }
        Some(lines.next().filter(|f| !f.is_empty()).map(str::to_string))
    }

    /// Record that the package `sha256` passed its signature check with the key `check_id`.
    pub fn record_signature(
        &self,
        check_id: &str,
        sha256: &str,
        signer: Option<&str>,
    ) -> Result<(), FetchError> {
        let path = self.signature_path(check_id, sha256);
        let dir = path
            .parent()
            .expect("signature records live in a directory");
        fs_err::create_dir_all(dir).map_err(FetchError::Io)?;
        // Written whole under a temporary name and renamed, so a record is never half there.
        let tmp = dir.join(format!("{sha256}.tmp-{}", std::process::id()));
        fs_err::write(&tmp, format!("passed\n{}\n", signer.unwrap_or_default()))
            .and_then(|()| fs_err::rename(&tmp, &path))
            .map_err(FetchError::Io)
    }

    fn signature_path(&self, check_id: &str, sha256: &str) -> PathBuf {
        self.root.join("signatures").join(check_id).join(sha256)
    }

    /// Bytes of a partial download present for this hash.
    pub fn partial_len(&self, sha256: &str) -> u64 {
        std::fs::metadata(self.partial_path(sha256)).map_or(0, |m| m.len())
    }

    /// Store bytes fetched whole (repomd.xml, a key) under their own hash; returns the path and
    /// the lowercase hex sha256.
    pub fn store_bytes(&self, bytes: &[u8]) -> Result<(PathBuf, String), FetchError> {
        use sha2::Digest;
        let sha256 = hex::encode(sha2::Sha256::digest(bytes));
        if let Some(path) = self.lookup(&sha256, bytes.len() as u64) {
            return Ok((path, sha256));
        }
        let partial = self.partial_path(&sha256);
        fs_err::write(&partial, bytes).map_err(FetchError::Io)?;
        Ok((self.admit(&partial, &sha256)?, sha256))
    }

    /// Move a verified partial file into place.
    pub fn admit(&self, partial: &Path, sha256: &str) -> Result<PathBuf, FetchError> {
        let dest = self.entry_path(sha256);
        if let Some(parent) = dest.parent() {
            fs_err::create_dir_all(parent).map_err(FetchError::Io)?;
        }
        fs_err::rename(partial, &dest).map_err(FetchError::Io)?;
        Ok(dest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_sharded_by_hash_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let hash = "abcdef0123";
        assert_eq!(
            cache.entry_path(hash),
            dir.path().join("sha256/ab/abcdef0123")
        );
        assert!(cache.lookup(hash, 3).is_none());
        let part = cache.partial_path(hash);
        fs_err::write(&part, b"abc").unwrap();
        assert_eq!(cache.partial_len(hash), 3);
        cache.admit(&part, hash).unwrap();
        assert!(cache.lookup(hash, 3).is_some());
        assert!(cache.lookup(hash, 4).is_none(), "size mismatch is a miss");
    }

    #[test]
    fn signature_results_are_per_key_and_package() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        assert_eq!(cache.signature_passed("key1", "pkg"), None);
        cache.record_signature("key1", "pkg", Some("ABCD")).unwrap();
        cache.record_signature("key1", "other", None).unwrap();
        assert_eq!(
            cache.signature_passed("key1", "pkg"),
            Some(Some("ABCD".into()))
        );
        assert_eq!(cache.signature_passed("key1", "other"), Some(None));
        assert_eq!(cache.signature_passed("key2", "pkg"), None, "another key");
        assert_eq!(
            cache.signature_passed("key1", "pkg2"),
            None,
            "another package"
        );
        fs_err::write(cache.signature_path("key1", "pkg"), "garbage").unwrap();
        assert_eq!(
            cache.signature_passed("key1", "pkg"),
            None,
            "unreadable record"
        );
    }
}
