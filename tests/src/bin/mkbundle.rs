//! `mkbundle`: packs a local mirror tree (as `mkmirror` writes it) and a directory of wheels into
//! a bundle laid out like `bundler build`'s, for `scripts/bench-apply` and the demo.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use e2e::localbundle::{LocalBundleSpec, build_local_bundle};

/// Pack a mirror tree and wheels into a bundle.
///
/// Examples:
///   mkbundle --mirror /tmp/mirror --wheels /tmp/wheels /tmp/bundle.tar.zst
///   mkbundle --mirror /tmp/big --arch x86_64 --arch aarch64 /tmp/big.tar.zst
#[derive(Parser)]
#[command(verbatim_doc_comment)]
struct Args {
    /// Output bundle file.
    output: PathBuf,
    /// Mirror root holding `<release>/{BaseOS,AppStream,extras}/<arch>/os/`.
    #[arg(long)]
    mirror: Option<PathBuf>,
    /// Release key file (default: the test key `mkmirror` writes at the mirror root).
    #[arg(long)]
    key: Option<PathBuf>,
    /// Directory of `*.whl` files.
    #[arg(long)]
    wheels: Option<PathBuf>,
    #[arg(long, default_value = "10")]
    release: String,
    /// Architecture (repeatable).
    #[arg(long = "arch", default_values_t = vec!["x86_64".to_string()])]
    arches: Vec<String>,
    /// Creation time written to the manifest (RFC 3339).
    #[arg(long, default_value = "2026-09-01T00:00:00Z")]
    created: String,
    /// Scratch directory for the bundle tree (hard links; default: beside the output).
    #[arg(long)]
    work: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let key = args.key.or_else(|| {
        args.mirror
            .as_ref()
            .map(|m| m.join(e2e::rpmgen::TEST_KEY_FILE))
    });
    let spec = LocalBundleSpec {
        mirror_root: args.mirror,
        key,
        release: args.release,
        arches: args.arches,
        wheels: args.wheels,
        created: args.created,
    };
    let work = args
        .work
        .unwrap_or_else(|| args.output.with_extension("work"));
    let written = build_local_bundle(&spec, &work, &args.output)?;
    fs_err::remove_dir_all(work.join("tree"))?;
    println!("{}: {} bytes", written.path.display(), written.size);
    Ok(())
}
