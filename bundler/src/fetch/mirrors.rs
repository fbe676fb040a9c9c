//! Which mirror serves the next file. With several mirrors given, every file may come from any
//! of them (each is checked against the signed metadata, so none is trusted): a download goes
//! to the mirror expected to finish it first, judged by the speed its recent downloads had and
//! the work it already holds, so a slow mirror gets less work. A mirror that fails several
//! downloads in a row is dropped for the rest of the run, with a note through the reporter.
//!
//! How many network downloads run at once is chosen here too, by measurement ([`InFlight`]):
//! a mirror that caps each connection, or a long round trip, leaves each connection idle or
//! slow, and only more connections fill the link. So the number in flight starts at `--jobs`
//! per mirror and grows while the aggregate throughput grows with it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bundle::progress::Reporter;
use url::Url;

/// Consecutive failed downloads (each after its retries) that drop a mirror.
const DROP_AFTER: u32 = 3;

/// Weight of the newest download in a mirror's speed estimate.
const EWMA_WEIGHT: f64 = 0.2;

#[derive(Debug, Default)]
struct MirrorState {
    in_flight: u32,
    /// Bytes per second of one download from this mirror, smoothed; None until one finished.
    speed: Option<f64>,
    failures_in_row: u32,
    dropped: bool,
    files: u64,
}

/// What the fetcher knows about every mirror it has used in this run, keyed by origin
/// (scheme, host and port).
#[derive(Debug, Default)]
pub(crate) struct MirrorBoard {
    mirrors: Mutex<HashMap<String, MirrorState>>,
}

/// The mirror a URL belongs to.
pub(crate) fn mirror_of(url: &Url) -> String {
    match url.scheme() {
        "file" => "file://".into(),
        _ => url.origin().ascii_serialization(),
    }
}

impl MirrorBoard {
    /// `urls` (one per mirror, the same file) in the order to try them: live mirrors by the
    /// time they are expected to take, then dropped ones (tried once each, as a last resort).
    /// Mirrors not yet measured count as fast as the fastest known, so each gets tried.
    pub fn order(&self, urls: &[Url]) -> Vec<Url> {
        if urls.len() < 2 {
            return urls.to_vec();
        }
        let mirrors = self.mirrors.lock().expect("mirror board lock");
        let fastest = mirrors
            .values()
            .filter_map(|m| m.speed)
            .fold(None, |a: Option<f64>, s| Some(a.map_or(s, |a| a.max(s))));
        let cost = |url: &Url| -> (bool, f64) {
            match mirrors.get(&mirror_of(url)) {
                None => (false, 1.0 / fastest.unwrap_or(1.0)),
                Some(m) => {
                    let speed = m.speed.or(fastest).unwrap_or(1.0).max(1.0);
                    (m.dropped, f64::from(m.in_flight + 1) / speed)
                }
            }
        };
        let mut ordered: Vec<(bool, f64, usize)> = urls
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let (dropped, c) = cost(u);
                (dropped, c, i)
            })
            .collect();
        // Ties keep the given order (the preferred mirror first).
        ordered.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)).then(a.2.cmp(&b.2)));
        ordered
            .into_iter()
            .map(|(_, _, i)| urls[i].clone())
            .collect()
    }

    pub fn is_dropped(&self, url: &Url) -> bool {
        self.mirrors
            .lock()
            .expect("mirror board lock")
            .get(&mirror_of(url))
            .is_some_and(|m| m.dropped)
    }

    /// A download from `url` starts.
    pub fn started(&self, url: &Url) {
        let mut mirrors = self.mirrors.lock().expect("mirror board lock");
        mirrors.entry(mirror_of(url)).or_default().in_flight += 1;
    }

    /// A download from `url` delivered `bytes` in `elapsed`.
    pub fn succeeded(&self, url: &Url, bytes: u64, elapsed: Duration) {
        let mut mirrors = self.mirrors.lock().expect("mirror board lock");
        let m = mirrors.entry(mirror_of(url)).or_default();
        m.in_flight = m.in_flight.saturating_sub(1);
        m.failures_in_row = 0;
        m.files += 1;
        // Files served whole from memory or cache say nothing about the network.
        if bytes >= 16 * 1024 {
            let speed = bytes as f64 / elapsed.as_secs_f64().max(1e-3);
            m.speed = Some(match m.speed {
                Some(s) => s + EWMA_WEIGHT * (speed - s),
                None => speed,
            });
        }
    }

    /// A download from `url` failed for `reason` (after its retries). Drops the mirror after
    /// [`DROP_AFTER`] failures in a row while another mirror is still in use.
    pub fn failed(&self, url: &Url, reason: &str, reporter: &dyn Reporter) {
        let mut mirrors = self.mirrors.lock().expect("mirror board lock");
        let key = mirror_of(url);
        let others_alive = mirrors.iter().any(|(k, m)| *k != key && !m.dropped);
        let m = mirrors.entry(key.clone()).or_default();
        m.in_flight = m.in_flight.saturating_sub(1);
        m.failures_in_row += 1;
        if !m.dropped && others_alive && m.failures_in_row >= DROP_AFTER {
            m.dropped = true;
            tracing::warn!(mirror = %key, %url, %reason, "mirror dropped after {} failed downloads in a row", m.failures_in_row);
            reporter.note(&format!(
                "mirror {key} dropped after {} failed downloads in a row (last: {url}: {reason}); the other mirrors serve the rest",
                m.failures_in_row
            ));
        }
    }

    /// Files each mirror delivered so far, by origin.
    pub fn files_by_mirror(&self) -> Vec<(String, u64)> {
        let mirrors = self.mirrors.lock().expect("mirror board lock");
        let mut out: Vec<_> = mirrors.iter().map(|(k, m)| (k.clone(), m.files)).collect();
        out.sort();
        out
    }
}

