//! Resolution and download against a local index (127.0.0.1) serving wheels and sdists that
//! the test generates: target markers, extras, tag ranking, yanked files, Requires-Python,
//! conflicts, missing wheels, sdist policy, hash pins, upload cutoffs, the HTML fallback and
//! metadata read by HTTP range requests.

use std::collections::BTreeMap;
use std::sync::Arc;

use bundle::progress::{NoProgress, Reporter};
use bundler::pypi::{
    IndexClient, PypiError, PypiSettings, RequirementSet, ResolveOptions, ResolvedTarget, Target,
    download, resolve_targets,
};
use e2e::pypi_index::{IndexContent, IndexEntry, IndexServer};
use e2e::wheelgen::DistSpec;

use crate::harness::e2e_fetcher;

const NATIVE_TAGS: &[&str] = &[
    "cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64",
    "cp312-cp312-manylinux_2_28_x86_64",
    "cp39-abi3-manylinux_2_34_x86_64",
    "cp312-cp312-manylinux_2_40_x86_64",
    "cp312-cp312-musllinux_1_2_x86_64",
    "cp312-cp312-manylinux_2_17_aarch64.manylinux2014_aarch64",
    "cp312-cp312-manylinux_2_28_aarch64",
    "cp313-cp313-manylinux_2_34_aarch64",
];

fn wheel(name: &str, version: &str) -> DistSpec {
    DistSpec::new(name, version)
}

fn add(index: &mut IndexContent, spec: DistSpec) {
    index.add(&spec.name.clone(), IndexEntry::new(spec.wheel()));
}

/// One index holding every scenario's projects.
fn content() -> IndexContent {
    let mut index = IndexContent::default();
    // Markers that differ by machine and Python version; padding pushes METADATA past the
    // first range read.
    add(
        &mut index,
        wheel("App", "1.0")
            .requires("armdep ; platform_machine == 'aarch64'")
            .requires("x86dep ; platform_machine == 'x86_64'")
            .requires("newpy ; python_version >= '3.12'")
            .requires("oldpy ; python_version < '3.12'")
            .requires("Lib[fancy]>=1")
            .padding(300_000),
    );
    for name in ["armdep", "x86dep", "newpy", "oldpy", "fancydep", "plain"] {
        add(&mut index, wheel(name, "1.0"));
    }
    add(
        &mut index,
        wheel("lib", "1.0")
            .extra("fancy")
            .requires("fancydep ; extra == 'fancy'")
            .requires("plain"),
    );
    // Tag ranking: manylinux levels, abi3, too-new glibc, musl, other machines.
    for tag in NATIVE_TAGS {
        add(&mut index, wheel("native", "1.0").tag(tag));
    }
    add(
        &mut index,
        wheel("abionly", "2.0").tag("cp38-abi3-manylinux2014_x86_64"),
    );
    add(
        &mut index,
        wheel("abionly", "2.0").tag("cp38-abi3-manylinux2014_aarch64"),
    );
    // Yanked release.
    index.add(
        "pkgy",
        IndexEntry::new(wheel("pkgy", "2.0").wheel()).yanked("broken build"),
    );
    add(&mut index, wheel("pkgy", "1.0"));
    // Requires-Python: on the page for 3.0, only in METADATA for 2.5.
    index.add(
        "modern",
        IndexEntry::new(wheel("modern", "3.0").requires_python(">=3.13").wheel())
            .requires_python(">=3.13"),
    );
    add(&mut index, wheel("modern", "2.5").requires_python(">=3.13"));
    add(&mut index, wheel("modern", "2.0").requires_python(">=3.8"));
    // Conflict.
    add(&mut index, wheel("left", "1.0").requires("shared<2"));
    add(&mut index, wheel("right", "1.0").requires("shared>=2"));
    add(&mut index, wheel("shared", "1.0"));
    add(&mut index, wheel("shared", "2.0"));
    // No compatible wheel.
    add(
        &mut index,
        wheel("winonly", "1.0").tag("cp312-cp312-win_amd64"),
    );
    index.add("winonly", IndexEntry::new(wheel("winonly", "1.0").sdist()));
    // Sdists: static (2.2, nothing dynamic) and dynamic metadata.
    let static_sdist = wheel("srconly", "1.0")
        .metadata_version("2.2")
        .requires("plain");
    index.add("srconly", IndexEntry::new(static_sdist.sdist()));
    let dynamic_sdist = wheel("dynsrc", "1.0")
        .metadata_version("2.2")
        .dynamic("Requires-Dist");
    index.add("dynsrc", IndexEntry::new(dynamic_sdist.sdist()));
    // Pre-releases and upload times.
    add(&mut index, wheel("prepkg", "1.0"));
    add(&mut index, wheel("prepkg", "2.0rc1"));
    index.add(
        "dated",
        IndexEntry::new(wheel("dated", "1.0").wheel()).uploaded("2024-01-01T00:00:00Z"),
    );
    index.add(
        "dated",
        IndexEntry::new(wheel("dated", "2.0").wheel()).uploaded("2025-06-01T00:00:00Z"),
    );
    index
}

