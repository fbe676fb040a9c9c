//! Release definitions (`manifests/rocky-<release>.toml`): the repos, mirrors, path layout and
//! release key of one distribution release. They are data so that adding Rocky 9 is a new file,
//! not new code. The project's `manifests/` are compiled into the binary, so a `bundler` copied
//! alone to another host builds; `--manifests DIR` (or `$KUBESPRAY_OFFLINE_MANIFESTS`) is looked
//! in first, for a release the binary does not know or a changed mirror list.

use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
pub struct ReleaseDef {
    pub release: String,
    pub distro: String,
    pub mirrors: Vec<String>,
    /// Mirrorlist URL form, recorded for operators; not used for fetching.
    #[serde(default)]
    pub mirrorlist: Option<String>,
    /// Repo path under a mirror, with `{release}`, `{dir}` and `{arch}`.
    pub path: String,
    pub arches: Vec<String>,
    pub default_arches: Vec<String>,
    pub key: KeyDef,
    pub repos: Vec<RepoDef>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct KeyDef {
    /// File name of the key, both on the mirror (at its root) and in the bundle (`keys/`).
    pub file: String,
    #[serde(default)]
    pub url: Option<String>,
    /// Uppercase hex, no spaces.
    pub fingerprint: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct RepoDef {
    /// Repo id in the bundle and on the admin server: baseos, appstream, extras.
    pub id: String,
    /// Upstream directory: BaseOS, AppStream, extras.
    pub dir: String,
    #[serde(default)]
    pub mirrorlist_name: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error(
        "no release definition rocky-{release}.toml (looked in {searched}); this bundler knows {known}: write one like them and pass --manifests DIR"
    )]
    NotFound {
        release: String,
        searched: String,
        known: String,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

impl ReleaseDef {
    /// Find and parse the definition of `release`: in `manifests_dir`, then in
    /// `$KUBESPRAY_OFFLINE_MANIFESTS`, then among the definitions built into the binary.
    pub fn load(release: &str, manifests_dir: Option<&Path>) -> Result<Self, ReleaseError> {
        let name = format!("rocky-{release}.toml");
        let dirs = search_dirs(manifests_dir);
        for dir in &dirs {
            let path = dir.join(&name);
            if path.is_file() {
                return Self::from_file(&path);
            }
        }
        if let Some((_, text)) = BUILT_IN.iter().find(|(n, _)| *n == name) {
            return Self::from_text(text, Path::new(&format!("(built in) manifests/{name}")));
        }
        let mut searched: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        searched.push("the definitions built into bundler".into());
        Err(ReleaseError::NotFound {
            release: release.to_string(),
            searched: searched.join(", "),
            known: BUILT_IN
                .iter()
                .map(|(n, _)| n.trim_start_matches("rocky-").trim_end_matches(".toml"))
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

    fn from_text(text: &str, path: &Path) -> Result<Self, ReleaseError> {
        let invalid = |reason: String| ReleaseError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let def: ReleaseDef = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if def.repos.is_empty() || def.mirrors.is_empty() {
            return Err(invalid("needs at least one repo and one mirror".into()));
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
            .replace("{release}", &self.release)
            .replace("{dir}", &repo.dir)
            .replace("{arch}", arch);
        format!(
            "{}/{}/",
            mirror.trim_end_matches('/'),
            path.trim_matches('/')
        )
    }
}

/// The release definitions of the project's `manifests/`, compiled in.
const BUILT_IN: &[(&str, &str)] = &[(
    "rocky-10.toml",
    include_str!("../../manifests/rocky-10.toml"),
)];

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
        assert_eq!(
            def.key.fingerprint,
            "FC226859C0860BF0DDB95B085B106C736FEDFC85"
        );
        let ids: Vec<_> = def.repos.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["baseos", "appstream", "extras"]);
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
}
