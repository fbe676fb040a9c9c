//! `installer apply`: turn a verified bundle into the served content of the admin server.
//!
//! Apply is a sequence of steps with one [`Plan`] computed up front, which `--dry-run` prints
//! (with a unified diff of every file it would change) and which a real run executes:
//!
//! 1. verify and unpack the bundle into a staging directory on the data filesystem
//!    (one streaming pass; nothing is unpacked from a bundle that fails a check); each RPM of a
//!    rebuilt repo is written straight into that repo's staged tree, and the unpack workers
//!    parse each verified RPM's header and read each wheel's metadata as the file lands (see
//!    `prefetch`), so the next steps do not read the payload again;
//! 2. per RPM repo: rebuild in staging and switch in atomically, or leave it alone when the
//!    bundle does not change it; each rebuilt repo's repodata writers start with the unpack and
//!    take the parsed records as they come (`repodata::build_fed`), so only the last records,
//!    a flush and the switch are left when the unpack ends;
//! 3. the PyPI index, the same way;
//! 4. Kubespray's files repo and the image registry, the same way (the registry's content
//!    checks run right after the unpack, before any tree is switched);
//! 5. generated files (release key, nginx conf.d file, and with a site the service configs:
//!    named, zones, chrony, landing page, node files, sysctl and the NAT ruleset): backed up
//!    once, written atomically, untouched when identical;
//! 6. with a site, the system actions (SELinux labels, firewalld, systemd enable/restart),
//!    which the command runs or prints (see [`service_actions`]).
//!
//! Before anything is written the command holds the data root's lock (`crate::lock`) and
//! [`run`] checks that the data root's filesystem has room for the payload; a run that fails
//! removes its staging directory, so a refused bundle leaves the data root as it was.
//!
//! Crash safety: staging lives at `<data>/.installer-staging` and is wiped at the start of
//! every run; every switch is one `renameat2(RENAME_EXCHANGE)`; state files inside each tree
//! say what it was built from. Durability before a switch: the unpack ends with one `syncfs`
//! (bundle crate), and each staged repo is synced once more (`syncfs`) for its repodata and
//! state file before its exchange; the index pages and state files of the other trees are
//! fsynced as they are written. So an apply killed anywhere and rerun ends in the state of an
//! uninterrupted apply, and a failed apply leaves the previous trees served.

mod base;
mod downloads;
mod images;
mod plan;
mod prefetch;
mod pypi;
mod repos;
mod state;

use std::path::{Path, PathBuf};

pub use downloads::DownloadsPlan;
pub use images::ImagesPlan;
pub use plan::{FileStep, Plan};
pub use pypi::PypiPlan;
pub use repos::RepoPlan;
pub use state::{KILL_ENV, STATE_FILE};

use crate::actions::SystemAction;
use crate::fsutil::{self, FileChange};
use crate::nginx::{self, NginxSettings, RegistryRoutes};
use crate::registry::{self, RegistryError};
use crate::repodata;
use crate::services::{self, ServedContent, nat};
use crate::site::SiteConfig;

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Bundle(#[from] bundle::BundleError),
    #[error(transparent)]
    Repodata(#[from] repodata::RepodataError),
    #[error(transparent)]
    Index(#[from] crate::simple_index::IndexError),
    #[error(transparent)]
    Fs(#[from] fsutil::FsError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(
        "repo {repo}: {path} is carried by two arches with different content; the bundle is inconsistent, rebuild it"
    )]
    ConflictingPackage { repo: String, path: String },
    #[error("release key {path} named in the manifest is not among the bundle's files")]
    MissingKey { path: String },
    #[error(transparent)]
    Registry(#[from] RegistryError),
    // The cause is part of the message and not a `source`, so a chain prints it once.
    #[error("cannot read the free space of {path}: {cause}", path = path.display())]
    FreeSpace {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "needs {needed} on {data_root}, {free} free ({path}); free space there or use another --data-root",
        needed = indicatif::HumanBytes(*needed),
        free = indicatif::HumanBytes(*free),
        data_root = data_root.display(),
        path = path.display()
    )]
    NoSpace {
        data_root: PathBuf,
        path: PathBuf,
        needed: u64,
        free: u64,
    },
    #[error(
        "this differential bundle leaves out {total} files of its base {base}; this admin lacks {count} of them: {}{}; apply the base bundle {base} (or a later one) first, or apply the full bundle",
        named.join(", "),
        if *count > named.len() { ", ..." } else { "" }
    )]
    MissingBaseFiles {
        base: String,
        count: usize,
        total: usize,
        named: Vec<String>,
    },
    #[error("download {name} ({path}): {reason}; the bundle cannot be served, rebuild it")]
    Download {
        name: String,
        path: String,
        reason: String,
    },
}

