//! `bundler pypi`: the PyPI part of a build on its own. Resolves the requirements for each
//! target, prints the resolution, and (unless `--dry-run`) downloads the wheels into
//! `OUTPUT/pypi/files/` and writes `OUTPUT/pypi-part.json` (the manifest's `pypi_targets`
//! and file entries). Useful to check a requirements file before a full build.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bundler::pypi::{self, IndexClient, PypiReporter, ResolvedDist};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use super::pypi_args::PypiArgs;

#[derive(Debug, Args)]
#[command(after_help = "Examples:
  bundler pypi --dry-run                                  # resolve the newest shipped Kubespray release
  bundler pypi --kubespray master --platform x86_64 --platform aarch64 -o out
  bundler pypi --requirements requirements.txt --exclude-newer 2026-08-21 -o out")]
pub struct PypiCommand {
    #[command(flatten)]
    pub pypi: PypiArgs,

    /// Directory that receives `pypi/files/` and `pypi-part.json`.
    #[arg(short, long, value_name = "DIR", default_value = "pypi-out")]
    pub output: PathBuf,

    /// Resolve and print the plan; download nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// No progress output.
    #[arg(short, long)]
    pub quiet: bool,
}

struct Progress {
    bar: ProgressBar,
    quiet: bool,
}

impl PypiReporter for Progress {
    fn resolved(&self, target: &str, dists: &[ResolvedDist]) {
        if !self.quiet {
            self.bar
                .println(format!("resolved {target}: {} distributions", dists.len()));
        }
    }
    fn download_started(&self, _files: usize, bytes: u64) {
        self.bar.set_length(bytes);
    }
    fn file_done(&self, _filename: &str, bytes: u64, _cached: bool) {
        self.bar.inc(bytes);
    }
}

/// Runs the command; the error says what failed (exit code chosen by `main`).
pub fn run(command: PypiCommand) -> anyhow::Result<()> {
    let Some(settings) = command.pypi.settings(&[])? else {
        return Ok(());
    };
    let bar = if command.quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template("{bytes}/{total_bytes} {wide_bar} {eta}")
            .expect("valid progress template"),
    );
    let progress = Progress {
        bar,
        quiet: command.quiet,
    };
    let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
    runtime.block_on(async {
        if command.dry_run {
            let client = Arc::new(IndexClient::new(&settings.index_url)?);
            let resolved = pypi::resolve_targets(client, &settings, &progress).await?;
            print!("{}", pypi::render_plan(&resolved));
            return Ok(());
        }
        let (resolved, part) = pypi::collect(&settings, &command.output, &progress).await?;
        progress.bar.finish_and_clear();
        if !command.quiet {
            print!("{}", pypi::render_plan(&resolved));
        }
        let json = serde_json::json!({ "pypi_targets": part.targets, "files": part.files });
        let path = command.output.join("pypi-part.json");
        fs_err::write(&path, serde_json::to_vec_pretty(&json)?)?;
        if !command.quiet {
            println!(
                "wrote {} and {} files under {}",
                path.display(),
                part.files.len(),
                command.output.join("pypi/files").display()
            );
        }
        anyhow::Ok(())
    })
}
