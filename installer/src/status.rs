//! `installer status`: ask each admin service a real question, the way a node would: resolve a
//! site name and an outside name through named, an NTP query to chronyd, HTTP GETs of every
//! repo's repomd.xml and of the PyPI index through nginx, when served the registry's `/v2/`
//! and one image's manifest by tag, and one file of the files repo, and compare the NAT state of the
//! running kernel with the persistent one. Each check says pass or fail and, on failure, what
//! to look at next.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use serde::Serialize;

use sha2::{Digest, Sha256};

use crate::netprobe::{self, ProbeError};
use crate::node::setup::fetch_spec;
use crate::node::{FileProbe, RegistryProbe};
use crate::services::{firewalld, nat, selinux as labels};
use crate::site::SiteConfig;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short id, e.g. `dns-site`.
    pub name: String,
    /// What was asked, e.g. `admin.offline.internal A @192.168.10.10:53`.
    pub target: String,
    pub passed: bool,
    pub detail: String,
    /// What to do next; set on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusReport {
    pub passed: bool,
    pub checks: Vec<Check>,
}

fn check(name: &str, target: String, result: Result<String, (String, String)>) -> Check {
    let (passed, detail, hint) = match result {
        Ok(detail) => (true, detail, None),
        Err((detail, hint)) => (false, detail, Some(hint)),
    };
    Check {
        name: name.into(),
        target,
        passed,
        detail,
        hint,
    }
}

/// Runs every check against the admin described by `site`; `root` locates the persistent NAT
/// state (`/` on the admin itself).
pub fn run(site: &SiteConfig, root: &Path) -> StatusReport {
    let mut checks = vec![dns_site(site), dns_outside(site), ntp(site)];
    checks.extend(http(site));
    checks.push(nat_state(root));
    checks.push(selinux(site));
    if crate::actions::firewalld_running() {
        checks.push(firewalld(site));
    }
    StatusReport {
        passed: checks.iter().all(|c| c.passed),
        checks,
    }
}

fn dns_server(site: &SiteConfig) -> SocketAddr {
    let addr = site
        .dns
        .listen
        .first()
        .copied()
        .unwrap_or(site.admin.address);
    SocketAddr::new(IpAddr::V4(addr), site.dns.port)
}

fn named_down_hint(server: SocketAddr, e: &ProbeError) -> (String, String) {
    (
        format!("no answer: {e}"),
        format!(
            "named is not answering on {server}: check `systemctl status named` and `named-checkconf /etc/named.conf`"
        ),
    )
}

fn dns_site(site: &SiteConfig) -> Check {
    let server = dns_server(site);
    let name = site.fqdn(&site.admin.hostname);
    let result = match netprobe::dns_query_a(server, &name) {
        Err(e) => Err(named_down_hint(server, &e)),
        Ok(a) if a.rcode == 0 && a.addresses.contains(&site.admin.address) => {
            Ok(format!("{name} is {}", site.admin.address))
        }
        Ok(a) => Err((
            format!("rcode {} with {:?}", a.rcode, a.addresses),
            "named answers but not with the site zone: run `installer apply` again and restart named"
                .to_string(),
        )),
    };
    check("dns-site", format!("{name} A @{server}"), result)
}

fn dns_outside(site: &SiteConfig) -> Check {
    let server = dns_server(site);
    let name = &site.dns.probe_name;
    let forwarders: Vec<String> = site
        .dns
        .forwarders
        .iter()
        .map(|f| String::from(*f))
        .collect();
    let result = match netprobe::dns_query_a(server, name) {
        Err(e) => Err(named_down_hint(server, &e)),
        Ok(a) if a.rcode == 0 && !a.addresses.is_empty() => {
            Ok(format!("{name} is {}", a.addresses[0]))
        }
        Ok(a) => Err((
            format!("rcode {} with no address", a.rcode),
            format!(
                "named cannot reach its forwarders ({}): expected while the outside link or NAT is off; otherwise check dns.forwarders",
                forwarders.join(", ")
            ),
        )),
    };
    check("dns-outside", format!("{name} A @{server}"), result)
}