/// Throughput must grow by this factor from one window to the next to earn more downloads.
const GROWTH: f64 = 1.08;

/// Windows in a row without that growth before the number in flight stops growing.
const PATIENCE: u32 = 2;

/// The number of downloads in flight, as a sizing rule with no clock or semaphore of its own
/// (so that it can be tested): fed the bytes received so far at some instants, it measures the
/// aggregate throughput over windows of at least `window`. A window faster than the best
/// one before by [`GROWTH`] adds `step` downloads (up to `max`); [`PATIENCE`] windows in a row
/// that are not settle the number for the rest of the run. Growing only while throughput follows
/// is what finds the bandwidth-delay product: with per-connection caps or long round trips more
/// connections carry more, and once the link (or the mirrors) is full they only add memory.
#[derive(Debug)]
pub(crate) struct Sizer {
    limit: usize,
    step: usize,
    max: usize,
    window: Duration,
    started: Option<(Instant, u64)>,
    best: f64,
    misses: u32,
    settled: bool,
}

impl Sizer {
    pub fn new(initial: usize, step: usize, max: usize, window: Duration) -> Sizer {
        Sizer {
            limit: initial.clamp(1, max.max(1)),
            step: step.max(1),
            max: max.max(1),
            window,
            started: None,
            best: 0.0,
            misses: 0,
            settled: false,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Raise the limit to at least `floor` (no more than `max`); returns by how much.
    pub fn at_least(&mut self, floor: usize) -> usize {
        let target = floor.min(self.max);
        let added = target.saturating_sub(self.limit);
        self.limit += added;
        added
    }

    /// `bytes` received in all so far, at `now`. Returns how many downloads to add.
    pub fn observe(&mut self, now: Instant, bytes: u64) -> usize {
        let Some((start, start_bytes)) = self.started else {
            self.started = Some((now, bytes));
            return 0;
        };
        let elapsed = now.saturating_duration_since(start);
        if elapsed < self.window {
            return 0;
        }
        self.started = Some((now, bytes));
        let rate = bytes.saturating_sub(start_bytes) as f64 / elapsed.as_secs_f64();
        if self.settled || self.limit >= self.max {
            return 0;
        }
        if rate > self.best * GROWTH {
            self.best = rate;
            self.misses = 0;
            let added = self.step.min(self.max - self.limit);
            self.limit += added;
            return added;
        }
        self.misses += 1;
        self.settled = self.misses >= PATIENCE;
        0
    }
}

/// The gate every network download passes: a semaphore with [`Sizer::limit`] permits, grown
/// as the sizer decides.
pub(crate) struct InFlight {
    gate: tokio::sync::Semaphore,
    sizer: Mutex<Sizer>,
}

/// Windows of one second: several round trips even at 200 ms, and short enough that a build of
/// a minute reaches its size in its first few seconds.
const WINDOW: Duration = Duration::from_secs(1);

impl InFlight {
    /// Start at `initial` downloads, grow by `step` up to `max`.
    pub fn new(initial: usize, step: usize, max: usize) -> InFlight {
        let sizer = Sizer::new(initial, step, max, WINDOW);
        InFlight {
            gate: tokio::sync::Semaphore::new(sizer.limit()),
            sizer: Mutex::new(sizer),
        }
    }

    /// Wait for a turn; the download runs while the permit lives.
    pub async fn admit(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.gate.acquire().await.expect("the gate is never closed")
    }

    /// At least `floor` downloads in flight (`--jobs` per mirror of a batch).
    pub fn at_least(&self, floor: usize) {
        let added = self.sizer.lock().expect("sizer lock").at_least(floor);
        self.gate.add_permits(added);
    }

    /// A download finished; `bytes` received from the network in all so far.
    pub fn observe(&self, bytes: u64) {
        let added = self
            .sizer
            .lock()
            .expect("sizer lock")
            .observe(Instant::now(), bytes);
        if added > 0 {
            tracing::debug!(added, "more downloads in flight: throughput grew");
            self.gate.add_permits(added);
        }
    }

    pub fn limit(&self) -> usize {
        self.sizer.lock().expect("sizer lock").limit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bundle::progress::NoProgress;

    fn urls() -> Vec<Url> {
        vec![
            "https://a.example/x.rpm".parse().unwrap(),
            "https://b.example/x.rpm".parse().unwrap(),
        ]
    }

    #[test]
    fn work_spreads_and_follows_speed() {
        let board = MirrorBoard::default();
        let [a, b] = <[Url; 2]>::try_from(urls()).unwrap();
        board.started(&a);
        assert_eq!(board.order(&urls())[0], b, "the idle mirror goes first");
        board.succeeded(&a, 1 << 20, Duration::from_millis(100));
        board.started(&b);
        board.succeeded(&b, 1 << 20, Duration::from_millis(1000));
        for _ in 0..5 {
            board.started(&a);
        }
        // a: 6 in flight at 10 MiB/s each beats b: 1 at 1 MiB/s.
        assert_eq!(board.order(&urls())[0], a);
        for _ in 0..5 {
            board.started(&a);
        }
        assert_eq!(board.order(&urls())[0], b);
    }

    #[test]
    fn a_failing_mirror_is_dropped_and_tried_last() {
        let board = MirrorBoard::default();
        let [a, b] = <[Url; 2]>::try_from(urls()).unwrap();
        board.started(&b);
        board.succeeded(&b, 1 << 20, Duration::from_millis(1000));
        for _ in 0..DROP_AFTER {
            board.started(&a);
            board.failed(&a, "connection refused", &NoProgress);
        }
        assert!(board.is_dropped(&a));
        assert_eq!(board.order(&urls()), vec![b, a]);
    }

    /// A link of `link` bytes/s reached over connections capped at `per_connection` each: the
    /// throughput `limit` downloads get.
    fn capped(limit: usize, per_connection: f64, link: f64) -> f64 {
        (limit as f64 * per_connection).min(link)
    }

    #[test]
    fn grows_while_throughput_grows_then_settles() {
        // 40 Mbit/s per connection, 400 Mbit/s link: ten connections fill it.
        let (per, link) = (5e6, 50e6);
        let mut sizer = Sizer::new(4, 2, 64, Duration::from_secs(1));
        let t0 = Instant::now();
        let mut bytes = 0u64;
        sizer.observe(t0, bytes);
        for second in 1..=30 {
            bytes += capped(sizer.limit(), per, link) as u64;
            sizer.observe(t0 + Duration::from_secs(second), bytes);
        }
        // It passed the ten the link needs, by at most the steps that showed no growth.
        assert!(
            (10..=10 + 2 * PATIENCE as usize).contains(&sizer.limit()),
            "limit {}",
            sizer.limit()
        );
        assert!(sizer.settled);
    }

    #[test]
    fn an_uncapped_link_keeps_the_floor_and_the_max_bounds_growth() {
        // One connection already fills the link: no growth past the start.
        let mut sizer = Sizer::new(8, 4, 64, Duration::from_secs(1));
        let t0 = Instant::now();
        let mut bytes = 0u64;
        sizer.observe(t0, bytes);
        for second in 1..=10 {
            bytes += 100_000_000;
            sizer.observe(t0 + Duration::from_secs(second), bytes);
        }
        // The first window is the only one that beats "nothing measured yet".
        assert_eq!(sizer.limit(), 12);
        assert!(sizer.settled);
        // Always growing throughput stops at the max.
        let mut sizer = Sizer::new(8, 16, 40, Duration::from_secs(1));
        bytes = 0;
        sizer.observe(t0, bytes);
        for second in 1..=10 {
            bytes += sizer.limit() as u64 * 1_000_000;
            sizer.observe(t0 + Duration::from_secs(second), bytes);
        }
        assert_eq!(sizer.limit(), 40);
        assert_eq!(sizer.at_least(100), 0, "at_least keeps to the max too");
    }

    #[test]
    fn short_windows_wait_for_more_data() {
        let mut sizer = Sizer::new(4, 4, 64, Duration::from_secs(1));
        let t0 = Instant::now();
        sizer.observe(t0, 0);
        assert_eq!(sizer.observe(t0 + Duration::from_millis(300), 1 << 20), 0);
        assert_eq!(sizer.limit(), 4);
        assert_eq!(sizer.observe(t0 + Duration::from_millis(1100), 2 << 20), 4);
    }
}
