//! A real nginx on 127.0.0.1 that includes the generated conf.d file the way a stock nginx.conf
//! does, `installer apply` pointed at it, and `curl` to look at what it serves.

use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e::harness::{Daemon, installer, run_ok, wait_for};

use super::tree_listing;

/// `installer apply BUNDLE --root ROOT` serving on 127.0.0.1:PORT, plus `extra` flags.
pub fn installer_apply(bundle: &Path, root: &Path, port: u16, extra: &[&str]) -> Command {
    let mut cmd = installer();
    cmd.arg("apply")
        .arg(bundle)
        .arg("--root")
        .arg(root)
        .args([
            "--http-address",
            "127.0.0.1",
            "--http-port",
            &port.to_string(),
        ])
        .arg("--no-services")
        .args(extra);
    cmd
}

/// The HTTP port the crash and refusal tests write into the configs of an admin under `--root`
/// (`--no-services`: nothing listens on it, so one fixed value keeps trees comparable).
pub const UNSERVED_PORT: u16 = 18099;

/// `installer apply BUNDLE --root ROOT` on [`UNSERVED_PORT`], run to its end, success or not.
pub fn apply_output(bundle: &Path, root: &Path, extra: &[&str]) -> std::process::Output {
    installer_apply(bundle, root, UNSERVED_PORT, extra)
        .output()
        .unwrap()
}

/// [`apply_output`] without extra flags, which must succeed; its stdout.
pub fn apply_ok(bundle: &Path, root: &Path) -> String {
    String::from_utf8_lossy(&run_ok(&mut installer_apply(bundle, root, UNSERVED_PORT, &[])).stdout)
        .to_string()
}

/// The tree an uninterrupted `apply old` then `apply new` leaves in `dir/reference`: what a
/// run that was killed or refused on the way must end with.
pub fn uninterrupted_tree(dir: &Path, old: &Path, new: &Path, port: u16) -> Vec<String> {
    let reference = dir.join("reference");
    run_ok(&mut installer_apply(old, &reference, port, &[]));
    run_ok(&mut installer_apply(new, &reference, port, &[]));
    tree_listing(&reference)
}

/// `installer apply BUNDLE` on `root`, SIGKILLed by the installer itself at kill `point`
/// (`installer::apply::KILL_ENV`); panics if the point was never reached.
pub fn apply_killed_at(bundle: &Path, root: &Path, port: u16, point: &str) {
    let killed = installer_apply(bundle, root, port, &[])
        .env(installer::apply::KILL_ENV, point)
        .output()
        .unwrap();
    assert_eq!(
        killed.status.signal(),
        Some(9),
        "kill point {point} not reached"
    );
}

/// A running nginx, stopped on drop (its log printed if the test failed).
pub struct Nginx {
    daemon: Daemon,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Nginx {
    /// nginx.conf in the shape of a stock one: our generated conf.d file is included inside
    /// the `http` block.
    pub fn conf(dir: &Path, conf_d: &Path) -> String {
        let user = if is_root() { "user root;\n" } else { "" };
        let d = dir.display();
        format!(
            "{user}worker_processes 1;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\n\
             events {{ worker_connections 64; }}\n\
             http {{\n    include /etc/nginx/mime.types;\n    default_type application/octet-stream;\n    \
             sendfile on;\n    access_log {d}/access.log;\n    client_body_temp_path {d}/body;\n    \
             proxy_temp_path {d}/proxy;\n    fastcgi_temp_path {d}/fastcgi;\n    \
             uwsgi_temp_path {d}/uwsgi;\n    scgi_temp_path {d}/scgi;\n    \
             include {}/*.conf;\n}}\n",
            conf_d.display()
        )
    }

    pub fn start(root: &Path, port: u16) -> Nginx {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("nginx.conf");
        fs_err::write(
            &conf,
            Self::conf(dir.path(), &root.join("etc/nginx/conf.d")),
        )
        .unwrap();
        run_ok(Command::new("nginx").arg("-t").arg("-c").arg(&conf));
        let mut daemon = Daemon::spawn(
            "nginx",
            Command::new("nginx")
                .arg("-c")
                .arg(&conf)
                .args(["-g", "daemon off;"]),
            &dir.path().join("nginx.out"),
        )
        .expect("start nginx");
        wait_for(
            &format!("nginx to listen on {port}"),
            Duration::from_secs(20),
            || {
                daemon.assert_running();
                TcpStream::connect(("127.0.0.1", port)).ok()
            },
        );
        Nginx { daemon, port, dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn access_log(&self) -> String {
        fs_err::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }

    pub fn clear_access_log(&self) {
        fs_err::write(self.dir.path().join("access.log"), b"").unwrap();
    }
}

impl Drop for Nginx {
    /// nginx writes its complaints to error.log, not to the guard's log: show it on failure.
    fn drop(&mut self) {
        self.daemon.stop();
        if std::thread::panicking() {
            eprintln!(
                "---- nginx error.log ----\n{}",
                fs_err::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
            );
        }
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `curl` status line pieces for a GET: (status, content type, redirect location).
pub fn curl(url: &str, accept: Option<&str>) -> (String, String, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}|%{content_type}|%{redirect_url}",
    ]);
    if let Some(a) = accept {
        cmd.args(["-H", &format!("Accept: {a}")]);
    }
    let out = run_ok(cmd.arg(url));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mut parts = text.splitn(3, '|').map(str::to_string);
    (
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
        parts.next().unwrap_or_default(),
    )
}

/// A site file for an admin on 127.0.0.1 serving HTTP on `port` (DNS and NTP on free ports),
/// with one node: what apply needs to write the node files (containerd's hosts.toml among them).
pub fn loopback_site_file(work: &Path, port: u16) -> PathBuf {
    let path = work.join("site.toml");
    let (dns, ntp) = (e2e::harness::free_port(), e2e::harness::free_port());
    fs_err::write(
        &path,
        format!(
            "domain = \"lab.internal\"\n\n[admin]\naddress = \"127.0.0.1\"\nsubnet = \"127.0.0.0/8\"\n\n\
             [dns]\nport = {dns}\nlisten = [\"127.0.0.1\"]\n\n[ntp]\nport = {ntp}\n\n[http]\nport = {port}\n\n\
             [[hosts]]\nname = \"node1\"\naddress = \"127.0.0.11\"\nrole = \"node\"\n"
        ),
    )
    .unwrap();
    path
}
