//! Oracle test at scale: a few thousand generated RPMs covering what real repos hold (epochs,
//! every dependency kind and comparator, pre/post scriptlet requires, rich and file deps, libc
//! symbol versions, ghost/dir/symlink files, primary-pattern paths, same-second changelogs,
//! several arches), indexed by us and by createrepo_c and compared package by package.

use std::path::Path;

use rpm::{Dependency, DependencyFlags, FileOptions};

use super::oracle::{assert_same_as_createrepo_c, createrepo_c, known_set};
use installer::repodata::{self, Compression, Options, RepodataInput};

const COUNT: usize = 2000;

fn dep(name: String, flags: DependencyFlags, version: &str) -> Dependency {
    Dependency {
        name,
        flags,
        version: version.to_owned(),
    }
}

fn generate_one(repo: &Path, i: usize) {
    let name = format!("gen{i:04}");
    let arch = ["x86_64", "noarch", "aarch64"][i % 3];
    let mut b = rpm::PackageBuilder::new(
        &name,
        &format!("1.{}", i % 7),
        "MIT",
        arch,
        "Generated package",
    );
    b.using_config(
        // zstd (the default) at its default level costs more than the rest of the test.
        rpm::BuildConfig::v4()
            .compression(rpm::CompressionType::Gzip)
            .source_date(1_700_000_000u32),
    )
    .release(format!("{}.el10", i % 4 + 1))
    .description(format!(
        "Package {i} with <markup> & \"quotes\"\nsecond line"
    ))
    .url("https://example.invalid/gen")
    .vendor("Gen")
    .packager("Gen Bot <gen@example.invalid>")
    .group("Applications/System")
    .build_host("gen.example.invalid");
    if i.is_multiple_of(5) {
        b.epoch((i % 3) as u32 + 1);
    }
    let add = |b: &mut rpm::PackageBuilder, path: String| {
        b.with_file_contents(format!("{path}\n"), FileOptions::new(path))
            .unwrap();
    };
    add(&mut b, format!("/usr/bin/{name}"));
    add(&mut b, format!("/etc/{name}.conf"));
    add(&mut b, format!("/opt/{name}/sbin/helper"));
    add(&mut b, format!("/usr/share/doc/{name}/README"));
    add(
        &mut b,
        format!(
            "/usr/lib/sendmail{}",
            if i.is_multiple_of(50) { "" } else { "-not" }
        ),
    );
    b.with_dir_entry(FileOptions::dir(format!("/var/lib/{name}")))
        .unwrap();
    b.with_ghost(FileOptions::ghost(format!("/var/log/{name}.log")))
        .unwrap();
    b.with_symlink(FileOptions::symlink(
        format!("/usr/bin/{name}-link"),
        format!("/usr/bin/{name}"),
    ))
    .unwrap();

    b.provides(Dependency::eq(format!("{name}-api"), "2.0"));
    b.provides(Dependency::any(format!("lib{name}.so.1()(64bit)")));
    let prev = format!("gen{:04}", i.saturating_sub(1));
    b.requires(Dependency::greater_eq(prev.clone(), "1.0-1"));
    b.requires(Dependency::less(
        format!("gen{:04}", (i + 7) % COUNT),
        "9:9.9",
    ));
    b.requires(Dependency::any(format!("/usr/bin/{name}"))); // own primary file: filtered
    b.requires(Dependency::any(format!("/usr/share/doc/{name}/README"))); // own, not primary
    b.requires(Dependency::any(format!(
        "/usr/bin/gen{:04}",
        (i + 1) % COUNT
    )));
    b.requires(Dependency::eq(format!("{name}-api"), "2.0")); // self-provided: filtered
    b.requires(Dependency::any("(gen0001 or gen0002)"));
    b.requires(dep(
        "libc.so.6(GLIBC_2.34)(64bit)".into(),
        DependencyFlags::ANY,
        "",
    ));
    b.requires(dep(
        "libc.so.6(GLIBC_2.3)(64bit)".into(),
        DependencyFlags::ANY,
        "",
    ));
    b.requires(dep("coreutils".into(), DependencyFlags::SCRIPT_PRE, ""));
    b.requires(dep(
        "systemd".into(),
        DependencyFlags::SCRIPT_POST | DependencyFlags::GE,
        "250",
    ));
    b.requires(dep("shadow-utils".into(), DependencyFlags::PREREQ, ""));
    b.requires(Dependency::greater_eq(prev.clone(), "1.0-1")); // duplicate: once
    b.conflicts(Dependency::less(format!("old-{name}"), "1.0"));
    b.obsoletes(Dependency::less_eq(format!("{name}-legacy"), "0.9"));
    b.recommends(Dependency::any(format!("{name}-docs")));
    b.suggests(Dependency::greater(format!("{name}-extras"), "1"));
    b.supplements(Dependency::any(format!("({name} and langpacks-de)")));
    b.enhances(Dependency::any(prev));

    let base = 1_600_000_000 + i as u32 * 100;
    // Header order is newest first; two entries share a second.
    b.add_changelog_entry(
        "Gen Bot <gen@example.invalid> - 1.2-1",
        "- newest",
        base + 20,
    );
    b.add_changelog_entry(
        "Gen Bot <gen@example.invalid> - 1.1-1   ",
        "- same second a",
        base + 10,
    );
    b.add_changelog_entry(
        "Gen Bot <gen@example.invalid> - 1.1-0",
        "- same second b",
        base + 10,
    );
    for c in 0..(i % 12) as u32 {
        b.add_changelog_entry(
            "Old <old@example.invalid> - 0.1",
            format!("- old {c}"),
            base - 1 - c,
        );
    }
    let package = b.build().unwrap();
    let dir = repo.join("Packages").join(&name[3..4]);
    std::fs::create_dir_all(&dir).unwrap();
    package
        .write_file(dir.join(format!("{name}-1.{}-{}.el10.{arch}.rpm", i % 7, i % 4 + 1)))
        .unwrap();
}

#[test]
fn generated_repo_matches_createrepo_c() {
    let temp = tempfile::tempdir().unwrap();
    let repo = temp.path().join("repo");
    let started = std::time::Instant::now();
    std::thread::scope(|scope| {
        for worker in 0..2 {
            let repo = &repo;
            scope.spawn(move || {
                for i in (worker..COUNT).step_by(2) {
                    generate_one(repo, i);
                }
            });
        }
    });
    eprintln!("generated {COUNT} RPMs in {:?}", started.elapsed());
    let input = RepodataInput {
        repo_dir: repo.clone(),
        package_sets: vec![known_set(&repo, "generated")],
        upstream: Vec::new(),
    };
    let options = Options {
        compression: Compression::Gzip,
        revision: 1_700_000_000,
        ..Options::default()
    };
    let started = std::time::Instant::now();
    assert!(
        repodata::build(&input, &options, &bundle::NoProgress)
            .unwrap()
            .rewritten
    );
    eprintln!("our repodata in {:?}", started.elapsed());
    let started = std::time::Instant::now();
    createrepo_c(&repo, &temp.path().join("createrepo_c"));
    eprintln!("createrepo_c in {:?}", started.elapsed());
    assert_eq!(
        assert_same_as_createrepo_c(&repo, &temp.path().join("createrepo_c")),
        COUNT
    );
}
