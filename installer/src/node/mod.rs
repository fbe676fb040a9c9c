//! What a node needs to live on the admin alone: the internal yum repos (gpgcheck on, key by
//! URL), `/etc/pip.conf`, a chrony client, the resolver with NetworkManager's DNS management
//! off, the default route through the admin, and when the admin serves images, containerd's
//! registry host files (see `containerd`). The admin serves these files under `/node/`
//! together with `node.json` (where each file goes) and an Ansible playbook, inventory and
//! Kubespray offline variables; `installer node` (see `setup`) fetches and applies them.

pub mod ansible;
pub mod containerd;
pub mod setup;

use std::fmt::Write;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::desired::DesiredFile;
use crate::services::{FILES_PATH, PYPI_PATH, ServedContent, chrony};
use crate::site::SiteConfig;

pub const REPO_FILE_NAME: &str = "kubespray-offline.repo";
pub const SPEC_NAME: &str = "node.json";
/// Where the node's previous `.repo` files are moved, so dnf sees only the admin's repos.
pub const REPO_BACKUP_DIR: &str = "/etc/yum.repos.d/kubespray-offline-backup";

/// `node.json`: the node files and where each goes, plus what status and the node command need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeSpec {
    pub admin: Ipv4Addr,
    /// `http://ADMIN[:PORT]`.
    pub http_base: String,
    pub files: Vec<NodeFile>,
    pub repo_backup_dir: String,
    pub repos: Vec<RepoUrl>,
    pub pypi_index: String,
    /// One image the registry serves, for `installer status`; absent without images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry: Option<RegistryProbe>,
    /// One file of the files repo, for `installer status`; absent without downloads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files_repo: Option<FileProbe>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistryProbe {
    /// `http://ADMIN[:PORT]`, whose `/v2/` is the registry.
    pub url: String,
    pub name: String,
    pub tag: String,
    /// `sha256:<hex>` the tag must answer with.
    pub digest: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileProbe {
    pub url: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeFile {
    /// File name under `/node/` on the admin.
    pub name: String,
    /// Absolute destination on the node.
    pub path: String,
    pub mode: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoUrl {
    pub id: String,
    pub url: String,
}

/// File name under `/node/` of the installer binary for `arch` (as `uname -m` names it).
pub fn installer_name(arch: &str) -> String {
    format!("installer-{arch}")
}

/// The shell line that fetches the installer for the node's architecture from the admin,
/// checks its sha256 and runs `installer node` with it.
pub fn installer_one_liner(site: &SiteConfig) -> String {
    let base = site.http_base();
    format!(
        "a=$(uname -m) && curl -fsSO {base}/node/installer-$a -O {base}/node/installer-$a.sha256 && sha256sum -c installer-$a.sha256 && chmod +x installer-$a && ./installer-$a node --admin {}",
        base.trim_start_matches("http://")
    )
}

/// The node files with their destinations on a node.
pub fn node_files(site: &SiteConfig, served: &ServedContent) -> Vec<(NodeFile, String)> {
    let file = |name: &str, path: &str, text: String| {
        (
            NodeFile {
                name: name.into(),
                path: path.into(),
                mode: 0o644,
            },
            text,
        )
    };
    let mut files = vec![
        file(
            REPO_FILE_NAME,
            &format!("/etc/yum.repos.d/{REPO_FILE_NAME}"),
            repo_file(site, served),
        ),
        file("pip.conf", "/etc/pip.conf", pip_conf(site)),
        file("chrony.conf", "/etc/chrony.conf", chrony::client_conf(site)),
        file("resolv.conf", "/etc/resolv.conf", resolv_conf(site)),
        file(
            "90-kubespray-offline-dns.conf",
            "/etc/NetworkManager/conf.d/90-kubespray-offline-dns.conf",
            networkmanager_dns_none(),
        ),
    ];
    if served.has_registry() {
        files.extend(containerd::node_files(site));
    }
    files
}

pub fn spec(site: &SiteConfig, served: &ServedContent) -> NodeSpec {
    let base = site.http_base();
    NodeSpec {
        admin: site.admin.address,
        http_base: base.clone(),
        files: node_files(site, served)
            .into_iter()
            .map(|(f, _)| f)
            .collect(),
        repo_backup_dir: REPO_BACKUP_DIR.into(),
        repos: served
            .repos
            .iter()
            .map(|r| RepoUrl {
                id: r.id.clone(),
                url: format!("{base}{}", served.repo_path(r)),
            })
            .collect(),
        pypi_index: format!("{base}{PYPI_PATH}"),
        registry: served.images.first().map(|i| RegistryProbe {
            url: base.clone(),
            name: i.name.clone(),
            tag: i.tag.clone(),
            digest: i.digest.clone(),
        }),
        // The smallest file: the check asks for its length, and a small one is quick to spot.
        files_repo: served
            .downloads
            .iter()
            .min_by_key(|d| (d.size, &d.path))
            .map(|d| FileProbe {
                url: format!("{base}{FILES_PATH}{}", d.path),
                size: d.size,
            }),
    }
}

/// Everything served under `<data_root>/node/`.
pub fn served_files(site: &SiteConfig, served: &ServedContent) -> Vec<DesiredFile> {
    let dir = site.data_root.join("node");
    let mut out: Vec<DesiredFile> = node_files(site, served)
        .into_iter()
        .map(|(f, text)| DesiredFile {
            path: dir.join(&f.name),
            contents: text.into_bytes(),
            mode: 0o644,
        })
        .collect();
    let spec_json =
        serde_json::to_string_pretty(&spec(site, served)).expect("spec serializes") + "\n";
    for (name, text) in [
        (SPEC_NAME, spec_json),
        ("playbook.yml", ansible::playbook(site, served)),
        ("inventory.ini", ansible::inventory(site)),
        (
            "kubespray-offline.yml",
            ansible::kubespray_vars(site, served),
        ),
    ] {
        out.push(DesiredFile {
            path: dir.join(name),
            contents: text.into_bytes(),
            mode: 0o644,
        });
    }
    out
}

pub fn repo_file(site: &SiteConfig, served: &ServedContent) -> String {
    let base = site.http_base();
    let mut r = String::from(
        "# Generated by kubespray-offline-infra: the site's repositories on the admin server.\n",
    );
    for repo in &served.repos {
        let _ = write!(
            r,
            "\n[{id}]\nname={distro} {release} {id} (offline mirror)\nbaseurl={base}{path}\nenabled=1\n",
            id = repo.id,
            distro = served.distro,
            release = served.release,
            path = served.repo_path(repo),
        );
        match served.key_path() {
            Some(key) => {
                let _ = writeln!(r, "gpgcheck=1\ngpgkey={base}{key}");
            }
            // A bundle without the release key cannot offer signature checks; say so in place.
            None => r.push_str("# the bundle carried no release key\ngpgcheck=0\n"),
        }
    }
    r
}

pub fn pip_conf(site: &SiteConfig) -> String {
    format!(
        "# Generated by kubespray-offline-infra: the site's PyPI index on the admin server.\n\
         [global]\nindex-url = {}{PYPI_PATH}\ntrusted-host = {}\n",
        site.http_base(),
        site.admin.address
    )
}

pub fn resolv_conf(site: &SiteConfig) -> String {
    format!(
        "# Generated by kubespray-offline-infra: the admin server resolves for the site.\n\
         search {}\nnameserver {}\n",
        site.domain, site.admin.address
    )
}

pub fn networkmanager_dns_none() -> String {
    "# Generated by kubespray-offline-infra: /etc/resolv.conf is managed by the installer.\n[main]\ndns=none\n".into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::sample_served;

    #[test]
    fn repo_file_checks_signatures_with_the_served_key() {
        let text = repo_file(&SiteConfig::default(), &sample_served());
        assert!(text.contains("[baseos]\nname=rocky 10 baseos (offline mirror)\nbaseurl=http://192.168.10.10/rocky/10/baseos/\nenabled=1\ngpgcheck=1\ngpgkey=http://192.168.10.10/rocky/RPM-GPG-KEY-Rocky-10\n"), "{text}");
    }

    #[test]
    fn spec_lists_every_node_file() {
        let spec = spec(&SiteConfig::default(), &sample_served());
        assert_eq!(
            spec.files.len(),
            5 + 5,
            "five node files, five containerd host files"
        );
        assert_eq!(spec.pypi_index, "http://192.168.10.10/pypi/simple/");
        assert_eq!(spec.repos[2].url, "http://192.168.10.10/rocky/10/extras/");
    }
}
