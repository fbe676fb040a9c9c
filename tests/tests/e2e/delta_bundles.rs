//! Differential bundles (issue 15): a mirror and its index change as a month of updates
//! changes them (5% of the packages get a new version, some go, a few arrive, a wheel gets a
//! new version); the bundle built `--since` the first one, or since its `.manifest.json`,
//! applied on top of the first gives the very tree the full new bundle gives on an empty root,
//! and dnf installs the update from it. An admin that lacks the base refuses the delta before
//! any change, naming the base and counting what it lacks; a chain of deltas applies in turn.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::harness::assert_success;
use e2e::harness::{all_output, bundler, file_tree, installer, isolated_dnf, run_installer};
use e2e::mirror::{GeneratedMirror, MirrorSpec, generate_mirror};
use e2e::mirror_update::update_mirror;
use e2e::pypi_index::{IndexContent, IndexEntry, IndexServer};
use e2e::server::{Faults, TestServer};
use e2e::wheelgen::DistSpec;
use e2e::workspace_bin;

/// One state of the upstream side: the RPM mirror (served from disk, so changes show at
/// once) and the PyPI index (a new server per state).
struct Upstream {
    tmp: tempfile::TempDir,
    spec: MirrorSpec,
    mirror: GeneratedMirror,
    rpm: TestServer,
    pypi: IndexServer,
    index: IndexContent,
}

