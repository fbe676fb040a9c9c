//! `mkmirror`: writes a generated Rocky-like mirror for `scripts/demo` and the benchmarks.
//! Sizes come from arguments so the same generator makes a test-sized or a benchmark-sized
//! mirror. Packages and metadata are signed with the RSA-4096 test key unless asked otherwise,
//! as Rocky signs with RSA-4096: benchmarks then pay the verification cost operators pay.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use e2e::mirror::{MirrorKeys, MirrorSpec, generate_mirror};

/// Generate a Rocky-like mirror: <ROOT>/<release>/{BaseOS,AppStream,extras}/<arch>/os/.
///
/// Examples:
///   mkmirror /tmp/mirror                                   # ~45 packages, a few MB
///   mkmirror /tmp/big --packages 2000 --min-kb 200 --max-kb 320
///   mkmirror /tmp/rocky-sized --packages 8000 --split 19,80 --files-per-package 100
#[derive(Parser)]
#[command(verbatim_doc_comment)]
struct Args {
    /// Directory to write the mirror into (created if missing).
    root: PathBuf,
    #[arg(long, default_value = "10")]
    release: String,
    /// Architecture (repeatable).
    #[arg(long = "arch", default_values_t = vec!["x86_64".to_string()])]
    arches: Vec<String>,
    /// Number of filler packages on top of the ~25 core packages per arch.
    #[arg(long, default_value_t = 20)]
    packages: usize,
    /// Smallest filler payload, KiB.
    #[arg(long, default_value_t = 16)]
    min_kb: u64,
    /// Largest filler payload, KiB.
    #[arg(long, default_value_t = 256)]
    max_kb: u64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Percent of the filler packages in BaseOS, then in AppStream; extras gets the rest.
    #[arg(long, value_delimiter = ',', default_values_t = [30, 65])]
    split: Vec<usize>,
    /// Extra files per filler package (file lists of real size), each package also requiring
    /// a file of an earlier one that only filelists lists.
    #[arg(long, default_value_t = 0)]
    files_per_package: usize,
    /// Signing key: the RSA-4096 test key (as Rocky signs) or the Ed25519 one.
    #[arg(long, value_enum, default_value_t = Key::Rsa4096)]
    key: Key,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Key {
    Rsa4096,
    Ed25519,
}

fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.split.len() == 2 && args.split[0] + args.split[1] <= 100,
        "--split takes two percentages, BaseOS then AppStream (e.g. 19,80), that add up to at most 100"
    );
    let spec = MirrorSpec {
        root: args.root,
        release: args.release,
        arches: args.arches,
        filler_packages: args.packages,
        filler_min_bytes: args.min_kb * 1024,
        filler_max_bytes: args.max_kb * 1024,
        filler_split: [args.split[0], args.split[1]],
        filler_files: args.files_per_package,
        seed: args.seed,
        unsigned: Vec::new(),
        minor_release: "10.0".to_string(),
        sign_metadata: true,
        keys: match args.key {
            Key::Rsa4096 => MirrorKeys::rsa_test_key(),
            Key::Ed25519 => MirrorKeys::test_key(),
        },
    };
    let mirror = generate_mirror(&spec)?;
    for repo in &mirror.repos {
        println!(
            "{}/{}: {} packages, {} bytes at {}",
            repo.dir_name,
            repo.arch,
            repo.packages.len(),
            repo.package_bytes,
            repo.path.display()
        );
    }
    println!(
        "total: {} packages, {} bytes; key: {}",
        mirror.total_packages(),
        mirror.total_bytes(),
        mirror.key_path.display()
    );
    Ok(())
}
