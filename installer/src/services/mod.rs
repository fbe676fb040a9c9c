//! Generators for everything the admin server runs besides the repos and the index: bind,
//! chrony, IP forwarding and NAT, the landing page, the node files it serves, and the system
//! actions (systemd, firewalld, SELinux) that go with them. All are pure functions of the site
//! file and of what the bundle serves; the apply plan decides what to write and run.

pub mod bind;
pub mod chrony;
pub mod firewalld;
pub mod landing;
pub mod nat;
pub mod selinux;

use bundle::manifest::BundleManifest;

use crate::actions::{Condition, SystemAction};
use crate::desired::DesiredFile;
use crate::site::SiteConfig;

/// What the admin serves from a bundle, as the landing page and the node files describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedContent {
    pub bundle_id: String,
    /// RFC 3339 creation time of the bundle.
    pub created: String,
    /// e.g. "rocky".
    pub distro: String,
    /// e.g. "10".
    pub release: String,
    pub repos: Vec<ServedRepo>,
    /// PyPI target names, e.g. "cp312-manylinux_2_39-x86_64".
    pub python_targets: Vec<String>,
    /// File name of the release key served at `/<distro>/<key_file>`, when the bundle has one.
    pub key_file: Option<String>,
    /// Architectures whose installer binary is served at `/node/installer-<arch>`.
    pub installer_arches: Vec<String>,
    /// Images served by the registry at `/v2/`, sorted by name and tag.
    pub images: Vec<ServedImage>,
    /// Kubespray's files served under `/files/`, sorted by path.
    pub downloads: Vec<ServedDownload>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedImage {
    /// The reference Kubespray uses upstream, e.g. `registry.k8s.io/pause:3.10`.
    pub reference: String,
    /// Served as `name:tag` by the admin's registry.
    pub name: String,
    pub tag: String,
    /// `sha256:<hex>` of the tag's manifest or index.
    pub digest: String,
    /// Bytes of its manifests and blobs, once the manifests were read (after an apply built
    /// the registry); None before.
    pub bytes: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedDownload {
    /// Path below `/files/`: `dl.k8s.io/release/v1.35.4/bin/linux/amd64/kubelet`.
    pub path: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServedRepo {
    pub id: String,
    pub arch: String,
    pub package_count: u64,
}

impl ServedContent {
    pub fn from_manifest(manifest: &BundleManifest) -> ServedContent {
        let rpm = manifest.rpm.as_ref();
        ServedContent {
            bundle_id: manifest.bundle_id.clone(),
            created: manifest
                .created
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            distro: rpm.map_or("rocky".into(), |r| r.distro.clone()),
            release: manifest.release.clone().unwrap_or_else(|| "10".into()),
            repos: rpm
                .map(|r| {
                    r.repos
                        .iter()
                        .map(|repo| ServedRepo {
                            id: repo.id.clone(),
                            arch: repo.arch.clone(),
                            package_count: repo.package_count,
                        })
                        .collect()
                })
                .unwrap_or_default(),
            python_targets: manifest
                .pypi_targets
                .iter()
                .map(|t| t.name.clone())
                .collect(),
            key_file: rpm
                .and_then(|r| r.key_path.as_deref())
                .and_then(|p| p.rsplit('/').next())
                .map(str::to_string),
            installer_arches: bundle::summary::Summary::from_manifest(manifest, false)
                .installers
                .into_iter()
                .map(|i| i.arch)
                .collect(),
            images: served_images(manifest),
            downloads: served_downloads(manifest),
        }
    }

    /// Fills in each image's size from `bytes` (by `name:tag`).
    pub fn set_image_bytes(&mut self, bytes: &std::collections::BTreeMap<String, u64>) {
        for image in &mut self.images {
            image.bytes = bytes.get(&format!("{}:{}", image.name, image.tag)).copied();
        }
    }

    /// True when the admin's registry serves images.
    pub fn has_registry(&self) -> bool {
        !self.images.is_empty()
    }

    /// True when the admin serves Kubespray's files repo.
    pub fn has_files_repo(&self) -> bool {
        !self.downloads.is_empty()
    }

    /// URL path of a repo on the admin's web server: `/<distro>/<release>/<id>/`.
    pub fn repo_path(&self, repo: &ServedRepo) -> String {
        format!("/{}/{}/{}/", self.distro, self.release, repo.id)
    }

    /// URL path of the release key, when served.
    pub fn key_path(&self) -> Option<String> {
        self.key_file
            .as_ref()
            .map(|k| format!("/{}/{k}", self.distro))
    }
}

fn served_images(manifest: &BundleManifest) -> Vec<ServedImage> {
    let mut images: Vec<ServedImage> = manifest
        .kubespray
        .iter()
        .flat_map(|k| &k.images)
        .map(|i| ServedImage {
            reference: i.reference.clone(),
            name: i.name.clone(),
            tag: i.tag.clone(),
            digest: i.digest.clone(),
            bytes: None,
        })
        .collect();
    images.sort_by(|a, b| (&a.name, &a.tag, &a.reference).cmp(&(&b.name, &b.tag, &b.reference)));
    images
}

fn served_downloads(manifest: &BundleManifest) -> Vec<ServedDownload> {
    let sizes: std::collections::HashMap<&str, u64> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.size))
        .collect();
    let mut downloads: Vec<ServedDownload> = manifest
        .kubespray
        .iter()
        .flat_map(|k| &k.files)
        .filter_map(|d| {
            Some(ServedDownload {
                path: d.path.strip_prefix("files/")?.to_string(),
                size: sizes.get(d.path.as_str()).copied().unwrap_or(0),
            })
        })
        .collect();
    downloads.sort_by(|a, b| a.path.cmp(&b.path));
    downloads.dedup_by(|a, b| a.path == b.path);
    downloads
}

