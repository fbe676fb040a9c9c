//! `bundler plan`: read only the metadata and say what a build would download, per repo.

use crate::build::BuildError;
use crate::build::rpm::plan;
use clap::Args;
use serde::Serialize;

use super::progress::CliReporter;
use super::selection::SelectionArgs;

/// Show what `bundler build` would fetch: packages, bytes to download, bytes already cached.
///
/// Examples:
///   bundler plan --release 10
///   bundler plan --packages kubespray-rpms.txt --json
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct PlanArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Serialize)]
struct RepoLine {
    repo: String,
    arch: String,
    url: String,
    slim: bool,
    packages: usize,
    bytes_total: u64,
    bytes_to_download: u64,
    bytes_cached: u64,
}

pub fn run(args: &PlanArgs) -> Result<(), BuildError> {
    let sel = &args.selection;
    if sel.no_rpm {
        return Err(BuildError::Usage("nothing to plan with --no-rpm".into()));
    }
    let reporter = CliReporter::new(sel.quiet || args.json);
    let fetcher = sel.fetcher()?;
    let opts = sel.rpm_options()?;
    let plans = plan(&opts, &fetcher, &reporter)?;
    let mut lines = Vec::new();
    for p in &plans {
        let mut line = RepoLine {
            repo: p.id.clone(),
            arch: p.arch.clone(),
            url: p.bases[0].to_string(),
            slim: p.slim,
            packages: p.selected.len(),
            bytes_total: 0,
            bytes_to_download: 0,
            bytes_cached: 0,
        };
        for d in p.downloads()? {
            line.bytes_total += d.expected.size;
            if fetcher
                .cache()
                .lookup(&d.expected.sha256, d.expected.size)
                .is_some()
            {
                line.bytes_cached += d.expected.size;
            } else {
                line.bytes_to_download += d.expected.size;
            }
        }
        lines.push(line);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&lines).expect("plan serializes")
        );
        return Ok(());
    }
    println!(
        "{:<10} {:<8} {:>9} {:>14} {:>14}  url",
        "repo", "arch", "packages", "to download", "cached"
    );
    for l in &lines {
        println!(
            "{:<10} {:<8} {:>9} {:>14} {:>14}  {}{}",
            l.repo,
            l.arch,
            l.packages,
            l.bytes_to_download,
            l.bytes_cached,
            l.url,
            if l.slim { " (slim)" } else { "" }
        );
    }
    Ok(())
}
