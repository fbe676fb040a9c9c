//! `installer node`: fetch the node files the admin serves and apply them to this node (or to
//! a tree under `--root`), with the same safety as apply: atomic writes, a one-time `.orig`
//! backup, identical files left alone. The node's own `.repo` files are moved to a backup
//! folder so dnf sees only the admin. Commands that change the running system (default route,
//! service restarts) run only on a real root; under `--root` they are returned for printing.

use std::path::{Path, PathBuf};

use crate::actions::{Condition, SystemAction};
use crate::desired::DesiredFile;
use crate::fsutil::{self, FsError, Installed};
use crate::netprobe::{self, ProbeError};
use crate::node::{NodeSpec, REPO_FILE_NAME, SPEC_NAME};
use crate::services::NODE_PATH;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(
        "cannot fetch the node files from the admin ({0}); is `installer apply` done there and nginx running?"
    )]
    Fetch(#[from] ProbeError),
    #[error("{url} is not a node.json this installer understands: {source}")]
    Spec {
        url: String,
        source: serde_json::Error,
    },
    #[error("node.json names {path}, which is not an absolute path under /etc")]
    UnsafePath { path: String },
    #[error(transparent)]
    Write(#[from] FsError),
    #[error("cannot move {path} aside: {source}")]
    Move {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What `installer node` did.
#[derive(Debug, Default)]
pub struct NodeReport {
    pub files: Vec<Installed>,
    /// (from, to) of each repo file moved aside.
    pub moved_repos: Vec<(PathBuf, PathBuf)>,
    /// Commands for the running system; run when `ran` is true, otherwise for the operator.
    pub actions: Vec<SystemAction>,
    pub ran: bool,
}

/// `admin` is `ADDR` or `ADDR:PORT` of the admin's web server.
pub fn fetch_spec(admin: &str) -> Result<NodeSpec, NodeError> {
    let url = format!("http://{admin}{NODE_PATH}{SPEC_NAME}");
    let body = netprobe::http_get(&url)?;
    serde_json::from_slice(&body).map_err(|source| NodeError::Spec { url, source })
}

/// Applies the admin's node files under `root`. `run_actions` is honoured only when `root` is
/// `/`: commands never run against the host for a tree prepared elsewhere.
pub fn setup_node(admin: &str, root: &Path, run_actions: bool) -> Result<NodeReport, NodeError> {
    apply_node_files(&fetch_node_files(admin)?, root, run_actions)
}

/// The admin's node files, all fetched and checked before anything is written, so that an
/// admin that fails halfway leaves the node as it was (and the caller can lock only the writes).
#[derive(Debug)]
pub struct NodeFiles {
    spec: NodeSpec,
    files: Vec<DesiredFile>,
}

/// Fetches `node.json` and every file it names from `admin`.
pub fn fetch_node_files(admin: &str) -> Result<NodeFiles, NodeError> {
    let spec = fetch_spec(admin)?;
    let mut files = Vec::new();
    for file in &spec.files {
        if !file.path.starts_with("/etc/") || file.path.contains("..") || file.name.contains('/') {
            return Err(NodeError::UnsafePath {
                path: file.path.clone(),
            });
        }
        let url = format!("http://{admin}{NODE_PATH}{}", file.name);
        let contents = netprobe::http_get(&url)?;
        files.push(DesiredFile {
            path: file.path.clone().into(),
            contents,
            mode: file.mode,
        });
    }
    Ok(NodeFiles { spec, files })
}

/// Writes fetched node files under `root`; see [`setup_node`].
pub fn apply_node_files(
    node: &NodeFiles,
    root: &Path,
    run_actions: bool,
) -> Result<NodeReport, NodeError> {
    let mut report = NodeReport::default();
    for desired in &node.files {
        report.files.push(fsutil::install_file(root, desired)?);
    }
    report.moved_repos = move_stock_repos(root, &node.spec.repo_backup_dir)?;
    report.actions = actions(&node.spec);
    report.ran = run_actions && root == Path::new("/");
    Ok(report)
}

fn move_stock_repos(root: &Path, backup_dir: &str) -> Result<Vec<(PathBuf, PathBuf)>, NodeError> {
    let repos_dir = root.join("etc/yum.repos.d");
    let backup = fsutil::rooted(root, Path::new(backup_dir))?;
    let mut moved = Vec::new();
    let Ok(entries) = fs_err::read_dir(&repos_dir) else {
        return Ok(moved);
    };
    let mut stock: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "repo"))
        .filter(|p| p.file_name().is_some_and(|n| n != REPO_FILE_NAME))
        .collect();
    stock.sort();
    for from in stock {
        fs_err::create_dir_all(&backup).map_err(|source| NodeError::Move {
            path: from.clone(),
            source,
        })?;
        let name = from.file_name().expect("file has a name").to_os_string();
        // A repo file that reappears (a package reinstalled it) must not overwrite the backup
        // of the original.
        let mut to = backup.join(&name);
        let mut n = 1;
        while to.exists() {
            let mut numbered = name.clone();
            numbered.push(format!(".{n}"));
            to = backup.join(numbered);
            n += 1;
        }
        fs_err::rename(&from, &to).map_err(|source| NodeError::Move {
            path: from.clone(),
            source,
        })?;
        moved.push((from, to));
    }
    Ok(moved)
}

/// Commands that make the running node use what was written. NetworkManager first reloads its
/// configuration, so the `dns=none` just written is in force before the connection is brought
/// up again: brought up under `dns=default` it would rewrite /etc/resolv.conf with the
/// connection's own servers (the seed's "common mistake"). Then the default route goes via the
/// admin on the connection of the interface that reaches it, persistent in the connection.
pub fn actions(spec: &NodeSpec) -> Vec<SystemAction> {
    let admin = spec.admin;
    vec![
        SystemAction::new(
            "make NetworkManager leave /etc/resolv.conf to the installer (dns=none)",
            Condition::NetworkManager,
            &["nmcli", "general", "reload"],
        ),
        SystemAction::shell(
            format!("route through the admin {admin} on the connection that reaches it"),
            Condition::NetworkManager,
            &format!(
                "dev=$(ip -o route get {admin} | sed -n 's/.* dev \\([^ ]*\\).*/\\1/p'); \
                 conn=$(nmcli -g GENERAL.CONNECTION device show \"$dev\"); \
                 if [ -z \"$conn\" ]; then echo \"no NetworkManager connection on $dev\" >&2; exit 1; fi; \
                 nmcli connection modify \"$conn\" ipv4.gateway {admin} ipv4.never-default no && \
                 nmcli connection up \"$conn\""
            ),
        ),
        SystemAction::new(
            "follow the admin's clock",
            Condition::Systemd,
            &["systemctl", "restart", "chronyd"],
        ),
    ]
}
