//! Release definitions (`manifests/rocky-<release>.toml`): the repos, mirrors, path layout and
//! release key of one distribution release. They are data so that adding Rocky 9 is a new file,
//! not new code. The project's `manifests/` are compiled into the binary, so a `bundler` copied
//! alone to another host builds; `--manifests DIR` (or `$KUBESPRAY_OFFLINE_MANIFESTS`) is looked
//! in first, for a release the binary does not know or a changed mirror list.
//!
//! A major release's definition also serves its minor releases: `--release 10.1` reads
//! `rocky-10.toml` (unless a `rocky-10.1.toml` exists) and fetches `10.1` from the vault, where
//! Rocky moves a minor release once the next one is out. Package sets (`--packages @kubespray`)
//! are looked up the same way.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct ReleaseDef {
    pub release: String,
    pub distro: String,
    pub mirrors: Vec<String>,
    /// Mirror roots that keep the older minor releases (same path layout), tried before
    /// `mirrors` when a minor release is asked for.
    #[serde(default)]
    pub vault: Vec<String>,
    /// The package whose version names the minor release a repo holds (`rocky-release`).
    #[serde(default)]
    pub release_package: Option<String>,
    /// The platform Python, for the PyPI target's markers.
    #[serde(default)]
    pub python: Option<PythonDef>,
    /// Mirrorlist URL form, recorded for operators; not used for fetching.
    #[serde(default)]
    pub mirrorlist: Option<String>,
    /// Repo path under a mirror, with `{release}`, `{dir}` and `{arch}`.
    pub path: String,
    pub arches: Vec<String>,
    pub default_arches: Vec<String>,
    pub key: KeyDef,
    pub repos: Vec<RepoDef>,
    /// The minor release asked for (`--release 10.1` with this major's definition); set by
    /// [`ReleaseDef::load`], not read from the file.
    #[serde(skip)]
    pub minor: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeyDef {
    /// File name of the key, both on the mirror (at its root) and in the bundle (`keys/`).
    pub file: String,
    #[serde(default)]
    pub url: Option<String>,
    /// The one pinned fingerprint (older definitions); uppercase hex, no spaces.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Fingerprints of the keys a package may be signed by (any one of them suffices). The
    /// key file may hold other keys too; they are kept and reported, not trusted.
    #[serde(default)]
    pub fingerprints: Vec<String>,
    /// Every repo's `repodata/repomd.xml` carries a detached signature (`repomd.xml.asc`) by a
    /// pinned key: a missing one fails the build.
    #[serde(default)]
    pub signed_metadata: bool,
}

impl KeyDef {
    /// Every pinned fingerprint: `fingerprint` and `fingerprints` together.
    pub fn pins(&self) -> Vec<String> {
        let mut pins: Vec<String> = self.fingerprint.iter().cloned().collect();
        for f in &self.fingerprints {
            if !pins.contains(f) {
                pins.push(f.clone());
            }
        }
        pins
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct PythonDef {
    /// `python_full_version` of the newest minor release.
    pub full_version: String,
    /// `python_full_version` of particular minor releases ("10.1" = "3.12.12").
    #[serde(default)]
    pub by_minor: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RepoDef {
    /// Repo id in the bundle and on the admin server: baseos, appstream, extras.
    pub id: String,
    /// Upstream directory: BaseOS, AppStream, extras.
    pub dir: String,
    #[serde(default)]
    pub mirrorlist_name: Option<String>,
    /// Mirrored only when asked for with `--repo ID` (CRB, HighAvailability).
    #[serde(default)]
    pub optional: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(
        "no release definition rocky-{release}.toml (looked in {searched}); this bundler knows {known} (and their minor releases, e.g. 10.1): write one like them and pass --manifests DIR"
    )]
    NotFound {
        release: String,
        searched: String,
        known: String,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "no package set @{name}: {file} is neither in --manifests nor built in; pass a file of package names instead"
    )]
    NoPackageSet { name: String, file: String },
}

impl ReleaseDef {
    /// Find and parse the definition of `release`: in `manifests_dir`, then in
    /// `$KUBESPRAY_OFFLINE_MANIFESTS`, then among the definitions built into the binary.
    ///
    /// A minor release (`10.1`) without a definition of its own uses its major's, with
    /// [`ReleaseDef::minor`] set.
    pub fn load(release: &str, manifests_dir: Option<&Path>) -> Result<Self, ReleaseError> {
        let name = format!("rocky-{release}.toml");
        let dirs = search_dirs(manifests_dir);
        if let Some((text, origin)) = find_manifest(&name, &dirs)? {
            return Self::from_text(&text, &origin);
        }
        if let Some((major, minor)) = release.split_once('.')
            && !major.is_empty()
            && !minor.is_empty()
            && release.chars().all(|c| c.is_ascii_digit() || c == '.')
            && !minor.contains('.')
            && let Some((text, origin)) = find_manifest(&format!("rocky-{major}.toml"), &dirs)?
        {
            let mut def = Self::from_text(&text, &origin)?;
            def.minor = Some(release.to_string());
            return Ok(def);
        }
        let mut searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        searched.push("the definitions built into bundler".into());
        Err(ReleaseError::NotFound {
            release: release.to_string(),
            searched: searched.join(", "),
            known: BUILT_IN
                .iter()
                .filter_map(|(n, _)| n.strip_prefix("rocky-")?.strip_suffix(".toml"))
                .collect::<Vec<_>>()
                .join(", "),
        })
    }

