//! Shared by the `services_*` tests: a site file on loopback test ports, daemons started by the
//! test and killed when it ends, network namespaces created and removed by the test, and
//! helpers to write generated files and compare trees.

#![allow(dead_code, unused_imports)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use installer::desired::DesiredFile;
use installer::services::{ServedContent, ServedRepo};
use installer::site::SiteConfig;

pub use e2e::harness::{free_port, run_ok};

/// Kills and reaps a process the test started.
pub struct ChildGuard {
    pub child: Child,
    pub name: String,
}

impl ChildGuard {
    pub fn spawn(name: &str, cmd: &mut Command) -> ChildGuard {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        ChildGuard {
            child,
            name: name.into(),
        }
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Panics if the process already exited (a config it refused, a port in use).
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("{} exited early: {status}", self.name);
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A network namespace with loopback up, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = format!("kso-{tag}-{}", std::process::id());
        let _ = Command::new("ip").args(["netns", "del", &name]).status();
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        run_ok(Command::new("ip").args(["-n", &name, "link", "set", "lo", "up"]));
        Netns { name }
    }

    /// A command that runs inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Polls `probe` until it returns Some, for at most `limit`; the limit only bounds a hang, no
/// test asserts on how long anything takes.
pub fn wait_for<T>(what: &str, limit: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Ports of one test site.
pub struct Ports {
    pub dns: u16,
    pub upstream_dns: u16,
    pub ntp: u16,
    pub http: u16,
}

impl Ports {
    pub fn pick() -> Ports {
        let mut seen = Vec::new();
        let mut next = || loop {
            let p = free_port();
            if !seen.contains(&p) {
                seen.push(p);
                return p;
            }
        };
        Ports {
            dns: next(),
            upstream_dns: next(),
            ntp: next(),
            http: next(),
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

/// Every regular file under `root` with its content, for comparing trees.
pub fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs_err::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.insert(
                    path.strip_prefix(root).unwrap().to_path_buf(),
                    fs_err::read(&path).unwrap(),
                );
            }
        }
    }
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
pub fn start_upstream_named(dir: &Path, port: u16, ns: Option<&Netns>) -> ChildGuard {
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

pub fn start_named(conf: &Path, name: &str, ns: Option<&Netns>) -> ChildGuard {
    let mut cmd = match ns {
        Some(ns) => ns.command("named"),
        None => Command::new("named"),
    };
    cmd.args(["-g", "-n", "1", "-c"]).arg(conf);
    ChildGuard::spawn(name, &mut cmd)
}

pub fn start_chronyd(conf: &Path, ns: Option<&Netns>) -> ChildGuard {
    let mut cmd = match ns {
        Some(ns) => ns.command("chronyd"),
        None => Command::new("chronyd"),
    };
    // -x: never touch the machine's clock.
    cmd.args(["-x", "-d", "-f"]).arg(conf);
    ChildGuard::spawn("chronyd", &mut cmd)
}

/// A plain HTTP server for a directory, standing in for nginx where the nginx config is not
/// what is under test.
pub fn start_http(dir: &Path, port: u16, ns: Option<&Netns>) -> ChildGuard {
    let mut cmd = match ns {
        Some(ns) => ns.command("python3"),
        None => Command::new("python3"),
    };
    cmd.args([
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        &port.to_string(),
        "--directory",
    ])
    .arg(dir);
    ChildGuard::spawn("http server", &mut cmd)
}

/// A host in its own network namespace whose commands see private copies of some of the host's
/// directories (bind-mounted in a private mount namespace), so that the daemons it runs (dbus,
/// firewalld, NetworkManager) never read or write the machine's own configuration.
pub struct PrivateHost {
    pub ns: Netns,
    /// Holds the private copies, one subdirectory per bind.
    pub dir: PathBuf,
    /// (subdirectory of `dir`, the host directory it stands in for).
    pub binds: &'static [(&'static str, &'static str)],
}

impl PrivateHost {
    /// `program args...` in the namespace, with the private directories in place.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> Command {
        let mounts: String = self
            .binds
            .iter()
            .map(|(sub, over)| format!("mount --bind \"$d/{sub}\" {over} && "))
            .collect();
        let mut cmd = self.ns.command("unshare");
        cmd.args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(format!("d=$1; shift; {mounts}exec \"$@\""))
            .arg("private-host")
            .arg(&self.dir)
            .arg(program)
            .args(args);
        cmd
    }

    /// [`PrivateHost::command`], which must succeed; its stdout.
    pub fn run(&self, program: impl AsRef<std::ffi::OsStr>, args: &[&str]) -> String {
        let out = run_ok(&mut self.command(program, args));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for PrivateHost {
    /// Daemons forked away from the test: end what still runs in the namespace before the
    /// namespace goes, also when the test failed.
    fn drop(&mut self) {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.ns.name])
            .output()
            .unwrap();
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            let _ = Command::new("kill").arg(pid).status();
        }
    }
}
