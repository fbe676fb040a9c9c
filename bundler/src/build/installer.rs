//! The `installer` binaries a bundle carries, one per admin architecture, so that the one file
//! carried across the air gap holds what applies it. By default the `installer` beside the
//! running `bundler` (a release tarball ships both; so does `cargo build`); `--installer FILE`
//! names others (an aarch64 build, say). The architecture is read from the ELF header, not
//! trusted from a file name.

use std::path::{Path, PathBuf};

use bundle::run::{RunInstaller, elf_arch};
use bundle::{FileEntry, FileKind};

use super::{BuildError, BuildParts, Source};

/// The installers to bundle: `explicit` when given, else the one beside this executable.
pub fn find_installers(explicit: &[PathBuf]) -> Result<Vec<RunInstaller>, BuildError> {
    let paths = if explicit.is_empty() {
        let beside = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("installer")))
            .unwrap_or_else(|| PathBuf::from("installer"));
        if !beside.is_file() {
            return Err(BuildError::Usage(format!(
                "no installer binary beside bundler ({} is missing): a bundle carries the installer that applies it; pass --installer FILE (once per architecture) or --no-installer",
                beside.display()
            )));
        }
        vec![beside]
    } else {
        explicit.to_vec()
    };
    let mut found: Vec<RunInstaller> = Vec::new();
    for path in paths {
        let installer = describe(&path)?;
        if let Some(twin) = found.iter().find(|i| i.arch == installer.arch) {
            return Err(BuildError::Usage(format!(
                "--installer {} and {} are both for {}; give one per architecture",
                twin.path.display(),
                path.display(),
                installer.arch
            )));
        }
        found.push(installer);
    }
    found.sort_by(|a, b| a.arch.cmp(&b.arch));
    Ok(found)
}

fn describe(path: &Path) -> Result<RunInstaller, BuildError> {
    let arch = elf_arch(path).map_err(|e| BuildError::Usage(format!("--installer {e}")))?;
    let (size, sha256) = bundle::write::hash_file(path)?;
    Ok(RunInstaller {
        path: path.to_path_buf(),
        arch,
        sha256,
        size,
    })
}

/// Path of an architecture's installer inside the bundle.
pub fn bundle_path(arch: &str) -> String {
    format!("installer/{arch}/installer")
}

/// Adds the installers to the bundle's files.
pub fn add_installer_part(parts: &mut BuildParts, installers: &[RunInstaller]) {
    for installer in installers {
        parts.files.push((
            FileEntry {
                path: bundle_path(&installer.arch),
                size: installer.size,
                sha256: installer.sha256.clone(),
                kind: FileKind::Installer,
                origin: None,
                in_base: false,
            },
            Source::Local(installer.path.clone()),
        ));
    }
}
