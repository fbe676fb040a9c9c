//! Builds signed test RPMs with the `rpm` crate, so tests, the demo and the benchmarks have
//! packages with real headers (epochs, file and rich dependencies, weak dependencies,
//! changelogs) and payloads of chosen size without any network or `rpmbuild`.
//!
//! Payload bytes come from a seeded generator, so they are incompressible (the benchmark needs
//! realistic transfer sizes) and the same seed always yields the same content.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The test signing key shipped with the project (ed25519, no passphrase). Debian's rpm 4.18
/// and the `rpm` crate both verify EdDSA v4 header signatures.
pub const TEST_KEY_PUBLIC: &str = include_str!("../keys/RPM-GPG-KEY-kubespray-test");
pub const TEST_KEY_SECRET: &str = include_str!("../keys/kubespray-test.secret.asc");
/// Fingerprint of [`TEST_KEY_PUBLIC`] (uppercase hex, no spaces).
pub const TEST_KEY_FINGERPRINT: &str = "58562246DEFF51EF0457D4A8F55ECD569E520ECC";
/// File name the generated mirror publishes the public key under.
pub const TEST_KEY_FILE: &str = "RPM-GPG-KEY-kubespray-test";

/// The project's RSA-4096 test signing key (no passphrase), made with gpg as Rocky's release
/// key is: packages signed with it carry v4 RSA signatures over SHA-256, as Rocky's do, so
/// benchmarks pay the verification cost operators pay.
pub const RSA_TEST_KEY_PUBLIC: &str =
    include_str!("../fixtures/keys/project/kubespray-test-rsa4096.asc");
pub const RSA_TEST_KEY_SECRET: &str =
    include_str!("../fixtures/keys/project/kubespray-test-rsa4096.secret");
/// Fingerprint of [`RSA_TEST_KEY_PUBLIC`] (uppercase hex, no spaces).
pub const RSA_TEST_KEY_FINGERPRINT: &str = "1774334884648FBF71CBE33F5CE2790B728E6F61";

/// Fixed build time of every generated package, so the same spec gives the same bytes.
const SOURCE_DATE: u32 = 1_750_000_000;

/// A small deterministic generator (SplitMix64): enough for payload bytes, sizes and fault
/// decisions, and it keeps the same output across crate upgrades.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 > 1.0 - p
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

/// A dependency as the generator writes it: name plus an optional `op version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dep {
    Any(String),
    GreaterEq(String, String),
    Eq(String, String),
}

impl Dep {
    pub fn any(name: impl Into<String>) -> Self {
        Dep::Any(name.into())
    }

    fn to_rpm(&self) -> rpm::Dependency {
        match self {
            Dep::Any(n) => rpm::Dependency::any(n.as_str()),
            Dep::GreaterEq(n, v) => rpm::Dependency::greater_eq(n.as_str(), v.as_str()),
            Dep::Eq(n, v) => rpm::Dependency::eq(n.as_str(), v.as_str()),
        }
    }
}

/// Everything that varies between generated packages.
#[derive(Debug, Clone)]
pub struct PackageSpec {
    pub name: String,
    pub epoch: u32,
    pub version: String,
    pub release: String,
    /// `x86_64`, `aarch64` or `noarch`.
    pub arch: String,
    pub summary: String,
    pub requires: Vec<Dep>,
    pub provides: Vec<Dep>,
    pub recommends: Vec<Dep>,
    /// Installed files: absolute path and content.
    pub files: Vec<(String, Vec<u8>)>,
    /// Bytes of incompressible payload added as `/usr/share/<name>/blob`.
    pub blob_bytes: u64,
    /// Seed of the blob content.
    pub seed: u64,
    pub changelog: Vec<(String, String, u32)>,
}

impl PackageSpec {
    pub fn new(name: &str, version: &str, arch: &str) -> Self {
        Self {
            name: name.to_string(),
            epoch: 0,
            version: version.to_string(),
            release: "1.el10".to_string(),
            arch: arch.to_string(),
            summary: format!("Generated test package {name}"),
            requires: Vec::new(),
            provides: Vec::new(),
            recommends: Vec::new(),
            files: vec![(
                format!("/usr/share/doc/{name}/README"),
                format!("{name} {version}\n").into_bytes(),
            )],
            blob_bytes: 0,
            seed: 0,
            changelog: vec![(
                "Test Builder <builder@example.invalid> - 1".to_string(),
                "- Initial build".to_string(),
                SOURCE_DATE - 86_400,
            )],
        }
    }

    /// `name-version-release.arch.rpm` (epoch is not part of file names).
    pub fn file_name(&self) -> String {
        format!(
            "{}-{}-{}.{}.rpm",
            self.name, self.version, self.release, self.arch
        )
    }

