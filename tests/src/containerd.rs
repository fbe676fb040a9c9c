//! A containerd of a test's own, for pulls through the hosts.toml files `installer node`
//! writes: root, state and socket under a temp dir, no CRI plugin, stopped on drop.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A containerd of the test's own: root, state and socket under `dir`, no CRI.
pub struct Containerd {
    child: Child,
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
        let log = fs_err::File::create(dir.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log.into_parts().0)
            .spawn()
            .expect("start containerd");
        let containerd = Containerd {
            child,
            address: dir.join("containerd.sock"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !containerd.ctr(&["version"]).status.success() {
            assert!(
                Instant::now() < deadline,
                "containerd did not answer: {}",
                fs_err::read_to_string(dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        containerd
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
        Command::new("ctr")
            .arg("--address")
            .arg(&self.address)
            .args(args)
            .output()
            .unwrap()
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
