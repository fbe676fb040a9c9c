//! `installer node` on a node whose network NetworkManager runs, as on Rocky: NetworkManager
//! (on its own dbus) owns the node's connection, which carries a DNS server of its own and no
//! gateway. Before `installer node`, NetworkManager writes that server into /etc/resolv.conf (the
//! seed's "common mistake", and this test's control); afterwards the default route is via the
//! admin, in the kernel and in the connection, and resolv.conf stays the admin's through a
//! NetworkManager reload and a reconnect.
//!
//! Two network namespaces joined by a veth: the admin side serves the node files over HTTP, the
//! node side runs dbus-daemon and NetworkManager in a private mount namespace with the test's own
//! copy of /etc and its own /run and /var/lib/NetworkManager; `installer node` runs there on the
//! real root `/`, so it writes only the copy. NetworkManager manages a device without udev only
//! when /sys is read-only to it (it then skips udev, as in a container), hence the remount. Needs
//! root, dbus and network-manager (scripts/install-test-deps).

use std::process::Command;
use std::time::Duration;

use crate::harness::*;
use installer::node;

const ADMIN: &str = "192.168.77.10";
const NODE: &str = "192.168.77.11";
/// A DNS server the node's connection carries and must not end up using.
const OTHER_DNS: &str = "203.0.113.53";

/// The node's resolv.conf, as NetworkManager or `installer node` left it.
fn resolv_conf(node: &PrivateHost) -> String {
    fs_err::read_to_string(node.dir.join("etc/resolv.conf")).unwrap_or_default()
}

fn nameservers(resolv: &str) -> Vec<&str> {
    resolv
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .map(str::trim)
        .collect()
}