impl ApplyError {
    /// True when the bundle is at fault (exit status 3).
    pub fn is_verification_failure(&self) -> bool {
        match self {
            ApplyError::Bundle(e) => e.is_verification_failure(),
            ApplyError::ConflictingPackage { .. }
            | ApplyError::MissingKey { .. }
            | ApplyError::Registry(_)
            | ApplyError::MissingBaseFiles { .. }
            | ApplyError::Download { .. } => true,
            _ => false,
        }
    }
}

/// Settings of one apply, resolved by the command line (and later the site file).
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    pub bundle: PathBuf,
    /// Everything is written under this directory (`/` on a real admin server).
    pub root: PathBuf,
    /// Data root as a path on the admin server (`/data`).
    pub data_root: PathBuf,
    /// ed25519 public key: when given, the bundle must carry a valid signature.
    pub key: Option<PathBuf>,
    pub keep_old: bool,
    pub compression: repodata::Compression,
    /// nginx `listen` arguments and `server_name`s.
    pub listen: Vec<String>,
    pub server_names: Vec<String>,
    /// The site: when given, apply also writes the admin's service configs (bind, chrony,
    /// landing page, node files, IP forwarding and NAT). Its `data_root` must equal `data_root`.
    pub site: Option<SiteConfig>,
    /// How the bundle is read and unpacked (the binary's `--io`).
    pub io: bundle::IoMode,
}

/// Where things live, as this process sees them (root applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub data: PathBuf,
    pub repos: PathBuf,
    pub pypi: PathBuf,
    /// Kubespray's files repo.
    pub files: PathBuf,
    /// The image registry's tree.
    pub registry: PathBuf,
    pub staging: PathBuf,
}

impl Layout {
    pub fn new(root: &Path, data_root: &Path) -> Result<Layout, ApplyError> {
        let data = fsutil::rooted(root, data_root)?;
        Ok(Layout {
            repos: data.join("repos"),
            pypi: data.join("pypi"),
            files: data.join("files"),
            registry: data.join("registry"),
            staging: data.join(".installer-staging"),
            data,
        })
    }

    pub fn repo_dir(&self, distro: &str, release: &str, id: &str) -> PathBuf {
        self.repos.join(distro).join(release).join(id)
    }
}

