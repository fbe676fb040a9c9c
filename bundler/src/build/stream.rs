//! Packing while downloading. Every file's path, size and sha256 are known from upstream
//! metadata before any package is fetched, so the manifest goes into the bundle first and each
//! payload file is streamed in, in manifest order, as soon as it is downloaded, checked against
//! its size and sha256, and (for RPMs) its header signature verified. The download and the pack
//! overlap instead of running one after the other. The signature is checked on the thread that
//! hands the writer its sources, just before the package enters the stream
//! ([`CheckedSources`]): that thread has little else to do, where a check on the blocking pool
//! cost two thread wake-ups per package.
//!
//! Downloads are issued in manifest order, started up to the fetcher's look-ahead
//! ([`Fetcher::jobs_for`](crate::fetch::Fetcher::jobs_for)) past the file the writer waits for,
//! with the in-flight gate bounding what downloads at once; identical files (same sha256) are
//! fetched once. The writer runs on its own thread (it is CPU and disk work) and takes finished
//! files from a bounded channel. A file the fetcher downloaded into memory is handed over as
//! those bytes (the signature check reads them too), so a cold build does not
//! read its own cache back; anything else is handed over as its path in the cache. On any
//! failure the sender is dropped, the writer stops and removes its temporary file, and the
//! download's error (naming the file and its URLs) or the refused signature is returned: no
//! bundle is left behind.
//!
//! The output is byte-identical to a two-pass build of the same inputs: the manifest is the
//! same and `bundle::write` writes the same stream whether its sources are all there or arrive
//! one by one.
//!
//! The manifest records each RPM repo's signers, which only the packages can tell when the key
//! file holds several keys (Rocky 10.2's holds a v4 and a v6 key). Then the packages not
//! checked by an earlier build (the cache keeps the results) are downloaded and checked before
//! the manifest is written, and packed from the cache afterwards: such a cold build downloads
//! first and packs second. With one key in the file every passing package is signed by it and
//! the build streams as above.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bundle::progress::{NoProgress, Reporter};
use bundle::write::{Input, Reuse, WriteOptions, WrittenBundle, write_bundle_streaming};
use futures::{StreamExt, TryStreamExt};

use super::reuse::{OutputStamps, reuse_if_up_to_date};
use super::{BuildError, BuildParts, Source, manifest_for, space};
use crate::fetch::{Download, Fetcher, Reservation, SignatureRecords};
use crate::rpm::verify::ReleaseKey;

/// Files waiting for the writer, at most: with downloads kept in memory (up to 4 MiB each)
/// this bounds what a writer slower than the network holds.
const WAITING: usize = 8;

/// The key the packages are checked against, and the checks it already passed.
type Verifier = (Arc<ReleaseKey>, SignatureRecords);

/// A downloaded file, checked against its size and sha256: where it is, and its bytes when the
/// download kept them (taken by the first manifest entry that needs them).
struct Ready {
    path: PathBuf,
    data: Option<Arc<Vec<u8>>>,
    /// `data`'s share of the fetcher's memory budget, given back when `data` goes to the writer.
    held: Option<Arc<Reservation>>,
    /// The package's header signature, still to be checked (see [`CheckedSources`]).
    unchecked: Option<Unchecked>,
}

/// A package whose header signature the writer's source thread checks before packing it.
struct Unchecked {
    package: String,
    sha256: String,
}

/// Write the bundle for `parts` to `output` (atomically, with its `.sha256`), fetching and
/// verifying what is not local yet while it is written.
///
/// When the bundle already at `output` holds exactly this manifest (its `created` aside) and is
/// unchanged since this tool wrote it (a stamp in the cache's `outputs/`) or checks out in
/// full, it is kept and nothing is downloaded or rewritten
/// ([`reuse_if_up_to_date`]; `reused` is set in the result). A package that
/// entered a kept bundle had its signature verified when that bundle was built: the manifest
/// pins the bytes of every package and of the key, and so the result of the check.
pub async fn pack(
    mut parts: BuildParts,
    output: &Path,
    opts: &WriteOptions,
    fetcher: &Fetcher,
    reporter: &dyn Reporter,
) -> Result<WrittenBundle, BuildError> {
    if parts.files.is_empty() {
        return Err(BuildError::Usage(
            "nothing to bundle: every part was skipped (--no-rpm and --no-pypi?)".into(),
        ));
    }
    let verifier = parts.verifier.clone().map(|key| {
        let records = fetcher.cache().signature_records(&key.check_id);
        Arc::new((key, records))
    });
    let result = stream_into(
        &mut parts,
        output,
        opts,
        fetcher,
        verifier.as_ref(),
        reporter,
    )
    .await;
    // Passed checks are worth keeping even when the build failed on another file.
    let saved = verifier.map_or(Ok(()), |verifier| verifier.1.save());
    let written = result?;
    saved?;
    Ok(written)
}

