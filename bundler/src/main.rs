//! `bundler`: builds an air-gap bundle on a host with internet access.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "bundler",
    version,
    about = "Mirror Rocky Linux repositories and PyPI wheels into one verified bundle"
)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