#[test]
fn node_command_drives_networkmanager_route_via_admin_and_resolv_conf_kept() {
    for tool in ["NetworkManager", "nmcli", "dbus-daemon"] {
        assert!(
            installer::actions::on_path(tool),
            "{tool} is missing: run scripts/install-test-deps"
        );
    }
    let work = tempfile::tempdir().unwrap();
    let port = free_port();

    // The admin side: node files for a site whose admin is ADMIN, served on ADMIN:port.
    let mut site = installer::site::SiteConfig::default();
    site.admin.address = ADMIN.parse().unwrap();
    site.admin.subnet = "192.168.77.0/24".parse().unwrap();
    site.data_root = work.path().join("data");
    site.http.port = port;
    write_generated(
        &node::served_files(&site, &served()),
        &work.path().join("unused-etc"),
    );
    let admin = Netns::new("nm-admin");
    let node_ns = Netns::new("nm-node");
    let veth = format!("kn{}", std::process::id() % 100000);
    run_ok(Command::new("ip").args([
        "link",
        "add",
        &veth,
        "netns",
        &admin.name,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &node_ns.name,
    ]));
    run_ok(
        admin
            .command("ip")
            .args(["addr", "add", &format!("{ADMIN}/24"), "dev", &veth]),
    );
    run_ok(admin.command("ip").args(["link", "set", &veth, "up"]));
    let mut http = Daemon::start(
        "http server",
        admin
            .command("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                ADMIN,
                &port.to_string(),
                "--directory",
            ])
            .arg(&site.data_root),
    );

    // The node: a private /etc whose NetworkManager manages eth0 through the connection `site`.
    let dir = work.path().join("node");
    for sub in ["etc", "run/dbus", "nm"] {
        fs_err::create_dir_all(dir.join(sub)).unwrap();
    }
    run_ok(
        Command::new("cp")
            .args(["-a", "/etc/."])
            .arg(dir.join("etc")),
    );
    let nm_etc = dir.join("etc/NetworkManager");
    for stale in ["conf.d", "system-connections"] {
        let _ = fs_err::remove_dir_all(nm_etc.join(stale));
        fs_err::create_dir_all(nm_etc.join(stale)).unwrap();
    }
    fs_err::write(
        nm_etc.join("NetworkManager.conf"),
        "[main]\nplugins=keyfile\nno-auto-default=*\n[keyfile]\nunmanaged-devices=none\n",
    )
    .unwrap();
    let connection = nm_etc.join("system-connections/site.nmconnection");
    fs_err::write(
        &connection,
        format!(
            "[connection]\nid=site\ntype=ethernet\ninterface-name=eth0\n[ipv4]\nmethod=manual\n\
             address1={NODE}/24\ndns={OTHER_DNS};\n[ipv6]\nmethod=disabled\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs_err::set_permissions(&connection, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A plain file, so that NetworkManager writes it (a symlink it would leave alone).
    let _ = fs_err::remove_file(dir.join("etc/resolv.conf"));
    fs_err::write(dir.join("etc/resolv.conf"), "").unwrap();
    run_ok(node_ns.command("ip").args(["link", "set", "eth0", "up"]));

    let node = PrivateHost {
        ns: node_ns,
        dir,
        binds: &[
            ("etc", "/etc"),
            ("run", "/run"),
            ("nm", "/var/lib/NetworkManager"),
        ],
    };
    run_ok(&mut node.command("dbus-daemon", &["--system", "--fork", "--nopidfile"]));
    let mut nm = Daemon::start(
        "NetworkManager",
        &mut node.command(
            "sh",
            &[
                "-c",
                "mount -o remount,bind,ro /sys && exec NetworkManager --no-daemon",
            ],
        ),
    );
    wait_for(
        "NetworkManager to bring up `site`",
        Duration::from_secs(60),
        || {
            nm.assert_running();
            let out = node
                .command(
                    "nmcli",
                    &["-g", "GENERAL.STATE", "connection", "show", "site"],
                )
                .output()
                .ok()?;
            (String::from_utf8_lossy(&out.stdout).trim() == "activated").then_some(())
        },
    );
    wait_for("the HTTP server", Duration::from_secs(30), || {
        http.assert_running();
        let out = node
            .ns
            .command("curl")
            .args(["-fsS", &format!("http://{ADMIN}:{port}/node/node.json")])
            .output()
            .ok()?;
        out.status.success().then_some(())
    });

    // The control: NetworkManager writes the connection's own DNS server.
    wait_for(
        "NetworkManager to write resolv.conf",
        Duration::from_secs(30),
        || (nameservers(&resolv_conf(&node)) == [OTHER_DNS]).then_some(()),
    );
    assert!(
        !node
            .run("ip", &["route", "show", "default"])
            .contains("default"),
        "the node starts without a default route"
    );

    let out = node.run(
        e2e::workspace_bin("installer").to_str().unwrap(),
        &["node", "--admin", &format!("{ADMIN}:{port}")],
    );
    assert!(
        out.contains("done       make NetworkManager leave /etc/resolv.conf")
            && out.contains(&format!("done       route through the admin {ADMIN}")),
        "installer node runs the nmcli steps where NetworkManager runs:\n{out}"
    );

    let route = node.run("ip", &["route", "show", "default"]);
    assert!(
        route.starts_with(&format!("default via {ADMIN} dev eth0")),
        "{route}"
    );
    let gateway = node.run(
        "nmcli",
        &["-g", "ipv4.gateway", "connection", "show", "site"],
    );
    assert_eq!(gateway.trim(), ADMIN, "the route is in the connection too");
    assert_eq!(nameservers(&resolv_conf(&node)), [ADMIN]);

    // NetworkManager reloads and reconnects: resolv.conf stays the admin's.
    node.run("nmcli", &["general", "reload"]);
    node.run("nmcli", &["connection", "up", "site"]);
    assert_eq!(nameservers(&resolv_conf(&node)), [ADMIN]);
    assert!(
        node.run("ip", &["route", "show", "default"])
            .starts_with(&format!("default via {ADMIN} dev eth0"))
    );
    nm.stop();
}
