//! Careful file writes for everything `apply` puts on the admin server: configs and index pages
//! must survive a power cut (temp file in the same directory, fsync, rename, fsync the parent),
//! a file the operator had before is backed up once as `<file>.orig`, an identical file is left
//! untouched (so a second apply changes nothing, not even mtimes), and `--dry-run` can show the
//! change as a unified diff without writing.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use crate::desired::DesiredFile;

/// Suffix of the one-time backup of a file `apply` replaced.
pub const BACKUP_SUFFIX: &str = ".orig";

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    // The cause is part of each message and deliberately not a `source`: an error chain
    // printed with `{:#}` would name it twice ("No space left on device" after itself).
    #[error("cannot write {path}: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot swap {a} and {b}: {cause}")]
    Swap {
        a: PathBuf,
        b: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "{path} is not an absolute target path; generated files must name where they live on the admin server"
    )]
    NotAbsolute { path: PathBuf },
}

/// What writing a desired file would do (or did) to the target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileChange {
    /// The file exists with the same bytes and mode.
    Unchanged,
    /// The file does not exist yet.
    Create,
    /// The file exists with other bytes (or another mode); `old` is its current content.
    Modify { old: Vec<u8>, mode_only: bool },
}

impl FileChange {
    pub fn is_change(&self) -> bool {
        !matches!(self, FileChange::Unchanged)
    }
}

/// Map an absolute target path (`/etc/nginx/conf.d/x.conf`) under `root` (`--root`).
pub fn rooted(root: &Path, target: &Path) -> Result<PathBuf, FsError> {
    if !target.is_absolute() {
        return Err(FsError::NotAbsolute {
            path: target.to_path_buf(),
        });
    }
    let mut out = root.to_path_buf();
    for part in target.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::CurDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(FsError::NotAbsolute {
                    path: target.to_path_buf(),
                });
            }
        }
    }
    Ok(out)
}

/// Compare `contents`/`mode` with what is at `path` now.
pub fn compare(path: &Path, contents: &[u8], mode: u32) -> Result<FileChange, FsError> {
    let old = match fs_err::read(path) {
        Ok(old) => old,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileChange::Create),
        Err(e) => return Err(e.into()),
    };
    let old_mode = fs_err::metadata(path)?.permissions().mode() & 0o7777;
    if old == contents && old_mode == mode {
        Ok(FileChange::Unchanged)
    } else {
        let mode_only = old == contents;
        Ok(FileChange::Modify { old, mode_only })
    }
}

/// When the files a writer creates reach the disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// Each file and its directory are fsynced as they are written: the tree is live while it
    /// is built.
    #[default]
    EachFile,
    /// Nothing is fsynced here: the tree is a staging tree, and its owner syncs the whole
    /// filesystem once ([`sync_filesystem`]) before switching it live: each fsync costs a
    /// device flush (docs/BENCHMARKS.md, issue 5, counts them).
    Staged,
}

impl Durability {
    /// fsync `file` (a file, or a directory for the entries in it) unless the tree is staged.
    pub fn sync(self, file: &std::fs::File) -> std::io::Result<()> {
        match self {
            Durability::EachFile => file.sync_all(),
            Durability::Staged => Ok(()),
        }
    }

    /// [`Durability::sync`] for the directory `dir`.
    pub fn sync_dir(self, dir: &Path) -> std::io::Result<()> {
        match self {
            Durability::EachFile => fs_err::File::open(dir)?.sync_all(),
            Durability::Staged => Ok(()),
        }
    }
}

/// Makes everything written to the filesystem holding `dir` durable, in one call.
pub fn sync_filesystem(dir: &Path) -> Result<(), FsError> {
    let synced = std::fs::File::open(dir).and_then(|d| Ok(rustix::fs::syncfs(&d)?));
    synced.map_err(|cause| FsError::Write {
        path: dir.to_path_buf(),
        cause,
    })
}

/// Write `contents` to `path` so that a reader (or a crash) sees either the old file or the
/// whole new one: temp file in the same directory, fsync, rename over, fsync the directory.
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), FsError> {
    write_atomic_as(path, contents, mode, Durability::EachFile)
}

/// [`write_atomic`], with the fsyncs left out for a [`Durability::Staged`] tree.
pub fn write_atomic_as(
    path: &Path,
    contents: &[u8],
    mode: u32,
    durability: Durability,
) -> Result<(), FsError> {
    let parent = parent_of(path);
    fs_err::create_dir_all(parent)?;
    let wrap = |cause| FsError::Write {
        path: path.to_path_buf(),
        cause,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!("{TEMP_PREFIX}{}-", std::process::id()))
        .tempfile_in(parent)
        .map_err(wrap)?;
    tmp.write_all(contents).map_err(wrap)?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(wrap)?;
    durability.sync(tmp.as_file()).map_err(wrap)?;
    tmp.persist(path).map_err(|e| wrap(e.error))?;
    durability.sync_dir(parent).map_err(wrap)
}

