//! `installer apply`: verify a bundle and install its repos, PyPI index and nginx config.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use installer::apply::{self, ApplyOptions};
use installer::repodata::Compression;

/// Exit status for a bundle that fails verification.
const EXIT_VERIFY: u8 = 3;

#[derive(Args, Debug)]
#[command(after_help = "Examples:\n  \
  installer apply bundle.tar.zst\n  \
  installer apply bundle.tar.zst --dry-run          # print the plan and every diff, write nothing\n  \
  installer apply bundle.tar.zst --key bundle.pub   # require a valid signature\n  \
  installer apply new.tar.zst --keep-old            # keep packages the new bundle dropped\n  \
  installer apply bundle.tar.zst --root /tmp/admin --http-port 18080 --http-address 127.0.0.1\n\n\
Exit status: 0 ok, 1 operational failure, 2 usage error, 3 the bundle failed verification.")]
pub struct ApplyArgs {
    /// The bundle file (`bundle.tar.zst`).
    pub bundle: PathBuf,
    /// Write everything under DIR instead of `/` (tests, staging an image).
    #[arg(long, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,
    /// Data root on the admin server: repos under `<DIR>/repos`, the PyPI index under `<DIR>/pypi`.
    #[arg(long, value_name = "DIR", default_value = "/data")]
    pub data_root: PathBuf,
    /// ed25519 public key (PEM); the bundle must then carry a valid signature.
    #[arg(long, value_name = "PUB")]
    pub key: Option<PathBuf>,
    /// Print the plan and the diff of every file it would change; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write files but start, enable or reload no service.
    #[arg(long)]
    pub no_services: bool,
    /// Keep packages and wheels that the new bundle no longer carries.
    #[arg(long)]
    pub keep_old: bool,
    /// Compression of the generated repodata.
    #[arg(long, value_enum, default_value_t = CompressArg::Gzip)]
    pub compress: CompressArg,
    /// Port nginx serves the repos and the index on.
    #[arg(long, value_name = "PORT", default_value_t = 80)]
    pub http_port: u16,
    /// Address nginx listens on (default: every address).
    #[arg(long, value_name = "ADDR")]
    pub http_address: Option<String>,
    /// Host names and addresses the nginx server answers to (repeat the flag).
    #[arg(long = "server-name", value_name = "NAME",
          default_values_t = ["localhost".to_string(), "127.0.0.1".to_string(), "192.168.10.10".to_string()])]
    pub server_names: Vec<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum CompressArg {
    Gzip,
    Zstd,
}

/// Progress on stderr, one line per phase.
struct PhaseLines;

impl bundle::Reporter for PhaseLines {
    fn started(&self, what: &str, items: u64, bytes: u64) {
        eprintln!("{what}: {items} files, {} MB", bytes / 1_000_000);
    }
}

pub fn run(args: ApplyArgs) -> anyhow::Result<ExitCode> {
    let listen = match &args.http_address {
        Some(addr) => format!("{addr}:{}", args.http_port),
        None => args.http_port.to_string(),
    };
    let opts = ApplyOptions {
        bundle: args.bundle,
        root: args.root,
        data_root: args.data_root,
        key: args.key,
        keep_old: args.keep_old,
        compression: match args.compress {
            CompressArg::Gzip => Compression::Gzip,
            CompressArg::Zstd => Compression::Zstd,
        },
        listen: vec![listen],
        server_names: args.server_names,
    };
    let result = if args.dry_run {
        apply::plan(&opts, true, &PhaseLines).map(|plan| {
            print!("{plan}");
            print!("{}", plan.diffs());
            println!("dry run: nothing was written");
        })
    } else {
        apply::plan(&opts, false, &PhaseLines).and_then(|plan| {
            print!("{plan}");
            let outcome = apply::run(&opts, &plan, &PhaseLines)?;
            for b in &outcome.backups {
                println!("backup     {}", b.display());
            }
            if outcome.changed_anything() {
                println!("applied bundle {}", plan.manifest.bundle_id);
            } else {
                println!("no changes");
            }
            Ok(())
        })
    };
    match result {
        Ok(()) => {
            if !args.dry_run {
                let verb = if args.no_services {
                    "--no-services: not reloading; run"
                } else {
                    "reload nginx to serve the new config:"
                };
                println!("{verb} nginx -t && systemctl reload nginx");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) if e.is_verification_failure() => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(EXIT_VERIFY))
        }
        Err(e) => Err(e.into()),
    }
}
