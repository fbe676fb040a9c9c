//! `bundler plan`: read only the metadata and say what a build would download: per repo, and
//! the PyPI resolution per target with the bytes to fetch. For the RPM part it also shows the
//! key file's keys (pinned or only kept), the minor release the repos hold, and the size of a
//! full mirror next to the Kubespray node kit (`--packages @kubespray`), so that the choice
//! between them is made knowing both.

use bundle::{FileKind, KubesprayDownloads};
use bundler::build::kubespray::{KubesprayOptions, add_kubespray_part};
use bundler::build::pypi::resolve_pypi;
use bundler::build::rpm::{RpmPlan, plan, select_closure};
use bundler::build::{BuildError, BuildParts};
use bundler::pypi::{ResolvedTarget, render_plan};
use bundler::release::package_set;
use clap::Args;
use serde::Serialize;

use super::selection::{SelectionArgs, parse_patterns};
use bundle::progress::term::TermReporter;

/// Show what `bundler build` would fetch: packages, bytes to download, bytes already cached.
///
/// Examples:
///   bundler plan --release 10
///   bundler plan --release 10.1 --packages @kubespray
///   bundler plan --packages kubespray-rpms.txt --json
///   bundler plan --no-rpm --kubespray master --platform x86_64 --platform aarch64
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct PlanArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// What the RPM part rests on besides its repos: keys, minor release, the two sizes.
#[derive(Debug, Default, Serialize)]
struct RpmSummary {
    minor_release: Option<String>,
    keys: Vec<KeyLine>,
    /// Every package of the selected repos and arches.
    full: SizeLine,
    /// The closure of the shipped Kubespray node package set, or why it does not resolve.
    kubespray_kit: Option<SizeLine>,
    kubespray_kit_error: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct KeyLine {
    fingerprint: String,
    version: u8,
    algorithm: String,
    user_id: Option<String>,
    pinned: bool,
    usable: bool,
}

#[derive(Debug, Default, Serialize)]
struct SizeLine {
    packages: usize,
    bytes: u64,
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

pub async fn run(args: &PlanArgs) -> Result<(), BuildError> {
    let sel = &args.selection;
    // Every setting first (see `build::run`); only the PyPI settings may fetch.
    let rpm = (!sel.no_rpm).then(|| sel.rpm_options()).transpose()?;
    let kubespray_opts = sel.kubespray_options()?;
    let fetcher = sel.fetcher()?;
    let pypi = sel.pypi_settings(&fetcher).await?;
    if sel.no_rpm && pypi.is_none() && sel.no_files && sel.no_images {
        return Err(BuildError::Usage(
            "nothing to plan with --no-rpm, --no-pypi, --no-files and --no-images".into(),
        ));
    }
    let reporter = TermReporter::new(sel.quiet || args.json);
    let resolved = match &pypi {
        Some(settings) => resolve_pypi(settings, &fetcher, &reporter).await?,
        None => Vec::new(),
    };
    let (lines, summary) = match &rpm {
        None => (Vec::new(), None),
        Some(rpm) => {
            let (lines, summary) = rpm_lines(sel, rpm, &fetcher, &reporter).await?;
            (lines, Some(summary))
        }
    };
    let kubespray = match &kubespray_opts {
        Some(opts) => Some(kubespray_lines(opts, &fetcher, &reporter).await?),
        None => None,
    };
    if args.json {
        // The RPM lines alone keep the array form older scripts read.
        let json = if pypi.is_none() && kubespray.is_none() {
            serde_json::to_value(&lines).expect("plan serializes")
        } else {
            serde_json::json!({
                "rpm": lines,
                "rpm_summary": summary,
                "pypi": pypi_json(&resolved),
                "kubespray": kubespray,
            })
        };
        println!(
            "{}",
            serde_json::to_string_pretty(&json).expect("plan serializes")
        );
        return Ok(());
    }
    if let Some(summary) = &summary {
        print_rpm_table(&lines);
        print_rpm_summary(summary);
    }
    if pypi.is_some() {
        print!("{}", render_plan(&resolved));
    }
    if let Some(k) = &kubespray {
        println!("Kubespray {}:", k.version);
        for (what, part) in [("files", &k.files), ("images", &k.images)] {
            println!(
                "  {what:<7} {:>4} ({} blobs/files) {:>14} to download {:>14} cached",
                part.count, part.entries, part.bytes_to_download, part.bytes_cached
            );
        }
    }
    Ok(())
}

/// What the Kubespray part adds: files and images, with their bytes.
#[derive(Debug, Default, Serialize)]
struct KubesprayPlan {
    version: String,
    files: PartPlan,
    images: PartPlan,
}

#[derive(Debug, Default, Serialize)]
struct PartPlan {
    /// Files, or images.
    count: usize,
    /// Bundle files they take (an image is a manifest or index, a config and layers).
    entries: usize,
    bytes_to_download: u64,
    bytes_cached: u64,
}

async fn kubespray_lines(
    opts: &KubesprayOptions,
    fetcher: &bundler::fetch::Fetcher,
    reporter: &TermReporter,
) -> Result<KubesprayPlan, BuildError> {
    let mut parts = BuildParts::default();
    add_kubespray_part(&mut parts, opts, fetcher, reporter).await?;
    let section = parts.kubespray.unwrap_or(KubesprayDownloads {
        version: opts.lists.version.clone(),
        files: Vec::new(),
        images: Vec::new(),
    });
    let mut plan = KubesprayPlan {
        version: section.version,
        ..KubesprayPlan::default()
    };
    plan.files.count = section.files.len();
    plan.images.count = section.images.len();
    for (entry, _) in &parts.files {
        let part = match entry.kind {
            FileKind::Download => &mut plan.files,
            _ => &mut plan.images,
        };
        part.entries += 1;
        if fetcher.cache().lookup(&entry.sha256, entry.size).is_some() {
            part.bytes_cached += entry.size;
        } else {
            part.bytes_to_download += entry.size;
        }
    }
    Ok(plan)
}

/// The resolution per target, for `--json`.
fn pypi_json(resolved: &[ResolvedTarget]) -> serde_json::Value {
    resolved
        .iter()
        .map(|target| {
            let dists: Vec<_> = target
                .dists
                .iter()
                .map(|d| {
                    serde_json::json!({
                        "name": d.name.to_string(),
                        "version": d.version.to_string(),
                        "filename": d.file.filename,
                        "size": d.file.size,
                    })
                })
                .collect();
            serde_json::json!({ "target": target.target.name(), "bytes": target.bytes(), "dists": dists })
        })
        .collect()
}

async fn rpm_lines(
    sel: &super::selection::SelectionArgs,
    opts: &bundler::build::rpm::RpmOptions,
    fetcher: &bundler::fetch::Fetcher,
    reporter: &TermReporter,
) -> Result<(Vec<RepoLine>, RpmSummary), BuildError> {
    let planned = plan(opts, fetcher, reporter).await?;
    let mut lines = Vec::new();
    for p in &planned.repos {
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
    let summary = summarize(sel, opts, &planned)?;
    Ok((lines, summary))
}

/// Keys, minor release, and the sizes of a full mirror and of the Kubespray node kit over the
/// same metadata.
fn summarize(
    sel: &super::selection::SelectionArgs,
    opts: &bundler::build::rpm::RpmOptions,
    planned: &RpmPlan,
) -> Result<RpmSummary, BuildError> {
    let mut summary = RpmSummary {
        minor_release: planned.minor_release.clone(),
        ..RpmSummary::default()
    };
    if let Some(key) = &planned.key {
        summary.keys = key
            .key
            .certificates
            .iter()
            .map(|c| KeyLine {
                fingerprint: c.fingerprint.clone(),
                version: c.version,
                algorithm: c.algorithm.clone(),
                user_id: c.user_id.clone(),
                pinned: c.pinned,
                usable: c.usable(),
            })
            .collect();
    }
    for repo in &planned.repos {
        summary.full.packages += repo.all.len();
        summary.full.bytes += repo.all.iter().map(|p| p.size).sum::<u64>();
    }
    let (text, _) = package_set("kubespray", &opts.release, sel.manifests.as_deref())?;
    let mut kit = planned.repos.clone();
    match select_closure(
        &mut kit,
        &opts.arches,
        &parse_patterns(&text),
        opts.weak_deps,
    ) {
        Ok(()) => {
            let mut size = SizeLine::default();
            for repo in &kit {
                size.packages += repo.selected.len();
                size.bytes += repo.selected().map(|p| p.size).sum::<u64>();
            }
            summary.kubespray_kit = Some(size);
        }
        Err(e) => summary.kubespray_kit_error = Some(e.to_string()),
    }
    Ok(summary)
}

fn print_rpm_summary(s: &RpmSummary) {
    if let Some(minor) = &s.minor_release {
        println!("minor release in the repos: {minor}");
    }
    for k in &s.keys {
        println!(
            "key {} (v{} {}{}): {}",
            k.fingerprint,
            k.version,
            k.algorithm,
            k.user_id
                .as_deref()
                .map(|u| format!(", {u}"))
                .unwrap_or_default(),
            match (k.pinned, k.usable) {
                (true, _) => "pinned: packages and metadata must be signed by a pinned key",
                (false, true) => "not pinned: kept in the bundle, its signatures are checked",
                (false, false) => "not pinned: kept in the bundle, its algorithm is not checked",
            }
        );
    }
    println!(
        "full mirror: {} packages, {} bytes",
        s.full.packages, s.full.bytes
    );
    match (&s.kubespray_kit, &s.kubespray_kit_error) {
        (Some(kit), _) => println!(
            "Kubespray node kit (--packages @kubespray): {} packages, {} bytes",
            kit.packages, kit.bytes
        ),
        (None, Some(e)) => println!("Kubespray node kit (--packages @kubespray): {e}"),
        (None, None) => {}
    }
}

fn print_rpm_table(lines: &[RepoLine]) {
    println!(
        "{:<10} {:<8} {:>9} {:>14} {:>14}  url",
        "repo", "arch", "packages", "to download", "cached"
    );
    for l in lines {
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
}