/// Read the manifest and the installed state, and decide what apply would do. Writes nothing.
/// With `verify`, the whole bundle is checked first (the dry run does this; a real run checks
/// while unpacking).
pub fn plan(
    opts: &ApplyOptions,
    verify: bool,
    reporter: &dyn bundle::Reporter,
) -> Result<Plan, ApplyError> {
    let key = match &opts.key {
        Some(path) => Some(bundle::sign::load_verifying_key(path)?),
        None => None,
    };
    let manifest = if verify {
        bundle::read::verify_detailed(&opts.bundle, key.as_ref(), opts.io, reporter)?.manifest
    } else {
        bundle::read::read_manifest(&opts.bundle)?.manifest
    };
    let layout = Layout::new(&opts.root, &opts.data_root)?;
    // A differential bundle this admin cannot complete is refused before anything else.
    let base_files = base::locate(&manifest, &layout)?;
    let repos = repos::plan(&manifest, &layout, opts.keep_old, opts.compression)?;
    let pypi = pypi::plan(&manifest, &layout, opts.keep_old)?;
    let downloads = downloads::plan(&manifest, &layout)?;
    let images = images::plan(&manifest, &layout)?;

    let mut files = Vec::new();
    if let Some(rpm) = &manifest.rpm
        && let Some(key_path) = &rpm.key_path
    {
        let entry = manifest
            .files
            .iter()
            .find(|f| &f.path == key_path)
            .ok_or_else(|| ApplyError::MissingKey {
                path: key_path.clone(),
            })?;
        let name = key_path.rsplit('/').next().unwrap_or(key_path);
        for dir in [
            opts.data_root.join("repos").join(&rpm.distro),
            PathBuf::from("/etc/pki/rpm-gpg"),
        ] {
            files.push(FileStep::from_bundle(
                &opts.root,
                dir.join(name),
                key_path,
                &entry.sha256,
                0o644,
            )?);
        }
    }
    // The installer binaries, for the nodes: `/node/installer-<arch>` and its `.sha256`.
    let node_dir = opts.data_root.join("node");
    for installer in &bundle::summary::Summary::from_manifest(&manifest, false).installers {
        let name = crate::node::installer_name(&installer.arch);
        files.push(FileStep::from_bundle(
            &opts.root,
            node_dir.join(&name),
            &installer.path,
            &installer.sha256,
            0o755,
        )?);
        let sum = crate::desired::DesiredFile {
            path: node_dir.join(format!("{name}.sha256")),
            contents: format!("{}  {name}\n", installer.sha256).into_bytes(),
            mode: 0o644,
        };
        files.push(FileStep::generated(&opts.root, sum)?);
    }
    let mut nginx =
        NginxSettings::for_data_root(&layout.data, opts.listen.clone(), opts.server_names.clone());
    if downloads.as_ref().is_some_and(|d| !d.files.is_empty()) {
        nginx.files_dir = Some(layout.files.clone());
    }
    if let Some(images) = images.as_ref().filter(|i| !i.images.images.is_empty()) {
        nginx.registry = Some(RegistryRoutes {
            dir: layout.registry.clone(),
            tags: registry::tag_routes(&images.images),
        });
    }
    files.push(FileStep::generated(
        &opts.root,
        nginx::desired_file(&nginx),
    )?);
    if let Some(site) = &opts.site {
        let image_bytes = images.as_ref().and_then(|i| i.live_bytes.as_ref());
        for file in service_files(site, &opts.root, &manifest, image_bytes)? {
            files.push(FileStep::generated(&opts.root, file)?);
        }
    }
    Ok(Plan {
        manifest,
        signature_required: key.is_some(),
        layout,
        repos,
        pypi,
        downloads,
        images,
        files,
        base_files,
    })
}

/// What a run changed, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub repos_rebuilt: Vec<String>,
    pub repos_unchanged: Vec<String>,
    pub pypi_rebuilt: bool,
    pub downloads_rebuilt: bool,
    pub registry_rebuilt: bool,
    pub files_changed: Vec<PathBuf>,
    pub backups: Vec<PathBuf>,
}

impl Outcome {
    pub fn changed_anything(&self) -> bool {
        !self.repos_rebuilt.is_empty()
            || self.pypi_rebuilt
            || self.downloads_rebuilt
            || self.registry_rebuilt
            || !self.files_changed.is_empty()
    }
}

