//! Generates a Rocky-like mirror tree on disk: `<root>/<release>/{BaseOS,AppStream,extras}/
//! <arch>/os/` with signed packages from [`crate::rpmgen`], repodata from `createrepo_c`,
//! comps and updateinfo attached with `modifyrepo_c`, `repomd.xml` signed by the test key
//! (`repomd.xml.asc`, as Rocky signs it), and the public test key at the root.
//!
//! The package set mirrors the shapes real repos have that a mirroring tool must get right:
//! file requires (`/bin/sh`), sonames, epochs, several versions of one package, a rich
//! dependency, a Recommends that only weak-dependency closure pulls in, cross-repo
//! dependencies, and noarch packages. It also holds every package of Kubespray's node set
//! (`manifests/kubespray-rocky10-packages.txt`) under its Rocky name, with the names Kubespray
//! asks for that are only provides (`iptables`, `ebtables`, `conntrack`) provided as on EL 10. Filler packages with incompressible payloads give the
//! size a test or benchmark asks for. AppStream is rewritten Peridot-style (`<uuid>-PRIMARY.
//! xml.gz`, empty elements omitted) and extras uses xz metadata (Debian's createrepo_c 0.17 has no zstd), so readers meet every
//! naming and compression form that Rocky mirrors serve.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use rayon::prelude::*;

use crate::peridot::rewrite_peridot_style;
use crate::rpmgen::{
    Dep, PackageSpec, RSA_TEST_KEY_PUBLIC, RSA_TEST_KEY_SECRET, SplitMix, TEST_KEY_FILE,
    TEST_KEY_PUBLIC, TEST_KEY_SECRET, detached_signature, write_package_signed,
};

/// Fixed repomd revision, so regenerating a mirror gives the same metadata.
pub const REVISION: u64 = 1_750_000_000;

/// What to generate.
#[derive(Debug, Clone)]
pub struct MirrorSpec {
    pub root: PathBuf,
    pub release: String,
    pub arches: Vec<String>,
    /// Number of filler packages (spread over BaseOS/AppStream/extras by `filler_split`), on top of the
    /// ~25 hand-shaped core packages.
    pub filler_packages: usize,
    /// Payload size range of filler packages, in bytes.
    pub filler_min_bytes: u64,
    pub filler_max_bytes: u64,
    /// Percent of the filler packages in BaseOS and in AppStream (extras gets the rest).
    pub filler_split: [usize; 2],
    /// Extra files per filler package, for file lists of real size (Rocky's packages carry
    /// about a hundred). With any, each filler package after the first of its repo also
    /// requires a file under `/usr/share` of an earlier one, which only filelists lists
    /// (primary names only `/etc`, `bin/` and `/usr/lib/sendmail` paths).
    pub filler_files: usize,
    pub seed: u64,
    /// Names of packages written without a signature (for the unsigned-package test).
    pub unsigned: Vec<String>,
    /// Version of `rocky-release`: the minor release the repos hold.
    pub minor_release: String,
    /// Write `repodata/repomd.xml.asc` (signed by `keys.metadata`) in every repo.
    pub sign_metadata: bool,
    /// The key file the mirror publishes and the keys that sign its packages and metadata.
    pub keys: MirrorKeys,
}

/// Who signs what in a generated mirror.
#[derive(Debug, Clone)]
pub struct MirrorKeys {
    /// File name of the public key file at the mirror root, and its contents.
    pub file: String,
    pub public: String,
    /// ASCII-armored secret keys that sign every package, in turn (several: several signatures).
    pub packages: Vec<String>,
    /// Per repo directory (`BaseOS`...), secret keys that replace `packages` there.
    pub per_repo: Vec<(String, Vec<String>)>,
    /// The secret key that signs `repomd.xml`.
    pub metadata: String,
}

