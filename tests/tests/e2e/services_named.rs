//! bind: the generated named.conf and zones pass named-checkconf/named-checkzone, and a real
//! named on loopback answers the site zone (forward and reverse) and forwards outside names to
//! a test upstream; with the upstream gone, site names still resolve.

use std::process::Command;
use std::time::Duration;

use crate::harness::*;
use installer::services::bind;
use installer::site::SiteConfig;

#[test]
fn reference_config_passes_named_checkconf_and_checkzone() {
    let dir = tempfile::tempdir().unwrap();
    let mut site = SiteConfig::default();
    site.dns.directory = dir.path().join("named");
    let files = bind::files(&site);
    write_generated(&files, &dir.path().join("etc"));
    run_ok(Command::new("named-checkconf").arg(dir.path().join("etc/named.conf")));
    for zone in [site.domain.clone(), bind::reverse_zone_name(&site)] {
        run_ok(
            Command::new("named-checkzone")
                .arg(&zone)
                .arg(bind::zone_path(&site, &zone)),
        );
    }
}

#[test]
fn named_serves_the_site_zone_and_forwards_outside_names() {
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports::pick();
    let (_, site) = loopback_site(dir.path(), &ports);
    let files = bind::files(&site);
    write_generated(&files, &dir.path().join("etc"));
    let conf = dir.path().join("etc/named.conf");
    run_ok(Command::new("named-checkconf").arg(&conf));
    for zone in ["site.test", "127.in-addr.arpa"] {
        run_ok(
            Command::new("named-checkzone")
                .arg(zone)
                .arg(bind::zone_path(&site, zone)),
        );
    }

    let mut upstream = start_upstream_named(dir.path(), ports.upstream_dns, None);
    let mut named = start_named(&conf, "site named", None);
    wait_for("the site named", Duration::from_secs(30), || {
        named.assert_running();
        let a = dig("127.0.0.1", ports.dns, &["admin.site.test", "A"]);
        (a == "127.0.0.1").then_some(())
    });
    assert_eq!(
        dig("127.0.0.1", ports.dns, &["node2.site.test", "A"]),
        "127.0.0.12"
    );
    assert_eq!(
        dig("127.0.0.1", ports.dns, &["-x", "127.0.0.11"]),
        "node1.site.test."
    );
    wait_for("the upstream named", Duration::from_secs(30), || {
        upstream.assert_running();
        (dig("127.0.0.1", ports.upstream_dns, &["www.example.com"]) == "192.0.2.80").then_some(())
    });
    assert_eq!(
        dig("127.0.0.1", ports.dns, &["www.example.com", "A"]),
        "192.0.2.80"
    );

    // Forwarders unreachable (NAT off): outside names fail, site names keep resolving.
    upstream.stop();
    assert_eq!(dig("127.0.0.1", ports.dns, &["other.example.com", "A"]), "");
    assert_eq!(
        dig("127.0.0.1", ports.dns, &["node1.site.test", "A"]),
        "127.0.0.11"
    );
}
