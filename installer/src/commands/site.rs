//! `installer site init [FILE]`: write the commented example site file.

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use installer::site::SiteConfig;

use super::exit::ExitStatus;

#[derive(Subcommand, Debug)]
pub enum SiteCommand {
    /// Write a commented site file holding the defaults (the reference topology).
    #[command(
        after_help = "Examples:\n  installer site init site.toml\n  installer site init > site.toml"
    )]
    Init(InitArgs),
}

#[derive(Args, Debug)]
pub struct InitArgs {
    /// Where to write it; standard output when omitted.
    pub file: Option<PathBuf>,
    /// Replace FILE if it exists.
    #[arg(long)]
    pub force: bool,
}

pub fn run(cmd: SiteCommand) -> anyhow::Result<ExitStatus> {
    let SiteCommand::Init(args) = cmd;
    let text = SiteConfig::example_toml();
    match args.file {
        None => print!("{text}"),
        Some(path) => {
            if path.exists() && !args.force {
                bail!("{} exists; pass --force to replace it", path.display());
            }
            fs_err::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote {}; edit it, then pass it with --site",
                path.display()
            );
        }
    }
    Ok(ExitStatus::Success)
}
