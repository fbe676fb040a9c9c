//! The shared fetcher against the fault-injecting test server: retries, resume, cache, mirror
//! fallback and the never-accept-a-mismatch rule, on real sockets.

use std::path::Path;
use std::time::Duration;

use bundle::progress::NoProgress;
use bundler::fetch::{Download, Expected, FetchError, FetchSettings, Fetcher};
use e2e::mirror::{GeneratedMirror, MirrorSpec, generate_mirror};
use e2e::server::{Faults, TestServer};
use sha2::{Digest, Sha256};

/// The one runtime these tests run the fetcher on (the binary's `main` builds its own).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    static RUNTIME: std::sync::LazyLock<tokio::runtime::Runtime> =
        std::sync::LazyLock::new(|| tokio::runtime::Runtime::new().expect("tokio runtime"));
    RUNTIME.block_on(future)
}

fn settings() -> FetchSettings {
    FetchSettings {
        jobs: 4,
        retries: 4,
        backoff: Duration::from_millis(10),
        connect_timeout: Duration::from_secs(5),
        read_timeout: Duration::from_secs(10),
        mismatch_rounds: 3,
        ..FetchSettings::default()
    }
}

fn expected(path: &Path) -> Expected {
    let bytes = fs_err::read(path).unwrap();
    Expected {
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(&bytes)),
    }
}

fn downloads(mirror: &GeneratedMirror, bases: &[String]) -> Vec<Download> {
    let mut out = Vec::new();
    for repo in &mirror.repos {
        let rel_repo = repo
            .path
            .strip_prefix(&mirror.root)
            .unwrap()
            .to_str()
            .unwrap()
            .to_string();
        for pkg in &repo.packages {
            out.push(Download {
                label: pkg.rsplit('/').next().unwrap().to_string(),
                urls: bases
                    .iter()
                    .map(|b| format!("{b}/{rel_repo}/{pkg}").parse().unwrap())
                    .collect(),
                expected: expected(&repo.path.join(pkg)),
                auth: None,
            });
        }
    }
    out
}

fn small_mirror(dir: &Path) -> GeneratedMirror {
    let mut spec = MirrorSpec::small(dir.join("mirror"));
    spec.filler_packages = 8;
    generate_mirror(&spec).unwrap()
}

#[test]
fn flaky_server_every_file_arrives_intact_and_rerun_uses_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = small_mirror(tmp.path());
    let server = TestServer::start(&mirror.root, Faults::flaky(7)).unwrap();
    let fetcher = Fetcher::new(tmp.path().join("cache"), settings()).unwrap();
    let list = downloads(&mirror, &[server.url()]);
    let got = block_on(fetcher.fetch_all("packages", &list, &NoProgress)).unwrap();
    assert!(
        server
            .stats
            .faults
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0,
        "no fault was injected"
    );
    for (d, f) in list.iter().zip(&got) {
        assert_eq!(expected(&f.path), d.expected, "{}", d.label);
    }
    let served = server.body_bytes();
    let again = Fetcher::new(tmp.path().join("cache"), settings()).unwrap();
    let got = block_on(again.fetch_all("packages", &list, &NoProgress)).unwrap();
    assert!(got.iter().all(|f| f.from_cache));
    assert_eq!(
        server.body_bytes(),
        served,
        "a warm cache must not download again"
    );
    assert_eq!(again.downloaded_bytes(), 0);
}

#[test]
fn always_corrupt_file_fails_naming_file_and_url_and_is_not_cached() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = small_mirror(tmp.path());
    let mut faults = Faults::none();
    faults.always_corrupt = vec!["/Packages/b/bash-5.2.26-1.el10.x86_64.rpm".into()];
    let server = TestServer::start(&mirror.root, faults).unwrap();
    let fetcher = Fetcher::new(tmp.path().join("cache"), settings()).unwrap();
    let list: Vec<_> = downloads(&mirror, &[server.url()])
        .into_iter()
        .filter(|d| d.label.starts_with("bash-"))
        .collect();
    let err = block_on(fetcher.fetch_all("packages", &list, &NoProgress)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("bash-5.2.26-1.el10.x86_64.rpm"), "{msg}");
    assert!(msg.contains(&server.url()), "{msg}");
    assert!(msg.contains("sha256 mismatch"), "{msg}");
    assert!(err.is_checksum_failure());
    assert!(
        fetcher
            .cache()
            .lookup(&list[0].expected.sha256, list[0].expected.size)
            .is_none()
    );
    assert_eq!(
        server.stats.requests_for("bash-5.2.26-1.el10.x86_64.rpm"),
        3,
        "one fresh download per round, no retries within a round"
    );
}

#[test]
fn mismatch_moves_to_next_mirror() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = small_mirror(tmp.path());
    let mut faults = Faults::none();
    faults.always_corrupt = vec![".rpm".into()];
    let bad = TestServer::start(&mirror.root, faults).unwrap();
    let good = TestServer::start(&mirror.root, Faults::none()).unwrap();
    let fetcher = Fetcher::new(tmp.path().join("cache"), settings()).unwrap();
    let list = downloads(&mirror, &[bad.url(), good.url()]);
    let got = block_on(fetcher.fetch_all("packages", &list, &NoProgress)).unwrap();
    assert!(got.iter().all(|f| f.url.as_str().starts_with(&good.url())));
    for (d, f) in list.iter().zip(&got) {
        assert_eq!(expected(&f.path), d.expected);
    }
}

#[test]
fn partial_file_resumes_with_range() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = small_mirror(tmp.path());
    let server = TestServer::start(&mirror.root, Faults::none()).unwrap();
    let fetcher = Fetcher::new(tmp.path().join("cache"), settings()).unwrap();
    let list = downloads(&mirror, &[server.url()]);
    let big = list.iter().max_by_key(|d| d.expected.size).unwrap().clone();
    let source = mirror
        .repos
        .iter()
        .flat_map(|r| r.packages.iter().map(move |p| r.path.join(p)))
        .find(|p| p.ends_with(&big.label))
        .unwrap();
    let prefix = big.expected.size / 3;
    let bytes = fs_err::read(&source).unwrap();
    fs_err::write(
        fetcher.cache().partial_path(&big.expected.sha256),
        &bytes[..prefix as usize],
    )
    .unwrap();
    let got = block_on(fetcher.fetch(&big, &NoProgress)).unwrap();
    assert_eq!(expected(&got.path), big.expected);
    assert_eq!(server.body_bytes(), big.expected.size - prefix);
}

#[test]
fn file_urls_work_and_unreachable_mirror_is_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let mirror = small_mirror(tmp.path());
    let fetcher = Fetcher::new(tmp.path().join("cache"), settings()).unwrap();
    let base = url::Url::from_directory_path(&mirror.root).unwrap();
    let list = downloads(&mirror, &[base.as_str().trim_end_matches('/').to_string()]);
    let got = block_on(fetcher.fetch_all("packages", &list, &NoProgress)).unwrap();
    assert_eq!(got.len(), list.len());

    // A port nothing listens on: connect errors are retried, then reported with the URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fresh = Fetcher::new(tmp.path().join("cache2"), settings()).unwrap();
    let list = downloads(&mirror, &[format!("http://127.0.0.1:{closed}")]);
    let err = block_on(fresh.fetch(&list[0], &NoProgress)).unwrap_err();
    assert!(matches!(err, FetchError::AllMirrorsFailed { .. }));
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{closed}")),
        "{err}"
    );
}
