//! The content-addressed download cache: a verified file lives at `<cache>/sha256/ab/abcdef...`
//! (named by its own sha256), a download in progress at `<cache>/partial/<sha256>.part` (named by
//! the sha256 it is expected to have). A re-run finds what it already has by hash alone, so it
//! fetches only what is new, and a killed run resumes its partial files with Range requests.
//!
//! Builds may share a cache: a process fetching an entry holds a lock on the entry's byte of
//! `<cache>/partial/.entries` while it writes the partial file and admits it, so a second
//! process wanting the same file waits and then finds it admitted; an entry appears by one
//! rename, whole or not at all. The kernel drops the lock of a killed process.
//!
//! It also remembers passed signature checks, in `<cache>/signatures/<check id>` (one line per
//! package: its sha256 and the signer's fingerprint, or `-`): the result of checking a
//! package's header signature depends only on the package's bytes (its sha256) and on the key
//! (the check id, a hash of the key file and the pin), so a warm rebuild does not redo 2,000
//! signature checks. Only passes are recorded; a failure is checked again every time. The file
//! is read once and written once per build (whole, then renamed), not once per package; builds
//! sharing the cache merge their records into it one at a time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use super::FetchError;

#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, FetchError> {
        let root = root.into();
        for sub in ["sha256", "partial"] {
            fs_err::create_dir_all(root.join(sub)).map_err(FetchError::Fs)?;
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

    /// The passed signature checks recorded for the key `check_id` (none if never saved).
    pub fn signature_records(&self, check_id: &str) -> SignatureRecords {
        let path = self.root.join("signatures").join(check_id);
        let known = read_records(&path);
        SignatureRecords {
            path,
            known: Mutex::new(known),
            added: AtomicBool::new(false),
        }
    }

    /// Bytes of a partial download present for this hash.
    pub fn partial_len(&self, sha256: &str) -> u64 {
        std::fs::metadata(self.partial_path(sha256)).map_or(0, |m| m.len())
    }

    /// Bytes still to download for `files` (sha256 and size each): the sizes of those not in
    /// the cache, less what their partial files hold. Two directory listings tell which
    /// entries and partial files can exist at all, so only those are looked up: a cold build
    /// does not `stat` two missing paths per file on its way to the first download.
    pub fn missing_bytes<'a>(&self, files: impl IntoIterator<Item = (&'a str, u64)>) -> u64 {
        let names = |dir: PathBuf| -> std::collections::HashSet<String> {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        };
        let shards = names(self.root.join("sha256"));
        let partials = names(self.root.join("partial"));
        files
            .into_iter()
            .filter(|&(sha256, size)| {
                !(sha256.get(..2).is_some_and(|p| shards.contains(p))
                    && self.lookup(sha256, size).is_some())
            })
            .map(|(sha256, size)| {
                let partial = match partials.contains(&format!("{sha256}.part")) {
                    true => self.partial_len(sha256),
                    false => 0,
                };
                size.saturating_sub(partial)
            })
            .sum()
    }

    /// Store bytes fetched whole (repomd.xml, a key) under their own hash; returns the path and
    /// the lowercase hex sha256.
    pub fn store_bytes(&self, bytes: &[u8]) -> Result<(PathBuf, String), FetchError> {
        use sha2::Digest;
        let sha256 = hex::encode(sha2::Sha256::digest(bytes));
        if let Some(path) = self.lookup(&sha256, bytes.len() as u64) {
            return Ok((path, sha256));
        }
        // A temp file of its own, so two processes storing the same bytes never share one.
        let partial = self.root.join("partial");
        let mut tmp = tempfile::NamedTempFile::new_in(&partial).map_err(io_at(&partial))?;
        std::io::Write::write_all(&mut tmp, bytes).map_err(io_at(tmp.path()))?;
        let dest = self.entry_path(&sha256);
        if let Some(parent) = dest.parent() {
            fs_err::create_dir_all(parent).map_err(FetchError::Fs)?;
        }
        tmp.persist(&dest).map_err(|e| io_at(&dest)(e.error))?;
        Ok((dest, sha256))
    }

    /// Wait for, then hold, the right to fetch the entry `sha256` (its partial file and its
    /// admission) among every process sharing this cache: a lock on one byte of
    /// `partial/.entries` (see [`lock_offset`]). The file is created once per cache, so fetching
    /// an entry creates no file but its partial one.
    pub async fn lock_entry(&self, sha256: &str) -> Result<EntryLock, FetchError> {
        let path = self.root.join("partial").join(ENTRY_LOCKS);
        // A file description of its own: locks of one description never conflict with each
        // other, so each entry's lock must hold one to exclude this process's other fetches.
        let file = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(FetchError::Fs)?
            .into_file();
        let offset = lock_offset(sha256);
        // Uncontended, the usual case, it is taken here: no trip to the blocking pool and back
        // (two thread hand-offs per file).
        if lock_byte(&file, offset, false).map_err(io_at(&path))? {
            return Ok(EntryLock { _file: file });
        }
        tokio::task::spawn_blocking(move || {
            lock_byte(&file, offset, true)
                .map(|_| EntryLock { _file: file })
                .map_err(io_at(&path))
        })
        .await
        .expect("the lock task does not panic")
    }

    /// Move a verified partial file into place. Its shard directory is created only when the
    /// rename finds it missing: once per shard, not a `mkdir` and a `stat` per file.
    pub fn admit(&self, partial: &Path, sha256: &str) -> Result<PathBuf, FetchError> {
        let dest = self.entry_path(sha256);
        if std::fs::rename(partial, &dest).is_ok() {
            return Ok(dest);
        }
        // Most likely the shard is missing; any other failure recurs below, named by fs_err.
        if let Some(parent) = dest.parent() {
            fs_err::create_dir_all(parent).map_err(FetchError::Fs)?;
        }
        fs_err::rename(partial, &dest).map_err(FetchError::Fs)?;
        Ok(dest)
    }
}

