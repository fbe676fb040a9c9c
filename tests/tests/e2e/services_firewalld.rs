//! The admin under firewalld, without the lab: three network namespaces (a node, the admin with
//! its internal and external interface, an "internet" that routes the site's subnet back), and
//! firewalld with its own dbus in the admin's private mount namespace (the test's copy of /etc,
//! its own /run and /srv). First the known risk: with firewalld running, the plain nftables
//! masquerade table (what `installer nat enable` loads without firewalld) lets nothing out, since
//! firewalld's forward chain rejects traffic between zones. Then `installer apply` and `nat
//! enable` on the admin's real root: the node reaches the internet and the served port, and is
//! refused on a port the site does not serve; `nat disable`: the internet is cut again.
//! Needs root, dbus and firewalld (scripts/install-test-deps).

use std::process::Command;
use std::time::Duration;

use crate::harness::*;
use e2e::localbundle::small_mirror_bundle;
use installer::services::nat::{self, NatState};

const ADMIN: &str = "192.168.88.10";
const NODE: &str = "192.168.88.11";
const ADMIN_EXT: &str = "203.0.113.10";
const INTERNET: &str = "203.0.113.1";

/// `curl` from the node: true when an HTTP answer came back.
fn reaches(node: &Netns, url: &str) -> bool {
    node.command("curl")
        .args(["-sS", "-o", "/dev/null", "--max-time", "3", url])
        .status()
        .unwrap()
        .success()
}

fn veth(a: &Netns, a_name: &str, b: &Netns, b_name: &str) {
    let tmp = format!("kf{}", std::process::id() % 100000);
    run_ok(Command::new("ip").args([
        "link", "add", &tmp, "netns", &a.name, "type", "veth", "peer", "name", b_name, "netns",
        &b.name,
    ]));
    run_ok(a.command("ip").args(["link", "set", &tmp, "name", a_name]));
    for (ns, name) in [(a, a_name), (b, b_name)] {
        run_ok(ns.command("ip").args(["link", "set", name, "up"]));
    }
}

