//! `bundler`: builds an air-gap bundle on a host with internet access.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bundler", version, about = "Mirror Rocky Linux repositories and PyPI wheels into one verified bundle")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Resolve and fetch only the PyPI part (wheels for the target interpreters).
    Pypi(commands::pypi::PypiCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Pypi(command) => commands::pypi::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            let verification = err
                .downcast_ref::<bundler::pypi::PypiError>()
                .is_some_and(bundler::pypi::PypiError::is_verification);
            ExitCode::from(if verification { 3 } else { 1 })
        }
    }
}
