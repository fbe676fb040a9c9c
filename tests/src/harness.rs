//! Small pieces every end-to-end test needs: run a command and insist it succeeded (showing its
//! output when it did not), pick a free loopback port for a server the test starts, and keep a
//! daemon the test started alive only as long as the test, with its log at hand when it fails.

use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

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

/// A loopback port free for both TCP and UDP right now (DNS and NTP servers need both).
pub fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
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

/// A daemon the test started: killed and reaped on drop. Its stdout and stderr go to a log file,
/// printed when the guard is dropped during a panic (a failing test), so the daemon's own
/// complaint is next to the assertion that failed.
pub struct LoggedChild {
    child: Child,
    name: String,
    log: PathBuf,
}

impl LoggedChild {
    /// Starts `cmd` with stdin closed and both output streams appended to `log`.
    pub fn spawn(name: &str, cmd: &mut Command, log: &Path) -> std::io::Result<LoggedChild> {
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
        Ok(LoggedChild {
            child,
            name: name.into(),
            log: log.to_path_buf(),
        })
    }

    /// The exit status if the process has already ended (a config it refused, a port in use).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Everything the process has written so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap_or_default()).into_owned()
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for LoggedChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
