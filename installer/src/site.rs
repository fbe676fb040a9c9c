//! The site file: every address, interface, port and path the service generators need, in one
//! plain struct. Defaults are the reference topology (admin 192.168.10.10 on the internal
//! 192.168.10.0/24 network); a TOML file overrides them and `--set key=value` on the command
//! line overrides the file. The struct is validated once, before any generator runs, and every
//! error names the setting at fault.

use std::fmt;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    #[error("cannot read site file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("site file {path} is not valid TOML: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("--set {assignment}: expected KEY=VALUE with a dotted key such as dns.port=5353")]
    BadOverride { assignment: String },
    #[error("site settings: {message} (check the site file and --set options)")]
    Schema { message: String },
    #[error("site setting `{setting}` = {value}: {reason}")]
    Invalid {
        setting: String,
        value: String,
        reason: String,
    },
    // The refusal is part of the message and not a `source`, so a chain prints it once.
    #[error("{flag}: {refusal}")]
    Flag {
        flag: &'static str,
        refusal: Box<SiteError>,
    },
}

/// A command-line flag that sets one site setting (`--http-port` sets `http.port`). Applied
/// after `--set`, before the site is validated, so the flag is held to the same rules as the
/// setting and a refusal names the flag.
#[derive(Debug, Clone)]
pub struct FlagOverride {
    flag: &'static str,
    setting: &'static str,
    value: toml::Value,
}

impl FlagOverride {
    pub fn new(
        flag: &'static str,
        setting: &'static str,
        value: impl Serialize,
    ) -> Result<FlagOverride, SiteError> {
        let value = toml::Value::try_from(value).map_err(|e| SiteError::Flag {
            flag,
            refusal: Box::new(SiteError::Schema {
                message: format!("`{setting}`: {e}"),
            }),
        })?;
        Ok(FlagOverride {
            flag,
            setting,
            value,
        })
    }
}

/// An IPv4 network in CIDR form, e.g. `192.168.10.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Ipv4Net {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Ipv4Net {
    pub fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == u32::from(self.network)
    }
}

impl FromStr for Ipv4Net {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr, prefix) = s
            .split_once('/')
            .ok_or_else(|| format!("`{s}` is not in CIDR form (a.b.c.d/n)"))?;
        let network: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("`{addr}` is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| format!("`{prefix}` is not a prefix length 0-32"))?;
        let net = Ipv4Net { network, prefix };
        if u32::from(network) & net.mask() != u32::from(network) {
            return Err(format!("`{s}` has host bits set"));
        }
        Ok(net)
    }
}

