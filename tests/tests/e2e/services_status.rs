//! `installer status` against real daemons in a network namespace the test creates (so the NAT
//! check reads a kernel the test controls): everything passes, then a stopped chronyd and a
//! vanished forwarder are reported as failed with the right hint, in the table and in JSON.

use std::process::{Command, Output};
use std::time::Duration;

use crate::harness::*;
use installer::services::{bind, chrony};

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

#[test]
fn status_passes_then_reports_stopped_services_with_hints() {
    let ns = Netns::new("status");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let ports = Ports::pick();
    let (site_file, site) = loopback_site(dir.path(), &ports);

    // named and chronyd from the generated configs.
    write_generated(&bind::files(&site), &dir.path().join("etc"));
    let chrony_conf = dir.path().join("etc/chrony.conf");
    fs_err::write(&chrony_conf, chrony::server_conf(&site)).unwrap();
    let mut upstream = start_upstream_named(dir.path(), ports.upstream_dns, Some(&ns));
    let mut named = start_named(&dir.path().join("etc/named.conf"), "site named", Some(&ns));
    let mut chronyd = start_chronyd(&chrony_conf, Some(&ns));

    // The web root as nginx would serve it: node files, a repo per served repo, the index.
    let web = dir.path().join("web");
    let served = served();
    for file in installer::node::served_files(&site, &served) {
        let rel = file.path.strip_prefix(&site.data_root).unwrap();
        fs_err::create_dir_all(web.join(rel).parent().unwrap()).unwrap();
        fs_err::write(web.join(rel), &file.contents).unwrap();
    }
    for repo in &served.repos {
        let repo_dir = web.join(format!("rocky/10/{}", repo.id));
        fs_err::create_dir_all(&repo_dir).unwrap();
        run_ok(Command::new("createrepo_c").arg("--quiet").arg(&repo_dir));
    }
    fs_err::create_dir_all(web.join("pypi/simple")).unwrap();
    fs_err::write(
        web.join("pypi/simple/index.html"),
        "<!DOCTYPE html><html><body></body></html>\n",
    )
    .unwrap();
    let mut http = start_http(&web, ports.http, Some(&ns));

    // NAT recorded as off, and off in the namespace's kernel.
    run_ok(
        ns.command(e2e::workspace_bin("installer"))
            .args(["nat", "disable", "--site"])
            .arg(&site_file)
            .arg("--root")
            .arg(&root),
    );

    let status = |extra: &[&str]| -> Output {
        ns.command(e2e::workspace_bin("installer"))
            .args(["status", "--site"])
            .arg(&site_file)
            .arg("--root")
            .arg(&root)
            .args(extra)
            .output()
            .unwrap()
    };
    let report = wait_for("every check to pass", Duration::from_secs(60), || {
        for d in [&mut upstream, &mut named, &mut chronyd, &mut http] {
            d.assert_running();
        }
        let out = status(&["--json"]);
        out.status.success().then(|| json(&out))
    });
    assert_eq!(report["passed"], true);
    let names: Vec<&str> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "dns-site",
            "dns-outside",
            "ntp",
            "repo-baseos",
            "repo-appstream",
            "pypi",
            "nat",
            "selinux"
        ]
    );
    // The running mode comes first; without SELinux in the kernel the labels are not compared.
    let mode = if std::path::Path::new("/sys/fs/selinux/enforce").exists() {
        if fs_err::read_to_string("/sys/fs/selinux/enforce")
            .unwrap()
            .trim()
            == "1"
        {
            "enforcing"
        } else {
            "permissive"
        }
    } else {
        "disabled"
    };
    let selinux = check(&report, "selinux")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(selinux.starts_with(mode), "{selinux}");
    assert_eq!(
        check(&report, "nat")["detail"],
        "disabled; forwarding from the site to the external interface is dropped"
    );
    let table = status(&[]);
    assert!(table.status.success());
    assert!(
        String::from_utf8_lossy(&table.stdout)
            .lines()
            .all(|l| l.starts_with("pass"))
    );

    // chronyd stopped: status fails, names NTP, and points at chronyd.
    chronyd.stop();
    let out = status(&[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.lines().any(|l| l.starts_with("FAIL  ntp")), "{text}");
    assert!(text.contains("hint: chronyd is not serving time"), "{text}");
    let report = json(&status(&["--json"]));
    assert_eq!(report["passed"], false);
    assert_eq!(check(&report, "ntp")["passed"], false);
    assert!(
        check(&report, "ntp")["hint"]
            .as_str()
            .unwrap()
            .contains("systemctl status chronyd")
    );
    assert_eq!(check(&report, "dns-site")["passed"], true);

    // The forwarder gone: once the cached answer (TTL 1 s) expires, only the outside name
    // fails, with the forwarder hint.
    upstream.stop();
    let report = wait_for("the outside name to fail", Duration::from_secs(30), || {
        let report = json(&status(&["--json"]));
        (check(&report, "dns-outside")["passed"] == false).then_some(report)
    });
    assert_eq!(check(&report, "dns-site")["passed"], true);
    assert_eq!(check(&report, "dns-outside")["passed"], false);
    assert!(
        check(&report, "dns-outside")["hint"]
            .as_str()
            .unwrap()
            .contains("forwarders")
    );

    // nginx (here the stand-in) gone: the repo checks cannot even find the node files.
    http.stop();
    let report = json(&status(&["--json"]));
    assert_eq!(check(&report, "http-node-files")["passed"], false);
    assert!(
        check(&report, "http-node-files")["hint"]
            .as_str()
            .unwrap()
            .contains("nginx -t")
    );
}
