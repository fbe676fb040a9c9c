//! `installer nat enable|disable`: switch the admin's NAT gateway now and at boot.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use installer::services::nat::{self, NatState};

use super::exit::ExitStatus;
use super::{SiteArgs, print_installed};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Switch {
    Enable,
    Disable,
}

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  installer nat disable                 # close the air gap\n  installer nat enable --site site.toml\n  installer nat enable --root /tmp/tree --no-runtime   # only write the files"
)]
pub struct NatArgs {
    pub switch: Switch,
    #[command(flatten)]
    pub site: SiteArgs,
    /// Write the persistent files under DIR instead of /.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Only write the persistent files; leave the running kernel as it is.
    #[arg(long)]
    pub no_runtime: bool,
}

pub fn run(args: NatArgs) -> anyhow::Result<ExitStatus> {
    let site = args.site.load()?;
    let _lock = super::lock(&super::data_dir(&args.root, &site)?)?;
    let state = match args.switch {
        Switch::Enable => NatState::Enabled,
        Switch::Disable => NatState::Disabled,
    };
    let report = nat::switch(&site, &args.root, state, !args.no_runtime)?;
    for installed in &report.files {
        print_installed(installed);
    }
    if report.ran {
        println!("NAT {} now and at boot", state.as_str());
    } else {
        println!(
            "NAT {} at boot; to switch the running kernel:",
            state.as_str()
        );
        for action in &report.actions {
            println!("{action}");
        }
    }
    Ok(ExitStatus::Success)
}
