//! SELinux for the admin: the file contexts that let nginx read the data root and named read
//! its zones, the port types that let them bind non-default ports, and the mode and labels
//! `installer status` reports. Rules go into the policy store with `semanage` whenever one is
//! installed, also while the kernel has SELinux off (the labels then hold from the next boot
//! with it on); files are relabelled with `restorecon` only where SELinux is enabled. Each
//! rule first asks the store whether it is already there, so a second apply changes nothing
//! (and skips the policy rebuild every `semanage` change costs).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::actions::{Condition, SystemAction};
use crate::site::SiteConfig;

/// Where the policy's name and the boot mode live.
pub const CONFIG: &str = "/etc/selinux/config";
/// Where named reads its zones on Rocky; labelled `named_zone_t` by the stock policy.
const DEFAULT_ZONES: &str = "/var/named";

/// A file-context rule: `<dir>(/.*)?` gets `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileContext {
    pub dir: PathBuf,
    pub kind: &'static str,
    /// Who needs it, for the operator.
    pub reader: &'static str,
}

impl FileContext {
    pub fn spec(&self) -> String {
        format!("{}(/.*)?", self.dir.display())
    }
}

/// A port rule: `proto/port` gets `kind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortType {
    pub port: u16,
    pub proto: &'static str,
    pub kind: &'static str,
}

/// The file contexts the site needs: the data root for nginx, and named's zone directory when
/// it is not the stock one.
pub fn file_contexts(site: &SiteConfig) -> Vec<FileContext> {
    let mut rules = vec![FileContext {
        dir: site.data_root.clone(),
        kind: "httpd_sys_content_t",
        reader: "nginx",
    }];
    if site.dns.directory != Path::new(DEFAULT_ZONES) {
        rules.push(FileContext {
            dir: site.dns.directory.clone(),
            kind: "named_zone_t",
            reader: "named",
        });
    }
    rules
}

/// The port types the site needs: only ports that differ from the service's standard one.
pub fn port_types(site: &SiteConfig) -> Vec<PortType> {
    [
        (site.dns.port, "udp", "dns_port_t", 53),
        (site.dns.port, "tcp", "dns_port_t", 53),
        (site.ntp.port, "udp", "ntp_port_t", 123),
        (site.http.port, "tcp", "http_port_t", 80),
    ]
    .into_iter()
    .filter(|(port, _, _, default)| port != default)
    .map(|(port, proto, kind, _)| PortType { port, proto, kind })
    .collect()
}

/// The idempotent `semanage` and `restorecon` actions for the site.
pub fn actions(site: &SiteConfig) -> Vec<SystemAction> {
    let mut actions = Vec::new();
    for rule in file_contexts(site) {
        let spec = rule.spec();
        let kind = rule.kind;
        actions.push(SystemAction::shell(
            format!("label {} {kind} so {} may read it", rule.dir.display(), rule.reader),
            Condition::SelinuxPolicy,
            &format!(
                "semanage fcontext -l -C | awk -v s='{spec}' -v t=':{kind}:' '$1 == s && index($NF, t) {{ f = 1 }} END {{ exit !f }}' \
                 || semanage fcontext -a -t {kind} '{spec}' 2>/dev/null || semanage fcontext -m -t {kind} '{spec}'"
            ),
        ));
    }
    for rule in port_types(site) {
        let PortType { port, proto, kind } = rule;
        // `semanage port -l` lists the policy's ports and the local ones together, e.g.
        // `http_port_t  tcp  8080, 80, 443`; 8080 as http_cache_port_t needs -m, not -a.
        actions.push(SystemAction::shell(
            format!("allow {kind} on {proto} port {port}"),
            Condition::SelinuxPolicy,
            &format!(
                "semanage port -l | awk -v t={kind} -v p={proto} -v n={port} '$1 == t && $2 == p {{ for (i = 3; i <= NF; i++) {{ x = $i; sub(\",\", \"\", x); if (x == n) f = 1 }} }} END {{ exit !f }}' \
                 || semanage port -a -t {kind} -p {proto} {port} 2>/dev/null || semanage port -m -t {kind} -p {proto} {port}"
            ),
        ));
    }
    for rule in file_contexts(site) {
        let dir = rule.dir.display().to_string();
        actions.push(SystemAction::new(
            format!("relabel {dir}"),
            Condition::SelinuxEnabled,
            &["restorecon", "-R", &dir],
        ));
    }
    actions
}

/// The policy `/etc/selinux/config` names (`SELINUXTYPE=`), when its files are installed.
pub fn configured_policy() -> Option<String> {
    let text = std::fs::read_to_string(CONFIG).ok()?;
    let name = config_value(&text, "SELINUXTYPE")?;
    Path::new("/etc/selinux")
        .join(&name)
        .is_dir()
        .then_some(name)
}

