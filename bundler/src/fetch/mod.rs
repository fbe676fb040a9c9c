//! The one fetcher both mirror parts (RPM and PyPI) use: bounded parallel downloads over a
//! keep-alive client, retries with exponential backoff on transient failures, Range resume of
//! partial files, mirror fallback, and a content-addressed cache. A file is accepted only when
//! its size and sha256 match what upstream metadata promised; a mismatch is never accepted and
//! moves on to the next mirror.
//!
//! The fetcher is async and has no runtime of its own: `bundler`'s `main` builds the one
//! runtime and runs each command on it.
//!
//! ```no_run
//! # use bundler::fetch::{Fetcher, FetchSettings, Download, Expected};
//! # use bundle::progress::NoProgress;
//! # async fn example() {
//! let fetcher = Fetcher::new("/tmp/cache", FetchSettings::default()).unwrap();
//! let d = Download {
//!     label: "bash-5.2.rpm".into(),
//!     urls: vec!["http://127.0.0.1:8080/bash-5.2.rpm".parse().unwrap()],
//!     expected: Expected { size: 1234, sha256: "ab..".into() },
//!     auth: None,
//! };
//! let done = fetcher.fetch_all("packages", &[d], &NoProgress).await.unwrap();
//! println!("{}", done[0].path.display());
//! # }
//! ```

mod attempt;
mod budget;
mod cache;
mod mirrors;
pub mod registry;
mod retry;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bundle::progress::Reporter;
use bundle::{BulkWriter, IoMode};
use futures::{StreamExt, TryStreamExt};
use url::Url;

use attempt::{AttemptError, KEEP_IN_MEMORY, Received, file_attempt, http_attempt};
pub use budget::Reservation;
use budget::{MEMORY_BUDGET, MemoryBudget};
pub use cache::{Cache, SignatureRecords};
use mirrors::{InFlight, MirrorBoard};
pub use registry::{FetchedManifest, RegistryAuth};
pub use retry::Answer;
use retry::single_failure;

/// How the fetcher behaves. Defaults suit a real mirror over the internet.
#[derive(Debug, Clone)]
pub struct FetchSettings {
    /// Downloads in flight at once per mirror (see [`Fetcher::jobs_for`]).
    pub jobs: usize,
    /// How requests to one host share TCP connections.
    pub connections: Connections,
    /// PEM files of extra certificate authorities to trust for HTTPS (a private mirror).
    pub ca_certs: Vec<PathBuf>,
    /// Retries per URL after a transient failure (so `retries + 1` attempts).
    pub retries: u32,
    /// First backoff delay; doubled per retry, capped at 8 s.
    pub backoff: Duration,
    pub connect_timeout: Duration,
    /// A read that stalls this long fails the attempt (which is then retried).
    pub read_timeout: Duration,
    /// Passes over the mirror list when a mirror served wrong bytes (see [`Fetcher::fetch`]).
    pub mismatch_rounds: u32,
    /// How downloads are written into the cache (the binary's `--io`).
    pub io: IoMode,
}

impl Default for FetchSettings {
    fn default() -> Self {
        Self {
            jobs: 8,
            connections: Connections::default(),
            ca_certs: Vec::new(),
            retries: 5,
            backoff: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(30),
            mismatch_rounds: 3,
            io: IoMode::default(),
        }
    }
}

/// How requests to one host share TCP connections. One connection's throughput is bounded by
/// its congestion window and by a mirror's per-connection shaping, so several are needed to
/// fill a long or fast link; docs/BENCHMARKS.md (WAN) has the measurements behind the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Connections {
    /// HTTP/1.1 only: every download in flight has a connection of its own (kept alive).
    #[default]
    Http1,
    /// HTTP/2 where the server offers it, over `jobs` connections per host (one client each,
    /// requests spread over them in turn).
    Http2,
    /// HTTP/2 where offered, every request to a host multiplexed on one connection (reqwest's
    /// own behaviour; what the bundler did before).
    Http2Shared,
}

impl std::str::FromStr for Connections {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "http1" => Ok(Self::Http1),
            "http2" => Ok(Self::Http2),
            "http2-shared" => Ok(Self::Http2Shared),
            _ => Err(format!("{s:?}: expected http1, http2 or http2-shared")),
        }
    }
}

/// Downloads in flight at most, whatever the mirror count: bounds the connections one build
/// opens and the memory each holds (a 1 MiB write buffer for a body that streams to its file,
/// and the connection's own buffers). Why 32 and not more: docs/BENCHMARKS.md, issue 18 WAN.
const MAX_IN_FLIGHT: usize = 32;

