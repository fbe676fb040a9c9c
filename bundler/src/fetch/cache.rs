//! The content-addressed download cache: a verified file lives at `<cache>/sha256/ab/abcdef...`
//! (named by its own sha256), a download in progress at `<cache>/partial/<sha256>.part` (named by
//! the sha256 it is expected to have). A re-run finds what it already has by hash alone, so it
//! fetches only what is new, and a killed run resumes its partial files with Range requests.

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

    /// Bytes of a partial download present for this hash.
    pub fn partial_len(&self, sha256: &str) -> u64 {
        std::fs::metadata(self.partial_path(sha256)).map_or(0, |m| m.len())
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
}