fn resolve_with(
    server: &IndexServer,
    requirements: &str,
    machines: &[&str],
    python: &str,
    options: ResolveOptions,
) -> Result<(Arc<IndexClient>, Vec<ResolvedTarget>), PypiError> {
    let settings = PypiSettings {
        requirements: RequirementSet::from_text(requirements, "test-requirements.txt", None)?,
        targets: machines
            .iter()
            .map(|m| Target::cpython(python, None, m, "2.39").unwrap())
            .collect(),
        index_url: server.url(),
        options,
        locked: None,
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = Arc::new(IndexClient::new(&settings.index_url, e2e_fetcher())?);
    let resolved = runtime.block_on(resolve_targets(client.clone(), &settings, &NoProgress))?;
    Ok((client, resolved))
}

/// name -> (version, filename) per machine.
fn picked(resolved: &[ResolvedTarget]) -> BTreeMap<String, BTreeMap<String, (String, String)>> {
    resolved
        .iter()
        .map(|target| {
            let dists = target
                .dists
                .iter()
                .map(|d| {
                    (
                        d.name.to_string(),
                        (d.version.to_string(), d.file.filename.clone()),
                    )
                })
                .collect();
            (
                format!(
                    "{}-py{}{}",
                    target.target.machine, target.target.python.0, target.target.python.1
                ),
                dists,
            )
        })
        .collect()
}

fn names(resolved: &ResolvedTarget) -> Vec<String> {
    resolved.dists.iter().map(|d| d.name.to_string()).collect()
}

#[test]
fn markers_and_extras_follow_the_target() {
    let server = IndexServer::start(content());
    let (client, resolved) = resolve_with(
        &server,
        "app\n",
        &["x86_64", "aarch64"],
        "3.12",
        ResolveOptions::default(),
    )
    .unwrap();
    assert_eq!(
        names(&resolved[0]),
        ["app", "fancydep", "lib", "newpy", "plain", "x86dep"]
    );
    assert_eq!(
        names(&resolved[1]),
        ["app", "armdep", "fancydep", "lib", "newpy", "plain"]
    );
    // No .metadata side files here: app's METADATA lies beyond the first 64 KiB range.
    assert!(
        client
            .stats
            .range
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );
    assert!(server.requests().iter().any(|r| {
        r.starts_with("GET /files/App-1.0-py3-none-any.whl bytes=") && !r.contains("bytes=-")
    }));

    let (_, resolved) = resolve_with(
        &server,
        "app\n",
        &["x86_64"],
        "3.11",
        ResolveOptions::default(),
    )
    .unwrap();
    assert_eq!(
        names(&resolved[0]),
        ["app", "fancydep", "lib", "oldpy", "plain", "x86dep"]
    );

    let (_, resolved) = resolve_with(
        &server,
        "lib\n",
        &["x86_64"],
        "3.12",
        ResolveOptions::default(),
    )
    .unwrap();
    assert_eq!(
        names(&resolved[0]),
        ["lib", "plain"],
        "no extra requested, no fancydep"
    );
}

#[test]
fn wheel_tags_rank_like_pip() {
    let server = IndexServer::start(content());
    let (_, resolved) = resolve_with(
        &server,
        "native\nabionly\n",
        &["x86_64", "aarch64"],
        "3.12",
        ResolveOptions::default(),
    )
    .unwrap();
    let picked = picked(&resolved);
    assert_eq!(
        picked["x86_64-py312"]["native"].1,
        "native-1.0-cp312-cp312-manylinux_2_28_x86_64.whl"
    );
    assert_eq!(
        picked["aarch64-py312"]["native"].1,
        "native-1.0-cp312-cp312-manylinux_2_28_aarch64.whl"
    );
    assert_eq!(
        picked["x86_64-py312"]["abionly"].1,
        "abionly-2.0-cp38-abi3-manylinux2014_x86_64.whl"
    );
    assert_eq!(
        picked["aarch64-py312"]["abionly"].1,
        "abionly-2.0-cp38-abi3-manylinux2014_aarch64.whl"
    );
}

#[test]
fn yanked_requires_python_prerelease_and_cutoff() {
    let server = IndexServer::start(content());
    let defaults = ResolveOptions::default();
    let (_, resolved) = resolve_with(
        &server,
        "pkgy\nmodern\nprepkg\ndated\n",
        &["x86_64"],
        "3.12",
        defaults.clone(),
    )
    .unwrap();
    let picked = picked(&resolved);
    let versions: Vec<_> = picked["x86_64-py312"]
        .values()
        .map(|(v, _)| v.as_str())
        .collect();
    assert_eq!(
        versions,
        ["2.0", "2.0", "1.0", "1.0"],
        "dated, modern, pkgy, prepkg: {picked:?}"
    );

    let (_, resolved) = resolve_with(
        &server,
        "pkgy==2.0\n",
        &["x86_64"],
        "3.12",
        defaults.clone(),
    )
    .unwrap();
    assert_eq!(
        resolved[0].dists[0].file.yanked.as_deref(),
        Some("broken build")
    );

    let (_, resolved) = resolve_with(
        &server,
        "prepkg\n",
        &["x86_64"],
        "3.12",
        ResolveOptions {
            pre: true,
            ..defaults.clone()
        },
    )
    .unwrap();
    assert_eq!(resolved[0].dists[0].version.to_string(), "2.0rc1");
    let (_, resolved) = resolve_with(
        &server,
        "prepkg>=2.0rc1\n",
        &["x86_64"],
        "3.12",
        defaults.clone(),
    )
    .unwrap();
    assert_eq!(resolved[0].dists[0].version.to_string(), "2.0rc1");

    let cutoff = ResolveOptions {
        exclude_newer: Some(time::macros::datetime!(2025-01-01 0:00 UTC)),
        ..defaults.clone()
    };
    let (_, resolved) = resolve_with(&server, "dated\n", &["x86_64"], "3.12", cutoff).unwrap();
    assert_eq!(resolved[0].dists[0].version.to_string(), "1.0");

    let err = resolve_with(&server, "modern>=2.5\n", &["x86_64"], "3.12", defaults)
        .unwrap_err()
        .to_string();
    assert!(err.contains("modern 3.0: requires Python >=3.13"), "{err}");
    assert!(err.contains("requires Python >=3.13"), "{err}");
}

#[test]
fn conflict_is_explained() {
    let server = IndexServer::start(content());
    let err = resolve_with(
        &server,
        "left\nright\n",
        &["x86_64"],
        "3.12",
        ResolveOptions::default(),
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, PypiError::NoSolution { .. }), "{message}");
    assert!(
        message.contains("for cp312-manylinux_2_39-x86_64"),
        "{message}"
    );
    assert!(
        message.contains("left 1.0 depends on shared <2")
            || message.contains("left depends on shared <2"),
        "{message}"
    );
    assert!(
        message.contains("right 1.0 depends on shared >=2")
            || message.contains("right depends on shared >=2"),
        "{message}"
    );
    assert!(message.contains("the requirements"), "{message}");
    println!("{message}");
}

