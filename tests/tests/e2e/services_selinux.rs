//! `installer apply` against Debian's reference SELinux policy store (selinux-policy-default,
//! semanage), as on a Rocky admin but without an enforcing kernel: the served data root and
//! named's zone directory get `httpd_sys_content_t` and `named_zone_t`, a non-default HTTP port
//! gets `http_port_t`, a second apply leaves the store as it was (no rule added, no policy
//! rebuilt), and `installer status` names a served path whose label differs from the policy.
//!
//! The apply runs on a real root `/` inside a private mount and network namespace: /etc, /run,
//! /srv and the policy store (/var/lib/selinux) are the test's own copies bind-mounted over the
//! host's, so semanage changes only the copy, no systemd or firewalld of the host is reached, and
//! the NAT ruleset loads into an empty network namespace. Needs root and the packages of
//! scripts/install-test-deps.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use e2e::harness::run_ok;
use e2e::localbundle::small_mirror_bundle;

const DATA_ROOT: &str = "/srv/koi-data";
const ZONES: &str = "/srv/koi-named";
/// Already `http_cache_port_t` in the reference policy: the rule must modify, not add.
const HTTP_PORT: u16 = 8080;

/// The private copies bind-mounted over the host's directories.
struct PrivateHost {
    dir: PathBuf,
}

impl PrivateHost {
    fn new(dir: &Path) -> PrivateHost {
        for (from, to) in [("/etc", "etc"), ("/var/lib/selinux", "selinux")] {
            let to = dir.join(to);
            fs_err::create_dir_all(&to).unwrap();
            run_ok(
                Command::new("cp")
                    .arg("-a")
                    .arg(format!("{from}/."))
                    .arg(&to),
            );
        }
        for empty in ["run", "srv"] {
            fs_err::create_dir_all(dir.join(empty)).unwrap();
        }
        PrivateHost {
            dir: dir.to_path_buf(),
        }
    }