fn ntp(site: &SiteConfig) -> Check {
    let addr = site.ntp.bind_address.unwrap_or(site.admin.address);
    let server = SocketAddr::new(IpAddr::V4(addr), site.ntp.port);
    let result = match netprobe::ntp_query(server) {
        Err(e) => Err((
            format!("no answer: {e}"),
            format!(
                "chronyd is not serving time on {server}: check `systemctl status chronyd` and that `allow {}` is in /etc/chrony.conf",
                site.admin.subnet
            ),
        )),
        Ok(r) if r.leap == 3 || r.stratum == 0 || r.stratum > 15 => Err((
            format!("unsynchronised (stratum {}, leap {})", r.stratum, r.leap),
            "chronyd answers but is not synchronised: check `chronyc tracking`; `local stratum 10` must be in /etc/chrony.conf".into(),
        )),
        Ok(r) => Ok(format!("stratum {}", r.stratum)),
    };
    check("ntp", format!("NTP @{server}"), result)
}

fn http(site: &SiteConfig) -> Vec<Check> {
    let base = site.http_base();
    let admin = base.trim_start_matches("http://").to_string();
    let nginx_hint = |what: &str| {
        format!(
            "nginx is not serving {what}: check `systemctl status nginx` and `nginx -t`; run `installer apply` if the content is missing"
        )
    };
    let spec = match fetch_spec(&admin) {
        Ok(spec) => spec,
        Err(e) => {
            return vec![check(
                "http-node-files",
                format!("{base}/node/node.json"),
                Err((e.to_string(), nginx_hint("the node files"))),
            )];
        }
    };
    let mut checks = Vec::new();
    for repo in &spec.repos {
        let url = format!("{}repodata/repomd.xml", repo.url);
        let result = match netprobe::http_get(&url) {
            Ok(body) if body.windows(7).any(|w| w == b"<repomd") => Ok("repomd.xml served".into()),
            Ok(_) => Err((
                "not a repomd.xml".into(),
                nginx_hint(&format!("repo {}", repo.id)),
            )),
            Err(e) => Err((e.to_string(), nginx_hint(&format!("repo {}", repo.id)))),
        };
        checks.push(check(&format!("repo-{}", repo.id), url, result));
    }
    let result = match netprobe::http_get(&spec.pypi_index) {
        Ok(_) => Ok("index served".into()),
        Err(e) => Err((e.to_string(), nginx_hint("the PyPI index"))),
    };
    checks.push(check("pypi", spec.pypi_index.clone(), result));
    if let Some(probe) = &spec.registry {
        checks.extend(registry(probe));
    }
    if let Some(probe) = &spec.files_repo {
        checks.push(files_repo(probe));
    }
    checks
}

const RELOAD_HINT: &str = "nginx may still run an older configuration: `nginx -t && systemctl reload nginx`; run `installer apply` again if the tree is missing";

/// `/v2/` answers, and one image's tag answers with the digest the bundle recorded.
fn registry(probe: &RegistryProbe) -> [Check; 2] {
    let api = format!("{}/v2/", probe.url);
    let result = match netprobe::http_request("GET", &api) {
        Ok(r) if r.status == 200 => Ok("registry API answers".into()),
        Ok(r) => Err((format!("HTTP status {}", r.status), RELOAD_HINT.into())),
        Err(e) => Err((
            e.to_string(),
            "nginx is not answering: check `systemctl status nginx` and `nginx -t`".into(),
        )),
    };
    let api_check = check("registry", api, result);
    let url = format!("{}/v2/{}/manifests/{}", probe.url, probe.name, probe.tag);
    let result = match netprobe::http_request("GET", &url) {
        Ok(r) if r.status == 200 => {
            let body = format!("sha256:{}", hex::encode(Sha256::digest(&r.body)));
            let header = r.header("docker-content-digest").unwrap_or_default();
            if body != probe.digest {
                Err((
                    format!(
                        "served manifest is {body}, the bundle recorded {}",
                        probe.digest
                    ),
                    "the registry tree is not the applied bundle's: run `installer apply` again"
                        .into(),
                ))
            } else if header != probe.digest {
                Err((
                    format!(
                        "Docker-Content-Digest is {header:?}, expected {}",
                        probe.digest
                    ),
                    RELOAD_HINT.into(),
                ))
            } else {
                Ok(format!("{}:{} is {}", probe.name, probe.tag, probe.digest))
            }
        }
        Ok(r) => Err((format!("HTTP status {}", r.status), RELOAD_HINT.into())),
        Err(e) => Err((e.to_string(), RELOAD_HINT.into())),
    };
    [api_check, check("registry-image", url, result)]
}

