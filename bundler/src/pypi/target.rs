//! The machine the wheels are for, not the machine the bundler runs on: the PEP 508 marker
//! environment of the target interpreter and the ranked list of wheel tags it accepts
//! (the order `packaging.tags.sys_tags()` would give on that machine).

use std::collections::HashMap;

use pep440_rs::Version;
use pep508_rs::{MarkerEnvironment, MarkerEnvironmentBuilder};
use serde::Deserialize;

use super::PypiError;

/// The shipped default target (`manifests/pypi-targets.toml`).
const DEFAULT_TARGETS: &str = include_str!("../../../manifests/pypi-targets.toml");

/// Defaults read from `manifests/pypi-targets.toml`.
#[derive(Debug, Clone, Deserialize)]
pub struct TargetDefaults {
    pub implementation: String,
    pub python_version: String,
    pub python_full_version: String,
    pub glibc: String,
    pub machines: Vec<String>,
}

impl TargetDefaults {
    pub fn shipped() -> Self {
        toml::from_str(DEFAULT_TARGETS).expect("manifests/pypi-targets.toml is valid")
    }
}

/// One target interpreter: CPython `major.minor` on glibc `glibc` for `machine`.
#[derive(Debug, Clone)]
pub struct Target {
    pub python: (u32, u32),
    /// `python_full_version` marker value, e.g. "3.12.13".
    pub python_full: String,
    pub machine: String,
    pub glibc: (u32, u32),
    markers: MarkerEnvironment,
    python_version: Version,
    tags: HashMap<(String, String, String), usize>,
}

/// Machines we can rank manylinux wheels for, with the oldest glibc minor they admit.
fn oldest_glibc_minor(machine: &str) -> Option<u32> {
    match machine {
        "x86_64" | "i686" => Some(5),
        "aarch64" | "ppc64le" | "s390x" | "armv7l" => Some(17),
        _ => None,
    }
}

impl Target {
    /// Builds a CPython target. `python` is "3.12"; when `python_full` is `None` it is taken
    /// as `python` + ".0" unless it matches the shipped default's minor version.
    pub fn cpython(
        python: &str,
        python_full: Option<&str>,
        machine: &str,
        glibc: &str,
    ) -> Result<Self, PypiError> {
        let bad = |what: &str, value: &str| PypiError::Target {
            message: format!("invalid {what} `{value}`"),
        };
        let python_pair =
            parse_pair(python).ok_or_else(|| bad("Python version (want e.g. 3.12)", python))?;
        let glibc_pair =
            parse_pair(glibc).ok_or_else(|| bad("glibc version (want e.g. 2.39)", glibc))?;
        if oldest_glibc_minor(machine).is_none() {
            return Err(PypiError::Target {
                message: format!("unsupported platform `{machine}`: use x86_64 or aarch64"),
            });
        }
        let defaults = TargetDefaults::shipped();
        let full = match python_full {
            Some(full) => full.to_string(),
            None if defaults.python_version == python => defaults.python_full_version.clone(),
            None => format!("{python}.0"),
        };
        let markers = MarkerEnvironment::try_from(MarkerEnvironmentBuilder {
            implementation_name: "cpython",
            implementation_version: &full,
            os_name: "posix",
            platform_machine: machine,
            platform_python_implementation: "CPython",
            platform_release: "",
            platform_system: "Linux",
            platform_version: "",
            python_full_version: &full,
            python_version: python,
            sys_platform: "linux",
        })
        .map_err(|err| bad("Python version", &format!("{full}: {err}")))?;
        let python_version: Version = full.parse().map_err(|_| bad("Python version", &full))?;
        let tags = ranked_tags(python_pair, machine, glibc_pair)
            .into_iter()
            .enumerate()
            .map(|(rank, tag)| (tag, rank))
            .collect();
        Ok(Self {
            python: python_pair,
            python_full: full,
            machine: machine.to_string(),
            glibc: glibc_pair,
            markers,
            python_version,
            tags,
        })
    }

    /// Short name used in the manifest and in messages, e.g. `cp312-manylinux_2_39-x86_64`.
    pub fn name(&self) -> String {
        format!(
            "cp{}{}-manylinux_{}_{}-{}",
            self.python.0, self.python.1, self.glibc.0, self.glibc.1, self.machine
        )
    }

    pub fn markers(&self) -> &MarkerEnvironment {
        &self.markers
    }

    /// The interpreter version Requires-Python is checked against.
    pub fn python_version(&self) -> &Version {
        &self.python_version
    }

    /// Rank of a wheel's tag triples for this target (lower is better), `None` when the wheel
    /// cannot be installed here. A compressed tag set matches if any expansion matches.
    pub fn wheel_rank(
        &self,
        python_tags: &str,
        abi_tags: &str,
        platform_tags: &str,
    ) -> Option<usize> {
        let mut best: Option<usize> = None;
        for py in python_tags.split('.') {
            for abi in abi_tags.split('.') {
                for plat in platform_tags.split('.') {
                    let key = (py.to_string(), abi.to_string(), plat.to_string());
                    if let Some(&rank) = self.tags.get(&key) {
                        best = Some(best.map_or(rank, |b| b.min(rank)));
                    }
                }
            }
        }
        best
    }

    /// Number of tags this target accepts (for tests and diagnostics).
    pub fn tag_count(&self) -> usize {
        self.tags.len()
    }
}

