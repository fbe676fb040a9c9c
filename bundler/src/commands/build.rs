//! `bundler build`: mirror the selected repos and the PyPI wheels into one verified bundle.

use std::path::PathBuf;

use bundle::write::{Reuse, WriteOptions};
use bundler::build::delta::read_base;
use bundler::build::installer::{add_installer_part, find_installers};
use bundler::build::kubespray::add_kubespray_part;
use bundler::build::pypi::add_pypi_part;
use bundler::build::{BuildError, BuildParts, add_rpm_part, pack};
use clap::Args;

use super::selection::SelectionArgs;
use bundle::progress::term::TermReporter;

/// Build a bundle: RPM repos, PyPI wheels, Kubespray's files and container images, and the
/// installer, with a checksummed manifest.
///
/// Files are packed as they are downloaded and verified. When the output file already holds
/// exactly what this build would write (the same manifest apart from its creation time, every
/// file re-hashed, and a matching .sha256 file), it is kept and nothing is rewritten.
///
/// Examples:
///   bundler build --release 10 -o rocky10.tar.zst
///   bundler build --release 10 --self-extracting -o rocky10.run
///   bundler build --release 10 --split 4G -o rocky10.tar.zst   (rocky10.tar.zst.001, …)
///   bundler build --release 10 --arch x86_64 --arch aarch64 --kubespray master
///   bundler build --no-rpm --requirements req.txt --platform aarch64 --exclude-newer 2026-08-21
///   bundler build --mirror http://127.0.0.1:8080 --gpg-key RPM-GPG-KEY-test --no-pypi
///   bundler build --release 10 --since rocky10-june.tar.zst.manifest.json -o rocky10-july.tar.zst
///   bundler build --packages kubespray-rpms.txt --no-weak-deps --no-pypi --sign bundle.key
#[derive(Debug, Args)]
#[command(verbatim_doc_comment)]
pub struct BuildArgs {
    #[command(flatten)]
    pub selection: SelectionArgs,
    /// Output bundle file (a `.sha256` file is written beside it). A bundle already there that
    /// holds exactly what this build would write is checked in full and kept, not rewritten.
    /// Default: bundle.tar.zst, or bundle.run with --self-extracting.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Sign the manifest with this ed25519 key (see `bundler keygen`).
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
    /// An installer binary to carry in the bundle (repeat for each admin architecture; the
    /// architecture is read from the binary). Default: the `installer` beside this bundler.
    #[arg(long, value_name = "FILE")]
    pub installer: Vec<PathBuf>,
    /// Carry no installer binary.
    #[arg(long, conflicts_with_all = ["installer", "self_extracting"])]
    pub no_installer: bool,
    /// Write one self-extracting file instead of a .tar.zst: a short sh header, the installer
    /// for the first --arch (default x86_64), then the bundle stream. On the admin:
    /// `sh bundle.run apply --site site.toml --key site.pub` (any installer command).
    #[arg(long)]
    pub self_extracting: bool,
    /// Write the bundle as volumes FILE.001, FILE.002, … of at most SIZE bytes each, for media
    /// with a file size limit, and one FILE.sha256 listing them all. SIZE is a byte count with
    /// an optional suffix: K, M, G (powers of 1000: `4G` fits FAT32, `4700M` a DVD) or KiB, MiB,
    /// GiB (powers of 1024). `installer apply FILE.001` reads the volumes in order.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, conflicts_with = "self_extracting")]
    pub split: Option<u64>,
    /// Build a differential bundle against BASE, an earlier bundle (.tar.zst, .run, FILE.001
    /// or the directory of its volumes) or the FILE.manifest.json written beside it: the
    /// manifest describes the whole new state, the bundle carries only the files whose sha256
    /// BASE lacks (metadata always). Apply it where BASE, or a later state, is applied.
    #[arg(long, value_name = "BASE")]
    pub since: Option<PathBuf>,
}

/// `4G`, `4700M`, `1MiB`, `65536`: a size in bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let digits = text.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit: u64 = match &text[digits.len()..] {
        "" => 1,
        "K" | "k" => 1000,
        "M" => 1000 * 1000,
        "G" => 1000 * 1000 * 1000,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?}; use K, M, G, KiB, MiB or GiB"
            ));
        }
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size like 4G or 4700M"))?;
    let size = n
        .checked_mul(unit)
        .ok_or_else(|| format!("{text} is too large"))?;
    if size < bundle::volume::MIN_VOLUME_SIZE {
        return Err(format!(
            "volumes must be at least {} bytes",
            bundle::volume::MIN_VOLUME_SIZE
        ));
    }
    Ok(size)
}

