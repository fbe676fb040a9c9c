//! `installer node --admin ADDR [--root DIR]`: set up a node from its admin's node files.

use std::path::{Path, PathBuf};

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
    /// No per-step lines (each file written, each command run); what is left to run by hand
    /// and errors still print.
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn run(args: NodeArgs) -> anyhow::Result<ExitStatus> {
    let files = setup::fetch_node_files(&args.admin)?;
    // Two runs at once would move repo files and back up originals under each other.
    let lock_dir =
        installer::fsutil::rooted(&args.root, Path::new(installer::lock::NODE_LOCK_DIR))?;
    let _lock = super::lock(&lock_dir)?;
    let report = setup::apply_node_files(&files, &args.root, !args.no_services)?;
    if !args.quiet {
        for installed in &report.files {
            print_installed(installed);
        }
        for (from, to) in &report.moved_repos {
            println!("moved      {} -> {}", from.display(), to.display());
        }
    }
    if report.ran {
        for action in &report.actions {
            match action.run()? {
                ActionOutcome::Ran if args.quiet => {}
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
