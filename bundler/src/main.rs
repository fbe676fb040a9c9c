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
    /// Log what the fetcher does on stderr: retries, mirror fallbacks, dropped mirrors and
    /// resumed downloads (-v), every request's outcome (-vv). $RUST_LOG (e.g.
    /// `bundler=debug`), when set, takes precedence.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
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

/// Installs the stderr log when `-v` or `$RUST_LOG` asks for it; without either the output is
/// the progress and the result only.
fn init_log(verbose: u8) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => tracing_subscriber::EnvFilter::new(spec),
        _ => match verbose {
            0 => return,
            1 => tracing_subscriber::EnvFilter::new("bundler=info"),
            2 => tracing_subscriber::EnvFilter::new("bundler=debug"),
            _ => tracing_subscriber::EnvFilter::new("bundler=trace,reqwest=debug,hyper=debug"),
        },
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .init();
}

/// Download bodies of a few hundred KiB to a few MiB are allocated and freed by the hundred a
/// second on several threads. Once glibc's mmap threshold has risen by itself (it follows the
/// largest block freed, up to 32 MiB) it serves them from its arenas and keeps the freed
/// pieces, which pushed the peak RSS of a build over a fast link past the 150 MB it must stay
/// under (docs/BENCHMARKS.md, issue 18 WAN, Run 5). A fixed threshold maps each such block on
/// its own and hands it back when freed.
fn return_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a tunable of the allocator; called before any other thread
    // exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 10);
    }
}

fn main() -> ExitCode {
    return_large_blocks();
    let cli = Cli::parse();
    init_log(cli.verbose);
    // The one runtime: every command's network I/O runs on it; CPU work (hashing, signature
    // checks, metadata parsing, the bundle writer) goes to its blocking pool or own threads.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitStatus::Failure.into();
        }
    };
    let status = match &cli.command {
        Command::Build(args) => ExitStatus::of_build(runtime.block_on(build::run(args))),
        Command::Plan(args) => ExitStatus::of_build(runtime.block_on(plan::run(args))),
        Command::Pypi(args) => ExitStatus::of_build(runtime.block_on(pypi::run(args))),
        Command::Keygen(args) => ExitStatus::of(keygen::run(args)),
    };
    status.into()
}
