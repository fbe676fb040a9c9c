//! A small HTTP/1.1 file server for tests, the demo and fault-injection runs: serves one
//! directory on 127.0.0.1 (random port) with keep-alive and `Range: bytes=` support, counts the
//! body bytes it sends, and can misbehave on a share of requests (connection resets, 500/503,
//! truncated bodies, corrupted bytes, stalls) so the fetcher's retry paths meet real sockets.
//!
//! Faults are decided per (path, attempt number) from a seed, never from timing, so a run is
//! reproducible whatever the client's concurrency. Only the first `max_faulty_attempts`
//! requests of a path can fail, which guarantees that a client retrying enough succeeds.
//! `repomd.xml`, its signature and key files are never corrupted (only reset/5xx/truncated):
//! nothing upstream pins their hash, so silently corrupting them would test nothing but the
//! server (a corrupted signature is refused, as it must be).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::rpmgen::SplitMix;

/// How the server misbehaves.
#[derive(Debug, Clone)]
pub struct Faults {
    pub seed: u64,
    /// Probability that an attempt (within the first `max_faulty_attempts`) fails.
    pub share: f64,
    pub max_faulty_attempts: u32,
    /// How long a stall lasts before the response continues normally.
    pub stall: Duration,
    /// Paths (suffix match) whose body is always corrupted: a mirror that is simply wrong.
    pub always_corrupt: Vec<String>,
    /// Pause this long after sending the first half of every `.rpm` body: a slow mirror, so a
    /// test can interrupt a build mid-download.
    pub slow_rpm_body: Option<Duration>,
    /// After this many `.rpm` requests, every request is answered by closing the connection:
    /// a mirror that goes away in the middle of a build.
    pub dead_after_rpms: Option<u64>,
    /// The first `.rpm` request waits for its answer until this many more `.rpm` requests
    /// have come, or for the duration at most: a file slow to come (a lost tail waiting for a
    /// retransmission, far away), to see whether the downloads after it go on meanwhile
    /// (`ServerStats::held_released_by_others`).
    pub hold_first_rpm: Option<(u64, Duration)>,
}

impl Faults {
    /// A well-behaved server.
    pub fn none() -> Self {
        Self {
            seed: 0,
            share: 0.0,
            max_faulty_attempts: 0,
            stall: Duration::from_millis(0),
            always_corrupt: Vec::new(),
            slow_rpm_body: None,
            dead_after_rpms: None,
            hold_first_rpm: None,
        }
    }

    /// A hostile but eventually correct server.
    pub fn flaky(seed: u64) -> Self {
        Self {
            seed,
            share: 0.4,
            max_faulty_attempts: 2,
            stall: Duration::from_millis(1500),
            always_corrupt: Vec::new(),
            slow_rpm_body: None,
            dead_after_rpms: None,
            hold_first_rpm: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    Reset,
    Status500,
    Status503,
    Truncate,
    Corrupt,
    Stall,
}

/// Counters shared with the test.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Body bytes handed to sockets; counted before each write, so a client never holds bytes
    /// the counter lacks.
    pub body_bytes: AtomicU64,
    pub requests: AtomicU64,
    pub faults: AtomicU64,
    /// `.rpm` requests seen, and `.rpm` bodies sent whole.
    pub rpm_requests: AtomicU64,
    pub rpm_bodies: AtomicU64,
    /// The request held by `Faults::hold_first_rpm` was let go because the others came.
    pub held_released_by_others: AtomicBool,
    attempts: Mutex<HashMap<String, u32>>,
}

impl ServerStats {
    /// Number of requests seen for a path (suffix match).
    pub fn requests_for(&self, suffix: &str) -> u32 {
        let attempts = self.attempts.lock().expect("stats lock");
        attempts
            .iter()
            .filter(|(p, _)| p.ends_with(suffix))
            .map(|(_, n)| n)
            .sum()
    }
}

/// A running server; stopped and joined on drop.
pub struct TestServer {
    port: u16,
    stop: Arc<AtomicBool>,
    pub stats: Arc<ServerStats>,
    accept: Option<JoinHandle<()>>,
}

impl TestServer {
    pub fn start(root: impl Into<PathBuf>, faults: Faults) -> std::io::Result<Self> {
        Self::start_on(root, faults, 0)
    }