    pub fn from_file(path: &Path) -> Result<Self, ReleaseError> {
        let text = fs_err::read_to_string(path).map_err(|e| ReleaseError::Invalid {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_text(&text, path)
    }

    /// The release in repo paths: the minor asked for, else the definition's (moving) release.
    pub fn path_release(&self) -> &str {
        self.minor.as_deref().unwrap_or(&self.release)
    }

    /// `python_full_version` of the release mirrored: the minor's when the definition knows
    /// it, else the newest minor's.
    pub fn python_full_version(&self) -> Option<&str> {
        let python = self.python.as_ref()?;
        Some(
            self.minor
                .as_deref()
                .and_then(|m| python.by_minor.get(m))
                .unwrap_or(&python.full_version),
        )
    }

    /// Repos mirrored when no `--repo` is given: every repo not marked optional.
    pub fn default_repos(&self) -> Vec<String> {
        self.repos
            .iter()
            .filter(|r| !r.optional)
            .map(|r| r.id.clone())
            .collect()
    }

    fn from_text(text: &str, path: &Path) -> Result<Self, ReleaseError> {
        let invalid = |reason: String| ReleaseError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let def: ReleaseDef = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if def.repos.is_empty() || def.mirrors.is_empty() {
            return Err(invalid("needs at least one repo and one mirror".into()));
        }
        if def.key.pins().is_empty() {
            return Err(invalid(
                "[key] needs the fingerprint of the release key (fingerprints = [...])".into(),
            ));
        }
        Ok(def)
    }

    pub fn repo(&self, id: &str) -> Option<&RepoDef> {
        self.repos.iter().find(|r| r.id == id)
    }

    /// `<mirror>/<path>/` for one repo and arch, always ending in `/`.
    pub fn repo_url(&self, mirror: &str, repo: &RepoDef, arch: &str) -> String {
        let path = self
            .path
            .replace("{release}", self.path_release())
            .replace("{dir}", &repo.dir)
            .replace("{arch}", arch);
        format!(
            "{}/{}/",
            mirror.trim_end_matches('/'),
            path.trim_matches('/')
        )
    }
}

/// The release definitions and package sets of the project's `manifests/`, compiled in.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "rocky-10.toml",
        include_str!("../../manifests/rocky-10.toml"),
    ),
    (
        "kubespray-rocky10-packages.txt",
        include_str!("../../manifests/kubespray-rocky10-packages.txt"),
    ),
];

/// A manifest file's text and where it was read from: the first search directory holding it,
/// else the built-in copy.
fn find_manifest(name: &str, dirs: &[PathBuf]) -> Result<Option<(String, PathBuf)>, ReleaseError> {
    for dir in dirs {
        let path = dir.join(name);
        if path.is_file() {
            let text = fs_err::read_to_string(&path).map_err(|e| ReleaseError::Invalid {
                path: path.clone(),
                reason: e.to_string(),
            })?;
            return Ok(Some((text, path)));
        }
    }
    Ok(BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, text)| {
        (
            text.to_string(),
            PathBuf::from(format!("(built in) manifests/{name}")),
        )
    }))
}

