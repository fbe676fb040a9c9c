//! The one lock the writing commands take: `installer apply` and `installer nat` on the admin's
//! data root, `installer node` on [`NODE_LOCK_DIR`] of the node: two runs at once would switch
//! trees and files under each other.
//!
//! The lock is a `flock` on `<dir>/.installer.lock`. The kernel drops it when its holder dies,
//! so a stale lock of a killed run is simply taken over; the file's content (pid, command,
//! start time) only tells a refused run whom it waits for, and is emptied on release.

use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FlockOperation, flock};

/// The lock file's name inside the locked directory.
pub const LOCK_FILE: &str = ".installer.lock";

/// Where `installer node` locks (under its `--root`): a node has no data root, and its files
/// live in several directories of /etc.
pub const NODE_LOCK_DIR: &str = "/var/lib/kubespray-offline";

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error(
        "{dir} is locked by {holder}; wait for it to finish and run again (the lock is {path})",
        dir = dir.display(),
        path = path.display()
    )]
    Held {
        dir: PathBuf,
        path: PathBuf,
        holder: String,
    },
    // The cause is part of the message, not a `source`, so a printed chain names it once.
    #[error("cannot lock {path}: {cause}", path = path.display())]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// An exclusive lock on a directory, held until dropped.
#[derive(Debug)]
pub struct DirLock {
    file: std::fs::File,
    path: PathBuf,
}

impl DirLock {
    /// Take the lock on `dir` (created when missing) without waiting; `command` is what a
    /// refused run reports as the holder. Fails with [`LockError::Held`] when another process
    /// holds it; nothing else is touched then.
    pub fn acquire(dir: &Path, command: &str) -> Result<DirLock, LockError> {
        let path = dir.join(LOCK_FILE);
        let io = |cause| LockError::Io {
            path: path.clone(),
            cause,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(LockError::Held {
                    dir: dir.to_path_buf(),
                    path,
                    holder: describe_holder(&holder),
                });
            }
            Err(e) => return Err(io(e.into())),
        }
        let mut lock = DirLock {
            file,
            path: path.clone(),
        };
        let since = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let info = format!("{}\n{command}\n{since}\n", std::process::id());
        lock.file.set_len(0).map_err(io)?;
        lock.file.rewind().map_err(io)?;
        lock.file.write_all(info.as_bytes()).map_err(io)?;
        Ok(lock)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        // Emptied while still held, so no holder's information is ever erased by another run;
        // closing the file then releases the lock.
        let _ = self.file.set_len(0);
    }
}

/// "pid N (`installer apply …`) since T" from the lock file's content, as far as it is known
/// (the holder may not have written it yet).
fn describe_holder(content: &str) -> String {
    let mut lines = content.lines();
    match (lines.next(), lines.next(), lines.next()) {
        (Some(pid), Some(command), Some(since)) => {
            format!("pid {pid} (`{command}`) since {since}")
        }
        _ => "another installer process".to_string(),
    }
}

/// The command line of this process, as a holder's description.
pub fn this_command() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_is_refused_with_the_holder_named_and_free_after_release() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::acquire(dir.path(), "installer apply b.tar.zst").unwrap();
        let err = DirLock::acquire(dir.path(), "installer nat disable").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&format!(
                "locked by pid {} (`installer apply b.tar.zst`) since ",
                std::process::id()
            )),
            "{text}"
        );
        drop(first);
        assert_eq!(
            fs_err::read_to_string(dir.path().join(LOCK_FILE)).unwrap(),
            ""
        );
        DirLock::acquire(dir.path(), "installer nat disable").unwrap();
    }

    #[test]
    fn holder_without_information_is_still_described() {
        assert_eq!(describe_holder(""), "another installer process");
    }
}