pub async fn run(args: &BuildArgs) -> Result<(), BuildError> {
    let sel = &args.selection;
    let reporter = TermReporter::new(sel.quiet);
    let mut opts = WriteOptions {
        split: args.split,
        io: sel.io,
        ..WriteOptions::default()
    };
    if let Some(key) = &args.sign {
        opts.signing_key = Some(bundle::sign::load_signing_key(key)?);
    }
    let installers = if args.no_installer {
        Vec::new()
    } else {
        find_installers(&args.installer)?
    };
    if args.self_extracting {
        let arch = sel.arches.first().map_or("x86_64", String::as_str);
        let installer = installers.iter().find(|i| i.arch == arch).ok_or_else(|| {
            BuildError::Usage(format!(
                "--self-extracting needs an installer for {arch} (the first --arch); the installers given are for: {}. Pass --installer FILE built for {arch}",
                installers.iter().map(|i| i.arch.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        opts.self_extracting = Some(installer.clone());
    }
    let output = args.output.clone().unwrap_or_else(|| {
        PathBuf::from(if args.self_extracting {
            "bundle.run"
        } else {
            "bundle.tar.zst"
        })
    });
    let base = args.since.as_deref().map(read_base).transpose()?;
    // Every setting is resolved (and a bad one refused) before the first request: only the
    // PyPI settings may fetch (an unshipped Kubespray release's requirements), so they go last.
    let rpm = (!sel.no_rpm).then(|| sel.rpm_options()).transpose()?;
    let kubespray = sel.kubespray_options()?;
    let fetcher = sel.fetcher()?;
    let pypi = sel.pypi_settings(&fetcher).await?;
    let mut parts = BuildParts {
        base,
        ..BuildParts::default()
    };
    if let Some(rpm) = &rpm {
        add_rpm_part(&mut parts, rpm, &fetcher, &reporter).await?;
    }
    if let Some(pypi) = &pypi {
        add_pypi_part(&mut parts, pypi, &fetcher, &reporter).await?;
    }
    if let Some(kubespray) = &kubespray {
        add_kubespray_part(&mut parts, kubespray, &fetcher, &reporter).await?;
    }
    add_installer_part(&mut parts, &installers);
    let base_id = parts.base.as_ref().map(|b| b.bundle_id.clone());
    let written = pack(parts, &output, &opts, &fetcher, &reporter).await?;
    if let Some(id) = base_id {
        println!("differential, base {id}");
    }
    if !sel.quiet {
        eprintln!(
            "downloaded {} (the rest came from the cache at {})",
            indicatif::HumanBytes(fetcher.downloaded_bytes()),
            fetcher.cache().root().display()
        );
    }
    if !written.volumes.is_empty() {
        for volume in &written.volumes {
            println!("{}", volume.display());
        }
        println!(
            "{} volumes ({} bytes of bundle stream{}), checksums in {}",
            written.volumes.len(),
            written.size,
            if written.signed { ", signed" } else { "" },
            written.sha256_path.display()
        );
        return Ok(());
    }
    println!(
        "{} ({} bytes, sha256 {}{}{})",
        written.path.display(),
        written.size,
        written.sha256,
        if written.signed { ", signed" } else { "" },
        match written.reused {
            Some(Reuse::Unchanged) => {
                "; already up to date (unchanged since it was written), nothing rewritten"
            }
            Some(Reuse::Verified) => "; already up to date (checked in full), nothing rewritten",
            None => "",
        }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_take_decimal_and_binary_suffixes() {
        assert_eq!(parse_size("4G"), Ok(4_000_000_000));
        assert_eq!(parse_size("4700M"), Ok(4_700_000_000));
        assert_eq!(parse_size("1MiB"), Ok(1 << 20));
        assert_eq!(parse_size("65536"), Ok(65536));
        assert!(parse_size("1K").is_err(), "below the smallest volume");
        assert!(parse_size("4T").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("99999999999G").is_err());
    }
}
