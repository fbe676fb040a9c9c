//! chrony: the generated server and client configs parse (`chronyd -p`), and a real chronyd
//! (always `-x`, state files in temp) serves time on loopback that a chrony client and our own
//! NTP probe receive, with no upstream at all (`local stratum 10`).

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use crate::harness::*;
use installer::netprobe;
use installer::services::chrony;
use installer::site::SiteConfig;

fn parse_check(conf: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chrony.conf");
    fs_err::write(&path, conf).unwrap();
    let out = run_ok(Command::new("chronyd").arg("-p").arg("-f").arg(&path));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn reference_server_and_client_configs_parse() {
    let site = SiteConfig::default();
    let parsed = parse_check(&chrony::server_conf(&site));
    assert!(parsed.contains("allow 192.168.10.0/24"), "{parsed}");
    assert!(parsed.contains("local stratum 10"), "{parsed}");
    let client = parse_check(&chrony::client_conf(&site));
    assert!(client.contains("server 192.168.10.10 iburst"), "{client}");
}

#[test]
fn chronyd_serves_time_to_a_client_without_upstreams() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::pick();
    let (_, site) = loopback_site(dir.path(), &ports);
    let conf = dir.path().join("chrony.conf");
    fs_err::write(&conf, chrony::server_conf(&site)).unwrap();
    run_ok(Command::new("chronyd").arg("-p").arg("-f").arg(&conf));

    let mut server = start_chronyd(&conf, None);
    let addr: SocketAddr = format!("127.0.0.1:{}", ports.ntp).parse().unwrap();
    let reply = wait_for("chronyd to serve time", Duration::from_secs(30), || {
        server.assert_running();
        netprobe::ntp_query(addr).ok().filter(|r| r.leap != 3)
    });
    assert_eq!(reply.stratum, 10, "local stratum 10 with no upstream");

    // A real chrony client, in query-only mode (-Q never sets the clock; -x for good measure).
    let out = run_ok(
        Command::new("timeout")
            .args(["60", "chronyd", "-x", "-Q", "-t", "20", "-f", "/dev/null"])
            .arg(format!(
                "server 127.0.0.1 port {} iburst maxsamples 2",
                ports.ntp
            )),
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("System clock wrong by"),
        "client got no time: {log}"
    );

    server.stop();
    assert!(
        netprobe::ntp_query(addr).is_err(),
        "stopped chronyd still answers"
    );
}
