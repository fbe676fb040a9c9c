//! Building a repo's primary, filelists and other while its packages still arrive: apply
//! parses each RPM as the bundle unpacks, and the three writers (with their gzip) take the
//! records in output order as they become ready, on the core the unpack leaves idle, instead
//! of starting once the last package is on disk.
//!
//! A [`PackageFeed`] holds one slot per package in createrepo_c's order. Records are offered
//! by whoever has them (the unpack, the live repo's previous repodata); what is still missing
//! once the unpack is done is read from the staged tree by [`PackageFeed::complete`]. A record
//! is dropped as soon as all three writers have written it, so memory holds the packages
//! between the slowest writer and the unpack, not the whole repo. Output is the same as
//! [`super::build`]'s: only when the bytes are written changes.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};

use rayon::prelude::*;
use rpmrepo_metadata::Package;

use super::packages::{self, MergedPackage, matches_known};
use super::write::{self, Ordered};
use super::{Options, RepodataError, RepodataInput, RepodataOutcome, install};

/// Each record is read by the primary, filelists and other writers.
const READERS: u8 = 3;

/// Records offered before the waiting writers are woken: waking three writers per package
/// would cost more context switches than their XML costs.
const WAKE_EVERY: usize = 64;

enum Slot {
    Waiting,
    /// The record and how many writers have still to take it.
    Ready(Arc<Package>, u8),
    /// Every writer took it.
    Taken,
}

struct Slots {
    slots: Vec<Slot>,
    /// Records offered since the writers were last woken.
    unannounced: usize,
    cancelled: bool,
}

/// The packages of one repo in output order, filled as their records become known.
pub struct PackageFeed {
    /// In output order (`packages::output_order`).
    packages: Vec<MergedPackage>,
    index: HashMap<String, usize>,
    state: Mutex<Slots>,
    changed: Condvar,
}

impl PackageFeed {
    /// A feed for the packages `input` names (its sets merged as [`super::build`] merges them).
    pub fn new(input: &RepodataInput) -> Result<PackageFeed, RepodataError> {
        let mut packages = packages::merge_sets(&input.package_sets)?;
        packages.sort_by(|a, b| packages::output_order(&a.relative_path, &b.relative_path));
        let index = packages
            .iter()
            .enumerate()
            .map(|(i, p)| (p.relative_path.clone(), i))
            .collect();
        let slots = packages.iter().map(|_| Slot::Waiting).collect();
        Ok(PackageFeed {
            packages,
            index,
            state: Mutex::new(Slots {
                slots,
                unannounced: 0,
                cancelled: false,
            }),
            changed: Condvar::new(),
        })
    }

    /// True while the package at `relative_path` still waits for its record.
    pub fn wants(&self, relative_path: &str) -> bool {
        self.index
            .get(relative_path)
            .is_some_and(|&i| matches!(self.lock().slots[i], Slot::Waiting))
    }

    /// Takes `package` as the record of `relative_path` if that package still waits and the
    /// record carries its expected sha256 and size; anything else is ignored.
    pub fn offer(&self, relative_path: &str, package: Package) {
        let Some(&i) = self.index.get(relative_path) else {
            return;
        };
        if !matches_known(&package, self.packages[i].known.as_ref()) {
            return;
        }
        self.fill(i, package);
    }

    /// Puts the record of package `i` in its slot unless one is there already.
    fn fill(&self, i: usize, package: Package) {
        let mut state = self.lock();
        if matches!(state.slots[i], Slot::Waiting) {
            state.slots[i] = Slot::Ready(Arc::new(package), READERS);
            state.unannounced += 1;
            if state.unannounced >= WAKE_EVERY {
                state.unannounced = 0;
                self.changed.notify_all();
            }
        }
    }