/// One file of the files repo answers with its length.
fn files_repo(probe: &FileProbe) -> Check {
    let result = match netprobe::http_request("HEAD", &probe.url) {
        Ok(r) if r.status == 200 => match r.header("content-length") {
            Some(len) if len == probe.size.to_string() => Ok(format!("{len} bytes")),
            other => Err((
                format!("Content-Length {other:?}, expected {}", probe.size),
                "the files repo is not the applied bundle's: run `installer apply` again".into(),
            )),
        },
        Ok(r) => Err((format!("HTTP status {}", r.status), RELOAD_HINT.into())),
        Err(e) => Err((e.to_string(), RELOAD_HINT.into())),
    };
    check("files-repo", probe.url.clone(), result)
}

fn nat_state(root: &Path) -> Check {
    let running = nat::runtime_state();
    let Some(persisted) = nat::persisted_state(root) else {
        let result = Err((
            format!("running: {}, not set up by the installer", running.as_str()),
            "run `installer nat enable` (or `disable`) to record the NAT state".into(),
        ));
        return check("nat", nat::RULESET_FILE.into(), result);
    };
    let result = if persisted == running && running == nat::NatState::Disabled {
        if nat::forward_dropped() {
            Ok("disabled; forwarding from the site to the external interface is dropped".into())
        } else {
            Err((
                "disabled, but forwarding from the site to the external interface is not dropped"
                    .into(),
                "run `installer nat disable` to seal the air gap".into(),
            ))
        }
    } else if persisted == running {
        Ok(running.as_str().to_string())
    } else {
        Err((
            format!(
                "running: {}, at boot: {}",
                running.as_str(),
                persisted.as_str()
            ),
            format!(
                "the kernel differs from the persistent NAT setting: run `installer nat {}` (or the other state you want)",
                match persisted {
                    nat::NatState::Enabled => "enable",
                    nat::NatState::Disabled => "disable",
                }
            ),
        ))
    };
    check("nat", nat::RULESET_FILE.into(), result)
}

/// The SELinux mode, and the served paths whose label is not the one the policy gives them.
fn selinux(site: &SiteConfig) -> Check {
    let mode = labels::mode();
    let wrong = labels::mislabelled(site);
    let result = if wrong.is_empty() {
        Ok(if labels::configured_policy().is_none() {
            format!("{mode}; no policy installed, labels not checked")
        } else {
            format!("{mode}; no served path labelled against the policy")
        })
    } else {
        Err((
            format!("{mode}; {}", wrong.join("; ")),
            format!(
                "nginx or named may be denied: run `restorecon -R {}` (or `installer apply` again)",
                labels::file_contexts(site)
                    .iter()
                    .map(|r| r.dir.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ))
    };
    check("selinux", labels::CONFIG.into(), result)
}

/// Where firewalld runs: the internal interface in the internal zone with the served ports open.
fn firewalld(site: &SiteConfig) -> Check {
    let interface = &site.admin.internal_interface;
    let zone = std::process::Command::new("firewall-cmd")
        .arg(format!("--get-zone-of-interface={interface}"))
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let closed: Vec<String> = firewalld::open_arguments(site)
        .into_iter()
        .filter(|arg| {
            let query = arg.replacen("--add-", "--query-", 1);
            !std::process::Command::new("firewall-cmd")
                .args(["--zone=internal", &query])
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .collect();
    let result = if zone == "internal" && closed.is_empty() {
        Ok(format!(
            "{interface} in zone internal, the served ports open"
        ))
    } else {
        Err((
            format!(
                "{interface} in zone {:?}; not open on internal: {}",
                zone,
                closed.join(" ")
            ),
            "run `installer apply` again (it puts the interface in the zone and opens the ports)"
                .into(),
        ))
    };
    check("firewalld", format!("zone internal of {interface}"), result)
}
