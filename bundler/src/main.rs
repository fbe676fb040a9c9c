//! `bundler`: builds an air-gap bundle on a host with internet access.

use std::process::ExitCode;

use bundler::commands::{self, build, keygen, plan};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "bundler",
    version,
    about = "Mirror Rocky Linux repositories and PyPI wheels into one verified bundle",
    after_help = concat!(
        "Examples:\n",
        "  bundler build --release 10 --no-pypi -o rocky10.tar.zst\n",
        "  bundler plan --release 10 --packages kubespray-rpms.txt\n",
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
    /// Mirror the release's repos into a bundle.
    Build(build::BuildArgs),
    /// Show what `build` would download (metadata only).
    Plan(plan::PlanArgs),
    /// Create an ed25519 key pair for signing bundles (PREFIX.key, PREFIX.pub).
    Keygen(keygen::KeygenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Command::Build(args) => commands::finish_build(build::run(args)),
        Command::Plan(args) => commands::finish_build(plan::run(args)),
        Command::Keygen(args) => commands::finish(keygen::run(args)),
    }
}
