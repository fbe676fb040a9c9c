//! What Kubespray downloads besides packages and wheels: the files its roles fetch by URL
//! (kubelet, etcd, CNI plugins, ...) and the container images its nodes pull. The lists per
//! Kubespray version are data (`manifests/kubespray/<version>.json`, rendered from Kubespray's
//! own roles by `scripts/kubespray-lists` for its sample inventory, with each file's sha256),
//! built into the binary; `--files-list`/`--images-list` take the lists Kubespray's own
//! `contrib/offline/generate_list.sh` writes instead. Also the image reference grammar and the
//! upstream mirrors (`--files-mirror`, `--registry-mirror`).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use url::Url;

use crate::build::BuildError;

/// `scripts/kubespray-lists`, which renders the lists from Kubespray's roles with ansible.
const RENDER_SCRIPT: &str = include_str!("../../scripts/kubespray-lists");

/// Download lists shipped with the bundler, newest first.
const SHIPPED: &[(&str, &str)] = &[(
    "2.31.0",
    include_str!("../../manifests/kubespray/2.31.0.json"),
)];

/// One Kubespray version's lists.
#[derive(Debug, Clone, Deserialize)]
pub struct DownloadLists {
    #[serde(rename = "kubespray")]
    pub version: String,
    #[serde(default)]
    pub files: Vec<ListedFile>,
    #[serde(default)]
    pub images: Vec<ListedImage>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ListedFile {
    pub name: String,
    /// Kubespray's `image_arch`: amd64, arm64.
    pub arch: String,
    pub url: String,
    /// Kubespray's checksum; None for a list made by its script (checked by size only then).
    #[serde(default)]
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ListedImage {
    pub name: String,
    pub reference: String,
    /// Kubespray arches the image is enabled for; empty means every arch.
    #[serde(default)]
    pub arches: Vec<String>,
}

impl DownloadLists {
    /// The shipped lists of `version`.
    pub fn shipped(version: &str) -> Result<Self, BuildError> {
        let (_, text) = SHIPPED.iter().find(|(v, _)| *v == version).ok_or_else(|| {
            BuildError::Usage(format!(
                "no Kubespray download lists for {version} (this bundler has {}); pass --files-list and --images-list made with Kubespray's contrib/offline/generate_list.sh, or --no-files --no-images",
                SHIPPED.iter().map(|(v, _)| *v).collect::<Vec<_>>().join(", ")
            ))
        })?;
        Ok(serde_json::from_str(text).expect("shipped download lists are valid JSON"))
    }

    /// Renders the lists for a user's inventory with Kubespray's own roles: runs
    /// `scripts/kubespray-lists` (built into the binary) with python3 and ansible-playbook on
    /// the Kubespray source tree `tree` of `version`.
    pub fn render(version: &str, tree: &Path, inventory: &Path) -> Result<Self, BuildError> {
        for (flag, dir) in [
            ("--kubespray-inventory", inventory),
            ("--kubespray-tree", tree),
        ] {
            if !dir.is_dir() {
                return Err(BuildError::Usage(format!(
                    "{flag} {}: no such directory",
                    dir.display()
                )));
            }
        }
        let work = tempfile::tempdir().map_err(|e| BuildError::Usage(format!("temp dir: {e}")))?;
        let script = work.path().join("kubespray-lists");
        let output = work.path().join("lists.json");
        fs_err::write(&script, RENDER_SCRIPT).map_err(|e| BuildError::Usage(e.to_string()))?;
        let run = std::process::Command::new("python3")
            .arg(&script)
            .arg("--source")
            .arg(tree)
            .args(["--version", version])
            .arg("--inventory")
            .arg(inventory)
            .arg("-o")
            .arg(&output)
            .output()
            .map_err(|e| {
                BuildError::Usage(format!(
                    "--kubespray-inventory needs python3 and ansible-playbook on the online host: {e}"
                ))
            })?;
        if !run.status.success() {
            return Err(BuildError::Usage(format!(
                "rendering the download lists of {} with ansible failed (is ansible-playbook installed, and is {} Kubespray {version}?):\n{}",
                inventory.display(),
                tree.display(),
                String::from_utf8_lossy(&run.stderr).trim()
            )));
        }
        Self::from_file(&output)
    }

    /// Lists in the shipped JSON form from a file (`--download-lists`).
    pub fn from_file(path: &Path) -> Result<Self, BuildError> {
        let text = fs_err::read_to_string(path)
            .map_err(|e| BuildError::Usage(format!("--download-lists: {e}")))?;
        serde_json::from_str(&text).map_err(|e| {
            BuildError::Usage(format!(
                "--download-lists {}: not a download list (scripts/kubespray-lists writes them): {e}",
                path.display()
            ))
        })
    }

    /// Lists as Kubespray's `generate_list.sh` writes them: one URL per line in `files`, one
    /// image reference per line in `images` (blank lines and `#` comments skipped). Without
    /// Kubespray's checksums, such files are pinned by what upstream serves.
    pub fn from_generated(
        version: &str,
        files: Option<&Path>,
        images: Option<&Path>,
    ) -> Result<Self, BuildError> {
        let lines = |flag: &str, path: &Path| -> Result<Vec<String>, BuildError> {
            let text = fs_err::read_to_string(path)
                .map_err(|e| BuildError::Usage(format!("{flag}: {e}")))?;
            Ok(text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string)
                .collect())
        };
        let mut lists = DownloadLists {
            version: version.to_string(),
            files: Vec::new(),
            images: Vec::new(),
        };
        if let Some(path) = files {
            for url in lines("--files-list", path)? {
                let arch = ["amd64", "arm64"]
                    .into_iter()
                    .find(|a| url.contains(a))
                    .unwrap_or_default();
                let name = url.rsplit('/').next().unwrap_or(&url).to_string();
                lists.files.push(ListedFile {
                    name,
                    arch: arch.to_string(),
                    url,
                    sha256: None,
                });
            }
        }
        if let Some(path) = images {
            for reference in lines("--images-list", path)? {
                lists.images.push(ListedImage {
                    name: reference.clone(),
                    reference,
                    arches: Vec::new(),
                });
            }
        }
        Ok(lists)
    }
}

/// Kubespray's arch name (`image_arch`) for an RPM arch.
pub fn kubespray_arch(arch: &str) -> &str {
    match arch {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// `HOST=URL` overrides of upstream hosts (`--files-mirror`, `--registry-mirror`).
#[derive(Debug, Clone, Default)]
pub struct HostMirrors(BTreeMap<String, Url>);

impl HostMirrors {
    pub fn parse(flag: &str, values: &[String]) -> Result<Self, BuildError> {
        let mut map = BTreeMap::new();
        for value in values {
            let (host, url) = value
                .split_once('=')
                .ok_or_else(|| BuildError::Usage(format!("{flag} {value}: expected HOST=URL")))?;
            let url = Url::parse(url.trim_end_matches('/'))
                .map_err(|e| BuildError::Usage(format!("{flag} {value}: {e}")))?;
            map.insert(host.to_string(), url);
        }
        Ok(HostMirrors(map))
    }

    /// `url` with its scheme and host replaced by the mirror's base, when one is set for it.
    pub fn rewrite(&self, url: &Url) -> Url {
        let Some(base) = url.host_str().and_then(|h| self.0.get(h)) else {
            return url.clone();
        };
        let mut out = base.clone();
        let path = format!("{}{}", base.path().trim_end_matches('/'), url.path());
        out.set_path(&path);
        out.set_query(url.query());
        out
    }

    /// The mirror's base for `host`, if one is set.
    pub fn get(&self, host: &str) -> Option<&Url> {
        self.0.get(host)
    }
}

/// A parsed image reference: `registry.k8s.io/pause:3.10`, `quay.io/calico/node:v3.31.5`,
/// `docker.io/library/nginx:1.28.2-alpine` (a short `nginx:1.28` means docker.io/library).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub registry: String,
    pub repository: String,
    pub tag: String,
}

impl ImageRef {
    /// Parses `reference` by the distribution spec's grammar (lowercase path components
    /// separated by `.`, `_`, `__` or dashes; tags `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`), so a
    /// name with `..`, an absolute path or a digest-only reference is refused.
    pub fn parse(reference: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("image reference {reference:?}: {why}");
        let (name, tag) = match reference.rsplit_once(':') {
            Some((n, t)) if !t.contains('/') => (n, t),
            _ => return Err(bad("needs a tag (name:tag)")),
        };
        if name.contains('@') {
            return Err(bad("digest references are not supported; name a tag"));
        }
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        let repository = if registry == "docker.io" && !repository.contains('/') {
            format!("library/{repository}")
        } else {
            repository
        };
        bundle::image::check_name(&repository).map_err(|why| bad(&why))?;
        bundle::image::check_tag(tag).map_err(|why| bad(&why))?;
        Ok(ImageRef {
            registry,
            repository,
            tag: tag.to_string(),
        })
    }

    /// The registry's API base: `https://<registry>` (Docker Hub's API is
    /// `registry-1.docker.io`), or the mirror given for it.
    pub fn api_base(&self, mirrors: &HostMirrors) -> Url {
        if let Some(base) = mirrors.get(&self.registry) {
            return base.clone();
        }
        let host = match self.registry.as_str() {
            "docker.io" => "registry-1.docker.io",
            other => other,
        };
        Url::parse(&format!("https://{host}")).expect("a registry host makes a URL")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse_as_kubespray_writes_them() {
        let r = ImageRef::parse("registry.k8s.io/pause:3.10.1").unwrap();
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_str()),
            ("registry.k8s.io", "pause", "3.10.1")
        );
        let r = ImageRef::parse("quay.io/calico/node:v3.31.5").unwrap();
        assert_eq!(r.repository, "calico/node");
        let r = ImageRef::parse("docker.io/library/nginx:1.28.2-alpine").unwrap();
        assert_eq!(r.repository, "library/nginx");
        assert_eq!(
            ImageRef::parse("nginx:1.28").unwrap().repository,
            "library/nginx"
        );
        let r = ImageRef::parse("127.0.0.1:5000/coredns/coredns:v1.12.4").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(
            r.api_base(&HostMirrors::default()).as_str(),
            "https://127.0.0.1:5000/"
        );
    }

    #[test]
    fn hostile_references_are_refused() {
        for bad in [
            "registry.k8s.io/../etc:1",
            "registry.k8s.io/a/../b:1",
            "registry.k8s.io/Pause:1",
            "registry.k8s.io/pause",
            "registry.k8s.io/pause:../x",
            "registry.k8s.io/pause@sha256:00:1",
            "registry.k8s.io//pause:1",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn mirrors_rewrite_the_host_and_keep_the_path() {
        let m = HostMirrors::parse(
            "--files-mirror",
            &["dl.k8s.io=http://127.0.0.1:8080/dl".into()],
        )
        .unwrap();
        let url = Url::parse("https://dl.k8s.io/release/v1.35.4/bin/linux/amd64/kubelet").unwrap();
        assert_eq!(
            m.rewrite(&url).as_str(),
            "http://127.0.0.1:8080/dl/release/v1.35.4/bin/linux/amd64/kubelet"
        );
        let other = Url::parse("https://github.com/x").unwrap();
        assert_eq!(m.rewrite(&other), other);
    }

    #[test]
    fn shipped_lists_load_and_pin_every_file() {
        let lists = DownloadLists::shipped("2.31.0").unwrap();
        assert!(
            lists
                .files
                .iter()
                .all(|f| f.sha256.as_ref().is_some_and(|s| s.len() == 64))
        );
        assert!(
            lists
                .images
                .iter()
                .all(|i| ImageRef::parse(&i.reference).is_ok())
        );
        assert!(
            lists
                .files
                .iter()
                .any(|f| f.name == "kubelet" && f.arch == "arm64")
        );
        assert!(DownloadLists::shipped("9.9.9").is_err());
    }
}