fn parse_pair(value: &str) -> Option<(u32, u32)> {
    let (major, minor) = value.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// manylinux platforms newest first, legacy aliases right after the glibc level they name.
fn manylinux_platforms(machine: &str, glibc: (u32, u32)) -> Vec<String> {
    let oldest = oldest_glibc_minor(machine).unwrap_or(17);
    let mut platforms = Vec::new();
    if glibc.0 != 2 {
        return platforms;
    }
    for minor in (oldest..=glibc.1).rev() {
        platforms.push(format!("manylinux_2_{minor}_{machine}"));
        let legacy = match minor {
            17 => Some("manylinux2014"),
            12 if machine == "x86_64" || machine == "i686" => Some("manylinux2010"),
            5 if machine == "x86_64" || machine == "i686" => Some("manylinux1"),
            _ => None,
        };
        if let Some(legacy) = legacy {
            platforms.push(format!("{legacy}_{machine}"));
        }
    }
    platforms
}

/// The tags a CPython `python` interpreter accepts, best first, in the order of
/// `packaging.tags`: cpython tags (own ABI, abi3, none, older abi3), then generic
/// `pyXY-none-<plat>`, then `cpXY-none-any`, then `pyXY-none-any`.
fn ranked_tags(
    python: (u32, u32),
    machine: &str,
    glibc: (u32, u32),
) -> Vec<(String, String, String)> {
    let platforms = manylinux_platforms(machine, glibc);
    let (major, minor) = python;
    let interpreter = format!("cp{major}{minor}");
    let mut tags = Vec::new();
    let mut push = |py: &str, abi: &str, plat: &str| {
        tags.push((py.to_string(), abi.to_string(), plat.to_string()))
    };
    for abi in [interpreter.as_str(), "abi3", "none"] {
        for plat in &platforms {
            push(&interpreter, abi, plat);
        }
    }
    for older in (2..minor).rev() {
        let py = format!("cp{major}{older}");
        for plat in &platforms {
            push(&py, "abi3", plat);
        }
    }
    let mut generic = vec![format!("py{major}{minor}"), format!("py{major}")];
    generic.extend((0..minor).rev().map(|m| format!("py{major}{m}")));
    for py in &generic {
        for plat in &platforms {
            push(py, "none", plat);
        }
    }
    push(&interpreter, "none", "any");
    for py in &generic {
        push(py, "none", "any");
    }
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(machine: &str) -> Target {
        Target::cpython("3.12", None, machine, "2.39").unwrap()
    }

    #[test]
    fn platform_counts_match_packaging_tags() {
        assert_eq!(manylinux_platforms("x86_64", (2, 39)).len(), 38);
        assert_eq!(manylinux_platforms("aarch64", (2, 39)).len(), 24);
        // The counts `packaging.tags` gives for cp312 on glibc 2.39.
        assert_eq!(target("x86_64").tag_count(), 1041);
        assert_eq!(target("aarch64").tag_count(), 663);
    }

    #[test]
    fn ranks_follow_pip_preference() {
        let t = target("x86_64");
        let cp312_234 = t
            .wheel_rank("cp312", "cp312", "manylinux_2_34_x86_64")
            .unwrap();
        let cp312_2014 = t
            .wheel_rank(
                "cp312",
                "cp312",
                "manylinux_2_17_x86_64.manylinux2014_x86_64",
            )
            .unwrap();
        let abi3_311 = t
            .wheel_rank("cp311", "abi3", "manylinux_2_34_x86_64")
            .unwrap();
        let abi3_39 = t
            .wheel_rank("cp39", "abi3", "manylinux_2_34_x86_64")
            .unwrap();
        let abi3_39_228 = t
            .wheel_rank("cp39", "abi3", "manylinux_2_28_x86_64")
            .unwrap();
        let pure = t.wheel_rank("py3", "none", "any").unwrap();
        assert_eq!(pure, 1028);
        let manylinux1 = t.wheel_rank("cp312", "cp312", "manylinux1_x86_64").unwrap();
        assert!(cp312_234 < cp312_2014 && cp312_2014 < manylinux1);
        assert!(manylinux1 < abi3_311 && abi3_311 < abi3_39 && abi3_39 < abi3_39_228);
        assert!(abi3_39_228 < pure);
        assert_eq!(
            t.wheel_rank("cp312", "cp312", "manylinux_2_40_x86_64"),
            None
        );
        assert_eq!(t.wheel_rank("cp312", "cp312", "musllinux_1_2_x86_64"), None);
        assert_eq!(
            t.wheel_rank("cp313", "cp313", "manylinux_2_17_x86_64"),
            None
        );
        assert_eq!(
            t.wheel_rank("cp312", "cp312", "manylinux_2_17_aarch64"),
            None
        );
        assert_eq!(
            target("aarch64").wheel_rank("cp312", "cp312", "manylinux1_aarch64"),
            None
        );
    }

    #[test]
    fn markers_describe_the_target_not_the_host() {
        let t = target("aarch64");
        let req: pep508_rs::Requirement =
            "foo ; platform_machine == 'aarch64' and python_version >= '3.12' and sys_platform == 'linux'"
                .parse()
                .unwrap();
        assert!(req.marker.evaluate(t.markers(), &[]));
        assert!(!req.marker.evaluate(target("x86_64").markers(), &[]));
        assert_eq!(t.name(), "cp312-manylinux_2_39-aarch64");
        assert_eq!(t.python_version().to_string(), "3.12.13");
    }
}
