//! `bundler`: builds an air-gap bundle on a host with internet access.

use std::process::ExitCode;

use bundler::commands::{self, keygen};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bundler",
    version,
    about = "Mirror Rocky Linux repositories and PyPI wheels into one verified bundle",
    after_help = concat!(
        "Examples:\n",
        "  bundler keygen --out site\n\n",
        "Exit status: 0 success; 1 operational failure; 2 usage error; 3 verification failure."
    )
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create an ed25519 key pair for signing bundles (PREFIX.key, PREFIX.pub).
    Keygen(keygen::KeygenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    commands::finish(match &cli.command {
        Command::Keygen(args) => keygen::run(args),
    })
}