#[test]
fn missing_wheels_and_sdist_policy() {
    let server = IndexServer::start(content());
    let defaults = ResolveOptions::default();
    let err = resolve_with(&server, "winonly\n", &["x86_64"], "3.12", defaults.clone())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("winonly 1.0: no wheel for cp312-manylinux_2_39-x86_64"),
        "{err}"
    );
    assert!(err.contains("see --allow-sdist"), "{err}");

    let err = resolve_with(&server, "srconly\n", &["x86_64"], "3.12", defaults.clone())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("srconly 1.0: source distribution only"),
        "{err}"
    );
    let with_sdist = ResolveOptions {
        allow_sdist: true,
        ..defaults.clone()
    };
    let (_, resolved) = resolve_with(
        &server,
        "srconly\n",
        &["x86_64"],
        "3.12",
        with_sdist.clone(),
    )
    .unwrap();
    assert_eq!(names(&resolved[0]), ["plain", "srconly"]);

    let err = resolve_with(&server, "dynsrc\n", &["x86_64"], "3.12", with_sdist).unwrap_err();
    assert!(
        matches!(&err, PypiError::DynamicSdist { name, .. } if name == "dynsrc"),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("pin a version of dynsrc that has a wheel")
    );

    let err = resolve_with(&server, "nosuch\n", &["x86_64"], "3.12", defaults).unwrap_err();
    assert!(matches!(err, PypiError::ProjectNotFound { .. }), "{err}");
}

