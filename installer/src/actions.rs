//! Things the installer does to the running system rather than to files: enable and restart a
//! service, open a firewalld service, label a directory for SELinux, load a NAT ruleset. Each
//! is data (a command line plus the condition under which it applies) so the same list can be
//! run, or printed when `--no-services` is given, systemd is absent, or a tree under `--root`
//! is being prepared for another machine.

use std::fmt;
use std::path::Path;
use std::process::Command;

#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed {
        command: String,
        status: String,
        stderr: String,
    },
}

/// When an action applies on the machine it runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Always,
    /// systemd is PID 1 (`/run/systemd/system` exists).
    Systemd,
    /// firewalld is running (`firewall-cmd --state` succeeds).
    Firewalld,
    /// firewalld is not running: the nftables way applies.
    NoFirewalld,
    /// SELinux is enabled in the kernel, enforcing or permissive (`/sys/fs/selinux` exists).
    SelinuxEnabled,
    /// An SELinux policy store can be managed here: `semanage` is installed and
    /// `/etc/selinux/config` names a policy. Labels recorded then hold from the next boot with
    /// SELinux on, even while the kernel has it off.
    SelinuxPolicy,
    /// NetworkManager is running (`nmcli -t -f RUNNING general` says so).
    NetworkManager,
    /// The named tool is on PATH.
    Tool(&'static str),
    /// Every one of these holds.
    All(&'static [Condition]),
}

impl Condition {
    /// Probes the running system.
    pub fn holds(self) -> bool {
        match self {
            Condition::Always => true,
            Condition::Systemd => Path::new("/run/systemd/system").is_dir(),
            Condition::Firewalld => firewalld_running(),
            Condition::NoFirewalld => !firewalld_running(),
            Condition::SelinuxEnabled => Path::new("/sys/fs/selinux/enforce").is_file(),
            Condition::SelinuxPolicy => {
                on_path("semanage") && crate::services::selinux::configured_policy().is_some()
            }
            Condition::NetworkManager => Command::new("nmcli")
                .args(["-t", "-f", "RUNNING", "general"])
                .output()
                .is_ok_and(|o| o.status.success() && o.stdout.starts_with(b"running")),
            Condition::Tool(name) => on_path(name),
            Condition::All(all) => all.iter().all(|c| c.holds()),
        }
    }

    pub fn describe(self) -> String {
        match self {
            Condition::Always => "always".into(),
            Condition::Systemd => "when systemd runs".into(),
            Condition::Firewalld => "when firewalld runs".into(),
            Condition::NoFirewalld => "when firewalld does not run".into(),
            Condition::SelinuxEnabled => "when SELinux is enabled".into(),
            Condition::SelinuxPolicy => "when semanage and an SELinux policy are installed".into(),
            Condition::NetworkManager => "when NetworkManager runs".into(),
            Condition::Tool(name) => format!("when {name} is installed"),
            Condition::All(all) => all
                .iter()
                .map(|c| c.describe())
                .collect::<Vec<_>>()
                .join(" and "),
        }
    }
}

/// One command to run on the target system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemAction {
    /// What it achieves, for the operator.
    pub summary: String,
    pub argv: Vec<String>,
    pub when: Condition,
}

/// What happened to an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActionOutcome {
    Ran,
    /// The condition did not hold here; nothing to do.
    NotApplicable,
}

impl SystemAction {
    pub fn new(summary: impl Into<String>, when: Condition, argv: &[&str]) -> SystemAction {
        SystemAction {
            summary: summary.into(),
            argv: argv.iter().map(|s| s.to_string()).collect(),
            when,
        }
    }

    /// A shell snippet, for actions that need `||` or a pipe.
    pub fn shell(summary: impl Into<String>, when: Condition, script: &str) -> SystemAction {
        SystemAction::new(summary, when, &["sh", "-c", script])
    }

    /// The command as an operator would type it.
    pub fn command_line(&self) -> String {
        self.argv
            .iter()
            .map(|a| shell_quote(a))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Runs the command when its condition holds.
    pub fn run(&self) -> Result<ActionOutcome, ActionError> {
        if !self.when.holds() {
            return Ok(ActionOutcome::NotApplicable);
        }
        let command = self.command_line();
        let output = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .output()
            .map_err(|source| ActionError::Spawn {
                command: command.clone(),
                source,
            })?;
        if !output.status.success() {
            return Err(ActionError::Failed {
                command,
                status: output.status.to_string(),
                stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
            });
        }
        Ok(ActionOutcome::Ran)
    }
}

impl fmt::Display for SystemAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "# {} ({})\n{}",
            self.summary,
            self.when.describe(),
            self.command_line()
        )
    }
}

/// Whether firewalld answers on the system bus.
pub fn firewalld_running() -> bool {
    Command::new("firewall-cmd")
        .arg("--state")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Whether an executable of this name is on PATH.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(name).is_file()))
}

fn shell_quote(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_lines_quote_what_the_shell_would_split() {
        let a = SystemAction::shell("x", Condition::Always, "echo 'a b' | cat");
        assert_eq!(a.command_line(), r"sh -c 'echo '\''a b'\'' | cat'");
    }

    #[test]
    fn failing_commands_report_stderr() {
        let a = SystemAction::shell("x", Condition::Always, "echo nope >&2; exit 3");
        let err = a.run().unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
        assert_eq!(
            SystemAction::new("y", Condition::Always, &["true"])
                .run()
                .unwrap(),
            ActionOutcome::Ran
        );
    }
}
