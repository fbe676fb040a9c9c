//! Network namespaces created and removed by a test, and a host in one of them that sees private
//! copies of the machine's configuration directories, so its daemons never touch the real ones.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use e2e::harness::run_ok;

/// A network namespace with loopback up, deleted on drop.
pub struct Netns {
    pub name: String,
}

impl Netns {
    /// `kso-TAG-PID-N`: unique across the tests running at once in this process, and across
    /// runs of the binary at once.
    pub fn new(tag: &str) -> Netns {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("kso-{tag}-{}-{n}", std::process::id());
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
