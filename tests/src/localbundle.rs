//! Builds a bundle straight from a local mirror tree (as [`crate::mirror`] generates it) and a
//! directory of wheels, laid out the way `bundler build` lays one out: `repos/<id>/<arch>/`
//! with the packages and the upstream `repodata/`, `keys/RPM-GPG-KEY-Rocky-<release>`, and
//! `pypi/files/` with one PyPI target per arch whose lock comes from each wheel's METADATA.
//! The apply tests, `scripts/bench-apply` and the demo use it where fetching is beside the point.

use crate::pypi_index::normalize;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bundle::manifest::{
    BundleManifest, LockedFile, PypiTarget, RpmRepo, RpmSection, ToolInfo, Totals, UpstreamRecord,
};
use bundle::write::{WriteOptions, WrittenBundle};

/// Upstream directory name and the repo id it is installed as.
pub const REPOS: [(&str, &str); 3] = [
    ("BaseOS", "baseos"),
    ("AppStream", "appstream"),
    ("extras", "extras"),
];

/// Upstream records a bundle carries into the rebuilt repodata.
const CARRIED: [&str; 4] = ["group", "group_gz", "updateinfo", "modules"];

/// What goes into the bundle.
#[derive(Debug, Clone)]
pub struct LocalBundleSpec {
    /// Mirror root holding `<release>/<Repo>/<arch>/os/` and the release key.
    pub mirror_root: Option<PathBuf>,
    /// Public key file copied to `keys/RPM-GPG-KEY-Rocky-<release>`.
    pub key: Option<PathBuf>,
    pub release: String,
    pub arches: Vec<String>,
    /// Directory of `*.whl` files (both arches may be mixed; pure wheels are shared).
    pub wheels: Option<PathBuf>,
    /// RFC 3339 creation time (fixed, so bundles are reproducible).
    pub created: String,
}

/// Lay out `spec` under `work/tree` (hard links where possible) and pack it to `output`.
pub fn build_local_bundle(
    spec: &LocalBundleSpec,
    work: &Path,
    output: &Path,
) -> Result<WrittenBundle> {
    let tree = work.join("tree");
    if tree.exists() {
        fs_err::remove_dir_all(&tree)?;
    }
    fs_err::create_dir_all(&tree)?;
    let mut manifest = BundleManifest {
        format: bundle::FORMAT_VERSION,
        min_installer_version: None,
        base: None,
        bundle_id: String::new(),
        created: time::OffsetDateTime::parse(
            &spec.created,
            &time::format_description::well_known::Rfc3339,
        )
        .context("created must be RFC 3339")?,
        tool: ToolInfo {
            name: "e2e-localbundle".into(),
            version: env!("CARGO_PKG_VERSION").into(),
        },
        release: Some(spec.release.clone()),
        arches: spec.arches.clone(),
        rpm: None,
        pypi_targets: vec![],
        kubespray: None,
        files: vec![],
        totals: Totals::default(),
    };
    if let Some(mirror) = &spec.mirror_root {
        let key_path = format!("keys/RPM-GPG-KEY-Rocky-{}", spec.release);
        if let Some(key) = &spec.key {
            fs_err::create_dir_all(tree.join("keys"))?;
            fs_err::copy(key, tree.join(&key_path))?;
        }
        let mut repos = Vec::new();
        for arch in &spec.arches {
            for (upstream, id) in REPOS {
                let src = mirror
                    .join(&spec.release)
                    .join(upstream)
                    .join(arch)
                    .join("os");
                if !src.is_dir() {
                    continue;
                }
                let dir = format!("repos/{id}/{arch}");
                link_tree(&src, &tree.join(&dir))?;
                repos.push(repo_record(&src, id, arch, &dir)?);
            }
        }
        manifest.rpm = Some(RpmSection {
            distro: "rocky".into(),
            gpgcheck: spec.key.is_some(),
            key_path: spec.key.as_ref().map(|_| key_path),
            key_fingerprint: None,
            pinned_fingerprints: Vec::new(),
            minor_release: None,
            repos,
        });
    }
    if let Some(wheels) = &spec.wheels {
        manifest.pypi_targets = wheel_targets(wheels, &tree, &spec.arches)?;
    }
    Ok(crate::tree::pack_tree(
        &tree,
        output,
        manifest,
        &WriteOptions::default(),
        &bundle::NoProgress,
    )?)
}

fn link_tree(src: &Path, dest: &Path) -> Result<()> {
    fs_err::create_dir_all(dest)?;
    for entry in fs_err::read_dir(src)? {
        let entry = entry?;
        let to = dest.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            link_tree(&entry.path(), &to)?;
        } else if fs_err::hard_link(entry.path(), &to).is_err() {
            fs_err::copy(entry.path(), &to)?;
        }
    }
    Ok(())
}

fn rpm_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            rpm_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "rpm") {
            out.push(path);
        }
    }
    Ok(())
}

