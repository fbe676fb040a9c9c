//! Per-file work done while the bundle is still unpacking. The unpack shows every file to this
//! observer on the worker that wrote it, right after its sha256 checked out: RPMs get their
//! header parsed into the repodata record (from the bytes the unpack still holds in memory)
//! and handed to their repo's `repodata::PackageFeed`, whose writers are already at work;
//! wheels get their `METADATA` read; while the decompressing thread keeps the stream going.
//!
//! The RPMs of a repo this apply rebuilds are written straight into that repo's staged tree
//! (`repos::stage_dir`) at their relative path, so building the repo moves nothing.
//!
//! Only files of repos and an index that this apply rebuilds are looked at. A file the observer
//! cannot parse is simply not recorded: the repodata or index step then reads it from the
//! unpacked tree as it would without this, and reports the error with its path there.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bundle::FileEntry;
use bundle::read::EntryObserver;

use super::repos::{repodata_options, stage_dir};
use super::{Layout, PypiPlan, RepoPlan};
use crate::repodata::{self, KnownDigest, PackageFeed};
use crate::simple_index::{CoreMetadata, read_wheel_metadata};

/// What to do with one bundle path.
enum Want {
    /// An RPM of repo `repo` (index into the plans) at `relative` inside it.
    Rpm { repo: usize, relative: String },
    /// A wheel listed in the index as `filename`.
    Wheel { filename: String },
}

/// Results collected from the unpack workers.
#[derive(Default)]
struct Found {
    /// Per repo (same order as the plans): relative paths unpacked into its staged tree.
    placed: Vec<HashSet<String>>,
    /// Wheel file name -> its core metadata.
    metadata: HashMap<String, CoreMetadata>,
}

/// The observer passed to `bundle::read::extract_observed` by apply.
pub struct Prefetch<'a> {
    wanted: HashMap<String, Want>,
    /// Per repo (plan order), the feed of its repodata writers (none for an unchanged repo).
    feeds: &'a [Option<PackageFeed>],
    /// Per repo (plan order), the options its repodata is built with.
    options: Vec<repodata::Options>,
    /// Per repo (plan order), its staged tree.
    stages: Vec<PathBuf>,
    found: Mutex<Found>,
}

impl<'a> Prefetch<'a> {
    /// Watch for the packages of every repo `repos` rebuilds (with repodata `compression`,
    /// records into `feeds`) and the wheels of `pypi` (when it rebuilds).
    pub fn new(
        layout: &Layout,
        repos: &[RepoPlan],
        feeds: &'a [Option<PackageFeed>],
        pypi: Option<&PypiPlan>,
        compression: repodata::Compression,
    ) -> Self {
        let mut wanted = HashMap::new();
        for (repo, plan) in repos.iter().enumerate() {
            if plan.unchanged {
                continue;
            }
            for (relative, (_, _, bundle_path)) in &plan.packages {
                if let Some(bundle_path) = bundle_path {
                    wanted.insert(
                        bundle_path.clone(),
                        Want::Rpm {
                            repo,
                            relative: relative.clone(),
                        },
                    );
                }
            }
        }
        if let Some(pypi) = pypi.filter(|p| !p.unchanged) {
            for (filename, bundle_path) in &pypi.from_bundle {
                if filename.ends_with(".whl") {
                    wanted.insert(
                        bundle_path.clone(),
                        Want::Wheel {
                            filename: filename.clone(),
                        },
                    );
                }
            }
        }
        let found = Found {
            placed: vec![HashSet::new(); repos.len()],
            metadata: HashMap::new(),
        };
        Prefetch {
            wanted,
            feeds,
            options: repos
                .iter()
                .map(|plan| repodata_options(plan, compression))
                .collect(),
            stages: repos.iter().map(|plan| stage_dir(layout, plan)).collect(),
            found: Mutex::new(found),
        }
    }

    /// Per repo (plan order) the relative paths unpacked into its staged tree; the wheels'
    /// metadata by file name.
    pub fn into_parts(self) -> (Vec<HashSet<String>>, HashMap<String, CoreMetadata>) {
        let found = self.found.into_inner().expect("prefetch lock");
        (found.placed, found.metadata)
    }
}

impl EntryObserver for Prefetch<'_> {
    fn place(&self, entry: &FileEntry) -> Option<PathBuf> {
        match self.wanted.get(&entry.path) {
            Some(Want::Rpm { repo, relative }) => Some(self.stages[*repo].join(relative)),
            _ => None,
        }
    }

    fn verified(&self, entry: &FileEntry, path: &Path, head: &[u8]) {
        match self.wanted.get(&entry.path) {
            Some(Want::Rpm { repo, relative }) => {
                self.found.lock().expect("prefetch lock").placed[*repo].insert(relative.clone());
                let Some(feed) = self.feeds[*repo].as_ref().filter(|f| f.wants(relative)) else {
                    return;
                };
                let known = KnownDigest {
                    sha256: entry.sha256.clone(),
                    size: entry.size,
                };
                let options = &self.options[*repo];
                if let Ok(package) =
                    repodata::parse_package_with_head(path, head, relative, Some(&known), options)
                {
                    feed.offer(relative, package);
                }
            }
            Some(Want::Wheel { filename }) => {
                if let Ok(metadata) = read_wheel_metadata(path) {
                    let mut found = self.found.lock().expect("prefetch lock");
                    found.metadata.insert(filename.clone(), metadata);
                }
            }
            None => {}
        }
    }
}
