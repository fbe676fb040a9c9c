//! Per-file work done while the bundle is still unpacking. The unpack shows every file to this
//! observer on the worker that wrote it, right after its sha256 checked out: RPMs get their
//! header parsed into the repodata record (from the first bytes the unpack still holds in
//! memory), wheels get their `METADATA` read, while the decompressing thread keeps the stream
//! going. Once the last byte is unpacked, repodata and the index only have XML, JSON and HTML
//! left to write.
//!
//! Only files of repos and an index that this apply rebuilds are looked at. A file the observer
//! cannot parse is simply not recorded: the repodata or index step then reads it from the
//! unpacked tree as it would without this, and reports the error with its path there.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use bundle::FileEntry;
use bundle::read::EntryObserver;
use rpmrepo_metadata::Package;

use super::repos::repodata_options;
use super::{PypiPlan, RepoPlan};
use crate::repodata::{self, KnownDigest};
use crate::simple_index::{CoreMetadata, read_wheel_metadata};

/// What to do with one bundle path.
enum Want {
    /// An RPM of repo `repo` (index into the plans) at `relative` inside it.
    Rpm { repo: usize, relative: String },
    /// A wheel listed in the index as `filename`.
    Wheel { filename: String },
}

/// Parsed results, collected from the unpack workers.
#[derive(Default)]
struct Found {
    /// Per repo (same order as the plans): relative path -> parsed package.
    packages: Vec<HashMap<String, Package>>,
    /// Wheel file name -> its core metadata.
    metadata: HashMap<String, CoreMetadata>,
}

/// The observer passed to `bundle::read::extract_observed` by apply.
pub struct Prefetch {
    wanted: HashMap<String, Want>,
    /// Per repo (plan order), the options its repodata is built with.
    options: Vec<repodata::Options>,
    found: Mutex<Found>,
}

impl Prefetch {
    /// Watch for the packages of every repo `repos` rebuilds (with repodata `compression`) and
    /// the wheels of `pypi` (when it rebuilds).
    pub fn new(
        repos: &[RepoPlan],
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
            packages: vec![HashMap::new(); repos.len()],
            metadata: HashMap::new(),
        };
        Prefetch {
            wanted,
            options: repos
                .iter()
                .map(|plan| repodata_options(plan, compression))
                .collect(),
            found: Mutex::new(found),
        }
    }

    /// The parsed packages of each repo (plan order) and the wheels' metadata by file name.
    pub fn into_parts(self) -> (Vec<HashMap<String, Package>>, HashMap<String, CoreMetadata>) {
        let found = self.found.into_inner().expect("prefetch lock");
        (found.packages, found.metadata)
    }
}

impl EntryObserver for Prefetch {
    fn verified(&self, entry: &FileEntry, path: &Path, head: &[u8]) {
        match self.wanted.get(&entry.path) {
            Some(Want::Rpm { repo, relative }) => {
                let known = KnownDigest {
                    sha256: entry.sha256.clone(),
                    size: entry.size,
                };
                let options = &self.options[*repo];
                if let Ok(package) =
                    repodata::parse_package_with_head(path, head, relative, Some(&known), options)
                {
                    let mut found = self.found.lock().expect("prefetch lock");
                    found.packages[*repo].insert(relative.clone(), package);
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