/// The repo's manifest record: package totals and the carried records named in repomd.xml.
fn repo_record(src: &Path, id: &str, arch: &str, dir: &str) -> Result<RpmRepo> {
    let repomd = fs_err::read_to_string(src.join("repodata/repomd.xml"))?;
    let mut metadata = Vec::new();
    for chunk in repomd.split("<data type=\"").skip(1) {
        let kind = chunk.split('"').next().unwrap_or_default();
        let href = chunk
            .split("<location href=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or_default();
        if CARRIED.contains(&kind) && !href.is_empty() {
            metadata.push(UpstreamRecord {
                kind: kind.to_string(),
                path: format!("{dir}/{href}"),
            });
        }
    }
    let revision = repomd
        .split("<revision>")
        .nth(1)
        .and_then(|s| s.split("</revision>").next())
        .map(str::to_string);
    let mut rpms = Vec::new();
    rpm_files(src, &mut rpms)?;
    let mut bytes = 0;
    for r in &rpms {
        bytes += fs_err::metadata(r)?.len();
    }
    Ok(RpmRepo {
        id: id.into(),
        arch: arch.into(),
        dir: dir.into(),
        upstream_url: format!("file://{}", src.display()),
        revision,
        package_count: rpms.len() as u64,
        package_bytes: bytes,
        metadata,
        slim: false,
        signers: Vec::new(),
        metadata_signer: None,
    })
}

fn header(meta: &str, key: &str) -> Option<String> {
    meta.lines()
        .take_while(|l| !l.is_empty())
        .find_map(|l| l.strip_prefix(&format!("{key}: ")).map(str::to_string))
}

fn wheel_metadata(path: &Path) -> Result<String> {
    use std::io::Read;
    let mut zip = zip::ZipArchive::new(fs_err::File::open(path)?)?;
    let name = zip
        .file_names()
        .find(|n| n.matches('/').count() == 1 && n.ends_with(".dist-info/METADATA"))
        .map(str::to_string)
        .with_context(|| format!("{}: no METADATA", path.display()))?;
    let mut text = String::new();
    zip.by_name(&name)?.read_to_string(&mut text)?;
    Ok(text)
}

/// Copy the wheels to `tree/pypi/files/` and make one target per arch (pure wheels in each).
pub fn wheel_targets(wheels: &Path, tree: &Path, arches: &[String]) -> Result<Vec<PypiTarget>> {
    let files = tree.join("pypi/files");
    fs_err::create_dir_all(&files)?;
    let mut all: Vec<PathBuf> = fs_err::read_dir(wheels)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<_>>()?;
    all.retain(|p| p.extension().is_some_and(|e| e == "whl"));
    all.sort();
    let mut targets = Vec::new();
    for arch in arches {
        let mut lock = Vec::new();
        for w in &all {
            let filename = w.file_name().unwrap().to_string_lossy().to_string();
            if !(filename.ends_with("-any.whl") || filename.contains(arch.as_str())) {
                continue;
            }
            let dest = files.join(&filename);
            if !dest.exists() && fs_err::hard_link(w, &dest).is_err() {
                fs_err::copy(w, &dest)?;
            }
            let meta = wheel_metadata(w)?;
            let (size, sha256) = bundle::write::hash_file(w)?;
            lock.push(LockedFile {
                name: normalize(&header(&meta, "Name").context("wheel without Name")?),
                version: header(&meta, "Version").context("wheel without Version")?,
                filename: filename.clone(),
                url: format!("https://files.pythonhosted.org/packages/{filename}"),
                sha256,
                size,
                upload_time: Some("2026-08-01T10:00:00Z".into()),
                requires_python: header(&meta, "Requires-Python"),
                yanked: None,
                path: format!("pypi/files/{filename}"),
            });
        }
        targets.push(PypiTarget {
            name: format!("cp312-manylinux_2_39-{arch}"),
            python_version: "3.12".into(),
            implementation: "cp".into(),
            machine: arch.clone(),
            glibc: "2.39".into(),
            index_url: "https://pypi.org/simple/".into(),
            requirements: vec![],
            requirements_source: None,
            lock,
        });
    }
    Ok(targets)
}

/// The small generated mirror under `work/mirror`, packed by the library into
/// `work/bundle.tar.zst`: the bundle the services tests apply.
pub fn small_mirror_bundle(work: &Path) -> PathBuf {
    let mirror = work.join("mirror");
    crate::mirror::generate_mirror(&crate::mirror::MirrorSpec::small(&mirror)).unwrap();
    let bundle = work.join("bundle.tar.zst");
    build_local_bundle(
        &LocalBundleSpec {
            mirror_root: Some(mirror.clone()),
            key: Some(mirror.join(crate::rpmgen::TEST_KEY_FILE)),
            release: "10".into(),
            arches: vec!["x86_64".into()],
            wheels: None,
            created: "2026-11-01T00:00:00Z".into(),
        },
        &work.join("bundle-tree"),
        &bundle,
    )
    .unwrap();
    bundle
}
