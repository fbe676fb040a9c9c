//! NAT: the nftables rulesets pass `nft -c`, and `installer nat enable|disable` switches a
//! network namespace the test creates (never the host's rules) now and persistently, with the
//! file safety of apply: a second run changes nothing, a replaced file is backed up once.

use crate::harness::*;
use installer::services::nat::{self, NatState};
use installer::site::SiteConfig;

#[test]
fn rulesets_pass_nft_check() {
    let ns = Netns::new("nftc");
    let dir = tempfile::tempdir().unwrap();
    for state in [NatState::Enabled, NatState::Disabled] {
        let path = dir.path().join(format!("{}.nft", state.as_str()));
        fs_err::write(&path, nat::ruleset(&SiteConfig::default(), state)).unwrap();
        run_ok(ns.command("nft").arg("-c").arg("-f").arg(&path));
    }
}

fn in_ns(ns: &Netns, args: &[&str]) -> String {
    let out = run_ok(ns.command(args[0]).args(&args[1..]));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn nat_switches_a_namespace_now_and_at_boot() {
    let ns = Netns::new("nat");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let ports = Ports::pick();
    let (site_file, _) = loopback_site(dir.path(), &ports);
    // Rocky's stock main file, which must keep its content and gain our include once.
    let main = root.join("etc/sysconfig/nftables.conf");
    fs_err::create_dir_all(main.parent().unwrap()).unwrap();
    fs_err::write(&main, "# stock file\n").unwrap();

    let nat_cmd = |switch: &str| {
        let out = run_ok(
            ns.command(e2e::workspace_bin("installer"))
                .args(["nat", switch, "--site"])
                .arg(&site_file)
                .arg("--root")
                .arg(&root),
        );
        String::from_utf8(out.stdout).unwrap()
    };

    let first = nat_cmd("enable");
    assert!(first.contains("NAT enabled now and at boot"), "{first}");
    assert_eq!(
        in_ns(&ns, &["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(),
        "1"
    );
    let table = in_ns(&ns, &["nft", "list", "table", "ip", nat::TABLE]);
    assert!(
        table.contains("ip saddr 127.0.0.0/8 oifname \"kso-ext0\" masquerade"),
        "{table}"
    );
    assert_eq!(
        fs_err::read_to_string(&main).unwrap(),
        format!("# stock file\ninclude \"{}\"\n", nat::RULESET_FILE)
    );
    assert_eq!(
        fs_err::read_to_string(root.join("etc/sysconfig/nftables.conf.orig")).unwrap(),
        "# stock file\n"
    );
    assert_eq!(nat::persisted_state(&root), Some(NatState::Enabled));

    // Same state again: nothing changes on disk, the kernel state is the same.
    let before = file_tree(&root);
    let again = nat_cmd("enable");
    assert!(
        !again.contains("replaced") && !again.contains("created"),
        "{again}"
    );
    assert_eq!(file_tree(&root), before);
    assert!(
        in_ns(&ns, &["nft", "list", "ruleset"])
            .matches("masquerade")
            .count()
            == 1
    );

    let off = nat_cmd("disable");
    assert!(off.contains("NAT disabled now and at boot"), "{off}");
    assert_eq!(
        in_ns(&ns, &["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(),
        "0"
    );
    assert!(!in_ns(&ns, &["nft", "list", "ruleset"]).contains("masquerade"));
    assert!(
        in_ns(&ns, &["nft", "list", "table", "ip", nat::TABLE])
            .contains("ip saddr 127.0.0.0/8 oifname \"kso-ext0\" drop"),
        "disable drops forwarding out of the external interface"
    );
    assert_eq!(nat::persisted_state(&root), Some(NatState::Disabled));
    // The one-time backups still hold the very first content.
    assert_eq!(
        fs_err::read_to_string(root.join("etc/sysconfig/nftables.conf.orig")).unwrap(),
        "# stock file\n"
    );
    let ruleset = nat::rooted(&root, nat::RULESET_FILE);
    let first_ruleset =
        fs_err::read_to_string(nat::rooted(&root, &format!("{}.orig", nat::RULESET_FILE))).unwrap();
    assert!(first_ruleset.contains("# state: enabled"));
    nat_cmd("enable");
    nat_cmd("disable");
    let orig = nat::rooted(&root, &format!("{}.orig", nat::RULESET_FILE));
    assert_eq!(
        fs_err::read_to_string(&orig).unwrap(),
        first_ruleset,
        "backed up once only"
    );

    // What nftables.service includes at boot gives the switched-to state, from either state.
    run_ok(ns.command("nft").arg("-f").arg(&orig));
    let enabled = in_ns(&ns, &["nft", "list", "ruleset"]);
    assert!(
        enabled.contains("masquerade") && !enabled.contains(" drop"),
        "{enabled}"
    );
    run_ok(ns.command("nft").arg("-f").arg(&ruleset));
    let disabled = in_ns(&ns, &["nft", "list", "ruleset"]);
    assert!(
        !disabled.contains("masquerade") && disabled.contains(" drop"),
        "{disabled}"
    );
}

#[test]
fn nat_without_runtime_only_writes_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let out = run_ok(
        installer()
            .args(["nat", "disable", "--no-runtime", "--root"])
            .arg(&root),
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("nft -f"), "{text}");
    assert_eq!(nat::persisted_state(&root), Some(NatState::Disabled));
}
