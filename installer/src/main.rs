//! `installer`: verifies a bundle and turns the admin server into the site's internet.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use commands::exit::ExitStatus;

#[derive(Parser)]
#[command(
    name = "installer",
    version,
    about = "Verify a bundle and set up the air-gapped admin server",
    after_help = concat!(
        "Examples:\n",
        "  installer inspect bundle.tar.zst\n",
        "  installer verify bundle.tar.zst --key site.pub\n",
        "  installer apply bundle.tar.zst --dry-run\n",
        "  installer status\n\n",
        "Exit status: 0 success; 1 operational failure; 2 usage error (a bad flag, a bad site \
         setting); 3 verification failure (damaged, tampered or hostile bundle, bad or missing \
         signature, newer bundle format)."
    )
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify a bundle; install its repos, the PyPI index and the admin's service configs.
    Apply(commands::apply::ApplyArgs),
    /// Site file: addresses, interfaces, ports and paths of the site.
    #[command(subcommand)]
    Site(commands::site::SiteCommand),
    /// Switch the admin's NAT gateway on or off, now and at boot.
    Nat(commands::nat::NatArgs),
    /// Set up this node from the files its admin serves.
    Node(commands::node::NodeArgs),
    /// Check every admin service with a real query.
    Status(commands::status::StatusArgs),
    /// Check a bundle completely (every file's size and sha256, signature with --key); writes nothing.
    Verify(commands::verify::VerifyArgs),
    /// Show what a bundle holds, from its manifest only.
    Inspect(commands::inspect::InspectArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Apply(args) => commands::apply::run(args),
        Command::Site(cmd) => commands::site::run(cmd),
        Command::Nat(args) => commands::nat::run(args),
        Command::Node(args) => commands::node::run(args),
        Command::Status(args) => commands::status::run(args),
        Command::Verify(args) => commands::verify::run(&args),
        Command::Inspect(args) => commands::inspect::run(&args),
    };
    ExitStatus::of(result).into()
}