    /// Upstream relative path, as Rocky lays packages out: `Packages/<first letter>/<file>`.
    pub fn relative_path(&self) -> String {
        let first = self.name.chars().next().unwrap_or('_').to_ascii_lowercase();
        format!("Packages/{first}/{}", self.file_name())
    }
}

/// Build `spec`, sign it with the test key (unless `sign` is false) and write it under
/// `repo_dir` at its relative path. Returns the written path.
pub fn write_package(spec: &PackageSpec, repo_dir: &Path, sign: bool) -> Result<PathBuf> {
    let keys: &[&str] = if sign { &[TEST_KEY_SECRET] } else { &[] };
    write_package_signed(spec, repo_dir, keys)
}

/// Build `spec`, sign it with each ASCII-armored secret key in `secret_keys` in turn (none:
/// unsigned; v4 and v6 keys alike, several signatures side by side as RHEL 10 signs) and write
/// it under `repo_dir` at its relative path. Returns the written path.
pub fn write_package_signed(
    spec: &PackageSpec,
    repo_dir: &Path,
    secret_keys: &[&str],
) -> Result<PathBuf> {
    let mut package = build_package(spec)?;
    for secret in secret_keys {
        let signer =
            rpm::signature::pgp::Signer::from_asc(secret).context("loading a signing key")?;
        package
            .sign_with_timestamp(signer, SOURCE_DATE)
            .with_context(|| format!("signing {}", spec.file_name()))?;
    }
    let dest = repo_dir.join(spec.relative_path());
    fs_err::create_dir_all(dest.parent().expect("relative path has a parent"))?;
    package
        .write_file(&dest)
        .with_context(|| format!("writing {}", dest.display()))?;
    Ok(dest)
}

/// An ASCII-armored detached signature over `data` by the secret key `secret` (what Rocky's
/// compose writes as `repomd.xml.asc`), made with the `rpm` crate's signer: a binary-document
/// OpenPGP signature with the issuer's fingerprint, at the generator's fixed time.
pub fn detached_signature(secret: &str, data: &[u8]) -> Result<String> {
    use rpm::signature::Signing;
    let signer = rpm::signature::pgp::Signer::from_asc(secret).context("loading a signing key")?;
    let raw = signer
        .sign(data, rpm::Timestamp(SOURCE_DATE))
        .context("signing")?;
    let sig =
        <pgp::composed::DetachedSignature as pgp::composed::Deserializable>::from_bytes(&raw[..])
            .context("reading back the signature")?;
    sig.to_armored_string(Default::default())
        .context("armoring the signature")
}

fn build_package(spec: &PackageSpec) -> Result<rpm::Package> {
    let config = rpm::BuildConfig::v4()
        .compression(rpm::CompressionWithLevel::Zstd(1))
        .source_date(SOURCE_DATE);
    let mut builder =
        rpm::PackageBuilder::new(&spec.name, &spec.version, "MIT", &spec.arch, &spec.summary);
    builder
        .using_config(config)
        .release(spec.release.as_str())
        .description(format!(
            "{}.\nBuilt by the kubespray-offline test mirror generator.",
            spec.summary
        ))
        .vendor("kubespray-offline tests")
        .packager("Test Builder <builder@example.invalid>")
        .url("https://example.invalid/")
        .build_host("generator.invalid");
    if spec.epoch > 0 {
        builder.epoch(spec.epoch);
    }
    for dep in &spec.requires {
        builder.requires(dep.to_rpm());
    }
    for dep in &spec.provides {
        builder.provides(dep.to_rpm());
    }
    for dep in &spec.recommends {
        builder.recommends(dep.to_rpm());
    }
    for (author, text, when) in &spec.changelog {
        builder.add_changelog_entry(author, text, *when);
    }
    for (path, content) in &spec.files {
        let options = rpm::FileOptions::new(path.as_str()).permissions(0o644);
        let options = if path.contains("bin/") {
            options.permissions(0o755)
        } else {
            options
        };
        builder
            .with_file_contents(content.clone(), options)
            .with_context(|| format!("adding {path} to {}", spec.name))?;
    }
    if spec.blob_bytes > 0 {
        let mut blob = vec![0u8; spec.blob_bytes as usize];
        SplitMix::new(spec.seed).fill(&mut blob);
        builder.with_file_contents(
            blob,
            rpm::FileOptions::new(format!("/usr/share/{}/blob", spec.name)).permissions(0o644),
        )?;
    }
    builder
        .build()
        .with_context(|| format!("building {}", spec.file_name()))
}