fn config_value(text: &str, key: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.trim().split_once('='))
        .find(|(k, _)| k.trim() == key)
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
        .filter(|v| !v.is_empty())
}

/// The running mode: `enforcing` or `permissive` from the kernel, `disabled` when the kernel
/// has no SELinux; with the boot mode of `/etc/selinux/config` when it says something else.
pub fn mode() -> String {
    let running = match std::fs::read_to_string("/sys/fs/selinux/enforce") {
        Ok(s) if s.trim() == "1" => "enforcing",
        Ok(_) => "permissive",
        Err(_) => "disabled",
    };
    let boot = std::fs::read_to_string(CONFIG)
        .ok()
        .and_then(|t| config_value(&t, "SELINUX"));
    match boot {
        Some(b) if b != running => format!("{running} (at boot: {b})"),
        _ => running.to_string(),
    }
}

/// Paths whose label differs from what the policy says, as `matchpathcon -V` reports them
/// (`<path> has context <a>, should be <b>`); checks each rule's directory and its entries one
/// level down. Runs wherever a policy is installed; a path with no label at all is reported
/// only where SELinux is enabled, since with it off files carry no labels.
pub fn mislabelled(site: &SiteConfig) -> Vec<String> {
    if configured_policy().is_none() {
        return Vec::new();
    }
    let mut paths = Vec::new();
    for rule in file_contexts(site) {
        paths.push(rule.dir.clone());
        if let Ok(entries) = std::fs::read_dir(&rule.dir) {
            let mut below: Vec<PathBuf> =
                entries.filter_map(Result::ok).map(|e| e.path()).collect();
            below.sort();
            paths.extend(below);
        }
    }
    let paths: Vec<PathBuf> = paths.into_iter().filter(|p| p.exists()).collect();
    if paths.is_empty() {
        return Vec::new();
    }
    let enabled = Path::new("/sys/fs/selinux/enforce").is_file();
    // One call per path: matchpathcon -V stops at the first path it cannot read a label of.
    let mut wrong = Vec::new();
    for path in paths {
        let Ok(out) = Command::new("matchpathcon").arg("-V").arg(&path).output() else {
            return Vec::new();
        };
        wrong.extend(parse_verify(
            &String::from_utf8_lossy(&out.stdout),
            &String::from_utf8_lossy(&out.stderr),
            enabled,
        ));
    }
    wrong
}

fn parse_verify(stdout: &str, stderr: &str, enabled: bool) -> Vec<String> {
    let mut wrong: Vec<String> = stdout
        .lines()
        .chain(stderr.lines())
        .filter(|l| l.contains(" should be "))
        .map(str::to_string)
        .collect();
    if enabled {
        wrong.extend(
            stdout
                .lines()
                .chain(stderr.lines())
                .filter(|l| l.contains(" error: "))
                .map(|l| format!("{l} (no label)")),
        );
    }
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_site_labels_the_data_root_and_opens_no_port() {
        let site = SiteConfig::default();
        let lines: Vec<String> = actions(&site).iter().map(|a| a.argv.join(" ")).collect();
        assert!(
            lines
                .iter()
                .any(|l| l.contains("semanage fcontext -a -t httpd_sys_content_t '/data(/.*)?'"))
        );
        assert!(!lines.iter().any(|l| l.contains("semanage port")));
    }

    #[test]
    fn non_default_ports_and_zone_directory_get_their_types() {
        let mut site = SiteConfig::default();
        site.http.port = 8080;
        site.dns.directory = "/srv/named".into();
        let rules = port_types(&site);
        assert_eq!(
            rules,
            vec![PortType {
                port: 8080,
                proto: "tcp",
                kind: "http_port_t"
            }]
        );
        assert_eq!(file_contexts(&site)[1].kind, "named_zone_t");
        assert_eq!(file_contexts(&site)[1].spec(), "/srv/named(/.*)?");
    }

    #[test]
    fn verify_output_names_only_mislabelled_paths() {
        let out = "/data verified.\n/data/repos has context system_u:object_r:var_t:s0, should be system_u:object_r:httpd_sys_content_t:s0\n";
        assert_eq!(parse_verify(out, "", false).len(), 1);
        // An unlabelled path matters only with SELinux on.
        let none = "/data/x error: No data available\n";
        assert!(parse_verify("", none, false).is_empty());
        assert_eq!(parse_verify("", none, true).len(), 1);
        assert_eq!(
            config_value(
                "# c\nSELINUX=permissive\nSELINUXTYPE=default\n",
                "SELINUXTYPE"
            ),
            Some("default".into())
        );
    }
}
