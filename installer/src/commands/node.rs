//! `installer node --admin ADDR [--root DIR]`: set up a node from its admin's node files.

use std::path::PathBuf;

use clap::Args;
use installer::actions::ActionOutcome;
use installer::node::setup;

use super::exit::ExitStatus;
use super::print_installed;

#[derive(Args, Debug)]
#[command(
    after_help = "Examples:\n  installer node --admin 192.168.10.10\n  installer node --admin 192.168.10.10:8080 --root /mnt/node-image"
)]
pub struct NodeArgs {
    /// The admin's web server, ADDR or ADDR:PORT.
    #[arg(long, value_name = "ADDR")]
    pub admin: String,
    /// Write under DIR instead of /; commands for the running system are then only printed.
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Write the files but only print the commands (route, service restarts).
    #[arg(long)]
    pub no_services: bool,
}

pub fn run(args: NodeArgs) -> anyhow::Result<ExitStatus> {
    let report = setup::setup_node(&args.admin, &args.root, !args.no_services)?;
    for installed in &report.files {
        print_installed(installed);
    }
    for (from, to) in &report.moved_repos {
        println!("moved      {} -> {}", from.display(), to.display());
    }
    if report.ran {
        for action in &report.actions {
            match action.run()? {
                ActionOutcome::Ran => println!("done       {}", action.summary),
                ActionOutcome::NotApplicable => println!("not run here, do it by hand:\n{action}"),
            }
        }
    } else {
        println!("commands for the running node (not run):");
        for action in &report.actions {
            println!("{action}");
        }
    }
    Ok(ExitStatus::Success)
}