    /// `program args...` with the private directories in place of the host's.
    fn command(&self, program: &Path, args: &[&str]) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.args([
            "--mount",
            "--net",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
        ])
        .arg(
            "d=$1; shift; \
                 mount --bind \"$d/etc\" /etc && mount --bind \"$d/selinux\" /var/lib/selinux && \
                 mount --bind \"$d/run\" /run && mount --bind \"$d/srv\" /srv && exec \"$@\"",
        )
        .arg("private-host")
        .arg(&self.dir)
        .arg(program)
        .args(args);
        cmd
    }

    fn run(&self, program: &str, args: &[&str]) -> String {
        let out = run_ok(&mut self.command(Path::new(program), args));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn apply(host: &PrivateHost, bundle: &Path, site: &Path) -> Output {
    run_ok(&mut host.command(
        &e2e::workspace_bin("installer"),
        &[
            "apply",
            bundle.to_str().unwrap(),
            "--site",
            site.to_str().unwrap(),
        ],
    ))
}

/// The store's compiled policy: semanage rewrites it on every change it commits.
fn policy_stamp(host: &PrivateHost) -> std::time::SystemTime {
    fs_err::metadata(host.dir.join("selinux/default/active/policy.kern"))
        .unwrap()
        .modified()
        .unwrap()
}

#[test]
fn apply_labels_served_paths_and_a_non_default_port_in_the_policy_store_once() {
    assert!(
        Path::new("/var/lib/selinux/default").is_dir() && installer::actions::on_path("semanage"),
        "needs selinux-policy-default and semanage (policycoreutils-python-utils): run scripts/install-test-deps"
    );
    let host_local_before =
        std::fs::read_to_string("/etc/selinux/default/contexts/files/file_contexts.local")
            .unwrap_or_default();
    let work = tempfile::tempdir().unwrap();
    let bundle = small_mirror_bundle(work.path());
    let site = work.path().join("site.toml");
    fs_err::write(
        &site,
        format!(
            "domain = \"lab.internal\"\ndata_root = \"{DATA_ROOT}\"\n[dns]\ndirectory = \"{ZONES}\"\n[http]\nport = {HTTP_PORT}\n"
        ),
    )
    .unwrap();
    let host = PrivateHost::new(&work.path().join("host"));

    let first = apply(&host, &bundle, &site);
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        stdout.contains(&format!("ran        label {DATA_ROOT} httpd_sys_content_t")),
        "the semanage rules run where a policy store is installed:\n{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "skipped    relabel {DATA_ROOT} (when SELinux is enabled)"
        )),
        "restorecon needs SELinux in the kernel:\n{stdout}"
    );

    let local = host.run("semanage", &["fcontext", "-l", "-C"]);
    for (dir, kind) in [(DATA_ROOT, "httpd_sys_content_t"), (ZONES, "named_zone_t")] {
        assert!(
            local.lines().any(
                |l| l.starts_with(&format!("{dir}(/.*)? ")) && l.contains(&format!(":{kind}:"))
            ),
            "{dir} should be {kind} in the local rules:\n{local}"
        );
        // What restorecon would give the files the admin serves.
        let served = format!("{dir}/some/served/file");
        let context = host.run("matchpathcon", &[&served]);
        assert!(context.contains(&format!(":{kind}:")), "{context}");
    }
    let ports = host.run("semanage", &["port", "-l", "-C"]);
    assert!(
        ports.lines().any(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() >= 3
                && f[0] == "http_port_t"
                && f[1] == "tcp"
                && l.contains(&HTTP_PORT.to_string())
        }),
        "port {HTTP_PORT} should be http_port_t:\n{ports}"
    );

    // Again: every rule is found in place, nothing is committed, the policy is not rebuilt.
    let export_before = host.run("semanage", &["export"]);
    let stamp_before = policy_stamp(&host);
    apply(&host, &bundle, &site);
    assert_eq!(host.run("semanage", &["export"]), export_before);
    assert_eq!(
        policy_stamp(&host),
        stamp_before,
        "the second apply rebuilt the policy"
    );

    // `installer status` compares labels with the policy: give the data root the right one and
    // its repos the wrong one (chcon writes the label even with SELinux off in the kernel); only
    // the repos are reported, with the type they should have.
    let srv = host.dir.join("srv");
    let relative = |p: &str| srv.join(p.trim_start_matches("/srv/"));
    run_ok(
        Command::new("chcon")
            .arg("system_u:object_r:httpd_sys_content_t:s0")
            .arg(relative(DATA_ROOT)),
    );
    run_ok(
        Command::new("chcon")
            .arg("system_u:object_r:var_t:s0")
            .arg(relative(&format!("{DATA_ROOT}/repos"))),
    );
    let status = host
        .command(
            &e2e::workspace_bin("installer"),
            &["status", "--site", site.to_str().unwrap(), "--json"],
        )
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    let selinux = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "selinux")
        .unwrap_or_else(|| panic!("no selinux check: {report}"));
    let detail = selinux["detail"].as_str().unwrap();
    assert_eq!(selinux["passed"], false, "{selinux}");
    assert!(
        detail.contains(&format!(
            "{DATA_ROOT}/repos has context system_u:object_r:var_t:s0, should be system_u:object_r:httpd_sys_content_t:s0"
        )),
        "{detail}"
    );
    assert!(
        !detail.contains(&format!("{DATA_ROOT} has context")),
        "{detail}"
    );
    assert!(
        selinux["hint"].as_str().unwrap().contains("restorecon -R"),
        "{selinux}"
    );

    // The host's own store was never touched.
    let host_local_after =
        std::fs::read_to_string("/etc/selinux/default/contexts/files/file_contexts.local")
            .unwrap_or_default();
    assert_eq!(host_local_after, host_local_before);
    assert!(!host_local_after.contains(DATA_ROOT));
}