/// URL path of Kubespray's files repo.
pub const FILES_PATH: &str = "/files/";

/// URL path of the PyPI simple index.
pub const PYPI_PATH: &str = "/pypi/simple/";
/// URL path under which the node files are served (`<data_root>/node/` on disk).
pub const NODE_PATH: &str = "/node/";

/// Every file the admin's own services need, plus the landing page and the node files it
/// serves. NAT files are separate (`nat::files`) because their content follows the state the
/// operator switched to, not the site file alone.
pub fn admin_files(site: &SiteConfig, served: &ServedContent) -> Vec<DesiredFile> {
    let mut files = bind::files(site);
    files.push(chrony::server_file(site));
    files.push(landing::page(site, served));
    files.extend(crate::node::served_files(site, served));
    files
}

/// Services the admin runs, in the order they are restarted.
pub const SERVICES: [&str; 3] = ["named", "chronyd", "nginx"];

/// System actions that go with `admin_files`: SELinux labels, firewalld zones and ports,
/// enabling and restarting the services. Each carries the condition under which it applies.
/// The NAT state (and firewalld's reload) follows in `nat::runtime_actions`.
pub fn admin_actions(site: &SiteConfig) -> Vec<SystemAction> {
    let mut actions = selinux::actions(site);
    actions.extend(firewalld::zone_actions(site));
    actions.push(SystemAction::new(
        "load the NAT ruleset at boot",
        // nftables.service conflicts with firewalld.service: enabling it would stop firewalld.
        Condition::All(&[Condition::Systemd, Condition::NoFirewalld]),
        &["systemctl", "enable", "nftables"],
    ));
    let mut enable = vec!["systemctl", "enable"];
    enable.extend(SERVICES);
    actions.push(SystemAction::new(
        "start the services at boot",
        Condition::Systemd,
        &enable,
    ));
    for service in SERVICES {
        actions.push(SystemAction::new(
            format!("restart {service} with the new configuration"),
            Condition::Systemd,
            &["systemctl", "restart", service],
        ));
    }
    actions
}

#[cfg(test)]
pub(crate) fn sample_served() -> ServedContent {
    ServedContent {
        bundle_id: "0123abcd".into(),
        created: "2026-11-27T10:00:00Z".into(),
        distro: "rocky".into(),
        release: "10".into(),
        repos: ["baseos", "appstream", "extras"]
            .iter()
            .map(|id| ServedRepo {
                id: id.to_string(),
                arch: "x86_64".into(),
                package_count: 3,
            })
            .collect(),
        python_targets: vec!["cp312-manylinux_2_39-x86_64".into()],
        key_file: Some("RPM-GPG-KEY-Rocky-10".into()),
        installer_arches: vec!["x86_64".into()],
        images: vec![ServedImage {
            reference: "registry.k8s.io/pause:3.10".into(),
            name: "pause".into(),
            tag: "3.10".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            bytes: Some(321_000),
        }],
        downloads: vec![ServedDownload {
            path: "dl.k8s.io/release/v1.35.4/bin/linux/amd64/kubelet".into(),
            size: 58_000_000,
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_files_are_absolute_and_unique() {
        let files = admin_files(&SiteConfig::default(), &sample_served());
        let mut paths: Vec<_> = files.iter().map(|f| f.path.clone()).collect();
        assert!(paths.iter().all(|p| p.is_absolute()));
        paths.sort();
        paths.dedup();
        assert_eq!(paths.len(), files.len());
    }

    #[test]
    fn default_ports_open_services_not_ports() {
        let actions = admin_actions(&SiteConfig::default());
        let lines: Vec<String> = actions.iter().map(|a| a.command_line()).collect();
        assert!(
            lines.contains(
                &"firewall-cmd --permanent --zone=internal --add-service=dns --add-service=ntp --add-service=http"
                    .to_string()
            )
        );
        assert!(!lines.iter().any(|l| l.contains("semanage port")));
    }
}
