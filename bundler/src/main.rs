//! `bundler`: builds an air-gap bundle on a host with internet access.

mod commands;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bundler",
    version,
    about = "Mirror Rocky Linux repositories and PyPI wheels into one verified bundle"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    Build(commands::build::BuildArgs),
    Plan(commands::plan::PlanArgs),
    Pypi(commands::pypi::PypiCommand),
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Build(args) => commands::build::run(args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Pypi(args) => commands::pypi::run(args),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
