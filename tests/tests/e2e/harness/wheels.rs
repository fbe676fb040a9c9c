//! The PyPI side of the apply tests: Python tool venvs (current pip, pip 23.3 as Rocky 10 ships
//! it, uv) and the Kubespray wheels fetched once from PyPI into a cache under target/, and
//! bundles packed from wheels.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

use bundle::manifest::{BundleManifest, ToolInfo, Totals};
use e2e::harness::run_ok;

/// Kubespray master requirements (reference/pypi-index.md §4).
pub const KUBESPRAY_REQUIREMENTS: &str = "ansible==11.13.0\nbcrypt<6\ncryptography==50.0.0\n\
jmespath==1.1.0\nnetaddr==1.3.0\npasslib==1.7.4\n";

/// pip `--platform` does not expand manylinux_2_39 to older tags (pip #10760): list them.
pub fn pip_platforms(arch: &str) -> Vec<String> {
    [
        "manylinux_2_39",
        "manylinux_2_34",
        "manylinux_2_28",
        "manylinux_2_17",
        "manylinux2014",
    ]
    .iter()
    .map(|p| format!("{p}_{arch}"))
    .collect()
}

/// The fetcher the index client goes through, with a cache of its own (kept under the
/// tests' target directory) so that no test sees another's files.
pub fn e2e_fetcher() -> Arc<bundler::fetch::Fetcher> {
    let cache = tempfile::Builder::new()
        .prefix("pypi-cache-")
        .tempdir_in(env!("CARGO_TARGET_TMPDIR"))
        .expect("cache dir")
        .keep();
    Arc::new(bundler::fetch::Fetcher::new(cache, Default::default()).expect("fetcher"))
}

pub const ARCHES: [&str; 2] = ["x86_64", "aarch64"];

/// Cache directory under target/ for venvs and downloaded wheels (kept across runs).
pub fn cache_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/apply-test-cache");
    fs_err::create_dir_all(&dir).unwrap();
    dir
}

/// Held while a cache entry is made: tests on parallel threads ask for the same venv or wheels,
/// and a second one must wait for the first instead of building over it.
static CACHE_FILL: Mutex<()> = Mutex::new(());

/// A venv under the cache with `packages` installed from PyPI (created once).
pub fn venv(name: &str, packages: &[&str]) -> PathBuf {
    let _filling = CACHE_FILL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = cache_dir().join(name);
    let marker = dir.join(".ready");
    if !marker.exists() {
        let _ = fs_err::remove_dir_all(&dir);
        run_ok(Command::new("python3").args(["-m", "venv"]).arg(&dir));
        run_ok(
            Command::new(dir.join("bin/python"))
                .args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
                .args(packages),
        );
        fs_err::write(&marker, b"").unwrap();
    }
    dir
}

/// The Kubespray closure for both arches, downloaded from PyPI once into the cache.
pub fn kubespray_wheels() -> PathBuf {
    let _filling = CACHE_FILL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = cache_dir().join("kubespray-wheels");
    let marker = dir.join(".ready");
    if !marker.exists() {
        let req = cache_dir().join("kubespray-requirements.txt");
        fs_err::write(&req, KUBESPRAY_REQUIREMENTS).unwrap();
        for arch in ARCHES {
            let mut cmd = Command::new("python3");
            cmd.args(["-m", "pip", "download", "-q", "--disable-pip-version-check"])
                .args(["--only-binary=:all:", "--python-version", "3.12"])
                .args(["--implementation", "cp", "-d"])
                .arg(&dir)
                .arg("-r")
                .arg(&req);
            for p in pip_platforms(arch) {
                cmd.args(["--platform", &p]);
            }
            run_ok(&mut cmd);
        }
        fs_err::write(&marker, b"").unwrap();
    }
    dir
}

/// Pack `wheels` as a bundle (`pypi/files/`, one PyPI target per arch with a lock filled from
/// each wheel's METADATA) with `base` as the rest of the manifest.
pub fn build_wheel_bundle(wheels: &[PathBuf], tree: &Path, output: &Path, base: BundleManifest) {
    let source = tree.with_extension("wheels");
    fs_err::create_dir_all(&source).unwrap();
    for w in wheels {
        fs_err::copy(w, source.join(w.file_name().unwrap())).unwrap();
    }
    let arches: Vec<String> = ARCHES.iter().map(|a| a.to_string()).collect();
    let mut manifest = base;
    manifest.pypi_targets = e2e::localbundle::wheel_targets(&source, tree, &arches).unwrap();
    e2e::tree::pack_tree(
        tree,
        output,
        manifest,
        &bundle::write::WriteOptions::default(),
        &bundle::NoProgress,
    )
    .unwrap();
}

pub fn base_manifest(created: &str) -> BundleManifest {
    BundleManifest {
        format: bundle::FORMAT_VERSION,
        min_installer_version: None,
        base: None,
        bundle_id: String::new(),
        created: time::OffsetDateTime::parse(
            created,
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap(),
        tool: ToolInfo {
            name: "apply-test".into(),
            version: "0".into(),
        },
        release: None,
        arches: ARCHES.iter().map(|a| a.to_string()).collect(),
        rpm: None,
        pypi_targets: vec![],
        kubespray: None,
        files: vec![],
        totals: Totals::default(),
    }
}
