//! `installer`: verifies a bundle and turns the admin server into the site's internet.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use installer::commands::{self, inspect, verify};

#[derive(Parser)]
#[command(
    name = "installer",
    version,
    about = "Verify a bundle and set up the air-gapped admin server",
    after_help = concat!(
        "Examples:\n",
        "  installer inspect bundle.tar.zst\n",
        "  installer verify bundle.tar.zst --key site.pub\n\n",
        "Exit status: 0 success; 1 operational failure; 2 usage error; 3 verification failure \
         (damaged, tampered or hostile bundle, bad or missing signature, newer bundle format)."
    )
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a bundle completely (every file's size and sha256, signature with --key); writes nothing.
    Verify(verify::VerifyArgs),
    /// Show what a bundle holds, from its manifest only.
    Inspect(inspect::InspectArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    commands::finish(match &cli.command {
        Command::Verify(args) => verify::run(args),
        Command::Inspect(args) => inspect::run(args),
    })
}
