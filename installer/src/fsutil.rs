//! Writing a `DesiredFile` under a root the safe way: untouched when already identical, the
//! previous content backed up once as `<file>.orig`, the new content written to a temporary
//! file in the same directory, fsynced and renamed over the old one, then the directory
//! fsynced, so a crash leaves either the old or the new file and never a torn one.
//! `installer node` and `installer nat` use it directly; the apply plan may share it.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::desired::DesiredFile;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{path} is not an absolute path without `..`; generators must produce such paths")]
    BadPath { path: PathBuf },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    Unchanged,
    Created,
    /// Replaced; `backup` is set when this run made the one-time `.orig` copy.
    Replaced {
        backup: Option<PathBuf>,
    },
}

/// `path` (absolute, as on the target) placed under `root`.
pub fn under_root(root: &Path, path: &Path) -> Result<PathBuf, WriteError> {
    let bad = || WriteError::BadPath {
        path: path.to_path_buf(),
    };
    if !path.is_absolute() {
        return Err(bad());
    }
    let mut out = root.to_path_buf();
    for c in path.components() {
        match c {
            Component::RootDir => {}
            Component::Normal(p) => out.push(p),
            _ => return Err(bad()),
        }
    }
    Ok(out)
}

/// Path of the one-time backup of `path`.
pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".orig");
    path.with_file_name(name)
}

/// Writes `file` under `root` unless it already has exactly this content and mode.
pub fn write_file(root: &Path, file: &DesiredFile) -> Result<WriteOutcome, WriteError> {
    let target = under_root(root, &file.path)?;
    let existing = match fs_err::read(&target) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(old) = &existing {
        let mode = fs_err::metadata(&target)?.permissions().mode() & 0o7777;
        if *old == file.contents && mode == file.mode {
            return Ok(WriteOutcome::Unchanged);
        }
    }
    let dir = target.parent().expect("a path under root has a parent");
    fs_err::create_dir_all(dir)?;
    let mut backup = None;
    if let Some(old) = &existing {
        let orig = backup_path(&target);
        if !orig.exists() {
            write_atomic(&orig, old, 0o600)?;
            backup = Some(orig);
        }
    }
    write_atomic(&target, &file.contents, file.mode)?;
    Ok(match existing {
        None => WriteOutcome::Created,
        Some(_) => WriteOutcome::Replaced { backup },
    })
}

/// Temp file in the same directory, fsync, rename, fsync the directory.
pub fn write_atomic(target: &Path, contents: &[u8], mode: u32) -> Result<(), WriteError> {
    let dir = target.parent().expect("target has a parent");
    let mut tmp = tempfile::Builder::new()
        .prefix(".kso-")
        .tempfile_in(dir)
        .map_err(|e| fs_err_io(e, dir))?;
    tmp.write_all(contents)
        .map_err(|e| fs_err_io(e, tmp.path()))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| fs_err_io(e, tmp.path()))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| fs_err_io(e, tmp.path()))?;
    tmp.persist(target)
        .map_err(|e| fs_err_io(e.error, target))?;
    fs_err::File::open(dir)?.sync_all()?;
    Ok(())
}

fn fs_err_io(e: std::io::Error, path: &Path) -> WriteError {
    WriteError::Io(std::io::Error::new(
        e.kind(),
        format!("{}: {e}", path.display()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired(contents: &str) -> DesiredFile {
        DesiredFile {
            path: "/etc/x.conf".into(),
            contents: contents.as_bytes().to_vec(),
            mode: 0o644,
        }
    }

    #[test]
    fn backs_up_once_and_leaves_identical_files_alone() {
        let root = tempfile::tempdir().unwrap();
        let target = root.path().join("etc/x.conf");
        fs_err::create_dir_all(target.parent().unwrap()).unwrap();
        fs_err::write(&target, "original").unwrap();

        let first = write_file(root.path(), &desired("one")).unwrap();
        assert_eq!(
            first,
            WriteOutcome::Replaced {
                backup: Some(root.path().join("etc/x.conf.orig"))
            }
        );
        assert_eq!(
            write_file(root.path(), &desired("one")).unwrap(),
            WriteOutcome::Unchanged
        );
        let third = write_file(root.path(), &desired("two")).unwrap();
        assert_eq!(third, WriteOutcome::Replaced { backup: None });
        assert_eq!(
            fs_err::read_to_string(root.path().join("etc/x.conf.orig")).unwrap(),
            "original"
        );
        assert_eq!(fs_err::read_to_string(&target).unwrap(), "two");
    }

    #[test]
    fn refuses_relative_and_dotdot_paths() {
        let root = tempfile::tempdir().unwrap();
        for p in ["etc/x", "/etc/../../x"] {
            let mut f = desired("x");
            f.path = p.into();
            assert!(matches!(
                write_file(root.path(), &f),
                Err(WriteError::BadPath { .. })
            ));
        }
    }
}
