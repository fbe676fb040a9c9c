//! Which mirror serves the next file. With several mirrors given, every file may come from any
//! of them (each is checked against the signed metadata, so none is trusted): a download goes
//! to the mirror expected to finish it first, judged by the speed its recent downloads had and
//! the work it already holds, so a slow mirror gets less work. A mirror that fails several
//! downloads in a row is dropped for the rest of the run, with a note through the reporter.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

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
}