impl MirrorKeys {
    /// Everything signed by the project's test key (ed25519), published as
    /// `RPM-GPG-KEY-kubespray-test`.
    pub fn test_key() -> Self {
        Self {
            file: TEST_KEY_FILE.to_string(),
            public: TEST_KEY_PUBLIC.to_string(),
            packages: vec![TEST_KEY_SECRET.to_string()],
            per_repo: Vec::new(),
            metadata: TEST_KEY_SECRET.to_string(),
        }
    }

    /// Everything signed by the project's RSA-4096 test key, as Rocky signs, published under
    /// the same file name as [`MirrorKeys::test_key`] so scripts need not know which it is.
    pub fn rsa_test_key() -> Self {
        Self {
            file: TEST_KEY_FILE.to_string(),
            public: RSA_TEST_KEY_PUBLIC.to_string(),
            packages: vec![RSA_TEST_KEY_SECRET.to_string()],
            per_repo: Vec::new(),
            metadata: RSA_TEST_KEY_SECRET.to_string(),
        }
    }

    fn for_repo(&self, dir_name: &str) -> &[String] {
        self.per_repo
            .iter()
            .find(|(dir, _)| dir == dir_name)
            .map_or(&self.packages[..], |(_, keys)| &keys[..])
    }
}

impl MirrorSpec {
    /// A mirror for tests: tens of packages, a few MB.
    pub fn small(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            release: "10".to_string(),
            arches: vec!["x86_64".to_string()],
            filler_packages: 20,
            filler_min_bytes: 16 * 1024,
            filler_max_bytes: 256 * 1024,
            filler_split: [30, 65],
            filler_files: 0,
            seed: 42,
            unsigned: Vec::new(),
            minor_release: "10.0".to_string(),
            sign_metadata: true,
            keys: MirrorKeys::test_key(),
        }
    }

    /// Where the repo `dir_name` (BaseOS, AppStream, extras) for `arch` lives, as on a Rocky
    /// mirror: `<root>/<release>/<dir_name>/<arch>/os`.
    pub fn repo_path(&self, dir_name: &str, arch: &str) -> PathBuf {
        self.root
            .join(&self.release)
            .join(dir_name)
            .join(arch)
            .join("os")
    }
}

/// One generated repository.
#[derive(Debug, Clone)]
pub struct GeneratedRepo {
    /// Upstream directory name: BaseOS, AppStream, extras.
    pub dir_name: String,
    pub arch: String,
    /// `<root>/<release>/<dir_name>/<arch>/os`.
    pub path: PathBuf,
    /// Relative paths of the packages (e.g. `Packages/b/bash-...rpm`).
    pub packages: Vec<String>,
    pub package_bytes: u64,
}

/// The generated mirror.
#[derive(Debug, Clone)]
pub struct GeneratedMirror {
    pub root: PathBuf,
    pub repos: Vec<GeneratedRepo>,
    /// Path of the public key file (`<root>/RPM-GPG-KEY-kubespray-test` by default).
    pub key_path: PathBuf,
}

impl GeneratedMirror {
    pub fn repo(&self, dir_name: &str, arch: &str) -> &GeneratedRepo {
        self.repos
            .iter()
            .find(|r| r.dir_name == dir_name && r.arch == arch)
            .unwrap_or_else(|| panic!("no generated repo {dir_name}/{arch}"))
    }

    pub fn total_bytes(&self) -> u64 {
        self.repos.iter().map(|r| r.package_bytes).sum()
    }

    pub fn total_packages(&self) -> usize {
        self.repos.iter().map(|r| r.packages.len()).sum()
    }
}

pub const REPO_DIRS: [&str; 3] = ["BaseOS", "AppStream", "extras"];