/// Temp files of [`write_atomic`]: `.installer-tmp-<pid>-<random>` beside their target.
const TEMP_PREFIX: &str = ".installer-tmp-";

/// Removes the temp files that a killed apply left in `dir` (a SIGKILL skips the cleanup); one
/// whose process is still alive belongs to a concurrent run and is left alone.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(TEMP_PREFIX)) else {
            continue;
        };
        let pid = rest.split('-').next().and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|p| Path::new("/proc").join(p.to_string()).exists());
        if !alive {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Copy `path` to `<path>.orig` unless a backup already exists (the first original wins: a
/// later apply must never overwrite the operator's file with our own earlier output).
pub fn backup_once(path: &Path) -> Result<Option<PathBuf>, FsError> {
    let backup = backup_path(path);
    if backup.exists() || !path.exists() {
        return Ok(None);
    }
    let contents = fs_err::read(path)?;
    let mode = fs_err::metadata(path)?.permissions().mode() & 0o7777;
    write_atomic(&backup, &contents, mode)?;
    Ok(Some(backup))
}

pub fn backup_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(BACKUP_SUFFIX);
    path.with_file_name(name)
}

/// Outcome of [`install_file`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub path: PathBuf,
    pub change: FileChange,
    pub backup: Option<PathBuf>,
}

/// Put a generated file in place under `root`: untouched when identical, otherwise backed up
/// once and written atomically.
pub fn install_file(root: &Path, file: &DesiredFile) -> Result<Installed, FsError> {
    let path = rooted(root, &file.path)?;
    let change = compare(&path, &file.contents, file.mode)?;
    let mut backup = None;
    if change.is_change() {
        remove_stale_temps(parent_of(&path));
        backup = backup_once(&path)?;
        write_atomic(&path, &file.contents, file.mode)?;
    }
    Ok(Installed {
        path,
        change,
        backup,
    })
}

/// Unified diff of a change, labelled with the target path, for `--dry-run`.
pub fn unified_diff(target: &Path, change: &FileChange, new: &[u8]) -> String {
    let label = target.display().to_string();
    let empty: &[u8] = &[];
    let old: &[u8] = match change {
        FileChange::Unchanged => return String::new(),
        FileChange::Create => empty,
        FileChange::Modify {
            mode_only: true, ..
        } => return format!("mode change only: {label}\n"),
        FileChange::Modify { old, .. } => old,
    };
    let (old, new) = (String::from_utf8_lossy(old), String::from_utf8_lossy(new));
    let old_label = if matches!(change, FileChange::Create) {
        "/dev/null".to_string()
    } else {
        format!("a{label}")
    };
    similar::TextDiff::from_lines(old.as_ref(), new.as_ref())
        .unified_diff()
        .context_radius(3)
        .header(&old_label, &format!("b{label}"))
        .to_string()
}

/// fsync a directory so that renames and creations inside it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), FsError> {
    Durability::EachFile.sync_dir(dir)?;
    Ok(())
}

/// Atomically exchange two paths (both must exist), so that a reader sees either the old or
/// the new directory and never neither. Linux `renameat2(RENAME_EXCHANGE)`.
pub fn swap_paths(a: &Path, b: &Path) -> Result<(), FsError> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(|cause| FsError::Swap {
        a: a.to_path_buf(),
        b: b.to_path_buf(),
        cause: cause.into(),
    })?;
    sync_dir(parent_of(a))?;
    if parent_of(a) != parent_of(b) {
        sync_dir(parent_of(b))?;
    }
    Ok(())
}