/// A batch that hands its files on in order (the bundle writer) may start downloads this many
/// times [`MAX_IN_FLIGHT`] ahead of the one it waits for. The gate still bounds the downloads in
/// flight; the look-ahead only lets a finished download make room for the next one while an
/// earlier file is slow (a lost tail waiting for a retransmission timeout over a long round
/// trip): with a look-ahead of just the downloads in flight, every connection would idle behind
/// that one file. Bodies finished ahead stay within the memory budget (`budget.rs`); the rest
/// wait in their cache files.
const LOOK_AHEAD: usize = 4;

/// What a file must be to be accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub size: u64,
    /// Lowercase hex sha256.
    pub sha256: String,
}

/// One file to fetch, with its mirrors in preference order.
#[derive(Debug, Clone)]
pub struct Download {
    /// What error messages and progress call it (e.g. the package file name).
    pub label: String,
    pub urls: Vec<Url>,
    pub expected: Expected,
    /// For a registry blob: the repository's token, fetched on the first 401.
    pub auth: Option<Arc<RegistryAuth>>,
}

/// A verified file in the cache.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub path: PathBuf,
    /// The URL the bytes came from (the first mirror when served from the cache).
    pub url: Url,
    pub size: u64,
    pub sha256: String,
    pub from_cache: bool,
    /// The file's bytes, when this fetch downloaded it into memory (see
    /// `attempt::KEEP_IN_MEMORY`): the same bytes as the file at `path`, already checked.
    pub data: Option<Arc<Vec<u8>>>,
    /// The share of the fetcher's memory budget `data` holds; drop it with `data`.
    pub held: Option<Arc<Reservation>>,
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("could not fetch {label}: {}", describe(.attempts))]
    AllMirrorsFailed {
        label: String,
        /// (URL, reason) for every mirror tried, in order.
        attempts: Vec<(String, String)>,
        /// At least one mirror served bytes that did not match the expected size or sha256.
        checksum_mismatch: bool,
    },
    #[error("{label}: no mirror URL given")]
    NoUrl { label: String },
    /// A file operation failed; the message (from `fs_err`) names the path.
    #[error(transparent)]
    Fs(std::io::Error),
    /// Reading or writing a local file failed (the cache, a partial download, a `file://`
    /// mirror's file).
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    #[error("CA certificate {path}: {reason}; give a PEM file with one or more certificates")]
    CaCert { path: PathBuf, reason: String },
}

fn describe(attempts: &[(String, String)]) -> String {
    attempts
        .iter()
        .map(|(u, r)| format!("{u} ({r})"))
        .collect::<Vec<_>>()
        .join("; ")
}

impl FetchError {
    /// True when the failure means upstream served wrong bytes (a verification failure, exit
    /// code 3) rather than being unreachable.
    pub fn is_checksum_failure(&self) -> bool {
        matches!(
            self,
            FetchError::AllMirrorsFailed {
                checksum_mismatch: true,
                ..
            }
        )
    }
}

pub struct Fetcher {
    /// One client, or one per connection for [`Connections::Http2`]; picked in turn.
    clients: Vec<reqwest::Client>,
    next_client: AtomicUsize,
    mirrors: MirrorBoard,
    cache: Cache,
    settings: FetchSettings,
    downloaded: AtomicU64,
    /// Writes the cache files downloaded into memory, in the chosen I/O mode.
    pool: Arc<BulkWriter>,
    /// Bodies kept in memory, for every mirror and download together.
    budget: Arc<MemoryBudget>,
    /// How many network downloads run at once, grown by measured throughput.
    in_flight: InFlight,
}

