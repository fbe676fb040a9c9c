//! The PyPI flags of `bundler build` / `bundler plan` (and `bundler pypi`), in one clap
//! `Args` struct that those commands flatten, and their translation into [`PypiSettings`].

use std::path::PathBuf;

use bundler::build::BuildError;
use bundler::build::pypi::{KUBESPRAY_SOURCE, kubespray_requirements};
use bundler::fetch::Fetcher;
use bundler::pypi::candidates::ResolveOptions;
use bundler::pypi::requirements::default_kubespray_version;
use bundler::pypi::target::TargetDefaults;
use bundler::pypi::{DEFAULT_INDEX_URL, PypiSettings, RequirementSet, Target};
use clap::Args;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "PyPI")]
pub struct PypiArgs {
    /// pip requirements file (comments, -r/-c includes, extras, markers, --hash pins).
    /// Default: the requirements of the newest shipped Kubespray release.
    #[arg(long, value_name = "FILE", conflicts_with = "kubespray")]
    pub requirements: Option<PathBuf>,

    /// Kubespray version whose requirements to take (e.g. 2.31.0, master). A release this
    /// bundler ships no list for is read from --kubespray-source.
    #[arg(long, value_name = "VERSION")]
    pub kubespray: Option<String>,

    /// Where to read `v<VERSION>/requirements.txt` of a Kubespray release this bundler ships
    /// no list for: a copy of the Kubespray repository's files by tag.
    #[arg(long, value_name = "URL", default_value = KUBESPRAY_SOURCE, value_parser = parse_source)]
    pub kubespray_source: Url,

    /// Target CPython version (major.minor).
    #[arg(long, value_name = "X.Y", default_value = "3.12")]
    pub python: String,

    /// Target machine (x86_64, aarch64); repeatable. Default: the RPM --arch list (for
    /// `bundler pypi`, and with --no-rpm and no --arch: x86_64 and aarch64).
    #[arg(long = "platform", value_name = "MACHINE")]
    pub platforms: Vec<String>,

    /// Package index (PEP 691 JSON or PEP 503 HTML simple API).
    /// Default: the requirements file's --index-url, else the public index.
    #[arg(long, value_name = "URL", value_parser = parse_index_url)]
    pub index_url: Option<String>,

    /// Allow source distributions when a version has no compatible wheel (only with static
    /// PKG-INFO metadata, Metadata-Version 2.2+).
    #[arg(long)]
    pub allow_sdist: bool,

    /// Allow pre-releases for every project.
    #[arg(long)]
    pub pre: bool,

    /// Ignore files uploaded after this time (RFC 3339, or YYYY-MM-DD meaning midnight UTC),
    /// so a later build resolves the same versions.
    #[arg(long, value_name = "TIMESTAMP")]
    pub exclude_newer: Option<String>,

    /// Reuse the PyPI resolution recorded in a previous bundle: fetch exactly its files again
    /// (URL, size and sha256 as recorded) for its targets and requirements, without resolving.
    #[arg(
        long,
        value_name = "BUNDLE",
        conflicts_with_all = ["requirements", "kubespray", "platforms", "index_url", "allow_sdist", "pre", "exclude_newer"]
    )]
    pub pypi_lock: Option<PathBuf>,
}

