//! `installer verify BUNDLE [--key PUB]`: the full streaming check of a bundle (every entry
//! against the manifest, the archive's end, the signature when a key is given) without writing
//! anything, so media can be checked before it enters the site.

use std::path::PathBuf;

use anyhow::Context;
use bundle::read::verify_detailed;
use bundle::sign::{key_fingerprint, load_verifying_key};
use clap::Args;

use bundle::progress::term::TermReporter;
use indicatif::HumanBytes;

use super::IoArg;
use super::exit::ExitStatus;

#[derive(Debug, Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  installer verify bundle.tar.zst\n",
    "  installer verify bundle.tar.zst --key site.pub\n\n",
    "Exit status: 0 success; 1 operational failure (I/O, missing file); 2 usage error; \
     3 verification failure (damaged, tampered or hostile bundle, bad or missing signature, \
     bundle format newer than this installer)."
))]
pub struct VerifyArgs {
    /// The bundle file (`*.tar.zst`), or the first volume of a split bundle (`*.tar.zst.001`)
    /// or the directory holding its volumes.
    #[arg(env = "KOI_BUNDLE")]
    pub bundle: PathBuf,
    /// Public key (`PREFIX.pub` from `bundler keygen`); the bundle must carry a valid
    /// signature by it.
    #[arg(long, value_name = "PUB")]
    pub key: Option<PathBuf>,
    /// No progress bar or lines; the result and errors still print.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub io: IoArg,
}

pub fn run(args: &VerifyArgs) -> anyhow::Result<ExitStatus> {
    let key = args
        .key
        .as_deref()
        .map(load_verifying_key)
        .transpose()
        .context("loading the verification key")?;
    let reporter = TermReporter::new(args.quiet);
    let verified = verify_detailed(&args.bundle, key.as_ref(), args.io.mode, &reporter)
        .context("verification failed")?;
    let m = &verified.manifest;
    let signature = match (&key, verified.signed) {
        (Some(key), _) => format!("valid, key {}", key_fingerprint(key)),
        (None, true) => "present, not checked (give --key to check it)".to_string(),
        (None, false) => "none".to_string(),
    };
    println!("bundle:    {}", args.bundle.display());
    println!("bundle id: {}", m.bundle_id);
    match &m.base {
        Some(base) => {
            let carried = m.payload_totals();
            println!("kind:      differential, base {}", base.bundle_id);
            println!(
                "files:     {} ({}) carried, every size and sha256 checked; {} more taken from the base, the manifest complete",
                carried.files,
                HumanBytes(carried.bytes),
                m.totals.files - carried.files
            );
        }
        None => {
            println!("kind:      full");
            println!(
                "files:     {} ({}), every size and sha256 checked",
                m.totals.files,
                HumanBytes(m.totals.bytes)
            );
        }
    }
    println!("signature: {signature}");
    println!("result:    OK");
    Ok(ExitStatus::Success)
}
