//! Small pieces every end-to-end test needs: the `bundler` and `installer` commands, run a
//! command and insist it succeeded (showing its output when it did not), pick a free loopback
//! port for a server the test starts, wait for something to come up, and keep a daemon the test
//! started alive only as long as the test, with its log at hand when it fails.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Panics with the command, its exit status, stdout and stderr unless `out` is a success.
pub fn assert_success(out: Output) -> Output {
    assert!(
        out.status.success(),
        "exit status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `cmd` to completion and requires success.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    if !out.status.success() {
        eprintln!("{cmd:?} failed");
    }
    assert_success(out)
}

/// A loopback port free for both TCP and UDP right now (DNS and NTP servers need both), and
/// never handed out before in this process: the tests run on threads of one process, and two
/// of them picking a port before either binds it must not get the same one.
pub fn free_port() -> u16 {
    static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok()
            && HANDED_OUT
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(port)
        {
            return port;
        }
    }
}

/// Tests that need the live PyPI carry `_live_pypi` in their name and call this first. When
/// pypi.org cannot be reached they fail, saying how to leave them out (`KOI_OFFLINE=1
/// scripts/test` skips them by name and counts them); they never pass without checking.
pub fn require_live_pypi() {
    static REACHABLE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    let probe = || {
        let url = "https://pypi.org/simple/pip/";
        let out = Command::new("curl")
            .args([
                "-sS",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "20",
            ])
            .arg(url)
            .output()
            .map_err(|e| format!("cannot run curl: {e}"))?;
        match String::from_utf8_lossy(&out.stdout).as_ref() {
            "200" => Ok(()),
            code => Err(format!(
                "{url} answered `{code}` {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        }
    };
    if let Err(reason) = REACHABLE.get_or_init(probe) {
        panic!(
            "PyPI unreachable ({reason}): this test needs the live index; \
             set KOI_OFFLINE=1 to leave the live tests out"
        );
    }
}

/// A daemon the test started, the one guard every test uses: its stdout and stderr go to a log
/// file, which is printed when the daemon is found to have exited early
/// ([`Daemon::assert_running`]) and when the guard is dropped during a panic (a failing test), so
/// the daemon's own complaint is next to the assertion that failed. Stopped with SIGTERM (a
/// master process such as nginx takes its workers down with it), SIGKILL if that is ignored.
pub struct Daemon {
    child: Child,
    name: String,
    log: PathBuf,
    /// Holds the log when the guard made its own (`Daemon::start`).
    _log_dir: Option<tempfile::TempDir>,
}

impl Daemon {
    /// Starts `cmd` with stdin closed and both output streams appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> std::io::Result<Daemon> {
        let out = fs_err::File::create(log)?.into_parts().0;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .map_err(|e| {
                std::io::Error::new(e.kind(), format!("cannot start {name} ({cmd:?}): {e}"))
            })?;
        Ok(Daemon {
            child,
            name: name.into(),
            log: log.to_path_buf(),
            _log_dir: None,
        })
    }

    /// [`Daemon::spawn`] with the log in a temp directory of its own; panics if `cmd` cannot
    /// be started (the message says which program is missing).
    pub fn start(name: &str, cmd: &mut Command) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix("e2e-daemon-")
            .tempdir()
            .expect("a temp dir for a daemon log");
        let log = dir.path().join("log");
        let mut daemon = Daemon::spawn(name, cmd, &log)
            .unwrap_or_else(|e| panic!("{e}; is it installed? run scripts/install-test-deps"));
        daemon._log_dir = Some(dir);
        daemon
    }

    /// The exit status if the process has already ended (a config it refused, a port in use).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Panics with the daemon's log if it already exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.exited() {
            panic!(
                "{} exited early ({status}); its log ({}):\n{}",
                self.name,
                self.log.display(),
                self.log()
            );
        }
    }

    /// Everything the process has written so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM, up to 10 s for the process to end, then SIGKILL; always reaped.
    pub fn stop(&mut self) {
        if self.exited().is_none() {
            // SAFETY: kill has no memory-safety preconditions; the pid is our unreaped child.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.exited().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
        if std::thread::panicking() {
            eprintln!(
                "---- {} log ({}) ----\n{}",
                self.name,
                self.log.display(),
                self.log()
            );
        }
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
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `installer` built by cargo, as a command to add arguments to.
pub fn installer() -> Command {
    Command::new(crate::workspace_bin("installer"))
}

/// `installer ARGS BUNDLE [--root ROOT --no-services]`, run to its end, success or not. The
/// environment's `KOI_BUNDLE` is removed so that the bundle named here is the one used.
pub fn run_installer(args: &[&str], bundle: &Path, root: Option<&Path>) -> Output {
    let mut cmd = installer();
    cmd.args(args).arg(bundle).env_remove("KOI_BUNDLE");
    if let Some(root) = root {
        cmd.arg("--root")
            .arg(root)
            .args(["--no-services", "--http-port", "18124"]);
    }
    cmd.output().expect("run installer")
}

/// `dnf -y` confined to `installroot`: release 10, no plugins, no weak dependencies, none of
/// the host's repo files (an empty `no-repos/` there) and its cache inside. Callers add the
/// repos under test and the command.
pub fn isolated_dnf(installroot: &Path) -> Command {
    fs_err::create_dir_all(installroot.join("no-repos")).unwrap();
    let mut cmd = Command::new("dnf");
    cmd.arg("-y")
        .arg(format!("--installroot={}", installroot.display()))
        .args([
            "--releasever=10",
            "--disableplugin=*",
            "--setopt=install_weak_deps=0",
        ])
        .arg(format!(
            "--setopt=reposdir={}",
            installroot.join("no-repos").display()
        ))
        .arg(format!(
            "--setopt=cachedir={}",
            installroot.join("cache").display()
        ));
    cmd
}

/// Every file under `root` that is not a directory, with its bytes, by relative path: what tests
/// compare two trees (an applied root, a node) with.
pub fn file_tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs_err::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if fs_err::symlink_metadata(&path).unwrap().is_dir() {
                dirs.push(path);
            } else {
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                files.insert(rel, fs_err::read(&path).unwrap());
            }
        }
    }
    files
}

/// A command's stdout then stderr, as text: what a failing assertion shows.
pub fn all_output(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `bundler` built by cargo, as a command to add arguments to.
pub fn bundler() -> Command {
    Command::new(crate::workspace_bin("bundler"))
}

/// `BUNDLER build --release 10 --no-pypi --no-files --no-images --quiet`: the RPM-only build the
/// mirror tests run against a generated mirror (no PyPI, registry or files upstream needed).
/// Callers add `--mirror`, `--gpg-key`, `--cache`, `-o` and what their test is about.
pub fn rpm_only_build(bundler: &Path) -> Command {
    let mut cmd = Command::new(bundler);
    cmd.args([
        "build",
        "--release",
        "10",
        "--no-pypi",
        "--no-files",
        "--no-images",
    ])
    .arg("--quiet");
    cmd
}

/// A tmpfs mounted for one test, unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`8m`) on `dir`, created when missing.
    pub fn mount(dir: &Path, size: &str) -> Tmpfs {
        fs_err::create_dir_all(dir).unwrap();
        let mut cmd = Command::new("mount");
        run_ok(
            cmd.args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(dir),
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