/// Generate the whole mirror. Requires `createrepo_c` and `modifyrepo_c` on PATH.
pub fn generate_mirror(spec: &MirrorSpec) -> Result<GeneratedMirror> {
    fs_err::create_dir_all(&spec.root)?;
    let key_path = spec.root.join(&spec.keys.file);
    fs_err::write(&key_path, &spec.keys.public)?;
    let mut repos = Vec::new();
    for arch in &spec.arches {
        for dir_name in REPO_DIRS {
            let path = spec.repo_path(dir_name, arch);
            let specs = package_set(spec, dir_name, arch);
            let written: Vec<(String, u64)> = specs
                .par_iter()
                .map(|p| {
                    let keys: Vec<&str> = if spec.unsigned.contains(&p.name) {
                        Vec::new()
                    } else {
                        spec.keys
                            .for_repo(dir_name)
                            .iter()
                            .map(String::as_str)
                            .collect()
                    };
                    let file = write_package_signed(p, &path, &keys)?;
                    Ok((p.relative_path(), fs_err::metadata(&file)?.len()))
                })
                .collect::<Result<_>>()?;
            write_repodata(&path, dir_name)?;
            if spec.sign_metadata {
                let repomd = fs_err::read(path.join("repodata/repomd.xml"))?;
                fs_err::write(
                    path.join("repodata/repomd.xml.asc"),
                    detached_signature(&spec.keys.metadata, &repomd)?,
                )?;
            }
            repos.push(GeneratedRepo {
                dir_name: dir_name.to_string(),
                arch: arch.clone(),
                package_bytes: written.iter().map(|(_, s)| s).sum(),
                packages: written.into_iter().map(|(p, _)| p).collect(),
                path,
            });
        }
    }
    Ok(GeneratedMirror {
        root: spec.root.clone(),
        repos,
        key_path,
    })
}

fn pkg(name: &str, version: &str, arch: &str, f: impl FnOnce(&mut PackageSpec)) -> PackageSpec {
    let mut p = PackageSpec::new(name, version, arch);
    f(&mut p);
    p
}

fn file(path: &str) -> (String, Vec<u8>) {
    (path.to_string(), format!("generated {path}\n").into_bytes())
}

const LIBC: &str = "libc.so.6()(64bit)";
const LIBSSL: &str = "libssl.so.3()(64bit)";

/// The packages of one repo for one arch: the hand-shaped core plus this repo's filler share.
fn package_set(spec: &MirrorSpec, dir_name: &str, arch: &str) -> Vec<PackageSpec> {
    let mut set = match dir_name {
        "BaseOS" => baseos_core(arch, &spec.minor_release),
        "AppStream" => appstream_core(arch),
        _ => extras_core(),
    };
    set.extend(kubespray_node_packages(dir_name, arch));
    let (start, end) = filler_range(spec.filler_packages, spec.filler_split, dir_name);
    let mut rng = SplitMix::new(spec.seed);
    for i in 0..spec.filler_packages {
        // Draw for every index so a package's shape does not depend on the repo split.
        let size = rng.range(spec.filler_min_bytes, spec.filler_max_bytes);
        let needs_sh = rng.chance(0.5);
        let noarch = rng.chance(0.2);
        if i < start || i >= end {
            continue;
        }
        let name = filler_name(i);
        let pkg_arch = if noarch { "noarch" } else { arch };
        set.push(pkg(&name, "1.0", pkg_arch, |p| {
            p.blob_bytes = size;
            p.seed = spec.seed ^ (i as u64).wrapping_mul(0x1000_0000_01B3);
            p.files.push(file(&format!("/usr/bin/{name}")));
            if !noarch {
                p.requires.push(Dep::any(LIBC));
            }
            if needs_sh {
                p.requires.push(Dep::any("/bin/sh"));
            }
            for f in 0..spec.filler_files {
                p.files
                    .push(file(&format!("/usr/share/{name}/data/file{f:03}")));
            }
            if spec.filler_files > 0 && i > start {
                // Parents as in a binary heap: a slim closure stays a dozen packages deep.
                let parent = filler_name(start + (i - start - 1) / 2);
                p.requires
                    .push(Dep::any(format!("/usr/share/{parent}/data/file000")));
            }
        }));
    }
    set
}

