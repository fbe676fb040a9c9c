//! Test and benchmark tool, not a user command: packs a directory tree into a bundle with the
//! library's `pack_tree`, or extracts one with `extract`, so `scripts/bench-pack` can time the
//! library alone on release builds. Users build bundles with `bundler build`.
//!
//! ```text
//! pack-tree pack DIR OUTPUT [--level N] [--threads N]     hash the tree, then write the bundle
//! pack-tree hash DIR MANIFEST                             only hash: write the manifest JSON
//! pack-tree write DIR MANIFEST OUTPUT [--level N] [--threads N]
//!                                                         write with known hashes (checked
//!                                                         while streaming, as `bundler build`)
//! pack-tree unpack BUNDLE DEST                            verify and extract
//! ```
//!
//! `--io buffered|direct` (or `KUBESPRAY_OFFLINE_IO`) chooses the I/O mode, as in the binaries.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use bundle::write::{WriteOptions, manifest_bytes, write_bundle};
use bundle::{BundleManifest, FORMAT_VERSION, IoMode, NoProgress, ToolInfo, Totals};
use e2e::tree::{manifest_of_tree, pack_tree};

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pack-tree: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    let positional: Vec<&String> = positional(&args);
    match positional.as_slice() {
        [cmd, dir, output] if cmd.as_str() == "pack" => {
            let written = pack_tree(
                &PathBuf::from(dir),
                &PathBuf::from(output),
                base(),
                &write_opts(&args)?,
                &NoProgress,
            )?;
            report(&written);
            Ok(())
        }
        [cmd, dir, manifest_path] if cmd.as_str() == "hash" => {
            let manifest = manifest_of_tree(&PathBuf::from(dir), base(), &NoProgress)?;
            fs_err::write(manifest_path, manifest_bytes(&manifest))?;
            Ok(())
        }
        [cmd, dir, manifest_path, output] if cmd.as_str() == "write" => {
            let manifest: BundleManifest = serde_json::from_slice(&fs_err::read(manifest_path)?)?;
            let sources: Vec<PathBuf> = manifest
                .files
                .iter()
                .map(|f| PathBuf::from(dir).join(&f.path))
                .collect();
            let written = write_bundle(
                &PathBuf::from(output),
                &manifest,
                &sources,
                &write_opts(&args)?,
                &NoProgress,
            )?;
            report(&written);
            Ok(())
        }
        [cmd, bundle, dest] if cmd.as_str() == "unpack" => {
            let manifest = bundle::read::extract_observed(
                &PathBuf::from(bundle),
                &PathBuf::from(dest),
                None,
                io_mode(&args)?,
                &bundle::read::NoObserver,
                &NoProgress,
            )?;
            println!(
                "{} files, {} bytes",
                manifest.totals.files, manifest.totals.bytes
            );
            Ok(())
        }
        _ => bail!("usage: see the header of tests/src/bin/pack-tree.rs"),
    }
}

fn base() -> BundleManifest {
    BundleManifest {
        format: FORMAT_VERSION,
        min_installer_version: None,
        base: None,
        bundle_id: String::new(),
        created: time::OffsetDateTime::UNIX_EPOCH,
        tool: ToolInfo {
            name: "pack-tree".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        release: None,
        arches: vec![],
        rpm: None,
        pypi_targets: vec![],
        kubespray: None,
        files: vec![],
        totals: Totals::default(),
    }
}

fn write_opts(args: &[String]) -> anyhow::Result<WriteOptions> {
    let mut opts = WriteOptions::default();
    if let Some(level) = flag(args, "--level")? {
        opts.level = level;
    }
    if let Some(threads) = flag(args, "--threads")? {
        opts.threads = threads;
    }
    opts.io = io_mode(args)?;
    Ok(opts)
}

/// `--io MODE`, else `KUBESPRAY_OFFLINE_IO`, else the default.
fn io_mode(args: &[String]) -> anyhow::Result<IoMode> {
    let given = match args.iter().position(|a| a == "--io") {
        Some(i) => Some(args.get(i + 1).context("--io needs a value")?.clone()),
        None => std::env::var(bundle::IO_MODE_ENV).ok(),
    };
    match given {
        Some(name) => name.parse().map_err(|e: String| anyhow::anyhow!(e)),
        None => Ok(IoMode::default()),
    }
}

/// Arguments that are neither flags nor flag values.
fn positional(args: &[String]) -> Vec<&String> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if a.starts_with("--") {
            skip = true;
        } else {
            out.push(a);
        }
    }
    out
}

fn flag<T: std::str::FromStr>(args: &[String], name: &str) -> anyhow::Result<Option<T>>
where
    T::Err: std::error::Error + Send + Sync + 'static,
{
    match args.iter().position(|a| a == name) {
        None => Ok(None),
        Some(i) => {
            let value = args
                .get(i + 1)
                .with_context(|| format!("{name} needs a value"))?;
            Ok(Some(
                value.parse().with_context(|| format!("{name} {value}"))?,
            ))
        }
    }
}

fn report(written: &bundle::write::WrittenBundle) {
    println!(
        "{} {} bytes sha256 {}",
        written.path.display(),
        written.size,
        written.sha256
    );
}