    pub fn start_on(root: impl Into<PathBuf>, faults: Faults, port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let port = listener.local_addr()?.port();
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(ServerStats::default());
        let root: PathBuf = root.into();
        let faults = Arc::new(faults);
        let accept = {
            let stop = stop.clone();
            let stats = stats.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (root, faults, stats) = (root.clone(), faults.clone(), stats.clone());
                    std::thread::spawn(move || {
                        let _ = serve_connection(conn, &root, &faults, &stats);
                    });
                }
            })
        };
        Ok(Self {
            port,
            stop,
            stats,
            accept: Some(accept),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn body_bytes(&self) -> u64 {
        self.stats.body_bytes.load(Ordering::SeqCst)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
    }
}

struct Request {
    method: String,
    path: String,
    range: Option<(u64, Option<u64>)>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let mut range = None;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':')
            && name.trim().eq_ignore_ascii_case("range")
        {
            range = parse_range(value.trim());
        }
    }
    let path = percent_decode(target.split('?').next().unwrap_or_default());
    Ok(Some(Request {
        method,
        path,
        range,
    }))
}

fn parse_range(value: &str) -> Option<(u64, Option<u64>)> {
    let spec = value.strip_prefix("bytes=")?;
    let (start, end) = spec.split_once('-')?;
    let start = start.trim().parse().ok()?;
    let end = match end.trim() {
        "" => None,
        e => Some(e.parse().ok()?),
    };
    Some((start, end))
}

pub(crate) fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Some(v) = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn choose_fault(faults: &Faults, stats: &ServerStats, path: &str) -> Option<Fault> {
    let attempt = {
        let mut attempts = stats.attempts.lock().expect("stats lock");
        let n = attempts.entry(path.to_string()).or_insert(0);
        *n += 1;
        *n
    };
    if faults
        .always_corrupt
        .iter()
        .any(|s| path.ends_with(s.as_str()))
    {
        return Some(Fault::Corrupt);
    }
    if attempt > faults.max_faulty_attempts || faults.share <= 0.0 {
        return None;
    }
    let mut h = faults.seed ^ u64::from(attempt).wrapping_mul(0x9E37_79B9);
    for b in path.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01B3);
    }
    let mut rng = SplitMix::new(h);
    if !rng.chance(faults.share) {
        return None;
    }
    let all = [
        Fault::Reset,
        Fault::Status500,
        Fault::Status503,
        Fault::Truncate,
        Fault::Corrupt,
        Fault::Stall,
    ];
    let fault = all[(rng.next_u64() % all.len() as u64) as usize];
    let unpinned = path.ends_with("repomd.xml")
        || path.ends_with("repomd.xml.asc")
        || path
            .rsplit('/')
            .next()
            .is_some_and(|f| f.starts_with("RPM-GPG-KEY"));
    if fault == Fault::Corrupt && unpinned {
        return Some(Fault::Status503);
    }
    Some(fault)
}

