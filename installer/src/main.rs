//! `installer`: verifies a bundle and turns the admin server into the site's internet.

use clap::Parser;

#[derive(Parser)]
#[command(name = "installer", version, about = "Verify a bundle and set up the air-gapped admin server")]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
}
