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