const FILLER_WORDS: [&str; 8] = [
    "alpha",
    "libbeta",
    "gamma",
    "perl-delta",
    "python3-eps",
    "zeta",
    "mod",
    "tool",
];

fn filler_name(i: usize) -> String {
    format!("{}-gen{i:05}", FILLER_WORDS[i % FILLER_WORDS.len()])
}

fn filler_range(total: usize, split: [usize; 2], dir_name: &str) -> (usize, usize) {
    let baseos = total * split[0] / 100;
    let appstream = total * split[1] / 100;
    match dir_name {
        "BaseOS" => (0, baseos),
        "AppStream" => (baseos, baseos + appstream),
        _ => (baseos + appstream, total),
    }
}

fn openssl_libs(arch: &str, release: &str) -> PackageSpec {
    pkg("openssl-libs", "3.2.2", arch, |p| {
        p.epoch = 1;
        p.release = release.into();
        p.provides.push(Dep::any(LIBSSL));
        p.requires.push(Dep::any(LIBC));
        p.requires.push(Dep::any("ca-certificates"));
    })
}

fn baseos_core(arch: &str, minor: &str) -> Vec<PackageSpec> {
    vec![
        pkg("filesystem", "3.18", arch, |p| {
            p.files.push(file("/etc/filesystem.conf"));
        }),
        pkg("rocky-release", minor, "noarch", |p| {
            p.provides
                .push(Dep::Eq("redhat-release".into(), minor.into()));
            p.provides
                .push(Dep::Eq("system-release".into(), minor.into()));
            p.files.push(file("/etc/rocky-release"));
        }),
        pkg("glibc", "2.39", arch, |p| {
            p.release = "17.el10".into();
            p.provides.push(Dep::any(LIBC));
            p.provides.push(Dep::any("libc.so.6(GLIBC_2.34)(64bit)"));
            p.requires.push(Dep::any("filesystem"));
            p.files.push(file("/usr/lib64/libc.so.6"));
            p.files.push(file("/etc/ld.so.conf"));
        }),
        pkg("bash", "5.2.26", arch, |p| {
            p.requires.push(Dep::any(LIBC));
            p.files.push(file("/usr/bin/bash"));
            p.files.push(file("/bin/sh"));
            p.changelog.push((
                "Test Builder <builder@example.invalid> - 5.2.26-1".into(),
                "- Rebase".into(),
                1_749_000_000,
            ));
        }),
        pkg("coreutils-common", "9.5", "noarch", |_| {}),
        pkg("coreutils", "9.5", arch, |p| {
            p.requires.push(Dep::any("/bin/sh"));
            p.requires.push(Dep::any(LIBC));
            p.requires
                .push(Dep::Eq("coreutils-common".into(), "9.5-1.el10".into()));
            p.files.push(file("/usr/bin/ls"));
        }),
        pkg("tzdata", "2025a", "noarch", |p| {
            p.files.push(file("/usr/share/zoneinfo/UTC"));
        }),
        pkg("ca-certificates", "2024.2.69", "noarch", |p| {
            p.files.push(file("/etc/pki/tls/cert.pem"));
        }),
        // Two builds of one package: the closure must take the newest EVR.
        openssl_libs(arch, "12.el10"),
        openssl_libs(arch, "16.el10"),
        pkg("publicsuffix-list", "20240107", "noarch", |_| {}),
        pkg("curl", "8.9.1", arch, |p| {
            p.requires.push(Dep::any(LIBSSL));
            p.requires.push(Dep::any(LIBC));
            p.recommends.push(Dep::any("publicsuffix-list"));
            p.files.push(file("/usr/bin/curl"));
        }),
        pkg("python3", "3.12.5", arch, |p| {
            p.requires.push(Dep::any(LIBSSL));
            p.requires.push(Dep::any("/bin/sh"));
            p.files.push(file("/usr/bin/python3"));
        }),
    ]
}

