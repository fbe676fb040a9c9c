//! `bundler`: builds an air-gap bundle on a host with internet access.

mod commands;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bundler",
    version,
    about = "Mirror Rocky Linux repositories and PyPI wheels into one verified bundle",
    after_help = concat!(
        "Examples:\n",
        "  bundler build --release 10 -o rocky10.tar.zst\n",
        "  bundler plan --release 10 --packages k8s-packages.txt\n",
        "  bundler keygen --out site && bundler build --release 10 --sign site.key\n\n",
        "Exit status: 0 success; 1 operational failure; 2 usage error; 3 verification failure \
         (a checksum or signature did not match)."
    )
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mirror the release's repos and the PyPI wheels into one bundle file.
    Build(commands::build::BuildArgs),
    /// Show what a build would fetch (packages, wheels, bytes), downloading only metadata.
    Plan(commands::plan::PlanArgs),
    /// Resolve and fetch only the PyPI part into a directory.
    Pypi(commands::pypi::PypiCommand),
    /// Create an ed25519 key pair for signing bundles (PREFIX.key, PREFIX.pub).
    Keygen(commands::keygen::KeygenArgs),
}

fn main() {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Build(args) => commands::build::run(args),
        Command::Plan(args) => commands::plan::run(args),
        Command::Pypi(args) => commands::pypi::run(args),
        Command::Keygen(args) => {
            if let Err(e) = commands::keygen::run(args) {
                eprintln!("error: {e:#}");
                std::process::exit(1);
            }
            Ok(())
        }
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