/// The file in `partial/` whose bytes stand for the entries being fetched.
const ENTRY_LOCKS: &str = ".entries";

/// The byte of [`ENTRY_LOCKS`] that stands for the entry `sha256`: its first 60 bits. Two
/// entries sharing a byte would only wait for each other; a name that is not hex (nothing a
/// checked download has) gets byte 0.
fn lock_offset(sha256: &str) -> i64 {
    sha256
        .get(..15)
        .and_then(|prefix| i64::from_str_radix(prefix, 16).ok())
        .unwrap_or(0)
}

/// Takes the write lock on byte `offset` of `file`, an open file description lock
/// (`F_OFD_SETLK`): held by this description, whatever the thread, dropped when it is closed
/// or the process dies, and seen by every process on the machine. With `wait`, waits for it;
/// without, Ok(false) when another description holds it. rustix offers whole-file locks only.
fn lock_byte(file: &std::fs::File, offset: i64, wait: bool) -> std::io::Result<bool> {
    use std::os::fd::AsRawFd;
    // SAFETY: an all-zero `flock` is a valid value of this plain C struct.
    let mut range: libc::flock = unsafe { std::mem::zeroed() };
    range.l_type = libc::F_WRLCK as libc::c_short;
    range.l_whence = libc::SEEK_SET as libc::c_short;
    range.l_start = offset;
    range.l_len = 1;
    let command = if wait {
        libc::F_OFD_SETLKW
    } else {
        libc::F_OFD_SETLK
    };
    loop {
        // SAFETY: `file` is an open descriptor and `range` a valid `flock` that outlives the
        // call; F_OFD_SETLK(W) reads it and writes nothing back.
        if unsafe { libc::fcntl(file.as_raw_fd(), command, &range) } == 0 {
            return Ok(true);
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN | libc::EACCES) if !wait => return Ok(false),
            _ => return Err(error),
        }
    }
}

/// The right to fetch one cache entry, held until dropped (see [`Cache::lock_entry`]).
#[derive(Debug)]
pub struct EntryLock {
    _file: std::fs::File,
}

/// Passed signature checks for one key: loaded whole by [`Cache::signature_records`], added to
/// while a build runs (from any thread), and saved whole by [`SignatureRecords::save`].
#[derive(Debug)]
pub struct SignatureRecords {
    path: PathBuf,
    /// sha256 of a package -> the fingerprints of the keys whose signatures verified.
    known: Mutex<HashMap<String, Vec<String>>>,
    added: AtomicBool,
}

impl SignatureRecords {
    /// Some(signers) when the package with this sha256 passed its check with this key before.
    pub fn passed(&self, sha256: &str) -> Option<Vec<String>> {
        self.known
            .lock()
            .expect("not poisoned")
            .get(sha256)
            .cloned()
    }

    /// Remember a passed check (saved by [`SignatureRecords::save`]).
    pub fn record(&self, sha256: &str, signers: &[String]) {
        self.known
            .lock()
            .expect("not poisoned")
            .insert(sha256.to_string(), signers.to_vec());
        self.added.store(true, Ordering::Relaxed);
    }