fn appstream_core(arch: &str) -> Vec<PackageSpec> {
    vec![
        pkg("nginx-filesystem", "1.26.3", "noarch", |p| {
            p.epoch = 2;
            p.files.push(file("/etc/nginx/conf.d/.keep"));
        }),
        pkg("httpd-filesystem", "2.4.63", "noarch", |p| {
            p.files.push(file("/etc/httpd/conf.d/.keep"));
        }),
        pkg("nginx-core", "1.26.3", arch, |p| {
            p.epoch = 2;
            p.requires.push(Dep::any(LIBSSL));
            p.requires.push(Dep::any(LIBC));
            p.files.push(file("/usr/sbin/nginx"));
        }),
        pkg("nginx", "1.26.3", arch, |p| {
            p.epoch = 2;
            p.requires
                .push(Dep::Eq("nginx-core".into(), "2:1.26.3-1.el10".into()));
            p.requires
                .push(Dep::any("(nginx-filesystem or httpd-filesystem)"));
            p.requires
                .push(Dep::GreaterEq("system-release".into(), "10".into()));
            p.provides.push(Dep::any("webserver"));
        }),
        pkg("chrony", "4.6", arch, |p| {
            p.requires.push(Dep::any(LIBC));
            p.requires.push(Dep::any("/bin/sh"));
            // A path createrepo_c leaves out of primary: only filelists can answer it.
            p.requires.push(Dep::any("/usr/share/zoneinfo/UTC"));
            p.recommends.push(Dep::any("tzdata"));
            p.files.push(file("/usr/sbin/chronyd"));
            p.files.push(file("/etc/chrony.conf"));
        }),
        pkg("git-core-doc", "2.47.1", "noarch", |_| {}),
        pkg("git-core", "2.47.1", arch, |p| {
            p.requires.push(Dep::any(LIBC));
            p.requires.push(Dep::any("(git-core-doc if bash)"));
            p.files.push(file("/usr/bin/git"));
        }),
        pkg("container-tools", "10.0", "noarch", |p| {
            p.requires.push(Dep::any("git-core"));
            p.requires.push(Dep::any("curl"));
        }),
    ]
}

