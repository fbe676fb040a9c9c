//! `bundler pypi`: the PyPI part of a build on its own. Resolves the requirements for each
//! target, prints the resolution, and (unless `--dry-run`) downloads the wheels into
//! `OUTPUT/pypi/files/` and writes `OUTPUT/pypi-part.json` (the manifest's `pypi_targets`
//! and file entries). Useful to check a requirements file before a full build.

use std::path::PathBuf;
use std::sync::Arc;

use bundle::progress::term::TermReporter;
use bundler::build::BuildError;
use bundler::pypi::{self, IndexClient};
use clap::Args;

use super::pypi_args::PypiArgs;

/// Resolve and fetch only the PyPI part (wheels for the target interpreters).
///
/// Examples:
///   bundler pypi --dry-run                       # newest shipped Kubespray release, both machines
///   bundler pypi --kubespray master --platform x86_64 --platform aarch64 -o out
///   bundler pypi --requirements requirements.txt --exclude-newer 2026-08-21 -o out
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct PypiCommand {
    #[command(flatten)]
    pub pypi: PypiArgs,

    /// Directory that receives `pypi/files/` and `pypi-part.json`.
    #[arg(short, long, value_name = "DIR", default_value = "pypi-out")]
    pub output: PathBuf,

    /// Download cache (content-addressed, shared with `bundler build`; re-runs fetch only
    /// what is new). Default: the user's cache directory.
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,

    /// Resolve and print the plan; download nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// No progress, and nothing on success but the `--dry-run` plan; errors and notes (a
    /// mirror dropped) still print.
    #[arg(short, long)]
    pub quiet: bool,
}

pub async fn run(command: &PypiCommand) -> Result<(), BuildError> {
    // The index pages, metadata, wheels and (for a Kubespray release this bundler ships no
    // list for) the requirements all go through one fetcher and its cache.
    let cache = command
        .cache
        .clone()
        .unwrap_or_else(super::selection::default_cache_dir);
    let fetcher = Arc::new(bundler::fetch::Fetcher::new(
        cache,
        bundler::fetch::FetchSettings::default(),
    )?);
    let settings = command.pypi.settings(&[], None, &fetcher).await?;
    let reporter = TermReporter::new(command.quiet);
    if command.dry_run {
        let client = Arc::new(IndexClient::new(&settings.index_url, fetcher)?);
        let resolved = pypi::resolve_targets(client, &settings, &reporter).await?;
        print!("{}", pypi::render_plan(&resolved));
        return Ok(());
    }
    let (resolved, part) = pypi::collect(&settings, fetcher, &command.output, &reporter).await?;
    if !command.quiet {
        print!("{}", pypi::render_plan(&resolved));
    }
    let json = serde_json::json!({ "pypi_targets": part.targets, "files": part.files });
    let path = command.output.join("pypi-part.json");
    let bytes = serde_json::to_vec_pretty(&json).expect("manifest parts serialize");
    fs_err::write(&path, bytes).map_err(pypi::PypiError::Fs)?;
    if !command.quiet {
        println!(
            "wrote {} and {} files under {}",
            path.display(),
            part.files.len(),
            command.output.join("pypi/files").display()
        );
    }
    Ok(())
}