impl Upstream {
    fn start() -> Upstream {
        let tmp = tempfile::tempdir().unwrap();
        let spec = MirrorSpec::small(tmp.path().join("mirror"));
        let mirror = generate_mirror(&spec).expect("generate mirror (needs createrepo_c)");
        let rpm = TestServer::start(&mirror.root, Faults::none()).unwrap();
        let mut index = IndexContent::default();
        index.add(
            "app",
            IndexEntry::new(DistSpec::new("app", "1.0").requires("dep").wheel()),
        );
        index.add("dep", IndexEntry::new(DistSpec::new("dep", "1.0").wheel()));
        let pypi = IndexServer::start(index.clone());
        fs_err::write(tmp.path().join("req.txt"), "app\n").unwrap();
        Upstream {
            tmp,
            spec,
            mirror,
            rpm,
            pypi,
            index,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// `bundler build` of the current state into `name`, created at `epoch`.
    fn build(&self, name: &str, epoch: u64, more: &[&str]) -> PathBuf {
        let out = bundler()
            .current_dir(self.dir())
            .args([
                "build",
                "--release",
                "10",
                "--no-files",
                "--no-images",
                "-q",
            ])
            .args(["--mirror", &self.rpm.url()])
            .arg("--gpg-key")
            .arg(&self.mirror.key_path)
            .args(["--requirements", "req.txt", "--platform", "x86_64"])
            .args(["--index-url", &self.pypi.url()])
            .arg("--cache")
            .arg(self.dir().join("cache"))
            .arg("--installer")
            .arg(workspace_bin("installer"))
            .args(["-o", name])
            .args(more)
            .env("SOURCE_DATE_EPOCH", epoch.to_string())
            .output()
            .expect("run bundler");
        assert_success(out);
        self.dir().join(name)
    }

    /// A month of updates (`e2e::mirror_update`): 5% of the packages get version `version`,
    /// two others go, two arrive, and `app` gets the wheel `app_version`. Returns the name of
    /// one updated package and its new file name.
    fn update(&mut self, version: &str, app_version: &str, round: u64) -> (String, String) {
        let update = update_mirror(&self.spec, &mut self.mirror, 5, version, round).unwrap();
        assert!(update.updated.len() >= 2 && update.removed == 2 && update.added == 2);
        self.index.add(
            "app",
            IndexEntry::new(DistSpec::new("app", app_version).requires("dep").wheel()),
        );
        self.pypi = IndexServer::start(self.index.clone());
        update.updated[0].clone()
    }
}

fn apply(bundle: &Path, root: &Path) -> String {
    all_output(&assert_success(run_installer(
        &["apply"],
        bundle,
        Some(root),
    )))
}

fn manifest(bundle: &Path) -> bundle::BundleManifest {
    bundle::read::read_manifest(bundle).unwrap().manifest
}

/// Every regular file under `root` with its bytes, by relative path, leaving out what an
/// apply on top of an earlier one adds by design: the backups (`.orig`) of the files it
/// replaced.
fn tree(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    file_tree(root)
        .into_iter()
        .filter(|(rel, _)| !rel.to_string_lossy().ends_with(".orig"))
        .map(|(rel, bytes)| (rel, without_root(bytes, root)))
        .collect()
}

/// Generated configs name the root they were written under (nginx's `root`): the trees of
/// two roots are compared with it replaced.
fn without_root(bytes: Vec<u8>, root: &Path) -> Vec<u8> {
    let needle = root.as_os_str().as_encoded_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = &bytes[..];
    while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(b"<ROOT>");
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

/// `got` and `want` hold the same files with the same bytes, except the repodata and state
/// file of the repos in `left_alone`: a repo whose packages an update does not change keeps
/// the repodata its earlier apply built (revision and timestamps of that bundle), and
/// [`dnf_listing`] compares those.
fn assert_same_tree(got: &Path, want: &Path, left_alone: &[&str]) {
    let (got, want) = (tree(got), tree(want));
    let exempt = |p: &Path| {
        left_alone.iter().any(|id| {
            let repo = Path::new("data/repos/rocky/10").join(id);
            p.starts_with(repo.join("repodata")) || p == repo.join(".installer-state.json")
        })
    };
    let differ: Vec<&PathBuf> = got
        .keys()
        .chain(want.keys())
        .filter(|p| got.get(*p) != want.get(*p) && !exempt(p))
        .collect();
    let mut shown = String::new();
    for p in &differ {
        if let (Some(a), Some(b)) = (got.get(*p), want.get(*p))
            && a.len() < 8192
            && let (Ok(a), Ok(b)) = (std::str::from_utf8(a), std::str::from_utf8(b))
        {
            for (x, y) in a.lines().zip(b.lines()).filter(|(x, y)| x != y) {
                shown.push_str(&format!("{}:\n  got  {x}\n  want {y}\n", p.display()));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} files differ: {differ:?}\n{shown}",
        differ.len(),
        want.len()
    );
}

/// dnf's view of every applied repo: each package's repo, NEVRA, checksum and location.
fn dnf_listing(root: &Path, installroot: &Path) -> String {
    let out = dnf(root, installroot)
        .args(["-q", "repoquery", "--available", "--qf"])
        .arg("%{repoid} %{name}-%{epoch}:%{version}-%{release}.%{arch} %{location}")
        .output()
        .expect("dnf");
    let listing = String::from_utf8_lossy(&assert_success(out).stdout).to_string();
    let mut lines: Vec<&str> = listing.lines().collect();
    lines.sort();
    lines.join("\n")
}

/// Installs `package` from the applied repos.
fn dnf_install(root: &Path, installroot: &Path, package: &str) -> String {
    all_output(&assert_success(
        dnf(root, installroot)
            .args(["install", package])
            .output()
            .expect("dnf"),
    ))
}

/// dnf against the applied repos (file:// URLs, gpgcheck on with the served key).
fn dnf(root: &Path, installroot: &Path) -> Command {
    let repos = root.join("data/repos/rocky");
    let key = fs_err::read_dir(&repos)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_file() && p.to_string_lossy().contains("RPM-GPG-KEY"))
        .expect("release key installed");
    let mut cmd = isolated_dnf(installroot);
    for repo in ["baseos", "appstream", "extras"] {
        cmd.arg(format!(
            "--repofrompath={repo},file://{}/10/{repo}/",
            repos.display()
        ))
        .arg(format!("--setopt={repo}.gpgcheck=1"))
        .arg(format!("--setopt={repo}.gpgkey=file://{}", key.display()));
    }
    cmd
}

/// The installed ids of the repos whose packages are the same in `a` and `b`.
fn repos_left_alone(a: &Path, b: &Path) -> Vec<&'static str> {
    let packages = |bundle: &Path, id: &str| -> Vec<(String, String)> {
        manifest(bundle)
            .files
            .into_iter()
            .filter(|f| {
                f.kind == bundle::FileKind::Rpm && f.path.starts_with(&format!("repos/{id}/"))
            })
            .map(|f| (f.path, f.sha256))
            .collect()
    };
    ["baseos", "appstream", "extras"]
        .into_iter()
        .filter(|id| packages(a, id) == packages(b, id))
        .collect()
}

#[test]
fn delta_since_the_bundle_or_its_manifest_applies_to_the_full_bundles_tree() {
    let mut up = Upstream::start();
    let b1 = up.build("b1.tar.zst", 1_790_000_000, &[]);
    let base_id = manifest(&b1).bundle_id;
    let (updated, updated_file) = up.update("1.1", "1.1", 0);
    let b2 = up.build("b2.tar.zst", 1_792_000_000, &[]);
    let since_bundle = up.build(
        "d2.tar.zst",
        1_792_000_000,
        &["--since", b1.to_str().unwrap()],
    );
    let beside = up.dir().join("b1.tar.zst.manifest.json");
    let since_manifest = up.build(
        "d2m.tar.zst",
        1_792_000_000,
        &["--since", beside.to_str().unwrap()],
    );

    // Both describe the whole new state (the full bundle's id), name the base, and carry far
    // less than the full bundle; from the bundle or from its manifest, the same bytes.
    let full = manifest(&b2);
    let delta = manifest(&since_bundle);
    assert_eq!(delta.bundle_id, full.bundle_id);
    assert_eq!(delta.base.as_ref().unwrap().bundle_id, base_id);
    assert_eq!(delta.format, bundle::DELTA_FORMAT);
    assert_eq!(full.format, bundle::FORMAT_VERSION);
    assert_eq!(
        fs_err::read(&since_bundle).unwrap(),
        fs_err::read(&since_manifest).unwrap()
    );
    let carried = delta.payload_totals();
    assert!(carried.files < full.totals.files / 2, "{carried:?}");
    assert!(
        fs_err::metadata(&since_bundle).unwrap().len() * 3 < fs_err::metadata(&b2).unwrap().len()
    );
    assert!(
        delta
            .files
            .iter()
            .filter(|f| f.kind.travels_in_full())
            .all(|f| !f.in_base),
        "metadata travels in full"
    );
    for f in delta.files.iter().filter(|f| f.in_base) {
        assert!(manifest(&b1).files.iter().any(|b| b.sha256 == f.sha256));
    }
    // The extracted manifest is the one written beside the bundle.
    let out_file = up.dir().join("extracted.json");
    let inspect = all_output(&assert_success(
        installer()
            .args(["inspect", "--manifest-out"])
            .arg(&out_file)
            .arg(&b1)
            .env_remove("KOI_BUNDLE")
            .output()
            .unwrap(),
    ));
    assert!(inspect.contains("kind:      full"), "{inspect}");
    assert_eq!(
        fs_err::read(&out_file).unwrap(),
        fs_err::read(&beside).unwrap()
    );
    let said = format!("differential, base {base_id}");
    let inspect = all_output(&assert_success(run_installer(
        &["inspect"],
        &since_bundle,
        None,
    )));
    assert!(inspect.contains(&said), "{inspect}");
    let verify = all_output(&assert_success(run_installer(
        &["verify"],
        &since_bundle,
        None,
    )));
    assert!(verify.contains(&said), "{verify}");
    assert!(verify.contains("the manifest complete"), "{verify}");

    // The delta on top of the base, and the full new bundle on an empty root: the same tree.
    let updated_root = up.dir().join("updated");
    apply(&b1, &updated_root);
    apply(&since_bundle, &updated_root);
    let fresh_root = up.dir().join("fresh");
    apply(&b2, &fresh_root);
    let left_alone = repos_left_alone(&b1, &b2);
    assert_same_tree(&updated_root, &fresh_root, &left_alone);
    assert_eq!(
        dnf_listing(&updated_root, &up.dir().join("q1")),
        dnf_listing(&fresh_root, &up.dir().join("q2"))
    );
    // Byte for byte what the full new bundle gives on top of the base, repodata included.
    let full_on_base = up.dir().join("full-on-base");
    apply(&b1, &full_on_base);
    apply(&b2, &full_on_base);
    assert_same_tree(&updated_root, &full_on_base, &[]);
    // And so does the delta built from the manifest alone.
    let from_manifest_root = up.dir().join("from-manifest");
    apply(&b1, &from_manifest_root);
    apply(&since_manifest, &from_manifest_root);
    assert_same_tree(&from_manifest_root, &full_on_base, &[]);

    let served = updated_root.join("data/repos/rocky/10");
    assert!(
        fs_err::read_dir(&served).unwrap().any(|repo| repo
            .unwrap()
            .path()
            .join("Packages")
            .join(&updated_file[..1])
            .join(&updated_file)
            .exists()),
        "{updated_file} served"
    );
    let installroot = up.dir().join("installroot");
    let install = dnf_install(&updated_root, &installroot, &updated);
    let rpm = Command::new("rpm")
        .arg("--root")
        .arg(&installroot)
        .args(["-q", &updated])
        .output()
        .unwrap();
    let installed = String::from_utf8_lossy(&rpm.stdout);
    assert!(
        installed.trim() == updated_file.trim_end_matches(".rpm"),
        "{installed}\n{install}"
    );
}

#[test]
fn delta_on_an_admin_without_its_base_is_refused_before_any_change() {
    let mut up = Upstream::start();
    let b1 = up.build("b1.tar.zst", 1_790_000_000, &[]);
    let base_id = manifest(&b1).bundle_id;
    up.update("1.1", "1.1", 0);
    let delta = up.build(
        "d2.tar.zst",
        1_792_000_000,
        &["--since", b1.to_str().unwrap()],
    );
    let omitted = manifest(&delta).files.iter().filter(|f| f.in_base).count();
    assert!(omitted > 10, "{omitted}");

    // An admin that never had the base: a site file there already, nothing else.
    let root = up.dir().join("never");
    fs_err::create_dir_all(root.join("etc")).unwrap();
    fs_err::write(root.join("etc/hosts"), "127.0.0.1 localhost\n").unwrap();
    let before = tree(&root);
    let out = run_installer(&["apply"], &delta, Some(&root));
    let said = all_output(&out);
    assert_eq!(out.status.code(), Some(3), "{said}");
    assert!(said.contains(&base_id), "{said}");
    assert!(said.contains(&format!("lacks {omitted} of them")), "{said}");
    assert!(said.contains(".rpm"), "names missing files: {said}");
    assert_eq!(tree(&root), before, "nothing changed");
    assert!(!root.join("data").exists(), "{said}");
}

#[test]
fn a_chain_of_deltas_applies_in_turn_and_skipping_a_link_is_refused() {
    let mut up = Upstream::start();
    let b1 = up.build("b1.tar.zst", 1_790_000_000, &[]);
    up.update("1.1", "1.1", 0);
    let d2 = up.build(
        "d2.tar.zst",
        1_792_000_000,
        &["--since", b1.to_str().unwrap()],
    );
    let d2_id = manifest(&d2).bundle_id;
    let (updated, _) = up.update("1.2", "1.2", 1);
    let beside = up.dir().join("d2.tar.zst.manifest.json");
    let d3 = up.build(
        "d3.tar.zst",
        1_794_000_000,
        &["--since", beside.to_str().unwrap()],
    );
    let b3 = up.build("b3.tar.zst", 1_794_000_000, &[]);
    assert_eq!(manifest(&d3).base.unwrap().bundle_id, d2_id);

    // Skipping d2: the base holds less than d3 leaves out, so it is refused, naming d2.
    let skipped = up.dir().join("skipped");
    apply(&b1, &skipped);
    let before = tree(&skipped);
    let out = run_installer(&["apply"], &d3, Some(&skipped));
    assert_eq!(out.status.code(), Some(3), "{}", all_output(&out));
    assert!(all_output(&out).contains(&d2_id), "{}", all_output(&out));
    assert_eq!(tree(&skipped), before, "nothing changed");

    // In turn: the full b3's tree.
    apply(&d2, &skipped);
    apply(&d3, &skipped);
    let fresh = up.dir().join("fresh");
    apply(&b3, &fresh);
    assert_same_tree(&skipped, &fresh, &repos_left_alone(&b1, &b3));
    assert_eq!(
        dnf_listing(&skipped, &up.dir().join("q1")),
        dnf_listing(&fresh, &up.dir().join("q2"))
    );
    let install = dnf_install(&skipped, &up.dir().join("installroot"), &updated);
    assert!(install.contains("1.2"), "{install}");
}
