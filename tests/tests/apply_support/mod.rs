//! Harness for the `apply_*` tests: a real nginx on 127.0.0.1 that includes the generated
//! conf.d file the way a stock nginx.conf does, cached Python tool venvs (current pip, pip 23.3
//! as Rocky 10 ships it, uv) and the Kubespray wheels fetched once from PyPI, a bundle built from
//! those wheels, and running `installer apply`.

#![allow(dead_code, unused_imports)]

mod bundles;
pub use bundles::{bundles, exact_snapshot};
pub use e2e::harness::Tmpfs;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use bundle::manifest::{BundleManifest, ToolInfo, Totals};
pub use e2e::harness::{free_port, run_ok};

/// Kubespray master requirements (reference/pypi-index.md §4).
pub const KUBESPRAY_REQUIREMENTS: &str = "ansible==11.13.0\nbcrypt<6\ncryptography==50.0.0\n\
jmespath==1.1.0\nnetaddr==1.3.0\npasslib==1.7.4\n";

/// pip `--platform` does not expand manylinux_2_39 to older tags (pip #10760): list them.
pub fn pip_platforms(arch: &str) -> Vec<String> {
    [
        "manylinux_2_39",
        "manylinux_2_34",
        "manylinux_2_28",
        "manylinux_2_17",
        "manylinux2014",
    ]
    .iter()
    .map(|p| format!("{p}_{arch}"))
    .collect()
}

pub const ARCHES: [&str; 2] = ["x86_64", "aarch64"];

/// Cache directory under target/ for venvs and downloaded wheels (kept across runs).
pub fn cache_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/apply-test-cache");
    fs_err::create_dir_all(&dir).unwrap();
    dir
}

/// A venv under the cache with `packages` installed from PyPI (created once).
pub fn venv(name: &str, packages: &[&str]) -> PathBuf {
    let dir = cache_dir().join(name);
    let marker = dir.join(".ready");
    if !marker.exists() {
        let _ = fs_err::remove_dir_all(&dir);
        run_ok(Command::new("python3").args(["-m", "venv"]).arg(&dir));
        run_ok(
            Command::new(dir.join("bin/python"))
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
                .args(packages),
        );
        fs_err::write(&marker, b"").unwrap();
    }
    dir
}

/// The Kubespray closure for both arches, downloaded from PyPI once into the cache.
pub fn kubespray_wheels() -> PathBuf {
    let dir = cache_dir().join("kubespray-wheels");
    let marker = dir.join(".ready");
    if !marker.exists() {
        let req = cache_dir().join("kubespray-requirements.txt");
        fs_err::write(&req, KUBESPRAY_REQUIREMENTS).unwrap();
        for arch in ARCHES {
            let mut cmd = Command::new("python3");
            cmd.args(["-m", "pip", "download", "-q", "--disable-pip-version-check"])
                .args(["--only-binary=:all:", "--python-version", "3.12"])
                .args(["--implementation", "cp", "-d"])
                .arg(&dir)
                .arg("-r")
                .arg(&req);
            for p in pip_platforms(arch) {
                cmd.args(["--platform", &p]);
            }
            run_ok(&mut cmd);
        }
        fs_err::write(&marker, b"").unwrap();
    }
    dir
}

/// Pack `wheels` as a bundle (`pypi/files/`, one PyPI target per arch with a lock filled from
/// each wheel's METADATA) with `base` as the rest of the manifest.
pub fn build_wheel_bundle(wheels: &[PathBuf], tree: &Path, output: &Path, base: BundleManifest) {
    let source = tree.with_extension("wheels");
    fs_err::create_dir_all(&source).unwrap();
    for w in wheels {
        fs_err::copy(w, source.join(w.file_name().unwrap())).unwrap();
    }
    let arches: Vec<String> = ARCHES.iter().map(|a| a.to_string()).collect();
    let mut manifest = base;
    manifest.pypi_targets = e2e::localbundle::wheel_targets(&source, tree, &arches).unwrap();
    e2e::tree::pack_tree(
        tree,
        output,
        manifest,
        &bundle::write::WriteOptions::default(),
        &bundle::NoProgress,
    )
    .unwrap();
}

pub fn base_manifest(created: &str) -> BundleManifest {
    BundleManifest {
        format: bundle::FORMAT_VERSION,
        min_installer_version: None,
        base: None,
        bundle_id: String::new(),
        created: time::OffsetDateTime::parse(
            created,
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap(),
        tool: ToolInfo {
            name: "apply-test".into(),
            version: "0".into(),
        },
        release: None,
        arches: ARCHES.iter().map(|a| a.to_string()).collect(),
        rpm: None,
        pypi_targets: vec![],
        kubespray: None,
        files: vec![],
        totals: Totals::default(),
    }
}

/// `installer apply BUNDLE --root ROOT` serving on 127.0.0.1:PORT, plus `extra` flags.
pub fn installer_apply(bundle: &Path, root: &Path, port: u16, extra: &[&str]) -> Command {
    let mut cmd = Command::new(e2e::workspace_bin("installer"));
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

/// A running nginx, killed on drop.
pub struct Nginx {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Nginx {
    /// nginx.conf in the shape of a stock one: our generated conf.d file is included inside
    /// the `http` block.
    pub fn conf(dir: &Path, conf_d: &Path) -> String {
        let user = if unsafe_is_root() { "user root;\n" } else { "" };
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
        let child = Command::new("nginx")
            .arg("-c")
            .arg(&conf)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start nginx");
        let nginx = Nginx { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "nginx did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        nginx
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
    /// SIGTERM, not SIGKILL: the master must take its worker down with it, or the worker
    /// outlives the test (orphaned, holding the port).
    fn drop(&mut self) {
        let pid = self.child.id() as libc::pid_t;
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_is_root() -> bool {
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