impl Fetcher {
    pub fn new(cache_dir: impl Into<PathBuf>, settings: FetchSettings) -> Result<Self, FetchError> {
        let mut roots = Vec::new();
        for path in &settings.ca_certs {
            let ca_error = |reason: String| FetchError::CaCert {
                path: path.clone(),
                reason,
            };
            let pem = fs_err::read(path).map_err(|e| ca_error(e.to_string()))?;
            let certs =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca_error(e.to_string()))?;
            if certs.is_empty() {
                return Err(ca_error("no certificate in it".into()));
            }
            roots.extend(certs);
        }
        let client = || {
            let mut builder = reqwest::Client::builder()
                .connect_timeout(settings.connect_timeout)
                .read_timeout(settings.read_timeout)
                .pool_max_idle_per_host(MAX_IN_FLIGHT)
                .tcp_keepalive(Duration::from_secs(30))
                .user_agent(concat!(
                    "kubespray-offline-bundler/",
                    env!("CARGO_PKG_VERSION")
                ));
            for root in &roots {
                builder = builder.add_root_certificate(root.clone());
            }
            if settings.connections == Connections::Http1 {
                builder = builder.http1_only();
            }
            builder.build().map_err(FetchError::Client)
        };
        let clients = match settings.connections {
            Connections::Http2 => (0..settings.jobs.max(1)).map(|_| client()).collect(),
            Connections::Http1 | Connections::Http2Shared => vec![client()],
        }
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
        let io = settings.io;
        Ok(Self {
            clients,
            next_client: AtomicUsize::new(0),
            mirrors: MirrorBoard::default(),
            cache: Cache::open(cache_dir)?,
            downloaded: AtomicU64::new(0),
            pool: Arc::new(BulkWriter::new(io)),
            budget: MemoryBudget::new(MEMORY_BUDGET),
            in_flight: InFlight::new(settings.jobs.max(1), settings.jobs.max(1), MAX_IN_FLIGHT),
            settings,
        })
    }

    /// Downloads in flight at once for one mirror (`--jobs`).
    pub fn jobs(&self) -> usize {
        self.settings.jobs.max(1)
    }

    /// How many of `downloads` a batch should keep going at once. Network downloads also wait
    /// for their turn at the fetcher's gate, which starts at `--jobs` per mirror they name
    /// (each mirror adds its own connections: its per-connection limit and round trip bound
    /// what one carries) and grows while the measured throughput grows (`mirrors::InFlight`),
    /// up to [`MAX_IN_FLIGHT`]; so a batch with network downloads queues [`LOOK_AHEAD`] times
    /// that many. `file://` copies have no gate and run `--jobs` per mirror.
    pub fn jobs_for<'a>(&self, downloads: impl IntoIterator<Item = &'a Download>) -> usize {
        let (mut mirrors, mut network) = (1, false);
        for d in downloads {
            mirrors = mirrors.max(d.urls.len());
            network |= d.urls.iter().any(|u| u.scheme() != "file");
        }
        let floor = (self.jobs() * mirrors).clamp(1, MAX_IN_FLIGHT);
        if network {
            self.in_flight.at_least(floor);
            MAX_IN_FLIGHT * LOOK_AHEAD
        } else {
            floor
        }
    }

    /// Network downloads allowed in flight now (see [`Fetcher::jobs_for`]).
    pub fn in_flight_limit(&self) -> usize {
        self.in_flight.limit()
    }

    /// Files each mirror (by origin) delivered in this run.
    pub fn files_by_mirror(&self) -> Vec<(String, u64)> {
        self.mirrors.files_by_mirror()
    }

    fn client(&self) -> &reqwest::Client {
        let i = self.next_client.fetch_add(1, Ordering::Relaxed);
        &self.clients[i % self.clients.len()]
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Body bytes received from the network (or copied from `file://`) so far.
    pub fn downloaded_bytes(&self) -> u64 {
        self.downloaded.load(Ordering::Relaxed)
    }

    /// Fetch every download (`what` names the batch for progress), at most `jobs` at a time; identical files (same sha256) are
    /// fetched once. Results are in input order. The first failure ends the run.
    pub async fn fetch_all(
        &self,
        what: &str,
        downloads: &[Download],
        reporter: &dyn Reporter,
    ) -> Result<Vec<Fetched>, FetchError> {
        let mut unique: Vec<&Download> = Vec::new();
        let mut seen = HashMap::new();
        for d in downloads {
            seen.entry(d.expected.sha256.as_str()).or_insert_with(|| {
                unique.push(d);
                unique.len() - 1
            });
        }
        let total: u64 = unique.iter().map(|d| d.expected.size).sum();
        reporter.started(what, unique.len() as u64, total);
        // Bodies kept in memory are dropped as each fetch ends: these results are held together.
        let fetch = |d| async move {
            self.fetch(d, reporter).await.map(|mut f| {
                f.data = None;
                f.held = None;
                f
            })
        };
        let fetched: Vec<Fetched> = futures::stream::iter(unique.iter().copied().map(fetch))
            .buffered(self.jobs_for(unique.iter().copied()))
            .try_collect()
            .await?;
        reporter.finished();
        let by_hash: HashMap<&str, &Fetched> =
            fetched.iter().map(|f| (f.sha256.as_str(), f)).collect();
        Ok(downloads
            .iter()
            .map(|d| {
                let mut f = (*by_hash[d.expected.sha256.as_str()]).clone();
                if f.url != d.urls[0] && f.from_cache {
                    f.url = d.urls[0].clone();
                }
                f
            })
            .collect())
    }

    /// Fetch one file: from the cache when present, else from its mirrors, the one expected to
    /// be done first tried first (see [`MirrorBoard::order`]).
    pub async fn fetch(
        &self,
        d: &Download,
        reporter: &dyn Reporter,
    ) -> Result<Fetched, FetchError> {
        let first = d.urls.first().ok_or_else(|| FetchError::NoUrl {
            label: d.label.clone(),
        })?;
        if let Some(path) = self.cache.lookup(&d.expected.sha256, d.expected.size) {
            reporter.advanced(1, d.expected.size);
            return Ok(self.fetched(path, first.clone(), d, true, None));
        }
        // Another build on this cache may be fetching the same file: wait for it, then use
        // what it admitted.
        let _entry = self.cache.lock_entry(&d.expected.sha256).await?;
        if let Some(path) = self.cache.lookup(&d.expected.sha256, d.expected.size) {
            reporter.advanced(1, d.expected.size);
            return Ok(self.fetched(path, first.clone(), d, true, None));
        }
        let partial = self.cache.partial_path(&d.expected.sha256);
        let _turn = match first.scheme() {
            "file" => None,
            _ => Some(self.in_flight.admit().await),
        };
        // A body is kept in memory only while the shared budget has room for it.
        let held = (d.expected.size <= KEEP_IN_MEMORY)
            .then(|| self.budget.try_reserve(d.expected.size))
            .flatten();
        let mut failures = Vec::new();
        let mut mismatch = false;
        // A mismatch is never accepted and ends that mirror's turn. Only when every mirror has
        // had its turn and one of them served wrong bytes is there another round: bytes damaged
        // in transit heal on a fresh download, a mirror that is simply wrong fails every round.
        for _round in 0..self.settings.mismatch_rounds.max(1) {
            let mut round_mismatch = false;
            let order = self.mirrors.order(&d.urls);
            for (i, url) in order.iter().enumerate() {
                self.mirrors.started(url);
                let start = Instant::now();
                let in_memory = held.is_some();
                let reason = match self.fetch_from(url, d, &partial, in_memory, reporter).await {
                    Ok(body) => {
                        self.mirrors
                            .succeeded(url, d.expected.size, start.elapsed());
                        self.in_flight.observe(self.downloaded_bytes());
                        let path = self.cache.admit(&partial, &d.expected.sha256)?;
                        reporter.advanced(1, 0);
                        let data = body.map(Arc::new);
                        let mut fetched = self.fetched(path, url.clone(), d, false, data);
                        fetched.held = fetched.data.as_ref().and(held).map(Arc::new);
                        return Ok(fetched);
                    }
                    Err(AttemptError::Local(path, source)) => {
                        self.mirrors.failed(
                            url,
                            &source.to_string(),
                            &bundle::progress::NoProgress,
                        );
                        return Err(FetchError::Io { path, source });
                    }
                    Err(AttemptError::Mismatch(r)) => {
                        round_mismatch = true;
                        r
                    }
                    Err(AttemptError::Transient(r) | AttemptError::Permanent(r)) => r,
                    Err(AttemptError::Unauthorized(_)) => "HTTP 401".into(),
                };
                self.mirrors.failed(url, &reason, reporter);
                if let Some(next) = order.get(i + 1) {
                    tracing::warn!(file = %d.label, %url, %reason, %next, "failed on this mirror; trying the next");
                }
                failures.push((url.to_string(), reason));
            }
            mismatch |= round_mismatch;
            if !round_mismatch {
                break;
            }
        }
        Err(FetchError::AllMirrorsFailed {
            label: d.label.clone(),
            attempts: failures,
            checksum_mismatch: mismatch,
        })
    }

    fn fetched(
        &self,
        path: PathBuf,
        url: Url,
        d: &Download,
        from_cache: bool,
        data: Option<Arc<Vec<u8>>>,
    ) -> Fetched {
        Fetched {
            path,
            url,
            size: d.expected.size,
            sha256: d.expected.sha256.clone(),
            from_cache,
            data,
            held: None,
        }
    }

    /// All attempts against one URL: retry transient failures with backoff; give up on this
    /// URL at the first permanent failure or mismatch. On success, the body when it was
    /// received into memory.
    async fn fetch_from(
        &self,
        url: &Url,
        d: &Download,
        partial: &std::path::Path,
        in_memory: bool,
        reporter: &dyn Reporter,
    ) -> Result<Option<Vec<u8>>, AttemptError> {
        let attempt = || async move {
            if url.scheme() == "file" {
                let (url, expected, partial) =
                    (url.clone(), d.expected.clone(), partial.to_path_buf());
                return tokio::task::spawn_blocking(move || {
                    file_attempt(&url, &expected, &partial)
                })
                .await
                .expect("copy task does not panic")
                .map(|bytes| Received { bytes, body: None });
            }
            let authorization = match &d.auth {
                Some(auth) => auth.header().await,
                None => None,
            };
            http_attempt(
                self.client(),
                url,
                authorization,
                &d.expected,
                partial,
                in_memory.then_some(&self.pool),
                reporter,
            )
            .await
        };
        let Received { bytes, body } = self.with_retries(url, d.auth.as_deref(), attempt).await?;
        if url.scheme() == "file" {
            // HTTP attempts report bytes as they stream; a copy reports at the end.
            reporter.advanced(0, bytes);
        }
        self.count_downloaded(bytes);
        Ok(body)
    }

    fn count_downloaded(&self, bytes: u64) {
        self.downloaded.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Fetch a small file nothing pins the hash of (`repomd.xml`), trying mirrors in order with
    /// the retry policy. Not cached: it is what tells us what changed upstream.
    pub async fn fetch_unpinned(&self, urls: &[Url]) -> Result<(Vec<u8>, Url), FetchError> {
        let mut failures = Vec::new();
        let headers = reqwest::header::HeaderMap::new();
        for (i, url) in urls.iter().enumerate() {
            let attempt = || async {
                let answer = self.get_attempt(url, &headers).await?;
                match answer.status.as_u16() {
                    200 => Ok(answer.body),
                    _ => Err(AttemptError::Permanent(format!("HTTP {}", answer.status))),
                }
            };
            let reason = match self.with_retries(url, None, attempt).await {
                Ok(bytes) => {
                    self.count_downloaded(bytes.len() as u64);
                    return Ok((bytes, url.clone()));
                }
                Err(AttemptError::Local(path, source)) => {
                    return Err(FetchError::Io { path, source });
                }
                Err(
                    AttemptError::Transient(r)
                    | AttemptError::Permanent(r)
                    | AttemptError::Mismatch(r),
                ) => r,
                Err(AttemptError::Unauthorized(_)) => "HTTP 401".into(),
            };
            if let Some(next) = urls.get(i + 1) {
                tracing::warn!(%url, %reason, %next, "failed on this mirror; trying the next");
            }
            failures.push((url.to_string(), reason));
        }
        Err(FetchError::AllMirrorsFailed {
            label: urls.first().map_or_else(String::new, |u| {
                u.path_segments()
                    .and_then(|mut s| s.next_back())
                    .unwrap_or_default()
                    .to_string()
            }),
            attempts: failures,
            checksum_mismatch: false,
        })
    }

    /// The size of the file at `url` (a `HEAD`, redirects followed), with the retry policy:
    /// what pins a file whose upstream list gives only its sha256.
    pub async fn content_length(&self, url: &Url) -> Result<u64, FetchError> {
        if url.scheme() == "file" {
            let path = url.to_file_path().map_err(|()| FetchError::NoUrl {
                label: url.to_string(),
            })?;
            return match tokio::fs::metadata(&path).await {
                Ok(meta) => Ok(meta.len()),
                Err(source) => Err(FetchError::Io { path, source }),
            };
        }
        let attempt = || async {
            let response = self
                .client()
                .head(url.clone())
                .send()
                .await
                .map_err(|e| AttemptError::Transient(attempt::describe_reqwest(&e)))?;
            let status = response.status();
            if status.is_server_error() || status.as_u16() == 429 {
                return Err(AttemptError::Transient(format!("HTTP {status}")));
            }
            if !status.is_success() {
                return Err(AttemptError::Permanent(format!("HTTP {status}")));
            }
            // The header itself: for a HEAD, reqwest's content_length() is the (empty) body's
            // size.
            response
                .headers()
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .ok_or_else(|| AttemptError::Permanent("no Content-Length in the answer".into()))
        };
        self.with_retries(url, None, attempt).await.map_err(|e| {
            let mut failure = single_failure(url, e);
            if let FetchError::AllMirrorsFailed { attempts, .. } = &mut failure {
                attempts[0].0 = format!("HEAD {url}");
            }
            failure
        })
    }
}
