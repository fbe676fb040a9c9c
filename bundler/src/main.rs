//! `bundler`: builds an air-gap bundle on a host with internet access.

mod commands;

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use commands::exit::ExitStatus;
use commands::{build, keygen, plan, pypi};

#[derive(Parser)]
#[command(
    name = "bundler",
    version,
    about = "Mirror Rocky Linux repositories and PyPI wheels into one verified bundle",
    after_help = concat!(
        "Examples:\n",
        "  bundler build --release 10 -o rocky10.tar.zst\n",
        "  bundler build --release 10 --arch x86_64 --arch aarch64 --kubespray master\n",
        "  bundler plan --release 10 --packages kubespray-rpms.txt\n",
        "  bundler keygen --out site && bundler build --release 10 --sign site.key\n\n",
        "Exit status: 0 success; 1 operational failure; 2 usage error (a bad flag value, an unknown \
         release); 3 verification failure (a checksum or signature that does not match)."
    )
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Mirror the release's repos and the PyPI wheels into one bundle file.
    Build(build::BuildArgs),
    /// Show what `build` would download (metadata only): packages, wheels, bytes.
    Plan(plan::PlanArgs),
    /// Resolve and fetch only the PyPI part into a directory.
    Pypi(pypi::PypiCommand),
    /// Create an ed25519 key pair for signing bundles (PREFIX.key, PREFIX.pub).
    Keygen(keygen::KeygenArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let status = match &cli.command {
        Command::Build(args) => ExitStatus::of_build(build::run(args)),
        Command::Plan(args) => ExitStatus::of_build(plan::run(args)),
        Command::Pypi(args) => ExitStatus::of_build(pypi::run(args)),
        Command::Keygen(args) => ExitStatus::of(keygen::run(args)),
    };
    status.into()
}
