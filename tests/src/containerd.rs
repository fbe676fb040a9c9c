//! A containerd of a test's own, for pulls through the hosts.toml files `installer node`
//! writes: root, state and socket under a temp dir, no CRI plugin, stopped on drop (the
//! harness's `Daemon`, which shows containerd's log when a test fails).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::harness::{Daemon, wait_for};

/// A containerd of the test's own: root, state and socket under `dir`, no CRI.
pub struct Containerd {
    /// Stopped (SIGTERM, then SIGKILL) and its log shown on failure by the harness's guard.
    _daemon: Daemon,
    address: PathBuf,
}

impl Containerd {
    pub fn start(dir: &Path) -> Containerd {
        let d = dir.display();
        let config = dir.join("config.toml");
        fs_err::write(
            &config,
            format!(
                "version = 2\nroot = \"{d}/root\"\nstate = \"{d}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{d}/containerd.sock\"\n\
                 [ttrpc]\n  address = \"{d}/containerd.sock.ttrpc\"\n"
            ),
        )
        .unwrap();
        let mut daemon = Daemon::spawn(
            "containerd",
            Command::new("containerd").arg("--config").arg(&config),
            &dir.join("containerd.log"),
        )
        .expect("start containerd (scripts/install-test-deps installs it)");
        let address = dir.join("containerd.sock");
        wait_for("containerd to answer", Duration::from_secs(30), || {
            daemon.assert_running();
            ctr(&address, &["version"]).status.success().then_some(())
        });
        Containerd {
            _daemon: daemon,
            address,
        }
    }

    /// `ctr images pull` of `reference` (its upstream name) over plain HTTP through the
    /// `hosts.toml` files under `hosts_dir`, as a node's containerd pulls through the admin.
    pub fn pull_through(&self, hosts_dir: &Path, reference: &str) -> Output {
        let hosts = hosts_dir.to_str().expect("a UTF-8 hosts dir");
        self.ctr(&[
            "images",
            "pull",
            "--plain-http",
            "--snapshotter",
            "native",
            "--hosts-dir",
            hosts,
            reference,
        ])
    }

    /// `ctr --address <this containerd> ARGS`.
    pub fn ctr(&self, args: &[&str]) -> Output {
        ctr(&self.address, args)
    }
}

fn ctr(address: &Path, args: &[&str]) -> Output {
    Command::new("ctr")
        .arg("--address")
        .arg(address)
        .args(args)
        .output()
        .unwrap()
}
