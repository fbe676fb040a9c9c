//! Site files on loopback test ports (every service on its own free port), the service daemons
//! (named, chronyd, a plain HTTP server) started under the harness's daemon guard, generated
//! files written out, and trees read back for comparison.

use std::path::{Path, PathBuf};
use std::process::Command;

use installer::desired::DesiredFile;
use installer::services::{ServedContent, ServedRepo};
use installer::site::SiteConfig;

use e2e::harness::{Daemon, free_port};
use sha2::{Digest, Sha256};

use super::Netns;

/// Ports of one test site.
pub struct Ports {
    pub dns: u16,
    pub upstream_dns: u16,
    pub ntp: u16,
    pub http: u16,
}

impl Ports {
    pub fn pick() -> Ports {
        Ports {
            dns: free_port(),
            upstream_dns: free_port(),
            ntp: free_port(),
            http: free_port(),
        }
    }
}

/// Writes a site file for a site on 127.0.0.0/8 whose state lives in `dir`, and loads it.
pub fn loopback_site(dir: &Path, ports: &Ports) -> (PathBuf, SiteConfig) {
    let d = dir.display();
    for sub in ["named", "chrony/run", "chrony/log", "chrony/lib", "data"] {
        fs_err::create_dir_all(dir.join(sub)).unwrap();
    }
    // chronyd refuses a command socket in a directory others can read.
    std::fs::set_permissions(
        dir.join("chrony/run"),
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let text = format!(
        r#"domain = "site.test"
data_root = "{d}/data"

[admin]
hostname = "admin"
address = "127.0.0.1"
subnet = "127.0.0.0/8"
internal_interface = "lo"
external_interface = "kso-ext0"

[dns]
port = {dns}
listen = ["127.0.0.1"]
forwarders = ["127.0.0.1:{up}"]
dnssec_validation = "no"
directory = "{d}/named"
probe_name = "www.example.com"

[ntp]
port = {ntp}
bind_address = "127.0.0.1"
upstreams = []
drift_dir = "{d}/chrony/lib"
log_dir = "{d}/chrony/log"
run_dir = "{d}/chrony/run"

[http]
port = {http}

[[hosts]]
name = "node1"
address = "127.0.0.11"
role = "node"

[[hosts]]
name = "node2"
address = "127.0.0.12"
role = "node"
"#,
        dns = ports.dns,
        up = ports.upstream_dns,
        ntp = ports.ntp,
        http = ports.http,
    );
    let path = dir.join("site.toml");
    fs_err::write(&path, text).unwrap();
    let site = SiteConfig::load(Some(&path), &[]).unwrap();
    (path, site)
}

pub fn served() -> ServedContent {
    ServedContent {
        bundle_id: "b1d0".into(),
        created: "2026-11-27T10:00:00Z".into(),
        distro: "rocky".into(),
        release: "10".into(),
        repos: ["baseos", "appstream"]
            .iter()
            .map(|id| ServedRepo {
                id: id.to_string(),
                arch: "x86_64".into(),
                package_count: 0,
            })
            .collect(),
        python_targets: vec!["cp312-manylinux_2_39-x86_64".into()],
        key_file: Some("RPM-GPG-KEY-Rocky-10".into()),
        installer_arches: vec!["x86_64".into()],
        images: vec![],
        downloads: vec![],
    }
}

/// Writes generated files at their own (absolute, test-temp) paths, except `/etc/...` ones,
/// which land in `etc_dir`.
pub fn write_generated(files: &[DesiredFile], etc_dir: &Path) {
    for f in files {
        let path = match f.path.strip_prefix("/etc") {
            Ok(rest) => etc_dir.join(rest),
            Err(_) => f.path.clone(),
        };
        fs_err::create_dir_all(path.parent().unwrap()).unwrap();
        fs_err::write(&path, &f.contents).unwrap();
    }
}

/// Every regular file under `dir` with its sha256, as sorted `path sha256` lines (tree compare).
/// Generated configs name their own root (nginx serves the tree in place), so `dir` itself is
/// replaced by `ROOT` in file contents before hashing, making trees under two roots comparable.
pub fn tree_listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs_err::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            let ft = entry.file_type().unwrap();
            let rel = path.strip_prefix(base).unwrap().display().to_string();
            if ft.is_dir() {
                out.push(format!("{rel}/"));
                walk(base, &path, out);
            } else {
                let bytes = fs_err::read(&path).unwrap();
                let root = base.display().to_string();
                let bytes = match String::from_utf8(bytes) {
                    Ok(text) => text.replace(&root, "ROOT").into_bytes(),
                    Err(e) => e.into_bytes(),
                };
                out.push(format!("{rel} {}", hex::encode(Sha256::digest(&bytes))));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `dig +short` against a loopback server.
pub fn dig(server: &str, port: u16, args: &[&str]) -> String {
    let out = Command::new("dig")
        .args([
            &format!("@{server}"),
            "-p",
            &port.to_string(),
            "+short",
            "+time=2",
            "+tries=1",
        ])
        .args(args)
        .output()
        .expect("dig");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Starts a named that serves a fake `example.com` authoritatively on 127.0.0.1:`port`: the
/// stand-in for the site's outside forwarders.
pub fn start_upstream_named(dir: &Path, port: u16, ns: Option<&Netns>) -> Daemon {
    let up = dir.join("upstream");
    fs_err::create_dir_all(&up).unwrap();
    fs_err::write(
        up.join("example.com.zone"),
        "$TTL 1\n@ IN SOA ns.example.com. h.example.com. ( 1 60 60 600 1 )\n@ IN NS ns.example.com.\nns IN A 127.0.0.1\nwww IN A 192.0.2.80\nother IN A 192.0.2.81\n",
    )
    .unwrap();
    let u = up.display();
    fs_err::write(
        up.join("named.conf"),
        format!(
            "options {{ directory \"{u}\"; pid-file \"{u}/named.pid\"; session-keyfile \"{u}/s.key\"; listen-on port {port} {{ 127.0.0.1; }}; listen-on-v6 {{ none; }}; recursion no; dnssec-validation no; }};\ncontrols {{ }};\nzone \"example.com\" {{ type primary; file \"{u}/example.com.zone\"; }};\n"
        ),
    )
    .unwrap();
    start_named(&up.join("named.conf"), "upstream named", ns)
}

pub fn start_named(conf: &Path, name: &str, ns: Option<&Netns>) -> Daemon {
    let mut cmd = match ns {
        Some(ns) => ns.command("named"),
        None => Command::new("named"),
    };
    cmd.args(["-g", "-n", "1", "-c"]).arg(conf);
    Daemon::start(name, &mut cmd)
}

pub fn start_chronyd(conf: &Path, ns: Option<&Netns>) -> Daemon {
    let mut cmd = match ns {
        Some(ns) => ns.command("chronyd"),
        None => Command::new("chronyd"),
    };
    // -x: never touch the machine's clock.
    cmd.args(["-x", "-d", "-f"]).arg(conf);
    Daemon::start("chronyd", &mut cmd)
}

/// A plain HTTP server for a directory, standing in for nginx where the nginx config is not
/// what is under test.
pub fn start_http(dir: &Path, port: u16, ns: Option<&Netns>) -> Daemon {
    start_http_on(dir, "127.0.0.1", port, ns)
}

/// [`start_http`] bound to `address` (a namespace's own address, or `0.0.0.0`).
pub fn start_http_on(dir: &Path, address: &str, port: u16, ns: Option<&Netns>) -> Daemon {
    let mut cmd = match ns {
        Some(ns) => ns.command("python3"),
        None => Command::new("python3"),
    };
    cmd.args(["-m", "http.server", "--bind", address, &port.to_string()])
        .arg("--directory")
        .arg(dir);
    Daemon::start("http server", &mut cmd)
}