/// [`pack`] once the signature records are loaded.
async fn stream_into(
    parts: &mut BuildParts,
    output: &Path,
    opts: &WriteOptions,
    fetcher: &Fetcher,
    verifier: Option<&Arc<Verifier>>,
    reporter: &dyn Reporter,
) -> Result<WrittenBundle, BuildError> {
    // Checking signers may download packages before the manifest exists: room for them first.
    if verifier.is_some() {
        preflight(parts, fetcher, None)?;
    }
    if let Some(verifier) = verifier {
        record_signers(parts, verifier, fetcher, reporter).await?;
    }
    // Each distinct download once, in the order the manifest first needs it.
    let mut unique: Vec<(&Download, Option<&str>)> = Vec::new();
    let mut by_hash: HashMap<&str, usize> = HashMap::new();
    let mut slots: Vec<Option<usize>> = Vec::with_capacity(parts.files.len());
    // A differential build neither fetches nor packs what its base holds.
    let in_base = super::delta::in_base(parts);
    for ((_, source), &omitted) in parts.files.iter().zip(&in_base) {
        slots.push(match source {
            _ if omitted => None,
            Source::Local(_) => None,
            Source::Fetch {
                download,
                signed_package,
            } => Some(
                *by_hash
                    .entry(download.expected.sha256.as_str())
                    .or_insert_with(|| {
                        unique.push((download, signed_package.as_deref()));
                        unique.len() - 1
                    }),
            ),
        });
    }
    let total: u64 = unique.iter().map(|(d, _)| d.expected.size).sum();
    // Packages are checked on the writer's source thread (see `CheckedSources`), not here.
    let checked_by_writer = verifier.map(|v| &v.1);
    let fetches = unique
        .iter()
        .map(|&(d, signed)| fetch_unchecked(fetcher, d, signed, checked_by_writer, reporter));
    let jobs = fetcher.jobs_for(unique.iter().map(|&(d, _)| d));
    let mut ready = futures::stream::iter(fetches).buffered(jobs);
    let mut done: Vec<Ready> = Vec::with_capacity(unique.len());
    reporter.started("download, verify and pack", unique.len() as u64, total);

    let mut manifest = manifest_for(parts);
    // A stamp that is missing or cannot be written only costs the next run a full check, so
    // recording one never fails the build.
    let stamps = OutputStamps::new(fetcher.cache().root().join("outputs"));
    // A `.run` or a volume set is always written anew: the up-to-date check reads plain
    // bundles only.
    let kept = match (&opts.self_extracting, opts.split) {
        (None, None) => reuse_if_up_to_date(output, &mut manifest, opts, Some(&stamps)),
        _ => None,
    };
    if let Some(kept) = kept {
        if kept.reused == Some(Reuse::Verified) {
            let _ = stamps.record(&kept);
        }
        reporter.finished();
        return Ok(kept);
    }

    preflight(parts, fetcher, Some(output))?;

    let (tx, rx) = tokio::sync::mpsc::channel::<(Input, Option<Unchecked>)>(WAITING);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let refused = Arc::new(Mutex::new(None));
    let writer = {
        let (output, opts) = (output.to_path_buf(), opts.clone());
        let sources = CheckedSources {
            rx,
            verifier: verifier.cloned(),
            refused: refused.clone(),
        };
        std::thread::spawn(move || {
            // The writer reports nothing: the download's progress covers the files it packs.
            let written = write_bundle_streaming(&output, &manifest, sources, &opts, &NoProgress);
            let _ = done_tx.send(written);
        })
    };
    let fed = async {
        for (((_, source), slot), _) in parts
            .files
            .iter()
            .zip(&slots)
            .zip(&in_base)
            .filter(|(_, omitted)| !**omitted)
        {
            let mut unchecked = None;
            let input = match (source, slot) {
                (Source::Local(path), _) => Input::File(path.clone()),
                (Source::Fetch { .. }, Some(u)) => {
                    while done.len() <= *u {
                        done.push(ready.next().await.expect("one result per download")?);
                    }
                    let ready = &mut done[*u];
                    // From here the writer's bounded channel holds the bytes.
                    ready.held = None;
                    // Checked once, by the first entry that packs it.
                    unchecked = ready.unchecked.take();
                    match ready.data.take() {
                        // Hashed by the fetcher as it arrived and found equal to this.
                        Some(data) => Input::Memory {
                            data,
                            path: ready.path.clone(),
                            sha256: Some(unique[*u].0.expected.sha256.clone()),
                        },
                        None => Input::File(ready.path.clone()),
                    }
                }
                (Source::Fetch { .. }, None) => unreachable!("every fetch has a slot"),
            };
            // Waits while WAITING files wait: the downloads in flight are not polled
            // meanwhile, which is the point (their bytes wait in the socket buffers).
            if tx.send((input, unchecked)).await.is_err() {
                break; // The writer failed; its error is the one to report.
            }
        }
        Ok::<_, BuildError>(())
    }
    .await;
    // Ends the writer's sources: after the last file on success, early on failure (the writer
    // then fails and removes its temporary file).
    drop(tx);
    let written = match done_rx.await {
        Ok(written) => written,
        Err(_) => std::panic::resume_unwind(
            writer
                .join()
                .expect_err("a writer that ends without an answer panicked"),
        ),
    };
    reporter.finished();
    fed?;
    // A refused package ended the writer's sources early: that is the error to report.
    if let Some(refused) = refused.lock().expect("not poisoned").take() {
        return Err(refused);
    }
    let written = written?;
    if written.volumes.is_empty() {
        let _ = stamps.record(&written);
    }
    Ok(written)
}