#[test]
fn firewalld_admin_forwards_only_through_the_nat_policy_and_serves_only_the_site_ports() {
    for tool in ["firewalld", "firewall-cmd", "dbus-daemon"] {
        assert!(
            installer::actions::on_path(tool),
            "{tool} is missing: run scripts/install-test-deps"
        );
    }
    let work = tempfile::tempdir().unwrap();
    let (node, admin_ns, inet) = (
        Netns::new("fw-node"),
        Netns::new("fw-admin"),
        Netns::new("fw-inet"),
    );
    veth(&admin_ns, "int0", &node, "eth0");
    veth(&admin_ns, "ext0", &inet, "inet0");
    for (ns, addr, dev) in [
        (&node, NODE, "eth0"),
        (&admin_ns, ADMIN, "int0"),
        (&admin_ns, ADMIN_EXT, "ext0"),
        (&inet, INTERNET, "inet0"),
    ] {
        run_ok(
            ns.command("ip")
                .args(["addr", "add", &format!("{addr}/24"), "dev", dev]),
        );
    }
    run_ok(
        node.command("ip")
            .args(["route", "add", "default", "via", ADMIN]),
    );
    // The upstream routes the site back: only the admin's filter keeps the node in.
    run_ok(
        inet.command("ip")
            .args(["route", "add", "192.168.88.0/24", "via", ADMIN_EXT]),
    );
    let port = free_port();
    let unserved = free_port();
    let www = work.path().join("www");
    fs_err::create_dir_all(&www).unwrap();
    let _internet = start_http_on(&www, INTERNET, 80, Some(&inet));
    let internet_url = format!("http://{INTERNET}/");

    // The admin: a private /etc without an SELinux policy (services_selinux covers that), its
    // own /run with a system bus, firewalld with the stock configuration.
    let dir = work.path().join("admin");
    for sub in ["etc", "run/dbus", "srv", "log"] {
        fs_err::create_dir_all(dir.join(sub)).unwrap();
    }
    run_ok(
        Command::new("cp")
            .args(["-a", "/etc/."])
            .arg(dir.join("etc")),
    );
    let _ = fs_err::remove_file(dir.join("etc/selinux/config"));
    let admin = PrivateHost {
        ns: admin_ns,
        dir,
        binds: &[
            ("etc", "/etc"),
            ("run", "/run"),
            ("srv", "/srv"),
            ("log", "/var/log"),
        ],
    };
    admin.run("dbus-daemon", &["--system", "--fork", "--nopidfile"]);
    let mut firewalld = Daemon::start(
        "firewalld",
        &mut admin.command("firewalld", &["--nofork", "--nopid"]),
    );
    wait_for("firewalld", Duration::from_secs(60), || {
        firewalld.assert_running();
        let ok = admin
            .command("firewall-cmd", &["--state"])
            .output()
            .ok()?
            .status
            .success();
        ok.then_some(())
    });
    let site_file = work.path().join("site.toml");
    fs_err::write(
        &site_file,
        format!(
            "domain = \"fw.internal\"\ndata_root = \"/srv/data\"\n[admin]\naddress = \"{ADMIN}\"\n\
             subnet = \"192.168.88.0/24\"\ninternal_interface = \"int0\"\nexternal_interface = \"ext0\"\n\
             [dns]\ndirectory = \"/srv/named\"\n[http]\nport = {port}\n\
             [[hosts]]\nname = \"node1\"\naddress = \"{NODE}\"\nrole = \"node\"\n"
        ),
    )
    .unwrap();
    let site = installer::site::SiteConfig::load(Some(&site_file), &[]).unwrap();

    // The known risk: the interfaces in their zones as on a Rocky admin, our own masquerade
    // table, forwarding on: nothing passes firewalld's forward chain.
    admin.run(
        "firewall-cmd",
        &["--zone=internal", "--change-interface=int0"],
    );
    admin.run(
        "firewall-cmd",
        &["--zone=external", "--change-interface=ext0"],
    );
    let ruleset = work.path().join("nat.nft");
    fs_err::write(&ruleset, nat::ruleset(&site, NatState::Enabled)).unwrap();
    admin.run("nft", &["-f", ruleset.to_str().unwrap()]);
    admin.run("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    assert!(
        !reaches(&node, &internet_url),
        "firewalld should reject forwarding that only a masquerade table allows"
    );

    // apply and nat enable the firewalld way.
    let bundle = small_mirror_bundle(work.path());
    let installer = e2e::workspace_bin("installer");
    let site_arg = site_file.to_str().unwrap();
    let applied = admin.run(
        &installer,
        &["apply", bundle.to_str().unwrap(), "--site", site_arg],
    );
    assert!(
        applied.contains("ran        put int0 in firewalld's internal zone")
            && applied.contains("ran        remove the table kubespray_offline_nat")
            && applied.contains(
                "skipped    load the NAT ruleset (enabled) (when firewalld does not run)"
            ),
        "{applied}"
    );
    admin.run(&installer, &["nat", "enable", "--site", site_arg]);
    assert_eq!(
        admin
            .run("firewall-cmd", &["--get-zone-of-interface=int0"])
            .trim(),
        "internal"
    );
    // The site's HTTP port (nginx's, here a plain server) and a port it does not serve.
    let served = start_http_on(&www, "0.0.0.0", port, Some(&admin.ns));
    let other = start_http_on(&www, "0.0.0.0", unserved, Some(&admin.ns));
    let served_url = format!("http://{ADMIN}:{port}/");
    wait_for("the served port", Duration::from_secs(30), || {
        reaches(&node, &served_url).then_some(())
    });
    // Started with the served one but not yet waited for: it must listen before its refusal
    // from the node means anything.
    let unserved_local = format!("http://127.0.0.1:{unserved}/");
    wait_for(
        "the unserved port to listen",
        Duration::from_secs(30),
        || reaches(&admin.ns, &unserved_local).then_some(()),
    );
    assert!(
        !reaches(&node, &format!("http://{ADMIN}:{unserved}/")),
        "a port the site does not serve is refused from the node"
    );
    assert!(
        reaches(&node, &internet_url),
        "with the policy the node reaches the internet"
    );

    admin.run(&installer, &["nat", "disable", "--site", site_arg]);
    // Forwarding back on (a firewalld restart with a masquerading zone does that): still cut,
    // since no policy lets the internal zone out.
    admin.run("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    assert!(
        !reaches(&node, &internet_url),
        "without the policy the node is cut off, route back or not"
    );
    assert!(
        reaches(&node, &served_url),
        "the site's own port stays open"
    );
    drop((served, other, firewalld));
}