#[test]
fn hash_pins_are_enforced() {
    let server = IndexServer::start(content());
    let good = IndexEntry::new(wheel("plain", "1.0").wheel()).sha256();
    let (_, resolved) = resolve_with(
        &server,
        &format!("plain==1.0 --hash=sha256:{good}\n"),
        &["x86_64"],
        "3.12",
        ResolveOptions::default(),
    )
    .unwrap();
    assert_eq!(
        resolved[0].dists[0].file.sha256.as_deref(),
        Some(good.as_str())
    );
    let err = resolve_with(
        &server,
        &format!("plain==1.0 --hash=sha256:{}\n", "0".repeat(64)),
        &["x86_64"],
        "3.12",
        ResolveOptions::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("sha256 does not match any --hash pin"),
        "{err}"
    );
}

#[test]
fn html_fallback_and_download_share_files_across_targets() {
    let mut index = content();
    index.html_only = true;
    let server = IndexServer::start(index);
    let (client, resolved) = resolve_with(
        &server,
        "app\nnative\n",
        &["x86_64", "aarch64"],
        "3.12",
        ResolveOptions::default(),
    )
    .unwrap();
    let root = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let requirements = vec!["app".to_string(), "native".to_string()];
    let progress = Tally::default();
    let part = runtime
        .block_on(download(
            client.clone(),
            &resolved,
            &requirements,
            root.path(),
            &progress,
        ))
        .unwrap();
    // One phase, like every other download: each file one item, every byte counted once.
    let bytes: u64 = part.files.iter().map(|f| f.size).sum();
    assert_eq!(
        progress.totals(),
        ("download PyPI files".into(), 9, 9, bytes, 1)
    );
    // 5 pure wheels shared, one arch-specific dependency and one native wheel per machine.
    assert_eq!(
        part.files.len(),
        5 + 2 + 2,
        "{:?}",
        part.files.iter().map(|f| &f.path).collect::<Vec<_>>()
    );
    assert_eq!(part.targets.len(), 2);
    assert_eq!(part.targets[0].name, "cp312-manylinux_2_39-x86_64");
    assert_eq!(part.targets[1].machine, "aarch64");
    for entry in &part.files {
        let bytes = fs_err::read(root.path().join(&entry.path)).unwrap();
        assert_eq!(bytes.len() as u64, entry.size);
        assert_eq!(
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes)),
            entry.sha256
        );
    }
    let lock = &part.targets[0].lock;
    let app = lock.iter().find(|l| l.name == "app").unwrap();
    assert_eq!(app.path, "pypi/files/App-1.0-py3-none-any.whl");
    assert!(app.url.ends_with("/files/App-1.0-py3-none-any.whl"));
    // A second run finds the files in place and downloads nothing.
    let before = server.requests().len();
    let progress = Tally::default();
    runtime
        .block_on(download(
            client,
            &resolved,
            &requirements,
            root.path(),
            &progress,
        ))
        .unwrap();
    assert_eq!(server.requests().len(), before);
    assert_eq!(
        progress.totals(),
        ("download PyPI files".into(), 9, 9, bytes, 1)
    );
}

/// What a run reported: the phase started (name, items), items and bytes advanced, phases
/// finished.
#[derive(Default)]
struct Tally(std::sync::Mutex<(String, u64, u64, u64, u64)>);

impl Tally {
    fn totals(&self) -> (String, u64, u64, u64, u64) {
        self.0.lock().unwrap().clone()
    }
}

impl Reporter for Tally {
    fn started(&self, what: &str, items: u64, _bytes: u64) {
        let mut t = self.0.lock().unwrap();
        (t.0, t.1) = (what.to_string(), items);
    }
    fn advanced(&self, items: u64, bytes: u64) {
        let mut t = self.0.lock().unwrap();
        (t.2, t.3) = (t.2 + items, t.3 + bytes);
    }
    fn finished(&self) {
        self.0.lock().unwrap().4 += 1;
    }
}

#[test]
fn metadata_side_files_are_used_when_served() {
    let mut index = content();
    index.serve_metadata = true;
    let server = IndexServer::start(index);
    let (client, resolved) = resolve_with(
        &server,
        "app\n",
        &["x86_64"],
        "3.12",
        ResolveOptions::default(),
    )
    .unwrap();
    assert_eq!(resolved[0].dists.len(), 6);
    assert_eq!(
        client
            .stats
            .sidecar
            .load(std::sync::atomic::Ordering::Relaxed),
        6
    );
    assert_eq!(
        client
            .stats
            .range
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    assert!(
        server.requests().iter().all(|r| !r.contains("bytes=")),
        "{:?}",
        server.requests()
    );
}