/// Refuses the build before its payload downloads when the cache's filesystem cannot hold the
/// files not cached yet or, with `output`, the output's cannot hold the bundle as well (see
/// [`super::space`]).
fn preflight(
    parts: &BuildParts,
    fetcher: &Fetcher,
    output: Option<&Path>,
) -> Result<(), BuildError> {
    let cache = fetcher.cache();
    let mut seen = HashSet::new();
    let downloads =
        cache.missing_bytes(parts.files.iter().filter_map(|(_, source)| match source {
            Source::Fetch { download, .. } if seen.insert(download.expected.sha256.as_str()) => {
                Some((download.expected.sha256.as_str(), download.expected.size))
            }
            _ => None,
        }));
    let mut needs = vec![space::Need {
        dir: cache.root().to_path_buf(),
        bytes: downloads,
        what: "downloads into the cache",
        option: "--cache",
    }];
    if let Some(output) = output {
        let payload = parts.files.iter().map(|(entry, _)| entry.size).sum();
        needs.push(space::Need {
            dir: output
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
                .to_path_buf(),
            bytes: space::bundle_estimate(payload, parts.files.len() as u64),
            what: "the bundle into",
            option: "-o",
        });
    }
    Ok(space::check(&needs)?)
}

/// Fill in each RPM repo's signers (the keys whose signatures verified on its packages) before
/// the manifest is written; see the module comment.
async fn record_signers(
    parts: &mut BuildParts,
    verifier: &Verifier,
    fetcher: &Fetcher,
    reporter: &dyn Reporter,
) -> Result<(), BuildError> {
    let BuildParts { rpm, files, .. } = parts;
    let Some(rpm) = rpm.as_mut() else {
        return Ok(());
    };
    let (key, records) = verifier;
    let signed: Vec<(&str, &Download, &str)> = files
        .iter()
        .filter_map(|(entry, source)| match source {
            Source::Fetch {
                download,
                signed_package: Some(package),
            } => Some((entry.path.as_str(), download, package.as_str())),
            _ => None,
        })
        .collect();
    let in_repo = |dir: &str, path: &str| {
        path.strip_prefix(dir)
            .is_some_and(|rest| rest.starts_with('/'))
    };
    if let Some(only) = key.sole_signer() {
        for repo in &mut rpm.repos {
            if signed.iter().any(|(path, ..)| in_repo(&repo.dir, path)) {
                repo.signers = vec![only.clone()];
            }
        }
        return Ok(());
    }
    let mut seen = HashSet::new();
    let pending: Vec<(&Download, &str)> = signed
        .iter()
        .filter(|(_, d, _)| records.passed(&d.expected.sha256).is_none())
        .filter(|(_, d, _)| seen.insert(d.expected.sha256.as_str()))
        .map(|&(_, d, package)| (d, package))
        .collect();
    if !pending.is_empty() {
        let total = pending.iter().map(|(d, _)| d.expected.size).sum();
        reporter.started("download and check signatures", pending.len() as u64, total);
        let checks = pending.iter().map(|&(d, package)| {
            fetch_verified(fetcher, d, Some(package), Some(verifier), reporter)
        });
        // Bytes kept in memory are dropped as each check ends: the pack reads the cache.
        futures::stream::iter(checks)
            .buffer_unordered(fetcher.jobs_for(pending.iter().map(|&(d, _)| d)))
            .try_for_each(|_| async { Ok(()) })
            .await?;
        reporter.finished();
    }
    for repo in &mut rpm.repos {
        let mut found = HashSet::new();
        for (_, d, _) in signed.iter().filter(|(path, ..)| in_repo(&repo.dir, path)) {
            found.extend(records.passed(&d.expected.sha256).unwrap_or_default());
        }
        repo.signers = key
            .certificates
            .iter()
            .map(|c| &c.fingerprint)
            .filter(|f| found.contains(*f))
            .cloned()
            .collect();
    }
    Ok(())
}