impl PypiArgs {
    /// The settings for the PyPI part. `rpm_arches` is the default platform list (when it is
    /// empty too: the machines of `manifests/pypi-targets.toml`); `python_full` is the release
    /// definition's `python_full_version` (used when `--python` is its major.minor).
    pub async fn settings(
        &self,
        rpm_arches: &[String],
        python_full: Option<&str>,
        fetcher: &Fetcher,
    ) -> Result<PypiSettings, BuildError> {
        if let Some(bundle) = &self.pypi_lock {
            return locked_settings(bundle);
        }
        let python_full = python_full.filter(|full| {
            full.strip_prefix(self.python.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
        });
        let defaults = TargetDefaults::shipped();
        let machines: Vec<String> = if !self.platforms.is_empty() {
            self.platforms.clone()
        } else if !rpm_arches.is_empty() {
            rpm_arches.to_vec()
        } else {
            defaults.machines.clone()
        };
        let mut targets = Vec::new();
        for machine in &machines {
            if targets.iter().any(|t: &Target| &t.machine == machine) {
                continue;
            }
            targets.push(Target::cpython(
                &self.python,
                python_full,
                machine,
                &defaults.glibc,
            )?);
        }
        let exclude_newer = self
            .exclude_newer
            .as_deref()
            .map(parse_cutoff)
            .transpose()?;
        // Last: the requirements of a Kubespray release this bundler ships no list for are
        // fetched, and every flag is checked before that.
        let requirements = match (&self.requirements, &self.kubespray) {
            (Some(path), _) => RequirementSet::from_file(path)?,
            (None, Some(version)) => {
                kubespray_requirements(version, &self.kubespray_source, fetcher).await?
            }
            (None, None) => RequirementSet::kubespray(default_kubespray_version())?,
        };
        let index_url = self
            .index_url
            .clone()
            .or_else(|| requirements.index_url.clone())
            .unwrap_or_else(|| DEFAULT_INDEX_URL.to_string());
        let options = ResolveOptions {
            allow_sdist: self.allow_sdist,
            pre: self.pre || requirements.pre,
            exclude_newer,
        };
        Ok(PypiSettings {
            requirements,
            targets,
            index_url,
            options,
            locked: None,
        })
    }
}

/// Settings that replay `bundle`'s recorded PyPI resolution.
fn locked_settings(bundle: &std::path::Path) -> Result<PypiSettings, BuildError> {
    let origin = bundle.display().to_string();
    let manifest = bundle::read::read_manifest(bundle)
        .map_err(|e| BuildError::Usage(format!("--pypi-lock {origin}: {e}")))?
        .manifest;
    if manifest.pypi_targets.is_empty() {
        return Err(BuildError::Usage(format!(
            "--pypi-lock {origin}: that bundle has no PyPI part to reuse"
        )));
    }
    let targets = &manifest.pypi_targets;
    let mut requirements = bundler::pypi::lock::recorded_requirements(&origin, targets)?;
    if let Some(source) = &targets[0].requirements_source {
        requirements.source = Some(source.clone());
    }
    let resolved = bundler::pypi::lock::resolved_from_lock(&origin, targets)?;
    Ok(PypiSettings {
        requirements,
        targets: resolved.into_iter().map(|r| r.target).collect(),
        index_url: targets[0].index_url.clone(),
        options: ResolveOptions::default(),
        locked: Some((origin, manifest.pypi_targets)),
    })
}

/// `--kubespray-source`: checked when the flags are parsed, so a bad one is refused (exit 2)
/// before the build fetches anything, even when the Kubespray version leaves it unused.
fn parse_source(text: &str) -> Result<Url, String> {
    let url = Url::parse(text).map_err(|e| format!("{e}; want an http(s):// or file:// URL"))?;
    match url.scheme() {
        "http" | "https" | "file" => Ok(url),
        other => Err(format!(
            "scheme {other}: is not fetched; want an http(s):// or file:// URL"
        )),
    }
}

/// `--index-url`: checked when the flags are parsed, like `--kubespray-source`.
fn parse_index_url(text: &str) -> Result<String, String> {
    parse_source(text).map(|_| text.to_string())
}

fn parse_cutoff(value: &str) -> Result<OffsetDateTime, BuildError> {
    if let Ok(time) = OffsetDateTime::parse(value, &Rfc3339) {
        return Ok(time);
    }
    let date = time::Date::parse(
        value,
        time::macros::format_description!("[year]-[month]-[day]"),
    )
    .map_err(|_| {
        BuildError::Usage(format!(
            "--exclude-newer `{value}`: want RFC 3339 (2026-08-21T00:00:00Z) or YYYY-MM-DD"
        ))
    })?;
    Ok(date.midnight().assume_utc())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        pypi: PypiArgs,
    }

    fn settings(args: &[&str], arches: &[&str]) -> Result<PypiSettings, String> {
        let cli = Cli::try_parse_from(std::iter::once("bundler").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        let arches: Vec<String> = arches.iter().map(|a| a.to_string()).collect();
        let cache = tempfile::tempdir().unwrap();
        let fetcher = Fetcher::new(cache.path(), Default::default()).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime
            .block_on(cli.pypi.settings(&arches, Some("3.12.13"), &fetcher))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_come_from_the_shipped_files_and_rpm_arches() {
        let s = settings(&[], &["x86_64"]).unwrap();
        assert_eq!(s.targets.len(), 1);
        assert_eq!(s.targets[0].name(), "cp312-manylinux_2_39-x86_64");
        assert_eq!(
            s.targets[0].python_full, "3.12.13",
            "from the release definition"
        );
        assert!(
            s.requirements
                .source
                .as_deref()
                .is_some_and(|src| src.contains("kubespray-2.31.0.txt")),
            "{:?}",
            s.requirements.source
        );
        assert_eq!(s.index_url, DEFAULT_INDEX_URL);
        assert!(
            s.requirements
                .requirements
                .iter()
                .any(|l| l.text == "ansible==11.13.0")
        );
        let s = settings(
            &["--platform", "aarch64", "--platform", "x86_64"],
            &["x86_64"],
        )
        .unwrap();
        let machines: Vec<_> = s.targets.iter().map(|t| t.machine.as_str()).collect();
        assert_eq!(machines, ["aarch64", "x86_64"]);
        let s = settings(
            &["--exclude-newer", "2026-08-21", "--kubespray", "master"],
            &[],
        )
        .unwrap();
        assert_eq!(s.targets.len(), 2);
        assert_eq!(
            s.options.exclude_newer.unwrap().unix_timestamp(),
            1_787_270_400
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(settings(&["--requirements", "r.txt", "--kubespray", "master"], &[]).is_err());
        let err = settings(&["--platform", "riscv64"], &[]).unwrap_err();
        assert!(err.contains("unsupported platform"), "{err}");
        assert!(settings(&["--exclude-newer", "yesterday"], &[]).is_err());
        // A version this bundler ships nothing for is fetched; these never reach the network.
        for bad in ["../../etc", "latest", "v"] {
            let err = settings(&["--kubespray", bad], &[]).unwrap_err();
            assert!(err.contains("not a release version"), "{bad}: {err}");
        }
        let err = settings(
            &[
                "--kubespray",
                "9.9.9",
                "--kubespray-source",
                "file:///nonexistent/ks",
            ],
            &[],
        )
        .unwrap_err();
        assert!(
            err.contains("file:///nonexistent/ks/v9.9.9/requirements.txt"),
            "{err}"
        );
    }
}
