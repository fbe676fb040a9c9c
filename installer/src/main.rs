//! `installer`: verifies a bundle and turns the admin server into the site's internet.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "installer",
    version,
    about = "Verify a bundle and set up the air-gapped admin server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify a bundle and install its repos, PyPI index and nginx config.
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Apply(args) => commands::apply::run(args),
        Command::Site(cmd) => commands::site::run(cmd),
        Command::Nat(args) => commands::nat::run(args),
        Command::Node(args) => commands::node::run(args),
        Command::Status(args) => commands::status::run(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
