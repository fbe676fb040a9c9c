//! The admin's firewall the firewalld way, for admins that run firewalld (Rocky does by
//! default): the site's interfaces in the internal and external zones, the served ports open on
//! the internal zone only, and the NAT gateway as a policy from internal to external with
//! masquerade. The policy is what makes NAT work at all under firewalld: its forward chain
//! rejects traffic between zones unless a policy accepts it, so a masquerade rule in a table of
//! our own would masquerade packets firewalld has already rejected. Every change is made to the
//! permanent configuration and then loaded with `--reload`, because policies exist only there.

use crate::actions::{Condition, SystemAction};
use crate::services::nat::NatState;
use crate::site::SiteConfig;

/// The policy that lets the site out to the internet while NAT is on.
pub const POLICY: &str = "offline-nat";

fn permanent(summary: String, args: &[&str]) -> SystemAction {
    let mut argv = vec!["firewall-cmd", "--permanent"];
    argv.extend_from_slice(args);
    SystemAction::new(summary, Condition::Firewalld, &argv)
}

/// Zones and open ports for the site (permanent; `reload` makes them live).
pub fn zone_actions(site: &SiteConfig) -> Vec<SystemAction> {
    let internal = &site.admin.internal_interface;
    let external = &site.admin.external_interface;
    let mut actions = vec![
        permanent(
            format!("put {internal} in firewalld's internal zone"),
            &["--zone=internal", &format!("--change-interface={internal}")],
        ),
        permanent(
            format!("put {external} in firewalld's external zone"),
            &["--zone=external", &format!("--change-interface={external}")],
        ),
    ];
    // firewall-cmd takes services and ports in separate calls.
    let (services, ports): (Vec<String>, Vec<String>) = open_arguments(site)
        .into_iter()
        .partition(|a| a.starts_with("--add-service="));
    for (what, args) in [("services", services), ("ports", ports)] {
        if args.is_empty() {
            continue;
        }
        let mut argv = vec!["--zone=internal"];
        argv.extend(args.iter().map(String::as_str));
        actions.push(permanent(
            format!("open the site's {what} on the internal zone"),
            &argv,
        ));
    }
    actions
}

/// The `--add-service`/`--add-port` arguments that open what the site serves: the service
/// where the port is the standard one, the port otherwise.
pub fn open_arguments(site: &SiteConfig) -> Vec<String> {
    let mut args = Vec::new();
    for (service, port, default, protos) in [
        ("dns", site.dns.port, 53, &["udp", "tcp"][..]),
        ("ntp", site.ntp.port, 123, &["udp"][..]),
        ("http", site.http.port, 80, &["tcp"][..]),
    ] {
        if port == default {
            args.push(format!("--add-service={service}"));
        } else {
            args.extend(protos.iter().map(|p| format!("--add-port={port}/{p}")));
        }
    }
    args
}

/// The NAT policy for `state` (permanent), then the reload that makes all permanent changes
/// live. Both forms are idempotent: firewall-cmd only warns about what is already there.
pub fn nat_actions(state: NatState) -> Vec<SystemAction> {
    let mut actions = Vec::new();
    match state {
        NatState::Enabled => {
            actions.push(SystemAction::shell(
                format!("create the firewalld policy {POLICY}"),
                Condition::Firewalld,
                &format!(
                    "firewall-cmd --permanent --info-policy={POLICY} >/dev/null 2>&1 || firewall-cmd --permanent --new-policy={POLICY}"
                ),
            ));
            // firewall-cmd takes one kind of policy option per call.
            let policy = format!("--policy={POLICY}");
            for (what, arg) in [
                ("from the internal zone", "--add-ingress-zone=internal"),
                ("to the external zone", "--add-egress-zone=external"),
                ("accepting what it matches", "--set-target=ACCEPT"),
                ("masqueraded", "--add-masquerade"),
            ] {
                actions.push(permanent(
                    format!("let {POLICY} forward {what}"),
                    &[&policy, arg],
                ));
            }
        }
        NatState::Disabled => actions.push(SystemAction::shell(
            format!("remove the firewalld policy {POLICY}: nothing is forwarded to the outside"),
            Condition::Firewalld,
            &format!(
                "if firewall-cmd --permanent --info-policy={POLICY} >/dev/null 2>&1; then firewall-cmd --permanent --delete-policy={POLICY}; fi"
            ),
        )),
    }
    actions.push(SystemAction::new(
        "load the permanent firewalld configuration",
        Condition::Firewalld,
        &["firewall-cmd", "--reload"],
    ));
    actions
}

/// Whether firewalld runs and its running configuration has the NAT policy.
pub fn nat_policy_active() -> bool {
    std::process::Command::new("firewall-cmd")
        .arg(format!("--info-policy={POLICY}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_default_ports_open_ports_on_the_internal_zone_only() {
        let mut site = SiteConfig::default();
        site.dns.port = 5353;
        site.http.port = 8080;
        let lines: Vec<String> = zone_actions(&site)
            .iter()
            .map(SystemAction::command_line)
            .collect();
        assert!(
            lines.contains(
                &"firewall-cmd --permanent --zone=internal --add-service=ntp".to_string()
            )
        );
        assert!(lines.contains(
            &"firewall-cmd --permanent --zone=internal --add-port=5353/udp --add-port=5353/tcp \
              --add-port=8080/tcp"
                .to_string()
        ));
        assert!(!lines.iter().any(|l| l.contains("zone=external --add")));
    }

    #[test]
    fn disabling_nat_deletes_the_policy_and_reloads() {
        let off = nat_actions(NatState::Disabled);
        assert!(
            off[0]
                .command_line()
                .contains("--delete-policy=offline-nat")
        );
        assert_eq!(off.last().unwrap().command_line(), "firewall-cmd --reload");
        let on = nat_actions(NatState::Enabled);
        assert!(on[4].command_line().contains("--add-masquerade"));
    }
}
