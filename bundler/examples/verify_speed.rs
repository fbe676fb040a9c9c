//! Micro-benchmark of package signature checks, run by `scripts/bench-verify`: CPU time per
//! package of the bundler's check ([`ReleaseKey::verify_bytes`]: header parse, digests,
//! every signature) and of the same check done with the `rpm` crate's own OpenPGP verifier,
//! which the bundler used before. Packages are read into memory first, so the disk is not
//! measured; one thread, so CPU time per package is what a core pays.
//!
//!   cargo run --release -p bundler --example verify_speed -- KEYFILE SECONDS RPM...

use std::path::{Path, PathBuf};
use std::time::Instant;

use bundler::rpm::verify::ReleaseKey;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(key_file), Some(seconds)) = (args.next(), args.next()) else {
        anyhow::bail!("usage: verify_speed KEYFILE SECONDS RPM...");
    };
    let seconds: f64 = seconds.parse()?;
    let packages: Vec<(PathBuf, Vec<u8>)> = args
        .map(|p| Ok((PathBuf::from(&p), fs_err::read(&p)?)))
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(!packages.is_empty(), "no RPM given");
    let key = ReleaseKey::load(Path::new(&key_file), None)?;
    let armored = fs_err::read_to_string(&key_file)?;
    let general = rpm::signature::pgp::Verifier::from_asc(&armored)?;

    let bundler = per_package(&packages, seconds, |path, data| {
        key.verify_bytes(data, path, "bench")?;
        Ok(())
    })?;
    let rpm_crate = per_package(&packages, seconds, |_, data| {
        let meta = rpm::PackageMetadata::parse(&mut &data[..])?;
        let report = meta.check_signatures(&general)?;
        report.digests.result()?;
        for s in report.signatures {
            if let Some(e) = s.error {
                return Err(e.into());
            }
        }
        Ok(())
    })?;
    println!(
        "{} packages; CPU per package: bundler check {:.1} us, rpm crate verifier {:.1} us",
        packages.len(),
        bundler * 1e6,
        rpm_crate * 1e6
    );
    Ok(())
}

/// Runs `check` over every package, round after round, for at least `seconds`; CPU seconds
/// per package.
fn per_package(
    packages: &[(PathBuf, Vec<u8>)],
    seconds: f64,
    check: impl Fn(&Path, &[u8]) -> anyhow::Result<()>,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let cpu_start = cpu_seconds()?;
    let mut done = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        for (path, data) in packages {
            check(path, data)?;
            done += 1;
        }
    }
    Ok((cpu_seconds()? - cpu_start) / done as f64)
}

/// User plus system CPU time of this process, from /proc/self/stat (in clock ticks of 1/100 s,
/// fine over runs of seconds).
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = fs_err::read_to_string("/proc/self/stat")?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow::anyhow!("unexpected /proc/self/stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line; `rest` starts at field 3.
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    Ok(ticks / 100.0)
}