/// The writer's sources: the files handed over in manifest order, each package not checked
/// yet checked here, on the writer's source thread (`bundle::write`'s reader stage, which
/// only forwards a download kept in memory), just before it is packed: no trip to the
/// blocking pool and back per package. A refused package ends the sources; its error is kept
/// in `refused` for [`stream_into`] to report, and the writer, short of files, removes its
/// temporary file.
struct CheckedSources {
    rx: tokio::sync::mpsc::Receiver<(Input, Option<Unchecked>)>,
    verifier: Option<Arc<Verifier>>,
    refused: Arc<Mutex<Option<BuildError>>>,
}

impl Iterator for CheckedSources {
    type Item = Input;

    fn next(&mut self) -> Option<Input> {
        let (input, unchecked) = self.rx.blocking_recv()?;
        if let (Some(check), Some(verifier)) = (unchecked, &self.verifier) {
            let (key, records) = &**verifier;
            let signers = match &input {
                Input::Memory { data, path, .. } => key.verify_bytes(data, path, &check.package),
                Input::File(path) => key.verify(path, &check.package),
            };
            match signers {
                Ok(signers) => records.record(&check.sha256, &signers),
                Err(e) => {
                    *self.refused.lock().expect("not poisoned") = Some(e.into());
                    return None;
                }
            }
        }
        Some(input)
    }
}

/// Fetch one file (from the cache when it is there); a package whose check is not on record
/// for this key comes back with its check still to do (`records`: the key's records, None
/// with `--no-gpgcheck`).
async fn fetch_unchecked(
    fetcher: &Fetcher,
    download: &Download,
    signed_package: Option<&str>,
    records: Option<&SignatureRecords>,
    reporter: &dyn Reporter,
) -> Result<Ready, BuildError> {
    let fetched = fetcher.fetch(download, reporter).await?;
    let unchecked = match (signed_package, records) {
        (Some(package), Some(records)) if records.passed(&fetched.sha256).is_none() => {
            Some(Unchecked {
                package: package.to_string(),
                sha256: fetched.sha256.clone(),
            })
        }
        _ => None,
    };
    Ok(Ready {
        path: fetched.path,
        data: fetched.data,
        held: fetched.held,
        unchecked,
    })
}

/// Fetch one file (from the cache when it is there) and, for a package, verify its header
/// signatures on the blocking pool so that checks run in parallel with the downloads. A check
/// this package already passed with this key file (recorded in the cache) is not redone.
async fn fetch_verified(
    fetcher: &Fetcher,
    download: &Download,
    signed_package: Option<&str>,
    verifier: Option<&Verifier>,
    reporter: &dyn Reporter,
) -> Result<Ready, BuildError> {
    let fetched = fetcher.fetch(download, reporter).await?;
    if let (Some(package), Some((key, records))) = (signed_package, verifier)
        && records.passed(&fetched.sha256).is_none()
    {
        let (checker, path, package) = (key.clone(), fetched.path.clone(), package.to_string());
        let data = fetched.data.clone();
        let signers = tokio::task::spawn_blocking(move || match data {
            Some(data) => checker.verify_bytes(&data, &path, &package),
            None => checker.verify(&path, &package),
        })
        .await
        .expect("signature check does not panic")?;
        records.record(&fetched.sha256, &signers);
    }
    Ok(Ready {
        path: fetched.path,
        data: fetched.data,
        held: fetched.held,
        unchecked: None,
    })
}
