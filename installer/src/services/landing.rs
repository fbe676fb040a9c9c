//! The landing page at `http://ADMIN/`: what this admin serves (repos with package counts,
//! Python targets, container images and Kubespray's files, the bundle it came from) and the client snippets an operator pastes on a
//! node that is not set up with `installer node`.

use std::fmt::Write;

use crate::desired::DesiredFile;
use crate::node;
use crate::services::{FILES_PATH, NODE_PATH, PYPI_PATH, ServedContent};
use crate::simple_index::escape_html as esc;
use crate::site::SiteConfig;
use indicatif::HumanBytes;

/// The page lives at the top of the data root, next to `repos/`, `pypi/` and `node/`.
pub fn page(site: &SiteConfig, served: &ServedContent) -> DesiredFile {
    DesiredFile {
        path: site.data_root.join("index.html"),
        contents: html(site, served).into_bytes(),
        mode: 0o644,
    }
}

pub fn html(site: &SiteConfig, served: &ServedContent) -> String {
    let base = site.http_base();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n",
        title = esc(&format!(
            "Offline mirror on {}",
            site.fqdn(&site.admin.hostname)
        ))
    );
    let _ = writeln!(
        h,
        "<p>Bundle <code>{}</code>, built {}.</p>",
        esc(&served.bundle_id),
        esc(&served.created)
    );
    h.push_str("<h2>Package repositories</h2>\n<table>\n<tr><th>Repo</th><th>Arch</th><th>Packages</th><th>URL</th></tr>\n");
    for repo in &served.repos {
        let url = format!("{base}{}", served.repo_path(repo));
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td><a href=\"{u}\">{u}</a></td></tr>",
            esc(&repo.id),
            esc(&repo.arch),
            repo.package_count,
            u = esc(&url)
        );
    }
    h.push_str("</table>\n");
    if let Some(key) = served.key_path() {
        let _ = writeln!(
            h,
            "<p>Release key: <a href=\"{k}\">{k}</a></p>",
            k = esc(&format!("{base}{key}"))
        );
    }
    h.push_str("<h2>Python package index</h2>\n");
    let _ = writeln!(
        h,
        "<p><a href=\"{u}\">{u}</a> for:</p>\n<ul>",
        u = esc(&format!("{base}{PYPI_PATH}"))
    );
    for target in &served.python_targets {
        let _ = writeln!(h, "<li>{}</li>", esc(target));
    }
    h.push_str("</ul>\n");
    images(&mut h, site, served);
    downloads(&mut h, &base, served);
    h.push_str("<h2>Setting up a node</h2>\n");
    let _ = writeln!(
        h,
        "<p>With the installer: <code>installer node --admin {}</code>. By hand or with Ansible: the files under <a href=\"{n}\">{n}</a>.</p>",
        esc(base.trim_start_matches("http://")),
        n = esc(NODE_PATH)
    );
    if !served.installer_arches.is_empty() {
        let _ = writeln!(
            h,
            "<p>The installer is served here for {}. On a node, as root:</p>\n<pre>{}</pre>",
            esc(&served.installer_arches.join(", ")),
            esc(&node::installer_one_liner(site))
        );
    }
    for (title, text) in [
        (
            format!("/etc/yum.repos.d/{}", node::REPO_FILE_NAME),
            node::repo_file(site, served),
        ),
        ("/etc/pip.conf".to_string(), node::pip_conf(site)),
    ] {
        let _ = writeln!(h, "<h3>{}</h3>\n<pre>{}</pre>", esc(&title), esc(&text));
    }
    h.push_str("</body>\n</html>\n");
    h
}

/// The registry's images: upstream reference, the name:tag served, and their size.
fn images(h: &mut String, site: &SiteConfig, served: &ServedContent) {
    if !served.has_registry() {
        return;
    }
    let host = node::containerd::registry_host(site);
    let _ = writeln!(
        h,
        "<h2>Container images</h2>\n<p>Read-only registry at <code>{}</code> (plain HTTP), {} images.</p>\n<table>\n<tr><th>Reference</th><th>Served as</th><th>Size</th><th>Digest</th></tr>",
        esc(&host),
        served.images.len()
    );
    for image in &served.images {
        let size = image
            .bytes
            .map_or("-".to_string(), |b| HumanBytes(b).to_string());
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}/{}:{}</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&image.reference),
            esc(&host),
            esc(&image.name),
            esc(&image.tag),
            esc(&size),
            esc(&image.digest)
        );
    }
    h.push_str("</table>\n");
}

/// Kubespray's files repo: every file with its size.
fn downloads(h: &mut String, base: &str, served: &ServedContent) {
    if !served.has_files_repo() {
        return;
    }
    let total: u64 = served.downloads.iter().map(|d| d.size).sum();
    let _ = writeln!(
        h,
        "<h2>Kubespray files</h2>\n<p><code>files_repo</code> is <a href=\"{u}\">{u}</a>: {} files, {}.</p>\n<table>\n<tr><th>Path</th><th>Size</th></tr>",
        served.downloads.len(),
        esc(&HumanBytes(total).to_string()),
        u = esc(&format!("{base}{FILES_PATH}"))
    );
    for d in &served.downloads {
        let _ = writeln!(
            h,
            "<tr><td><a href=\"{FILES_PATH}{p}\">{p}</a></td><td>{}</td></tr>",
            esc(&HumanBytes(d.size).to_string()),
            p = esc(&d.path)
        );
    }
    h.push_str("</table>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_lists_repos_targets_and_snippets() {
        let page = html(&SiteConfig::default(), &crate::services::sample_served());
        assert!(
            page.contains("<td>baseos</td><td>x86_64</td><td>3</td>"),
            "{page}"
        );
        assert!(page.contains("http://192.168.10.10/rocky/10/appstream/"));
        assert!(page.contains("<li>cp312-manylinux_2_39-x86_64</li>"));
        assert!(page.contains("gpgcheck=1"));
        assert!(page.contains("index-url = http://192.168.10.10/pypi/simple/"));
    }

    #[test]
    fn page_lists_images_and_files() {
        let page = html(&SiteConfig::default(), &crate::services::sample_served());
        assert!(
            page.contains("<tr><td>registry.k8s.io/pause:3.10</td><td>192.168.10.10/pause:3.10</td><td>313.48 KiB</td>"),
            "{page}"
        );
        assert!(
            page.contains("<tr><td><a href=\"/files/dl.k8s.io/release/v1.35.4/bin/linux/amd64/kubelet\">dl.k8s.io/release/v1.35.4/bin/linux/amd64/kubelet</a></td><td>55.31 MiB</td></tr>"),
            "{page}"
        );
        assert!(page.contains("http://192.168.10.10/files/"), "{page}");
    }
}
