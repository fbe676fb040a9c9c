//! `installer inspect BUNDLE [--json]`: what a bundle holds, read from its manifest only (the
//! first entries of the archive), so it is instant even for a large bundle. It does not verify
//! the payload; `installer verify` does.

use std::path::PathBuf;

use anyhow::Context;
use bundle::read::read_manifest;
use bundle::summary::Summary;
use clap::Args;

use indicatif::HumanBytes;

use super::exit::ExitStatus;

#[derive(Debug, Args)]
#[command(after_help = concat!(
    "Examples:\n",
    "  installer inspect bundle.tar.zst\n",
    "  installer inspect bundle.tar.zst --json | jq .repos\n",
    "  installer inspect bundle.tar.zst --manifest-out bundle.tar.zst.manifest.json\n\n",
    "Exit status: 0 success; 1 operational failure; 2 usage error; 3 unreadable manifest or \
     bundle format newer than this installer."
))]
pub struct InspectArgs {
    /// The bundle file (`*.tar.zst`, or a self-extracting `*.run`; inside a `.run`, the
    /// file itself by default), or the first volume of a split bundle (`*.tar.zst.001`) or
    /// the directory holding its volumes.
    #[arg(env = "KOI_BUNDLE")]
    pub bundle: PathBuf,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Also write the bundle's exact `manifest.json` bytes to FILE: what `bundler build
    /// --since FILE` needs of this bundle to build the next, differential one.
    #[arg(long, value_name = "FILE")]
    pub manifest_out: Option<PathBuf>,
}

pub fn run(args: &InspectArgs) -> anyhow::Result<ExitStatus> {
    let info = read_manifest(&args.bundle).context("cannot read the bundle manifest")?;
    if let Some(out) = &args.manifest_out {
        installer::fsutil::write_atomic(out, &info.raw, 0o644)
            .with_context(|| format!("cannot write the manifest to {}", out.display()))?;
    }
    let summary = Summary::of(&info);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        print!("{}", render(&summary));
    }
    Ok(ExitStatus::Success)
}

/// The human-readable form.
pub fn render(s: &Summary) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line(format!("bundle id: {}", s.bundle_id));
    line(format!("format:    {}", s.format));
    line(format!("kind:      {}", s.kind()));
    line(format!("created:   {}", s.created));
    line(format!("tool:      {} {}", s.tool.name, s.tool.version));
    if let Some(release) = &s.release {
        let minor = match &s.minor_release {
            Some(minor) if minor != release => format!(", minor release {minor}"),
            _ => String::new(),
        };
        line(format!(
            "release:   {release}{minor} ({})",
            s.arches.join(", ")
        ));
    }
    if !s.package_signers.is_empty() {
        line(format!(
            "rpm keys:  packages signed by {}",
            s.package_signers.join(", ")
        ));
    }
    line(format!(
        "signed:    {}",
        if s.signed {
            "yes (check with `installer verify --key`)"
        } else {
            "no"
        }
    ));
    line(format!("files:     {} ({})", s.files, HumanBytes(s.bytes)));
    if s.base.is_some() {
        line(format!(
            "carried:   {} ({}); the rest is taken from the base on the admin",
            s.carried.files,
            HumanBytes(s.carried.bytes)
        ));
    }
    if !s.repos.is_empty() {
        line(String::new());
        line(format!(
            "{:<12} {:<8} {:>9} {:>11} {:>11}  {}",
            "REPO", "ARCH", "PACKAGES", "SIZE", "ALL FILES", "REVISION"
        ));
        for r in &s.repos {
            line(format!(
                "{:<12} {:<8} {:>9} {:>11} {:>11}  {}{}",
                r.id,
                r.arch,
                r.packages,
                HumanBytes(r.package_bytes).to_string(),
                HumanBytes(r.all.bytes).to_string(),
                r.revision.as_deref().unwrap_or("-"),
                if r.slim { " (slim)" } else { "" }
            ));
        }
    }
    if !s.pypi_targets.is_empty() {
        line(String::new());
        line(format!(
            "{:<36} {:>7} {:>12} {:>11}",
            "PYPI TARGET", "PYTHON", "FILES", "SIZE"
        ));
        for t in &s.pypi_targets {
            line(format!(
                "{:<36} {:>7} {:>12} {:>11}",
                t.name,
                t.python_version,
                t.locked.files,
                HumanBytes(t.locked.bytes).to_string()
            ));
        }
    }
    if !s.installers.is_empty() {
        line(String::new());
        line(format!("{:<10} {:>11}  {}", "INSTALLER", "SIZE", "SHA256"));
        for i in &s.installers {
            line(format!(
                "{:<10} {:>11}  {}",
                i.arch,
                HumanBytes(i.size).to_string(),
                i.sha256
            ));
        }
    }
    if let Some(k) = &s.kubespray {
        line(String::new());
        line(format!("KUBESPRAY {}", k.version));
        line(format!(
            "images:    {} ({} manifests and blobs, {})",
            k.images,
            k.image_files.files,
            HumanBytes(k.image_files.bytes)
        ));
        line(format!(
            "files:     {} ({})",
            k.files.files,
            HumanBytes(k.files.bytes)
        ));
    }
    if s.other.files > 0 {
        line(String::new());
        line(format!(
            "other files: {} ({})",
            s.other.files,
            HumanBytes(s.other.bytes)
        ));
    }
    out
}