    /// Write the records (sorted, whole, renamed into place) if any were added. Builds sharing
    /// the cache save one at a time (a `flock` on `<file>.lock`), each adding its records to
    /// what is on disk then, so that no build's passes are lost to another's save.
    pub fn save(&self) -> Result<(), FetchError> {
        if !self.added.load(Ordering::Relaxed) {
            return Ok(());
        }
        let dir = self.path.parent().expect("records live in a directory");
        fs_err::create_dir_all(dir).map_err(FetchError::Fs)?;
        let mut lock_path = self.path.as_os_str().to_owned();
        lock_path.push(".lock");
        let lock = fs_err::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(FetchError::Fs)?
            .into_file();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io_at(Path::new(&lock_path))(e.into()))?;
        let mut known = read_records(&self.path);
        known.extend(
            self.known
                .lock()
                .expect("not poisoned")
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        let mut lines: Vec<String> = known
            .iter()
            .map(|(sha256, signers)| match signers.as_slice() {
                [] => format!("{sha256} -\n"),
                _ => format!("{sha256} {}\n", signers.join(",")),
            })
            .collect();
        lines.sort();
        // A temp file of its own, so that a save never writes into another's.
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io_at(dir))?;
        std::io::Write::write_all(&mut tmp, lines.concat().as_bytes())
            .map_err(io_at(tmp.path()))?;
        tmp.persist(&self.path)
            .map_err(|e| io_at(&self.path)(e.error))?;
        Ok(())
    }
}

/// An I/O failure on `path`, for `map_err`.
fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The records in the file at `path` (none when it is missing or unreadable).
fn read_records(path: &Path) -> HashMap<String, Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (sha256, signers) = line.split_once(' ')?;
            let signers = signers
                .split(',')
                .filter(|s| !s.is_empty() && *s != "-")
                .map(str::to_string)
                .collect();
            Some((sha256.to_string(), signers))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_entry_lock_holds_off_the_same_entry_only() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let (one, other) = ("ab12cd34ef56ab12cd34", "0123456789abcdef0123");
        let held = cache.lock_entry(one).await.unwrap();
        let _other = tokio::time::timeout(Duration::from_secs(10), cache.lock_entry(other))
            .await
            .expect("another entry is not held off")
            .unwrap();
        let waiting = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.lock_entry(one).await.map(drop) })
        };
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !waiting.is_finished(),
            "the same entry waits for its holder"
        );
        drop(held);
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("taken once the holder lets go")
            .unwrap()
            .unwrap();
        let left: Vec<String> = fs_err::read_dir(dir.path().join("partial"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(left, [ENTRY_LOCKS], "one lock file for every entry");
    }

    #[test]
    fn missing_bytes_counts_what_is_neither_cached_nor_partly_there() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let (cached, partly, absent, wrong) = ("aa11", "bb22", "cc33", "dd44");
        assert_eq!(cache.missing_bytes([(cached, 5), (absent, 7)]), 12, "cold");
        let part = cache.partial_path(cached);
        fs_err::write(&part, b"12345").unwrap();
        cache.admit(&part, cached).unwrap();
        fs_err::write(cache.partial_path(partly), b"123").unwrap();
        let part = cache.partial_path(wrong);
        fs_err::write(&part, b"12").unwrap();
        cache.admit(&part, wrong).unwrap();
        assert_eq!(
            cache.missing_bytes([(cached, 5), (partly, 10), (absent, 7), (wrong, 4)]),
            7 + 7 + 4,
            "the cached file counts nothing, the partial one what it lacks, a cached file of \
             another size all of its size"
        );
    }

    #[test]
    fn signature_records_are_per_key_and_survive_a_save() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let records = cache.signature_records("key1");
        assert_eq!(records.passed("pkg"), None);
        records.save().unwrap();
        assert!(
            !dir.path().join("signatures/key1").exists(),
            "nothing added"
        );
        records.record("pkg", &["ABCD".into(), "EF01".into()]);
        records.record("other", &[]);
        records.save().unwrap();
        let again = cache.signature_records("key1");
        assert_eq!(
            again.passed("pkg"),
            Some(vec!["ABCD".into(), "EF01".into()])
        );
        assert_eq!(again.passed("other"), Some(vec![]));
        assert_eq!(again.passed("pkg2"), None, "another package");
        assert_eq!(
            cache.signature_records("key2").passed("pkg"),
            None,
            "another key"
        );
        fs_err::write(dir.path().join("signatures/key1"), "garbage\n").unwrap();
        assert_eq!(cache.signature_records("key1").passed("pkg"), None);
    }

    #[test]
    fn builds_saving_records_at_once_keep_every_pass() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        // Eight builds load the (empty) records, each passes its own packages, all save at once.
        std::thread::scope(|scope| {
            for build in 0..8 {
                let cache = &cache;
                scope.spawn(move || {
                    let records = cache.signature_records("key");
                    for pkg in 0..50 {
                        records.record(&format!("b{build}p{pkg}"), &["FP".into()]);
                    }
                    records.save().unwrap();
                });
            }
        });
        let merged = cache.signature_records("key");
        for build in 0..8 {
            for pkg in 0..50 {
                assert_eq!(
                    merged.passed(&format!("b{build}p{pkg}")),
                    Some(vec!["FP".into()]),
                    "b{build}p{pkg}"
                );
            }
        }
        let left: Vec<String> = fs_err::read_dir(dir.path().join("signatures"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(
            left.len(),
            2,
            "the records and their lock, no temp file: {left:?}"
        );
    }
}
