//! `mkupdate`: applies a month of updates to a mirror `mkmirror` wrote (see
//! `e2e::mirror_update`), for `scripts/bench-delta`.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use e2e::mirror::MirrorSpec;
use e2e::mirror_update::{read_mirror, update_mirror};

/// Update a generated mirror in place: PERCENT % of its packages get VERSION, two go, two
/// arrive; every repo's metadata is rewritten and signed.
///
/// Example:
///   mkupdate /tmp/big --percent 5
#[derive(Parser)]
#[command(verbatim_doc_comment)]
struct Args {
    /// The mirror's root (what `mkmirror` was given).
    root: PathBuf,
    #[arg(long, default_value_t = 5)]
    percent: usize,
    #[arg(long, default_value = "1.1")]
    version: String,
    /// Distinguishes the new packages of successive updates.
    #[arg(long, default_value_t = 0)]
    round: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let spec = MirrorSpec::small(&args.root);
    let mut mirror = read_mirror(&spec)?;
    let update = update_mirror(&spec, &mut mirror, args.percent, &args.version, args.round)?;
    println!(
        "{} packages updated, {} removed, {} added, of {}",
        update.updated.len(),
        update.removed,
        update.added,
        mirror.total_packages()
    );
    Ok(())
}
