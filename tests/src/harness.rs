//! Small pieces every end-to-end test needs: run a command and insist it succeeded (showing its
//! output when it did not), and pick a free loopback port for a server the test starts.

use std::net::{TcpListener, UdpSocket};
use std::process::{Command, Output};

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
