//! Against the public index: the shipped Kubespray requirements resolve for both target
//! machines, and for x86_64 the result names the same distributions and versions that
//! `pip download --only-binary=:all: --python-version 3.12 --platform <every manylinux tag>`
//! picks. Fails, saying how to leave it out, when pypi.org cannot be reached.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use bundler::pypi::metadata::normalize;
use bundler::pypi::requirements::shipped_kubespray_versions;
use bundler::pypi::{
    DEFAULT_INDEX_URL, IndexClient, PypiSettings, RequirementSet, ResolveOptions, Target,
    resolve_targets,
};

use crate::harness::e2e_fetcher;

fn resolve(version: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let settings = PypiSettings {
        requirements: RequirementSet::kubespray(version).unwrap(),
        targets: ["x86_64", "aarch64"]
            .iter()
            .map(|m| Target::cpython("3.12", None, m, "2.39").unwrap())
            .collect(),
        index_url: DEFAULT_INDEX_URL.into(),
        options: ResolveOptions::default(),
        locked: None,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = Arc::new(IndexClient::new(&settings.index_url, e2e_fetcher()).unwrap());
    let resolved = runtime
        .block_on(resolve_targets(
            client,
            &settings,
            &bundle::progress::NoProgress,
        ))
        .unwrap_or_else(|err| panic!("kubespray {version}: {err}"));
    resolved
        .into_iter()
        .map(|target| {
            let dists = target
                .dists
                .iter()
                .map(|d| (d.name.to_string(), d.version.to_string()))
                .collect();
            (target.target.machine.clone(), dists)
        })
        .collect()
}

/// What pip picks for x86_64 with every manylinux tag of glibc 2.39 listed explicitly
/// (pip does not expand manylinux_2_X to older levels).
fn pip_download_x86_64(version: &str, dir: &std::path::Path) -> BTreeMap<String, String> {
    let requirements = dir.join("requirements.txt");
    let shipped = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../manifests/kubespray-{version}.txt"));
    let text = fs_err::read_to_string(shipped).unwrap();
    fs_err::write(&requirements, text).unwrap();
    let mut command = Command::new("python3");
    command.args([
        "-m",
        "pip",
        "download",
        "--no-cache-dir",
        "--disable-pip-version-check",
        "--quiet",
    ]);
    command.args([
        "--only-binary=:all:",
        "--python-version",
        "3.12",
        "--implementation",
        "cp",
    ]);
    for minor in (5..=39).rev() {
        command.args(["--platform", &format!("manylinux_2_{minor}_x86_64")]);
    }
    command.args([
        "--platform",
        "manylinux2014_x86_64",
        "--platform",
        "manylinux2010_x86_64",
    ]);
    command
        .args(["--platform", "manylinux1_x86_64", "-d"])
        .arg(dir.join("wheels"))
        .arg("-r")
        .arg(&requirements);
    let output = command.output().expect("run pip download");
    assert!(
        output.status.success(),
        "pip download failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    fs_err::read_dir(dir.join("wheels"))
        .unwrap()
        .map(|entry| {
            let name = entry.unwrap().file_name().to_string_lossy().to_string();
            let mut parts = name.split('-');
            (
                normalize(parts.next().unwrap()),
                parts.next().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn kubespray_requirements_match_pip_live_pypi() {
    e2e::harness::require_live_pypi();
    for version in shipped_kubespray_versions() {
        let resolved = resolve(version);
        for machine in ["x86_64", "aarch64"] {
            let dists = &resolved[machine];
            for name in [
                "ansible",
                "ansible-core",
                "cryptography",
                "cffi",
                "jinja2",
                "markupsafe",
                "pyyaml",
            ] {
                assert!(
                    dists.contains_key(name),
                    "kubespray {version} {machine}: {name} missing from {dists:?}"
                );
            }
        }
        assert_eq!(
            resolved["x86_64"], resolved["aarch64"],
            "kubespray {version}: the set has no machine markers"
        );
        let dir = tempfile::tempdir().unwrap();
        let pip = pip_download_x86_64(version, dir.path());
        assert_eq!(
            resolved["x86_64"], pip,
            "bundler (left) and pip download (right) disagree for kubespray {version}"
        );
    }
}