/// The packages of Kubespray's node set not already in the core sets, in the repo EL 10 ships
/// them in, with a few of their real dependencies so the closure has something to follow.
fn kubespray_node_packages(dir_name: &str, arch: &str) -> Vec<PackageSpec> {
    let plain = |name: &str, version: &str, bin: &str| {
        pkg(name, version, arch, |p| {
            p.requires.push(Dep::any(LIBC));
            p.files.push(file(bin));
        })
    };
    match dir_name {
        "BaseOS" => vec![
            pkg("bash-completion", "2.11", "noarch", |p| {
                p.epoch = 1;
                p.requires.push(Dep::any("bash"));
                p.files.push(file("/etc/profile.d/bash_completion.sh"));
            }),
            pkg("device-mapper-libs", "1.02.202", arch, |p| {
                p.epoch = 10;
                p.provides.push(Dep::any("libdevmapper.so.1.02()(64bit)"));
                p.requires.push(Dep::any(LIBC));
            }),
            plain("e2fsprogs", "1.47.1", "/usr/sbin/mkfs.ext4"),
            pkg("iptables-libs", "1.8.11", arch, |p| {
                p.provides.push(Dep::any("libxtables.so.12()(64bit)"));
                p.requires.push(Dep::any(LIBC));
            }),
            pkg("iptables-nft", "1.8.11", arch, |p| {
                p.provides.push(Dep::any("iptables"));
                p.provides.push(Dep::any("ebtables"));
                p.requires.push(Dep::any("libxtables.so.12()(64bit)"));
                p.files.push(file("/usr/sbin/iptables-nft"));
            }),
            plain("iproute", "6.11.0", "/usr/sbin/ip"),
            pkg("iproute-tc", "6.11.0", arch, |p| {
                p.requires.push(Dep::any("iproute"));
                p.files.push(file("/usr/sbin/tc"));
            }),
            plain("iputils", "20240905", "/usr/bin/ping"),
            pkg("libseccomp", "2.5.6", arch, |p| {
                p.provides.push(Dep::any("libseccomp.so.2()(64bit)"));
                p.requires.push(Dep::any(LIBC));
            }),
            plain("openssl", "3.2.2", "/usr/bin/openssl"),
            plain("rsync", "3.4.1", "/usr/bin/rsync"),
            plain("tar", "1.35", "/usr/bin/tar"),
            plain("unzip", "6.0", "/usr/bin/unzip"),
            plain("xfsprogs", "6.11.0", "/usr/sbin/mkfs.xfs"),
            plain("ipset", "7.21", "/usr/sbin/ipset"),
            plain("nftables", "1.1.1", "/usr/sbin/nft"),
            plain("ethtool", "6.11", "/usr/sbin/ethtool"),
            pkg("kernel-core", "6.12.0", arch, |p| {
                p.release = "55.el10".into();
                p.provides.push(Dep::Eq(
                    "kernel-uname-r".into(),
                    format!("6.12.0-55.el10.{arch}"),
                ));
                p.files.push(file("/lib/modules/6.12.0-55.el10/vmlinuz"));
            }),
            pkg("kernel-modules-extra", "6.12.0", arch, |p| {
                p.release = "55.el10".into();
                p.requires.push(Dep::Eq(
                    "kernel-uname-r".into(),
                    format!("6.12.0-55.el10.{arch}"),
                ));
                p.files
                    .push(file("/lib/modules/6.12.0-55.el10/extra/sctp.ko.xz"));
            }),
        ],
        "AppStream" => vec![
            pkg("conntrack-tools", "1.4.8", arch, |p| {
                p.provides.push(Dep::any("conntrack"));
                p.requires.push(Dep::any(LIBC));
                p.files.push(file("/usr/sbin/conntrack"));
            }),
            pkg("container-selinux", "2.235.0", "noarch", |p| {
                p.epoch = 4;
                p.files
                    .push(file("/usr/share/selinux/packages/container.pp.bz2"));
            }),
            pkg("nss", "3.101.0", arch, |p| {
                p.requires.push(Dep::any(LIBC));
                p.files.push(file("/usr/lib64/libnss3.so"));
            }),
            plain("socat", "1.7.4.4", "/usr/bin/socat"),
            plain("ipvsadm", "1.31", "/usr/sbin/ipvsadm"),
            pkg("python3-libselinux", "3.8", arch, |p| {
                p.requires.push(Dep::any("python3"));
                p.files.push(file(
                    "/usr/lib64/python3.12/site-packages/selinux/__init__.py",
                ));
            }),
        ],
        _ => Vec::new(),
    }
}

fn extras_core() -> Vec<PackageSpec> {
    vec![
        pkg("epel-release", "10", "noarch", |p| {
            p.release = "2.el10_0".into();
            p.requires
                .push(Dep::GreaterEq("redhat-release".into(), "10".into()));
            p.files.push(file("/etc/yum.repos.d/epel.repo"));
        }),
        pkg("elrepo-release", "10.0", "noarch", |p| {
            p.files.push(file("/etc/yum.repos.d/elrepo.repo"));
        }),
    ]
}

/// Rewrite one repo's metadata after a test changed its packages (the next sync of a mirror):
/// the same createrepo_c run as [`generate_mirror`], and `repomd.xml` signed again.
pub fn refresh_repo(spec: &MirrorSpec, repo: &GeneratedRepo) -> Result<()> {
    fs_err::remove_dir_all(repo.path.join("repodata"))?;
    write_repodata(&repo.path, &repo.dir_name)?;
    if spec.sign_metadata {
        let repomd = fs_err::read(repo.path.join("repodata/repomd.xml"))?;
        fs_err::write(
            repo.path.join("repodata/repomd.xml.asc"),
            detached_signature(&spec.keys.metadata, &repomd)?,
        )?;
    }
    Ok(())
}