fn serve_connection(
    conn: TcpStream,
    root: &Path,
    faults: &Faults,
    stats: &ServerStats,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    while let Some(req) = read_request(&mut reader)? {
        stats.requests.fetch_add(1, Ordering::SeqCst);
        if req.path.ends_with(".rpm") {
            let seen = stats.rpm_requests.fetch_add(1, Ordering::SeqCst);
            if faults.dead_after_rpms.is_some_and(|n| seen >= n) {
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            if let Some((others, longest)) = faults.hold_first_rpm.filter(|_| seen == 0) {
                let deadline = std::time::Instant::now() + longest;
                while std::time::Instant::now() < deadline {
                    if stats.rpm_requests.load(Ordering::SeqCst) > others {
                        stats.held_released_by_others.store(true, Ordering::SeqCst);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
        let rel = req.path.trim_start_matches('/');
        if rel.split('/').any(|c| c == "..") {
            respond_status(&mut writer, 400, "Bad Request")?;
            continue;
        }
        let file = root.join(rel);
        let Ok(mut content) = fs_err::read(&file) else {
            respond_status(&mut writer, 404, "Not Found")?;
            continue;
        };
        let fault = choose_fault(faults, stats, &req.path);
        if fault.is_some() {
            stats.faults.fetch_add(1, Ordering::SeqCst);
        }
        match fault {
            Some(Fault::Reset) => {
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            Some(Fault::Status500) => {
                respond_status(&mut writer, 500, "Internal Server Error")?;
                continue;
            }
            Some(Fault::Status503) => {
                respond_status(&mut writer, 503, "Service Unavailable")?;
                continue;
            }
            Some(Fault::Stall) => std::thread::sleep(faults.stall),
            Some(Fault::Corrupt) => {
                if !content.is_empty() {
                    let mid = content.len() / 2;
                    content[mid] ^= 0xff;
                }
            }
            Some(Fault::Truncate) | None => {}
        }
        let total = content.len() as u64;
        let (status, start, end) = match req.range {
            Some((start, _)) if start >= total && total > 0 => {
                let msg = format!(
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\nContent-Length: 0\r\n\r\n"
                );
                writer.write_all(msg.as_bytes())?;
                continue;
            }
            Some((start, end)) => (206, start, end.map_or(total, |e| (e + 1).min(total))),
            None => (200, 0, total),
        };
        let body = &content[start as usize..end as usize];
        let mut head = format!(
            "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\nAccept-Ranges: bytes\r\n",
            if status == 200 {
                "OK"
            } else {
                "Partial Content"
            },
            body.len()
        );
        if status == 206 {
            head.push_str(&format!(
                "Content-Range: bytes {start}-{}/{total}\r\n",
                end.saturating_sub(1)
            ));
        }
        head.push_str("\r\n");
        writer.write_all(head.as_bytes())?;
        if req.method == "HEAD" {
            continue;
        }
        if fault == Some(Fault::Truncate) {
            let half = &body[..body.len() / 2];
            stats
                .body_bytes
                .fetch_add(half.len() as u64, Ordering::SeqCst);
            writer.write_all(half)?;
            let _ = writer.shutdown(Shutdown::Both);
            return Ok(());
        }
        if let Some(pause) = faults.slow_rpm_body.filter(|_| req.path.ends_with(".rpm")) {
            let (first, rest) = body.split_at(body.len() / 2);
            stats
                .body_bytes
                .fetch_add(first.len() as u64, Ordering::SeqCst);
            writer.write_all(first)?;
            writer.flush()?;
            std::thread::sleep(pause);
            stats
                .body_bytes
                .fetch_add(rest.len() as u64, Ordering::SeqCst);
            writer.write_all(rest)?;
            continue;
        }
        stats
            .body_bytes
            .fetch_add(body.len() as u64, Ordering::SeqCst);
        writer.write_all(body)?;
        if req.path.ends_with(".rpm") && fault.is_none() {
            stats.rpm_bodies.fetch_add(1, Ordering::SeqCst);
        }
    }
    // Drain anything left so the peer sees an orderly close.
    let _ = reader.read(&mut [0u8; 1]);
    Ok(())
}

fn respond_status(w: &mut TcpStream, code: u16, reason: &str) -> std::io::Result<()> {
    let body = format!("{code} {reason}\n");
    let msg = format!(
        "HTTP/1.1 {code} {reason}\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\r\n{body}",
        body.len()
    );
    w.write_all(msg.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_parse() {
        assert_eq!(parse_range("bytes=10-"), Some((10, None)));
        assert_eq!(parse_range("bytes=0-99"), Some((0, Some(99))));
        assert_eq!(parse_range("items=0-1"), None);
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("/a%2Bb/c"), "/a+b/c");
        assert_eq!(percent_decode("/plain"), "/plain");
    }

    #[test]
    fn serves_files_with_range_and_counts_bytes() {
        let dir = tempfile::tempdir().unwrap();
        fs_err::write(dir.path().join("f.bin"), b"0123456789").unwrap();
        let server = TestServer::start(dir.path(), Faults::none()).unwrap();
        let mut s = TcpStream::connect(("127.0.0.1", server.port())).unwrap();
        s.write_all(b"GET /f.bin HTTP/1.1\r\nHost: x\r\nRange: bytes=4-\r\n\r\n")
            .unwrap();
        let mut buf = vec![0u8; 512];
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).ends_with("456789") {
            let n = s.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "server closed early: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 206"), "{text}");
        assert!(text.contains("Content-Range: bytes 4-9/10"), "{text}");
        assert_eq!(server.body_bytes(), 6);
    }
}
