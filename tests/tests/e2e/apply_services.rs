//! `installer apply` with a site file writes the admin's service configs next to the content:
//! named.conf and zones that `named-checkconf`/`named-checkzone` accept, a chrony.conf that
//! chronyd parses, the nginx file that `nginx -t` accepts and that serves the landing page and
//! the node files, which `installer node` then fetches from the real nginx. With `--root`, the
//! system actions are printed, never run.

use std::path::Path;
use std::process::Command;

use crate::harness::*;
use e2e::localbundle::small_mirror_bundle;
use installer::services::nat;

fn site_file(dir: &Path) -> std::path::PathBuf {
    let site = dir.join("site.toml");
    fs_err::write(&site, "domain = \"lab.internal\"\n").unwrap();
    site
}

#[test]
fn apply_with_a_site_writes_service_configs_that_their_tools_accept_and_serves_node_files() {
    let work = tempfile::tempdir().unwrap();
    let bundle = small_mirror_bundle(work.path());
    let root = work.path().join("admin");
    let site = site_file(work.path());
    let port = free_port();
    let out = run_ok(&mut installer_apply(
        &bundle,
        &root,
        port,
        &["--site", site.to_str().unwrap()],
    ));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("services: not started") && stdout.contains("systemctl restart named"),
        "with --root the system actions are printed, not run:\n{stdout}"
    );

    // bind: the generated named.conf (checked inside --root, where its paths point) and both
    // zones pass their checkers.
    assert!(
        root.join("etc/named.conf").is_file(),
        "named.conf written under --root"
    );
    run_ok(
        Command::new("named-checkconf")
            .arg("-t")
            .arg(&root)
            .arg("/etc/named.conf"),
    );
    let zones = root.join("var/named");
    run_ok(
        Command::new("named-checkzone")
            .arg("lab.internal")
            .arg(zones.join("lab.internal.zone")),
    );
    run_ok(
        Command::new("named-checkzone")
            .arg("10.168.192.in-addr.arpa")
            .arg(zones.join("10.168.192.in-addr.arpa.zone")),
    );

    // chrony: chronyd parses the config and prints it back (-p), never touching the clock.
    let chrony = run_ok(
        Command::new("chronyd")
            .arg("-p")
            .arg("-f")
            .arg(root.join("etc/chrony.conf")),
    );
    let parsed = String::from_utf8_lossy(&chrony.stdout);
    assert!(parsed.contains("allow 192.168.10.0/24"), "{parsed}");
    assert!(parsed.contains("local stratum 10"), "{parsed}");

    // NAT persisted as enabled (the seed's default) and IP forwarding on: apply wrote exactly
    // what the generators give for this site (their text is pinned by the installer's snapshots).
    let config = installer::site::SiteConfig::load(Some(&site), &[]).unwrap();
    for file in nat::files(&config, nat::NatState::Enabled, None) {
        if file.path.starts_with("/etc/sysconfig") {
            continue; // merged with the stock file, checked in services_nat
        }
        assert_eq!(
            fs_err::read(nat::rooted(&root, &file.path.to_string_lossy())).unwrap(),
            file.contents,
            "{}",
            file.path.display()
        );
    }

    // nginx (nginx -t runs in Nginx::start) serves the landing page and the node files.
    let nginx = Nginx::start(&root, port);
    let (status, content_type, _) = curl(&nginx.url("/"), None);
    assert_eq!(status, "200");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    let (status, _, _) = curl(&nginx.url("/node/kubespray-offline.repo"), None);
    assert_eq!(status, "200");

    // A node set up from that admin gets the repo file with gpgcheck and the admin's key URL.
    let node_root = work.path().join("node1");
    run_ok(
        installer()
            .arg("node")
            .arg("--admin")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--root")
            .arg(&node_root)
            .arg("--no-services"),
    );
    // The node's copy is the admin's, byte for byte (its text is pinned by the snapshots).
    assert_eq!(
        fs_err::read(node_root.join("etc/yum.repos.d/kubespray-offline.repo")).unwrap(),
        fs_err::read(root.join("data/node/kubespray-offline.repo")).unwrap()
    );
    assert!(node_root.join("etc/pip.conf").is_file());
    assert!(node_root.join("etc/resolv.conf").is_file());

    // A second apply with the same site changes nothing; with --quiet it shows no progress
    // and no plan, only the result and the commands left to run.
    let again = run_ok(&mut installer_apply(
        &bundle,
        &root,
        port,
        &["--site", site.to_str().unwrap(), "--quiet"],
    ));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.is_empty(), "--quiet printed on stderr: {stderr}");
    let again = String::from_utf8_lossy(&again.stdout);
    assert!(again.contains("no changes"), "{again}");
    assert!(
        !again.contains("verify + unpack"),
        "--quiet printed the plan: {again}"
    );
}