/// Move `staged` to `live`: a plain rename when `live` does not exist, an atomic exchange
/// otherwise (the old tree then sits at `staged`, and is removed).
pub fn replace_dir(staged: &Path, live: &Path) -> Result<(), FsError> {
    if live.exists() {
        swap_paths(staged, live)?;
        fs_err::remove_dir_all(staged)?;
    } else {
        fs_err::create_dir_all(parent_of(live))?;
        fs_err::rename(staged, live)?;
        sync_dir(parent_of(live))?;
    }
    Ok(())
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_printed_error_chain_names_a_full_disk_once() {
        let enospc = || std::io::Error::from_raw_os_error(28);
        for err in [
            anyhow::Error::from(crate::apply::ApplyError::Io(enospc())),
            anyhow::Error::from(crate::apply::ApplyError::Fs(FsError::Io(enospc()))),
            anyhow::Error::from(crate::apply::ApplyError::Fs(FsError::Write {
                path: "/data/x".into(),
                cause: enospc(),
            })),
        ] {
            let text = format!("{err:#}");
            assert_eq!(text.matches("No space left on device").count(), 1, "{text}");
        }
    }

    fn desired(path: &str, text: &str) -> DesiredFile {
        DesiredFile {
            path: PathBuf::from(path),
            contents: text.as_bytes().to_vec(),
            mode: 0o644,
        }
    }

    #[test]
    fn temp_files_of_a_killed_apply_are_removed_by_the_next_change() {
        let dir = tempfile::tempdir().unwrap();
        let etc = dir.path().join("etc");
        fs_err::create_dir_all(&etc).unwrap();
        // A dead process's temp (pid 0 is never a process), an older unnamed one, and one of
        // this live process, which belongs to a concurrent write and must stay.
        let dead = etc.join(".installer-tmp-0-abc");
        let legacy = etc.join(".installer-tmp-bg5v3R");
        let live = etc.join(format!(".installer-tmp-{}-xyz", std::process::id()));
        for p in [&dead, &legacy, &live] {
            fs_err::write(p, b"half").unwrap();
        }
        install_file(dir.path(), &desired("/etc/a.conf", "one\n")).unwrap();
        assert!(!dead.exists() && !legacy.exists());
        assert!(live.exists());
    }

    #[test]
    fn rooted_refuses_relative_and_parent_paths() {
        let root = Path::new("/tmp/r");
        assert_eq!(
            rooted(root, Path::new("/etc/a.conf")).unwrap(),
            PathBuf::from("/tmp/r/etc/a.conf")
        );
        assert!(rooted(root, Path::new("etc/a.conf")).is_err());
        assert!(rooted(root, Path::new("/etc/../../x")).is_err());
    }

    #[test]
    fn install_creates_then_leaves_identical_file_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let file = desired("/etc/x.conf", "a\n");
        let first = install_file(dir.path(), &file).unwrap();
        assert_eq!(first.change, FileChange::Create);
        assert_eq!(first.backup, None);
        let mtime = fs_err::metadata(&first.path).unwrap().modified().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let second = install_file(dir.path(), &file).unwrap();
        assert_eq!(second.change, FileChange::Unchanged);
        let mtime2 = fs_err::metadata(&second.path).unwrap().modified().unwrap();
        assert_eq!(mtime, mtime2, "identical file must not be rewritten");
    }

    #[test]
    fn replacing_an_operator_file_backs_it_up_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("etc/x.conf");
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(&path, "operator\n").unwrap();
        let out = install_file(dir.path(), &desired("/etc/x.conf", "ours 1\n")).unwrap();
        assert!(matches!(out.change, FileChange::Modify { .. }));
        assert_eq!(out.backup, Some(dir.path().join("etc/x.conf.orig")));
        install_file(dir.path(), &desired("/etc/x.conf", "ours 2\n")).unwrap();
        assert_eq!(
            fs_err::read_to_string(dir.path().join("etc/x.conf.orig")).unwrap(),
            "operator\n"
        );
        assert_eq!(fs_err::read_to_string(&path).unwrap(), "ours 2\n");
    }

    #[test]
    fn mode_is_applied_and_a_mode_change_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = desired("/etc/secret", "s\n");
        file.mode = 0o600;
        let out = install_file(dir.path(), &file).unwrap();
        let mode = fs_err::metadata(&out.path).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode, 0o600);
        file.mode = 0o640;
        let change = compare(&out.path, &file.contents, file.mode).unwrap();
        assert!(matches!(
            change,
            FileChange::Modify {
                mode_only: true,
                ..
            }
        ));
    }

    #[test]
    fn diff_names_the_target_and_shows_lines() {
        let change = FileChange::Modify {
            old: b"a\nb\n".to_vec(),
            mode_only: false,
        };
        let diff = unified_diff(Path::new("/etc/x.conf"), &change, b"a\nc\n");
        assert!(diff.contains("--- a/etc/x.conf"), "{diff}");
        assert!(diff.contains("+++ b/etc/x.conf"), "{diff}");
        assert!(diff.contains("-b\n") && diff.contains("+c\n"), "{diff}");
        let created = unified_diff(Path::new("/etc/y"), &FileChange::Create, b"n\n");
        assert!(created.contains("--- /dev/null") && created.contains("+n\n"));
        assert_eq!(
            unified_diff(Path::new("/etc/y"), &FileChange::Unchanged, b""),
            ""
        );
    }

    #[test]
    fn replace_dir_swaps_in_new_tree_and_removes_old() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("live");
        let staged = dir.path().join("staged");
        fs_err::create_dir_all(&staged).unwrap();
        fs_err::write(staged.join("f"), "1").unwrap();
        replace_dir(&staged, &live).unwrap();
        assert_eq!(fs_err::read_to_string(live.join("f")).unwrap(), "1");
        fs_err::create_dir_all(&staged).unwrap();
        fs_err::write(staged.join("g"), "2").unwrap();
        replace_dir(&staged, &live).unwrap();
        assert!(!staged.exists());
        assert!(!live.join("f").exists());
        assert_eq!(fs_err::read_to_string(live.join("g")).unwrap(), "2");
    }
}
