//! Benchmark driver for `scripts/bench-repodata`: generate a tree of synthetic RPMs, or build
//! repodata for a tree with sha256 values handed in (as `installer apply` does after the
//! bundle verified them).
//!
//! ```text
//! repodata_bench generate DIR COUNT KIB_PER_PACKAGE
//! repodata_bench build DIR SHA256SUMS_FILE [gzip|zstd]
//! ```

use std::path::{Path, PathBuf};

use installer::repodata::{
    self, Compression, KnownDigest, Options, PackageFile, PackageSet, RepodataInput,
};
use rayon::prelude::*;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("generate") => generate(
            Path::new(&args[2]),
            args[3].parse().unwrap(),
            args[4].parse().unwrap(),
        ),
        Some("build") => build(
            Path::new(&args[2]),
            Path::new(&args[3]),
            args.get(4).map(String::as_str),
        ),
        _ => {
            eprintln!(
                "usage: repodata_bench generate DIR COUNT KIB | build DIR SHA256SUMS [gzip|zstd]"
            );
            std::process::exit(2);
        }
    }
}

/// Cheap deterministic incompressible bytes (xorshift), so payload sizes are real sizes.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn generate(dir: &Path, count: usize, kib: usize) {
    (0..count).into_par_iter().for_each(|i| {
        let name = format!("bench-pkg{i:05}");
        let arch = if i % 5 == 0 { "noarch" } else { "x86_64" };
        let config = rpm::BuildConfig::v4()
            .compression(rpm::CompressionType::None)
            .source_date(1_700_000_000u32);
        let mut builder = rpm::PackageBuilder::new(&name, "1.2.3", "MIT", arch, "A generated package for benchmarks");
        builder
            .using_config(config)
            .release("4.el10")
            .description(format!("{name} exists to give repodata generation realistic work: files, dependencies and changelogs."))
            .url("https://example.invalid/bench")
            .vendor("Bench")
            .packager("Bench <bench@example.invalid>")
            .build_host("builder.example.invalid");
        builder
            .with_file_contents(noise(i as u64, kib * 1024), rpm::FileOptions::new(format!("/usr/lib64/{name}/blob")))
            .unwrap();
        for f in 0..12 {
            let path = match f % 4 {
                0 => format!("/usr/bin/{name}-tool{f}"),
                1 => format!("/etc/{name}/conf{f}.conf"),
                2 => format!("/usr/share/doc/{name}/README{f}"),
                _ => format!("/usr/lib64/{name}/module{f}.so"),
            };
            builder
                .with_file_contents(format!("{name} {f}\n"), rpm::FileOptions::new(path))
                .unwrap();
        }
        builder.provides(rpm::Dependency::any(format!("{name}-capability")));
        builder.provides(rpm::Dependency::any(format!("lib{name}.so.1()(64bit)")));
        if i > 0 {
            builder.requires(rpm::Dependency::greater_eq(format!("bench-pkg{:05}", i - 1), "1.0"));
            builder.requires(rpm::Dependency::any(format!("libbench-pkg{:05}.so.1()(64bit)", i / 2)));
        }
        builder.requires(rpm::Dependency::any("/bin/sh"));
        for c in 0..4u32 {
            builder.add_changelog_entry(
                format!("Bench Bot <bench@example.invalid> - 1.2.{c}-1"),
                format!("- change number {c} of {name}"),
                1_600_000_000 + c * 86_400,
            );
        }
        let package = builder.build().unwrap();
        let sub = dir.join("Packages").join(&name[6..7]);
        std::fs::create_dir_all(&sub).unwrap();
        package.write_file(sub.join(format!("{name}-1.2.3-4.el10.{arch}.rpm"))).unwrap();
    });
}

fn build(dir: &Path, sums: &Path, compression: Option<&str>) {
    let files = std::fs::read_to_string(sums)
        .unwrap()
        .lines()
        .map(|line| {
            let (sha256, path) = line.split_once("  ").unwrap();
            let path = path.trim_start_matches("./").to_owned();
            let size = std::fs::metadata(dir.join(&path)).unwrap().len();
            PackageFile {
                relative_path: path,
                known: Some(KnownDigest {
                    sha256: sha256.to_owned(),
                    size,
                }),
            }
        })
        .collect();
    let input = RepodataInput {
        repo_dir: PathBuf::from(dir),
        package_sets: vec![PackageSet {
            label: "bench".into(),
            files,
        }],
        upstream: Vec::new(),
    };
    let options = Options {
        compression: match compression {
            Some("zstd") => Compression::Zstd,
            _ => Compression::Gzip,
        },
        revision: 1_700_000_000,
        ..Options::default()
    };
    let outcome = repodata::build(&input, &options, &bundle::NoProgress).unwrap();
    eprintln!(
        "indexed {} packages, rewritten: {}",
        outcome.packages, outcome.rewritten
    );
}