/// The package set `@NAME` (`--packages @kubespray`) for a release: the names in
/// `manifests/NAME-<distro><major>-packages.txt` (`kubespray-rocky10-packages.txt`), looked up
/// like release definitions. Returns its text and where it was read from.
pub fn package_set(
    name: &str,
    release: &ReleaseDef,
    manifests_dir: Option<&Path>,
) -> Result<(String, PathBuf), ReleaseError> {
    let file = format!("{name}-{}{}-packages.txt", release.distro, release.release);
    find_manifest(&file, &search_dirs(manifests_dir))?.ok_or_else(|| ReleaseError::NoPackageSet {
        name: name.to_string(),
        file,
    })
}

/// Environment variable naming a directory of release definitions (after `--manifests`).
pub const MANIFESTS_ENV: &str = "KUBESPRAY_OFFLINE_MANIFESTS";

fn search_dirs(explicit: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = explicit {
        dirs.push(d.to_path_buf());
    }
    if let Some(d) = std::env::var_os(MANIFESTS_ENV).filter(|d| !d.is_empty()) {
        dirs.push(PathBuf::from(d));
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rocky_10_definition_is_complete() {
        let def = ReleaseDef::load("10", None).unwrap();
        assert_eq!(def.key.file, "RPM-GPG-KEY-Rocky-10");
        assert_eq!(def.key.pins(), ["FC226859C0860BF0DDB95B085B106C736FEDFC85"]);
        assert!(def.key.signed_metadata);
        assert_eq!(def.release_package.as_deref(), Some("rocky-release"));
        assert_eq!(def.python_full_version(), Some("3.12.13"));
        let ids: Vec<_> = def.repos.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(
            ids,
            ["baseos", "appstream", "extras", "crb", "highavailability"]
        );
        assert_eq!(def.default_repos(), ["baseos", "appstream", "extras"]);
        assert_eq!(
            def.repo_url(
                "https://dl.rockylinux.org/pub/rocky/",
                def.repo("appstream").unwrap(),
                "x86_64"
            ),
            "https://dl.rockylinux.org/pub/rocky/10/AppStream/x86_64/os/"
        );
        assert!(matches!(
            ReleaseDef::load("7", None),
            Err(ReleaseError::NotFound { .. })
        ));
    }

    #[test]
    fn a_minor_release_uses_its_major_definition_and_the_vault() {
        let def = ReleaseDef::load("10.1", None).unwrap();
        assert_eq!(def.release, "10");
        assert_eq!(def.minor.as_deref(), Some("10.1"));
        assert_eq!(def.python_full_version(), Some("3.12.12"));
        assert_eq!(def.vault, ["https://dl.rockylinux.org/vault/rocky"]);
        assert_eq!(
            def.repo_url(&def.vault[0], def.repo("crb").unwrap(), "aarch64"),
            "https://dl.rockylinux.org/vault/rocky/10.1/CRB/aarch64/os/"
        );
        for bad in ["7.1", "10.x", "10.", "10.1.2", ".1"] {
            assert!(ReleaseDef::load(bad, None).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_kubespray_package_set_is_built_in() {
        let def = ReleaseDef::load("10", None).unwrap();
        let (text, origin) = package_set("kubespray", &def, None).unwrap();
        assert!(origin.display().to_string().contains("built in"));
        assert!(text.lines().any(|l| l.trim() == "kernel-modules-extra"));
        assert!(matches!(
            package_set("nothing", &def, None),
            Err(ReleaseError::NoPackageSet { .. })
        ));
    }
}