/// Run createrepo_c (and modifyrepo_c for updateinfo) the way Rocky's compose does, then give
/// AppStream Peridot-style names.
fn write_repodata(repo: &Path, dir_name: &str) -> Result<()> {
    let work = repo.join(".gen");
    fs_err::create_dir_all(&work)?;
    let mut cmd = Command::new("createrepo_c");
    cmd.args(["--no-database", "--workers", "2", "--quiet"])
        .arg(format!("--revision={REVISION}"))
        .arg("--set-timestamp-to-revision")
        .arg("--excludes=.gen/*");
    if dir_name != "extras" {
        let comps = work.join("comps.xml");
        fs_err::write(&comps, comps_xml(dir_name))?;
        cmd.arg("-g").arg(&comps);
    } else {
        cmd.arg("--general-compress-type=xz");
    }
    run(cmd.arg(repo))?;
    if dir_name != "extras" {
        let updateinfo = work.join("updateinfo.xml");
        fs_err::write(&updateinfo, updateinfo_xml(dir_name))?;
        let mut cmd = Command::new("modifyrepo_c");
        cmd.args(["--mdtype=updateinfo", "--compress-type=gz"])
            .arg(&updateinfo)
            .arg(repo.join("repodata"));
        run(&mut cmd)?;
    }
    fs_err::remove_dir_all(&work)?;
    if dir_name == "AppStream" {
        rewrite_peridot_style(&repo.join("repodata"), REVISION)?;
    }
    Ok(())
}

fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("running {cmd:?} (is createrepo_c installed?)"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn comps_xml(dir_name: &str) -> String {
    let (id, name, packages): (&str, &str, &[&str]) = match dir_name {
        "BaseOS" => (
            "core",
            "Core",
            &["bash", "coreutils", "filesystem", "glibc"],
        ),
        _ => ("web-server", "Basic Web Server", &["nginx", "chrony"]),
    };
    let reqs: String = packages
        .iter()
        .map(|p| format!("      <packagereq type=\"mandatory\">{p}</packagereq>\n"))
        .collect();
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE comps PUBLIC \"-//Red Hat, Inc.//DTD Comps info//EN\" \"comps.dtd\">\n<comps>\n  <group>\n    <id>{id}</id>\n    <name>{name}</name>\n    <description>Generated group</description>\n    <default>true</default>\n    <uservisible>true</uservisible>\n    <packagelist>\n{reqs}    </packagelist>\n  </group>\n</comps>\n"
    )
}

fn updateinfo_xml(dir_name: &str) -> String {
    let (id, name, version, release) = match dir_name {
        "BaseOS" => ("RLSA-2025:0001", "openssl-libs", "3.2.2", "16.el10"),
        _ => ("RLBA-2025:0002", "chrony", "4.6", "1.el10"),
    };
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<updates>\n  <update from=\"releng@example.invalid\" status=\"final\" type=\"security\" version=\"2\">\n    <id>{id}</id>\n    <title>Generated advisory for {name}</title>\n    <issued date=\"2025-06-15 00:00:00\"/>\n    <updated date=\"2025-06-15 00:00:00\"/>\n    <severity>Moderate</severity>\n    <description>Generated advisory.</description>\n    <references/>\n    <pkglist>\n      <collection short=\"rocky-linux-10\">\n        <name>Rocky Linux 10</name>\n        <package name=\"{name}\" version=\"{version}\" release=\"{release}\" epoch=\"0\" arch=\"x86_64\" src=\"{name}-{version}-{release}.src.rpm\">\n          <filename>{name}-{version}-{release}.x86_64.rpm</filename>\n        </package>\n      </collection>\n    </pkglist>\n  </update>\n</updates>\n"
    )
}