    /// Reads every package still waiting from `repo_dir` (in parallel) and hands it to the
    /// writers; called once everything that could offer a record has. On an error the feed is
    /// cancelled.
    pub fn complete(
        &self,
        repo_dir: &Path,
        options: &Options,
        reporter: &dyn bundle::Reporter,
    ) -> Result<(), RepodataError> {
        let waiting: Vec<usize> = {
            let state = self.lock();
            (0..self.packages.len())
                .filter(|&i| matches!(state.slots[i], Slot::Waiting))
                .collect()
        };
        reporter.advanced((self.packages.len() - waiting.len()) as u64, 0);
        let result = waiting.into_par_iter().try_for_each(|i| {
            let package = &self.packages[i];
            let parsed = packages::parse_package(
                &repo_dir.join(&package.relative_path),
                &package.relative_path,
                package.known.as_ref(),
                options,
            )?;
            self.fill(i, parsed);
            reporter.advanced(1, 0);
            Ok(())
        });
        match result {
            // Every record is there: the writers need no more waking after this.
            Ok(()) => self.changed.notify_all(),
            Err(_) => self.cancel(),
        }
        result
    }

    /// Stops the writers: no more records will come.
    pub fn cancel(&self) {
        self.lock().cancelled = true;
        self.changed.notify_all();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Slots> {
        self.state.lock().expect("package feed lock")
    }

    /// The record at `i`, once it is there; one of the [`READERS`] takes it.
    fn take(&self, i: usize) -> Result<Arc<Package>, RepodataError> {
        let mut state = self.lock();
        loop {
            if let Slot::Ready(package, left) = &mut state.slots[i] {
                let package = package.clone();
                *left -= 1;
                if *left == 0 {
                    state.slots[i] = Slot::Taken;
                }
                return Ok(package);
            }
            if state.cancelled {
                return Err(RepodataError::Cancelled);
            }
            state = self.changed.wait(state).expect("package feed lock");
        }
    }
}

/// Cancels its feed when dropped by a panic.
struct CancelOnUnwind<'a>(&'a PackageFeed);

impl Drop for CancelOnUnwind<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.cancel();
        }
    }
}

impl Ordered for PackageFeed {
    fn count(&self) -> usize {
        self.packages.len()
    }

    fn for_each(
        &self,
        each: &mut dyn FnMut(&Package) -> Result<(), RepodataError>,
    ) -> Result<(), RepodataError> {
        for i in 0..self.packages.len() {
            let package = self.take(i)?;
            each(&package)?;
        }
        Ok(())
    }
}

/// [`super::build`] for `input` with its packages coming through `feed` (made from the same
/// `input`): the writers start at once and wait for records; `until_complete` runs meanwhile on
/// this thread and must end with [`PackageFeed::complete`] (or fail, which cancels the feed).
/// The upstream records are read only after it returned, so they may still be on their way
/// when this starts. `input.repo_dir` is taken to hold no repodata of its own yet (a staged
/// repo): nothing is compared with an earlier build.
pub fn build_fed<E: From<RepodataError>>(
    input: &RepodataInput,
    options: &Options,
    feed: &PackageFeed,
    until_complete: impl FnOnce() -> Result<(), E>,
) -> Result<RepodataOutcome, E> {
    super::check_upstream_location(input)?;
    let staging = install::fresh_staging_dir(&input.repo_dir)?;
    let (records, completed) = std::thread::scope(|scope| {
        let writers = scope.spawn(|| write::write_package_records(&staging, feed, options));
        // A panic below must not leave the writers waiting: the scope joins them first.
        let _stop = CancelOnUnwind(feed);
        let completed = until_complete();
        if completed.is_err() {
            feed.cancel();
        }
        let records = writers
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (records, completed)
    });
    // The reason the feed stopped comes first; the writers' `Cancelled` only follows from it.
    completed?;
    let records = records?;
    // In `build`'s order, so that `is_current` agrees with this build later.
    let merged = packages::merge_sets(&input.package_sets)?;
    let digest = install::input_digest(input, &merged, options)?;
    Ok(super::finish(
        input,
        &staging,
        records,
        &digest,
        feed.packages.len(),
        options,
    )?)
}