impl TryFrom<String> for Ipv4Net {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Ipv4Net> for String {
    fn from(n: Ipv4Net) -> String {
        n.to_string()
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// A DNS forwarder: an address with an optional port (`8.8.8.8` or `127.0.0.2:5399`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Forwarder {
    pub address: Ipv4Addr,
    pub port: Option<u16>,
}

impl TryFrom<String> for Forwarder {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let (addr, port) = match s.split_once(':') {
            Some((a, p)) => (
                a,
                Some(p.parse().map_err(|_| format!("bad port in `{s}`"))?),
            ),
            None => (s.as_str(), None),
        };
        let address = addr
            .parse()
            .map_err(|_| format!("`{s}` is not an IPv4 address[:port]"))?;
        Ok(Forwarder { address, port })
    }
}

impl From<Forwarder> for String {
    fn from(f: Forwarder) -> String {
        match f.port {
            Some(p) => format!("{}:{p}", f.address),
            None => f.address.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostRole {
    Registry,
    Node,
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEntry {
    pub name: String,
    pub address: Ipv4Addr,
    pub role: HostRole,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminSettings {
    pub hostname: String,
    pub address: Ipv4Addr,
    pub subnet: Ipv4Net,
    pub internal_interface: String,
    pub external_interface: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DnsSettings {
    pub port: u16,
    /// Addresses named listens on; empty means every address.
    pub listen: Vec<Ipv4Addr>,
    pub forwarders: Vec<Forwarder>,
    /// `auto`, `yes` or `no`; `no` only for test upstreams that serve unsigned fake zones.
    pub dnssec_validation: String,
    /// named's working directory, which also holds the site zone files.
    pub directory: PathBuf,
    /// An outside name `installer status` resolves through the admin.
    pub probe_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NtpSettings {
    pub port: u16,
    /// Address chronyd serves on; unset means every address.
    pub bind_address: Option<Ipv4Addr>,
    pub upstreams: Vec<String>,
    pub drift_dir: PathBuf,
    pub log_dir: PathBuf,
    /// Holds chronyd's pid file and command socket.
    pub run_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SiteConfig {
    pub domain: String,
    pub data_root: PathBuf,
    pub admin: AdminSettings,
    pub dns: DnsSettings,
    pub ntp: NtpSettings,
    pub http: HttpSettings,
    pub hosts: Vec<HostEntry>,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            hostname: "admin".into(),
            address: Ipv4Addr::new(192, 168, 10, 10),
            subnet: Ipv4Net {
                network: Ipv4Addr::new(192, 168, 10, 0),
                prefix: 24,
            },
            internal_interface: "enp0s9".into(),
            external_interface: "enp0s8".into(),
        }
    }
}

impl Default for DnsSettings {
    fn default() -> Self {
        DnsSettings {
            port: 53,
            listen: Vec::new(),
            forwarders: ["168.126.63.1", "8.8.8.8"]
                .map(|a| Forwarder {
                    address: a.parse().expect("literal address"),
                    port: None,
                })
                .to_vec(),
            dnssec_validation: "auto".into(),
            directory: "/var/named".into(),
            probe_name: "rockylinux.org".into(),
        }
    }
}

impl Default for NtpSettings {
    fn default() -> Self {
        NtpSettings {
            port: 123,
            bind_address: None,
            upstreams: vec!["pool.ntp.org".into(), "kr.pool.ntp.org".into()],
            drift_dir: "/var/lib/chrony".into(),
            log_dir: "/var/log/chrony".into(),
            run_dir: "/run/chrony".into(),
        }
    }
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings { port: 80 }
    }
}

impl Default for SiteConfig {
    fn default() -> Self {
        let host = |name: &str, last: u8, role| HostEntry {
            name: name.into(),
            address: Ipv4Addr::new(192, 168, 10, last),
            role,
        };
        SiteConfig {
            domain: "offline.internal".into(),
            data_root: "/data".into(),
            admin: AdminSettings::default(),
            dns: DnsSettings::default(),
            ntp: NtpSettings::default(),
            http: HttpSettings::default(),
            hosts: vec![
                host("registry", 10, HostRole::Registry),
                host("node1", 11, HostRole::Node),
                host("node2", 12, HostRole::Node),
            ],
        }
    }
}

impl SiteConfig {
    /// Reads the site file (if any), applies `KEY=VALUE` overrides, fills defaults, validates.
    pub fn load(file: Option<&Path>, overrides: &[String]) -> Result<SiteConfig, SiteError> {
        SiteConfig::load_with_flags(file, overrides, &[])
    }

    /// `load` with dedicated flags applied over the `--set` overrides before validation; a
    /// setting a flag gave that fails validation is refused under the flag's name.
    pub fn load_with_flags(
        file: Option<&Path>,
        overrides: &[String],
        flags: &[FlagOverride],
    ) -> Result<SiteConfig, SiteError> {
        match file {
            Some(path) => {
                let text = fs_err::read_to_string(path).map_err(|source| SiteError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                SiteConfig::parse(Some((path, &text)), overrides, flags)
            }
            None => SiteConfig::parse(None, overrides, flags),
        }
    }

    /// [`SiteConfig::load_with_flags`] on the site file's text (`path` names it in errors);
    /// apart from reading the file, all of it, so that it can be fuzzed.
    pub fn parse(
        file: Option<(&Path, &str)>,
        overrides: &[String],
        flags: &[FlagOverride],
    ) -> Result<SiteConfig, SiteError> {
        let mut table = match file {
            Some((path, text)) => {
                toml::from_str::<toml::Table>(text).map_err(|e| SiteError::Syntax {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?
            }
            None => toml::Table::new(),
        };
        for assignment in overrides {
            apply_override(&mut table, assignment)?;
        }
        for flag in flags {
            let parts: Vec<&str> = flag.setting.split('.').collect();
            insert_setting(&mut table, &parts, flag.value.clone()).ok_or(SiteError::Flag {
                flag: flag.flag,
                refusal: Box::new(SiteError::Schema {
                    message: format!("`{}` is not a table", flag.setting),
                }),
            })?;
        }
        let site: SiteConfig =
            table
                .try_into()
                .map_err(|e: toml::de::Error| SiteError::Schema {
                    message: e.message().to_string(),
                })?;
        site.validate().map_err(|e| match &e {
            SiteError::Invalid { setting, .. } => {
                match flags.iter().find(|f| f.setting == setting) {
                    Some(f) => SiteError::Flag {
                        flag: f.flag,
                        refusal: Box::new(e),
                    },
                    None => e,
                }
            }
            _ => e,
        })?;
        Ok(site)
    }

    /// Fully qualified name of a host label in the site domain.
    pub fn fqdn(&self, name: &str) -> String {
        format!("{name}.{}", self.domain)
    }

    /// `http://ADDR[:PORT]` of the admin's web server, without a trailing slash.
    pub fn http_base(&self) -> String {
        match self.http.port {
            80 => format!("http://{}", self.admin.address),
            port => format!("http://{}:{port}", self.admin.address),
        }
    }

    /// The commented example `installer site init` writes; it parses to the defaults.
    pub fn example_toml() -> &'static str {
        include_str!("../../manifests/site.example.toml")
    }

    pub fn nodes(&self) -> impl Iterator<Item = &HostEntry> {
        self.hosts.iter().filter(|h| h.role == HostRole::Node)
    }

    pub fn validate(&self) -> Result<(), SiteError> {
        let invalid = |setting: &str, value: &dyn fmt::Display, reason: &str| SiteError::Invalid {
            setting: setting.into(),
            value: value.to_string(),
            reason: reason.into(),
        };
        let subnet = self.admin.subnet;
        if !is_domain(&self.domain) {
            return Err(invalid("domain", &self.domain, "not a DNS domain name"));
        }
        if !self.data_root.is_absolute() {
            return Err(invalid(
                "data_root",
                &self.data_root.display(),
                "must be absolute",
            ));
        }
        if !is_label(&self.admin.hostname) {
            return Err(invalid(
                "admin.hostname",
                &self.admin.hostname,
                "not a DNS label",
            ));
        }
        if !subnet.contains(self.admin.address) {
            return Err(invalid(
                "admin.address",
                &self.admin.address,
                &format!("not inside admin.subnet {subnet}"),
            ));
        }
        for (setting, name) in [
            ("admin.internal_interface", &self.admin.internal_interface),
            ("admin.external_interface", &self.admin.external_interface),
        ] {
            if !is_interface_name(name) {
                return Err(invalid(
                    setting,
                    name,
                    "not a Linux interface name (1-15 characters of A-Z a-z 0-9 . _ -)",
                ));
            }
        }
        if self.admin.internal_interface == self.admin.external_interface {
            return Err(invalid(
                "admin.external_interface",
                &self.admin.external_interface,
                "must differ from admin.internal_interface",
            ));
        }
        let ports = [
            ("dns.port", self.dns.port),
            ("ntp.port", self.ntp.port),
            ("http.port", self.http.port),
        ];
        for (i, (setting, port)) in ports.iter().enumerate() {
            if *port == 0 {
                return Err(invalid(setting, port, "port 0 is not allowed"));
            }
            if let Some((other, _)) = ports[..i].iter().find(|(_, p)| p == port) {
                return Err(invalid(setting, port, &format!("clashes with {other}")));
            }
        }
        if !["auto", "yes", "no"].contains(&self.dns.dnssec_validation.as_str()) {
            return Err(invalid(
                "dns.dnssec_validation",
                &self.dns.dnssec_validation,
                "must be auto, yes or no",
            ));
        }
        for (setting, dir) in [
            ("dns.directory", &self.dns.directory),
            ("ntp.drift_dir", &self.ntp.drift_dir),
            ("ntp.log_dir", &self.ntp.log_dir),
            ("ntp.run_dir", &self.ntp.run_dir),
        ] {
            if !dir.is_absolute() {
                return Err(invalid(setting, &dir.display(), "must be absolute"));
            }
        }
        for up in &self.ntp.upstreams {
            if up.is_empty() || up.contains(char::is_whitespace) {
                return Err(invalid("ntp.upstreams", up, "not a host name or address"));
            }
        }
        let mut seen = vec![self.admin.hostname.as_str()];
        for (i, host) in self.hosts.iter().enumerate() {
            let setting = format!("hosts[{i}]");
            if !is_label(&host.name) {
                return Err(invalid(
                    &format!("{setting}.name"),
                    &host.name,
                    "not a DNS label",
                ));
            }
            if seen.contains(&host.name.as_str()) {
                return Err(invalid(
                    &format!("{setting}.name"),
                    &host.name,
                    "duplicate host name",
                ));
            }
            seen.push(&host.name);
            if !subnet.contains(host.address) {
                return Err(invalid(
                    &format!("{setting}.address"),
                    &host.address,
                    &format!("not inside admin.subnet {subnet}"),
                ));
            }
        }
        Ok(())
    }
}

fn apply_override(table: &mut toml::Table, assignment: &str) -> Result<(), SiteError> {
    let bad = || SiteError::BadOverride {
        assignment: assignment.into(),
    };
    let (key, raw) = assignment.split_once('=').ok_or_else(bad)?;
    let parts: Vec<&str> = key.trim().split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(bad());
    }
    // A value that parses as TOML (number, list, quoted string) is taken as such; anything else
    // is a bare string, so `--set admin.address=10.0.0.1` needs no quoting.
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));
    insert_setting(table, &parts, value).ok_or_else(bad)
}

/// Sets the dotted setting `parts` to `value`, creating tables on the way; None when a part
/// on the way is not a table.
fn insert_setting(table: &mut toml::Table, parts: &[&str], value: toml::Value) -> Option<()> {
    let (last, path) = parts.split_last()?;
    let mut current = table;
    for part in path {
        current = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()?;
    }
    current.insert(last.to_string(), value);
    Some(())
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_domain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_label)
}

fn is_interface_name(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(sets: &[&str]) -> Result<SiteConfig, SiteError> {
        let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
        SiteConfig::load(None, &sets)
    }

    #[test]
    fn defaults_are_the_reference_topology_and_valid() {
        let site = load(&[]).unwrap();
        assert_eq!(site, SiteConfig::default());
        assert_eq!(site.admin.address, Ipv4Addr::new(192, 168, 10, 10));
        assert_eq!(site.admin.subnet.to_string(), "192.168.10.0/24");
        assert_eq!(site.http_base(), "http://192.168.10.10");
    }

    #[test]
    fn example_file_parses_to_the_defaults() {
        let table: toml::Table = toml::from_str(SiteConfig::example_toml()).unwrap();
        let site: SiteConfig = table.try_into().unwrap();
        assert_eq!(site, SiteConfig::default());
    }

    #[test]
    fn overrides_take_typed_and_bare_values() {
        let site = load(&[
            "dns.port=5353",
            "admin.address=192.168.10.20",
            "dns.forwarders=[\"127.0.0.2:5399\"]",
        ])
        .unwrap();
        assert_eq!(site.dns.port, 5353);
        assert_eq!(site.admin.address, Ipv4Addr::new(192, 168, 10, 20));
        assert_eq!(site.dns.forwarders[0].port, Some(5399));
    }

    #[test]
    fn errors_name_the_setting() {
        let msg = |sets: &[&str]| load(sets).unwrap_err().to_string();
        assert!(msg(&["admin.address=10.0.0.1"]).contains("`admin.address`"));
        assert!(msg(&["admin.external_interface=eth 0"]).contains("`admin.external_interface`"));
        assert!(msg(&["ntp.port=80"]).contains("clashes with"));
        assert!(
            msg(&["hosts=[{name=\"n\",address=\"10.1.1.1\",role=\"node\"}]"])
                .contains("`hosts[0].address`")
        );
        assert!(msg(&["dns.bogus=1"]).contains("bogus"));
        assert!(msg(&["admin.subnet=192.168.10.1/24"]).contains("host bits"));
    }

    #[test]
    fn flags_apply_over_set_and_are_refused_under_their_name() {
        let port = |p: u16| FlagOverride::new("--http-port", "http.port", p).unwrap();
        let sets = vec!["http.port=8080".to_string()];
        let site = SiteConfig::load_with_flags(None, &sets, &[port(8081)]).unwrap();
        assert_eq!(site.http.port, 8081);

        let err = SiteConfig::load_with_flags(None, &[], &[port(53)]).unwrap_err();
        assert!(matches!(
            err,
            SiteError::Flag {
                flag: "--http-port",
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "--http-port: site setting `http.port` = 53: clashes with dns.port"
        );
        // A refusal of another setting is not blamed on the flag.
        let sets = vec!["dns.port=0".to_string()];
        let err = SiteConfig::load_with_flags(None, &sets, &[port(8081)]).unwrap_err();
        assert!(matches!(err, SiteError::Invalid { .. }), "{err}");

        let root = FlagOverride::new("--data-root", "data_root", Path::new("srv")).unwrap();
        let err = SiteConfig::load_with_flags(None, &[], &[root]).unwrap_err();
        assert!(err.to_string().starts_with("--data-root: "), "{err}");
    }
}