/// Execute `plan` (computed by [`plan`] without verification; the unpack verifies).
///
/// A run that fails removes its staging directory and the directories it created that are
/// still empty, so a refused bundle leaves the data root as it found it.
pub fn run(
    opts: &ApplyOptions,
    plan: &Plan,
    reporter: &dyn bundle::Reporter,
) -> Result<Outcome, ApplyError> {
    let layout = &plan.layout;
    if layout.staging.exists() {
        fs_err::remove_dir_all(&layout.staging)?;
    }
    if plan.needs_payload() {
        preflight_space(opts, plan)?;
    }
    let created = missing_ancestors(&layout.staging);
    let result = fs_err::create_dir_all(&layout.staging)
        .map_err(ApplyError::from)
        .and_then(|()| run_staged(opts, plan, reporter));
    if result.is_err() {
        // The failure is what the operator needs to read; a cleanup that fails too leaves the
        // staging directory to the next run, which wipes it first.
        let _ = fs_err::remove_dir_all(&layout.staging);
        for dir in created.iter().skip(1) {
            if std::fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
    result
}

/// Room for what apply writes besides the payload (repodata, index pages, state files): a
/// fixed part for the small trees plus a share of the payload for the large ones.
const SPACE_MARGIN_BYTES: u64 = 16 << 20;
const SPACE_MARGIN_PERCENT: u64 = 2;

/// Refuse a run the data root's filesystem cannot hold before anything is written. The unpack
/// writes the whole payload into staging, and the old trees stay served until each switch, so
/// nothing already installed is counted as reusable.
fn preflight_space(opts: &ApplyOptions, plan: &Plan) -> Result<(), ApplyError> {
    // A differential bundle's omitted files are hard links to what is installed: no room.
    let payload = plan.manifest.payload_totals().bytes;
    let needed = payload + SPACE_MARGIN_BYTES + payload / 100 * SPACE_MARGIN_PERCENT;
    // The data root may not exist yet; its nearest existing ancestor is on the same filesystem.
    let path = plan
        .layout
        .data
        .ancestors()
        .find(|d| d.exists())
        .unwrap_or(&plan.layout.data)
        .to_path_buf();
    let stat = rustix::fs::statvfs(&path).map_err(|e| ApplyError::FreeSpace {
        path: path.clone(),
        cause: e.into(),
    })?;
    let free = stat.f_bavail.saturating_mul(stat.f_frsize);
    if free < needed {
        return Err(ApplyError::NoSpace {
            data_root: opts.data_root.clone(),
            path,
            needed,
            free,
        });
    }
    Ok(())
}

/// `dir` and those of its ancestors that do not exist yet, deepest first.
fn missing_ancestors(dir: &Path) -> Vec<PathBuf> {
    dir.ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .map(Path::to_path_buf)
        .collect()
}

fn run_staged(
    opts: &ApplyOptions,
    plan: &Plan,
    reporter: &dyn bundle::Reporter,
) -> Result<Outcome, ApplyError> {
    let layout = &plan.layout;
    let key = match &opts.key {
        Some(path) => Some(bundle::sign::load_verifying_key(path)?),
        None => None,
    };
    let extracted = layout.staging.join("bundle");
    let (image_content, metadata) =
        unpack_and_build_repos(opts, plan, &extracted, key.as_ref(), reporter)?;

    let mut outcome = Outcome::default();
    for repo in &plan.repos {
        if repo.unchanged {
            outcome.repos_unchanged.push(repo.id.clone());
        } else {
            outcome.repos_rebuilt.push(repo.id.clone());
        }
    }
    if let Some(pypi) = &plan.pypi {
        pypi::execute(pypi, layout, &extracted, &metadata)?;
        outcome.pypi_rebuilt = !pypi.unchanged;
    }
    if let Some(downloads) = &plan.downloads {
        downloads::execute(downloads, layout, &extracted)?;
        outcome.downloads_rebuilt = !downloads.unchanged;
    }
    // The landing page shows each image's size, which only the manifests' content tells: when
    // the registry was rebuilt, the page is rendered again with what the checks found.
    let mut landing = None;
    if let (Some(images), Some(content)) = (&plan.images, &image_content) {
        images::execute(images, content, layout, &extracted)?;
        outcome.registry_rebuilt = true;
        if let Some(site) = &opts.site {
            let mut served = ServedContent::from_manifest(&plan.manifest);
            served.set_image_bytes(&content.bytes);
            landing = Some(services::landing::page(site, &served));
        }
    }
    for step in &plan.files {
        if !step.change.is_change() && matches!(step.source, plan::FileSource::FromBundle { .. }) {
            // Already in place (same sha256), and the payload may not have been unpacked.
            continue;
        }
        let desired = match &landing {
            Some(page) if page.path == step.target() => page.clone(),
            _ => step.desired(&extracted)?,
        };
        let installed = fsutil::install_file(&opts.root, &desired)?;
        if installed.change != FileChange::Unchanged {
            outcome.files_changed.push(desired.path.clone());
        }
        outcome.backups.extend(installed.backup);
        state::kill_point(&format!("file:{}", desired.path.display()));
    }
    fs_err::remove_dir_all(&layout.staging)?;
    fsutil::sync_dir(&layout.data)?;
    Ok(outcome)
}

/// The verifying unpack, with every rebuilt RPM repo built at the same time, one thread each,
/// started before the unpack: its repodata writers take the records the unpack parses (see
/// `prefetch`), so the XML and its compression overlap the unpack, and each repo is switched
/// in as soon as it is complete. Returns the registry's checked content and the wheels'
/// metadata for the trees built after.
fn unpack_and_build_repos(
    opts: &ApplyOptions,
    plan: &Plan,
    extracted: &Path,
    key: Option<&bundle::sign::VerifyingKey>,
    reporter: &dyn bundle::Reporter,
) -> Result<(Option<registry::ImageContent>, MetadataByWheel), ApplyError> {
    let layout = &plan.layout;
    let mut inputs = Vec::new();
    let mut feeds = Vec::new();
    for repo in &plan.repos {
        let (input, feed) = if repo.unchanged {
            (None, None)
        } else {
            let input = repos::repodata_input(repo, layout, extracted)?;
            let feed = repodata::PackageFeed::new(&input)?;
            (Some(input), Some(feed))
        };
        inputs.push(input);
        feeds.push(feed);
    }
    let prefetch = prefetch::Prefetch::new(
        layout,
        &plan.repos,
        &feeds,
        plan.pypi.as_ref(),
        opts.compression,
    );
    let together = Together(reporter);
    let (unpacked, built) = std::thread::scope(|scope| {
        let mut gates = Vec::new();
        let mut handles = Vec::new();
        for (i, repo) in plan.repos.iter().enumerate() {
            let (Some(input), Some(feed)) = (&inputs[i], &feeds[i]) else {
                continue;
            };
            let (gate, unpacked) = std::sync::mpsc::channel();
            gates.push((i, gate));
            let together = &together;
            handles.push(scope.spawn(move || {
                repos::execute(
                    repo,
                    layout,
                    extracted,
                    opts.compression,
                    input,
                    feed,
                    unpacked,
                    together,
                )
            }));
        }
        let unpacked = unpack(opts, plan, extracted, key, &prefetch, reporter);
        let (mut placed, metadata) = prefetch.into_parts();
        let rebuilding = unpacked.is_ok() && !gates.is_empty();
        if rebuilding {
            // One phase for all the repos (the terminal shows one phase at a time).
            let headers: usize = gates
                .iter()
                .map(|(i, _)| plan.repos[*i].packages.len())
                .sum();
            reporter.started("repodata", headers as u64, 0);
            for (i, gate) in gates {
                let _ = gate.send(std::mem::take(&mut placed[i]));
            }
        } else {
            // A gate dropped unsent tells its repo to stop: the unpack failed.
            drop(gates);
        }
        let built: Vec<Result<(), ApplyError>> = handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect();
        if rebuilding {
            reporter.finished();
        }
        (unpacked.map(|images| (images, metadata)), built)
    });
    // The unpack's failure is the cause; the repos only stopped because of it.
    let unpacked = unpacked?;
    built.into_iter().collect::<Result<(), _>>()?;
    Ok(unpacked)
}

/// Wheel file name -> its core metadata, read while the bundle unpacked.
type MetadataByWheel = std::collections::HashMap<String, crate::simple_index::CoreMetadata>;

/// The verifying unpack (or, when no tree needs the payload, the verification alone), and
/// what must hold before any tree is switched: the manifest is the one the plan was made from,
/// a delta's base files are in place, the registry's content checks pass (a bundle whose
/// images reference what it does not carry changes nothing).
fn unpack(
    opts: &ApplyOptions,
    plan: &Plan,
    extracted: &Path,
    key: Option<&bundle::sign::VerifyingKey>,
    prefetch: &prefetch::Prefetch<'_>,
    reporter: &dyn bundle::Reporter,
) -> Result<Option<registry::ImageContent>, ApplyError> {
    let (bundle, io) = (&opts.bundle, opts.io);
    let manifest = if plan.needs_payload() {
        let manifest =
            bundle::read::extract_observed(bundle, extracted, key, io, prefetch, reporter)?;
        base::link_into(&plan.base_files, extracted)?;
        manifest
    } else {
        bundle::read::verify_detailed(bundle, key, io, reporter)?.manifest
    };
    if manifest != plan.manifest {
        // The bundle changed between planning and unpacking: plan again from what was verified.
        return Err(ApplyError::Bundle(bundle::BundleError::InvalidInput {
            reason: format!(
                "{} changed while apply was running; run apply again",
                opts.bundle.display()
            ),
        }));
    }
    state::kill_point("unpacked");
    match plan.images.as_ref().filter(|i| !i.unchanged) {
        Some(images) => Ok(Some(images::check(images, extracted)?)),
        None => Ok(None),
    }
}

/// The service configs a site asks for: bind, chrony, landing page and node files, and the
/// IP forwarding + NAT files in the state the operator last switched to (enabled when NAT was
/// never switched, as the seed procedure leaves it).
fn service_files(
    site: &SiteConfig,
    root: &Path,
    manifest: &bundle::BundleManifest,
    image_bytes: Option<&std::collections::BTreeMap<String, u64>>,
) -> Result<Vec<crate::desired::DesiredFile>, ApplyError> {
    let mut served = ServedContent::from_manifest(manifest);
    if let Some(bytes) = image_bytes {
        served.set_image_bytes(bytes);
    }
    let mut files = services::admin_files(site, &served);
    let state = nat::persisted_state(root).unwrap_or(nat::NatState::Enabled);
    let main_path = nat::rooted(root, nat::NFTABLES_MAIN);
    let existing_main = match fs_err::read_to_string(&main_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e.into()),
    };
    files.extend(nat::files(site, state, existing_main.as_deref()));
    Ok(files)
}

/// The system actions that go with a site's service files, in order: SELinux labels,
/// firewalld, then enabling and restarting the services, then the NAT state in the running
/// kernel. The caller decides whether to run them (a real root, services wanted) or print them.
pub fn service_actions(site: &SiteConfig, root: &Path) -> Vec<SystemAction> {
    let mut actions = services::admin_actions(site);
    let state = nat::persisted_state(root).unwrap_or(nat::NatState::Enabled);
    actions.extend(nat::runtime_actions(
        site,
        state,
        &nat::rooted(root, nat::RULESET_FILE),
        nat::nft_present(),
    ));
    actions
}

/// The repos' repodata builds, run at once, advancing one phase: each build's own start and
/// end are dropped, its counts and notes pass through.
struct Together<'a>(&'a dyn bundle::Reporter);

impl bundle::Reporter for Together<'_> {
    fn advanced(&self, items: u64, bytes: u64) {
        self.0.advanced(items, bytes);
    }
    fn note(&self, message: &str) {
        self.0.note(message);
    }
}
