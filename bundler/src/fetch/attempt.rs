//! One attempt to fetch one file from one URL into its partial file, hashing while writing.
//! The caller ([`super::Fetcher`]) decides what to do with the outcome: retry the same URL
//! after a transient failure, move to the next mirror after a permanent one or a checksum
//! mismatch. Keeping the classification here, next to the I/O that produces it, keeps the
//! retry policy in one readable loop.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use bundle::BulkWriter;

use futures::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use url::Url;

use super::Expected;
use bundle::progress::Reporter;

/// Why an attempt failed, classified for the retry policy.
#[derive(Debug)]
pub(crate) enum AttemptError {
    /// Worth retrying on the same URL: connect error, timeout, 5xx, 429, truncated body.
    Transient(String),
    /// Not worth retrying here: 404 and other 4xx, bad URL, missing local file.
    Permanent(String),
    /// The bytes arrived but are wrong (size or sha256). Never accepted, never retried on the
    /// same URL; the next mirror may have the right file.
    Mismatch(String),
    /// Local disk trouble with this file (the partial download): nothing a mirror can fix.
    Local(std::path::PathBuf, std::io::Error),
    /// HTTP 401 from a registry, with its `WWW-Authenticate` challenge: fetch a token, retry.
    Unauthorized(Option<String>),
}

/// A local I/O failure on `path`, for `map_err`.
fn local(path: &Path) -> impl FnOnce(std::io::Error) -> AttemptError + '_ {
    move |e| AttemptError::Local(path.to_path_buf(), e)
}

fn classify_reqwest(e: &reqwest::Error) -> AttemptError {
    if e.is_builder() {
        AttemptError::Permanent(e.to_string())
    } else {
        // Connect, timeout, body and decode errors are all network trouble.
        AttemptError::Transient(describe_reqwest(e))
    }
}

/// A request error with its causes (where the TLS or socket reason is), and what to do when
/// the server's certificate is not trusted.
pub(crate) fn describe_reqwest(e: &reqwest::Error) -> String {
    let chain = error_chain(e);
    if chain.contains("certificate") {
        format!("{chain}; if the mirror uses a private CA, give its PEM file with --ca-cert")
    } else {
        chain
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}

/// sha256 of the first bytes already in `partial` (resume), read in chunks.
fn hash_prefix(partial: &Path) -> std::io::Result<(Sha256, u64)> {
    let mut hasher = Sha256::new();
    let mut len = 0u64;
    let Ok(mut file) = std::fs::File::open(partial) else {
        return Ok((hasher, 0));
    };
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hasher, len))
}

/// Files up to this size that start from nothing are received into memory, then written to the
/// cache in one go (past the page cache in direct mode), and handed on in memory (the bundle
/// writer and the signature check take them from there instead of reading the cache back).
/// Larger files, and resumed ones, stream into their partial file as they arrive.
///
/// 4 MiB, and only while the fetcher's shared memory budget has room (`budget::MEMORY_BUDGET`,
/// whatever the mirror count and the downloads in flight; the rest stream to their file).
pub(crate) const KEEP_IN_MEMORY: u64 = 4 << 20;

/// A successful attempt: body bytes received, and the whole file when it was kept in memory.
pub(crate) struct Received {
    pub bytes: u64,
    pub body: Option<Vec<u8>>,
}

/// Fetch `url` into `partial`, resuming from what is there. On success the partial file holds
/// exactly the expected bytes.
pub(crate) async fn http_attempt(
    client: &reqwest::Client,
    url: &Url,
    authorization: Option<String>,
    expected: &Expected,
    partial: &Path,
    // Given when the body may be kept in memory: writes its cache file in the chosen I/O mode.
    pool: Option<&Arc<BulkWriter>>,
    reporter: &dyn Reporter,
) -> Result<Received, AttemptError> {
    // Most downloads start fresh: one `stat` tells, with no trip to the blocking pool (two
    // thread hand-offs per file, for 2,000 files).
    let (mut hasher, mut have) = if std::fs::symlink_metadata(partial).is_err() {
        (Sha256::new(), 0)
    } else {
        let part = partial.to_path_buf();
        tokio::task::spawn_blocking(move || hash_prefix(&part))
            .await
            .expect("hash task does not panic")
            .map_err(local(partial))?
    };
    if have == expected.size {
        // A run killed between the last byte and the move into the cache.
        if hex::encode(hasher.clone().finalize()) == expected.sha256 {
            return Ok(Received {
                bytes: 0,
                body: None,
            });
        }
        have = expected.size + 1;
    }
    if have > expected.size {
        let _ = tokio::fs::remove_file(partial).await;
        hasher = Sha256::new();
        have = 0;
    }
    let mut request = client.get(url.clone());
    if let Some(value) = authorization {
        request = request.header(reqwest::header::AUTHORIZATION, value);
    }
    if have > 0 {
        tracing::info!(%url, "resuming at byte {have} of {}", expected.size);
        request = request.header(reqwest::header::RANGE, format!("bytes={have}-"));
    }
    let response = request.send().await.map_err(|e| classify_reqwest(&e))?;
    let status = response.status();
    let append = match status.as_u16() {
        206 if have > 0 => true,
        200 => false,
        416 => {
            // Our partial file is longer than what the server has: start over next time.
            let _ = tokio::fs::remove_file(partial).await;
            return Err(AttemptError::Transient(format!(
                "HTTP {status} for a resumed download"
            )));
        }
        401 => {
            let challenge = super::registry::challenge_of(response.headers());
            return Err(AttemptError::Unauthorized(challenge));
        }
        429 | 500..=599 => return Err(AttemptError::Transient(format!("HTTP {status}"))),
        _ => return Err(AttemptError::Permanent(format!("HTTP {status}"))),
    };
    if !append {
        hasher = Sha256::new();
        have = 0;
        if let Some(pool) = pool
            && expected.size <= KEEP_IN_MEMORY
        {
            return receive_in_memory(response, expected, partial, pool, reporter).await;
        }
    }
    let file = tokio::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(append)
        .truncate(!append)
        .open(partial)
        .await
        .map_err(local(partial))?;
    // Body chunks arrive in pieces of a few KiB and every write to a tokio file is a hop to the
    // blocking pool; gather them into 1 MiB writes. What is buffered is flushed below before
    // the outcome is looked at, so a failed attempt still keeps every byte it received for the
    // Range resume.
    let mut file = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let mut received = 0u64;
    let mut stream = response.bytes_stream();
    let mut outcome = Ok(());
    while let Some(chunk) = next_piece(&mut stream, &mut outcome).await {
        if have + received + chunk.len() as u64 > expected.size {
            drop(file);
            return Err(overlong(expected, partial).await);
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(local(partial))?;
        received += chunk.len() as u64;
        reporter.advanced(0, chunk.len() as u64);
    }
    file.flush().await.map_err(local(partial))?;
    drop(file);
    outcome?;
    check_body(have + received, hasher, expected, partial).await?;
    Ok(Received {
        bytes: received,
        body: None,
    })
}

/// The next piece of a response body; a network error ends the body and is kept in `outcome`.
async fn next_piece<T>(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<T>> + Unpin),
    outcome: &mut Result<(), AttemptError>,
) -> Option<T> {
    match stream.next().await? {
        Ok(piece) => Some(piece),
        Err(e) => {
            *outcome = Err(classify_reqwest(&e));
            None
        }
    }
}

/// A body longer than expected: never accepted, and its partial file is removed.
async fn overlong(expected: &Expected, partial: &Path) -> AttemptError {
    let _ = tokio::fs::remove_file(partial).await;
    AttemptError::Mismatch(format!("more than the expected {} bytes", expected.size))
}

/// The end of a body of `total` bytes: a short one stays in `partial` for the next attempt to
/// resume (transient); a complete one with the wrong sha256 is removed (mismatch).
async fn check_body(
    total: u64,
    hasher: Sha256,
    expected: &Expected,
    partial: &Path,
) -> Result<(), AttemptError> {
    if total < expected.size {
        return Err(AttemptError::Transient(format!(
            "truncated body: {total} of {} bytes",
            expected.size
        )));
    }
    let actual = hex::encode(hasher.finalize());
    if actual != expected.sha256 {
        let _ = tokio::fs::remove_file(partial).await;
        return Err(AttemptError::Mismatch(format!(
            "sha256 mismatch: expected {}, got {actual}",
            expected.sha256
        )));
    }
    Ok(())
}

/// The body of a fresh download of at most [`KEEP_IN_MEMORY`] bytes, gathered in memory and
/// checked there. Only a verified body is written to `partial`, in one go in the chosen I/O
/// mode; after a network failure what did arrive is written (buffered) so that the next attempt
/// resumes.
async fn receive_in_memory(
    response: reqwest::Response,
    expected: &Expected,
    partial: &Path,
    pool: &Arc<BulkWriter>,
    reporter: &dyn Reporter,
) -> Result<Received, AttemptError> {
    let size = usize::try_from(expected.size).expect("at most KEEP_IN_MEMORY");
    let mut body = Vec::with_capacity(size);
    let mut hasher = Sha256::new();
    let mut stream = response.bytes_stream();
    let mut outcome = Ok(());
    while let Some(chunk) = next_piece(&mut stream, &mut outcome).await {
        if body.len() + chunk.len() > size {
            return Err(overlong(expected, partial).await);
        }
        hasher.update(&chunk);
        body.extend_from_slice(&chunk);
        reporter.advanced(0, chunk.len() as u64);
    }
    let received = body.len() as u64;
    if outcome.is_err() || body.len() < size {
        // Kept: the next attempt resumes from here.
        tokio::fs::write(partial, &body)
            .await
            .map_err(local(partial))?;
        outcome?;
    }
    check_body(received, hasher, expected, partial).await?;
    let (path, pool) = (partial.to_path_buf(), pool.clone());
    let body = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::create(&path)?;
        pool.write_file(file, &body).map(|_| body)
    })
    .await
    .expect("cache write does not panic")
    .map_err(local(partial))?;
    Ok(Received {
        bytes: received,
        body: Some(body),
    })
}

/// Copy a `file://` source into `partial`, hashing as it goes.
pub(crate) fn file_attempt(
    url: &Url,
    expected: &Expected,
    partial: &Path,
) -> Result<u64, AttemptError> {
    let source = url
        .to_file_path()
        .map_err(|()| AttemptError::Permanent(format!("not a local path: {url}")))?;
    let mut input = std::fs::File::open(&source)
        .map_err(|e| AttemptError::Permanent(format!("{}: {e}", source.display())))?;
    let mut output = std::fs::File::create(partial).map_err(local(partial))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = input
            .read(&mut buf)
            .map_err(|e| AttemptError::Permanent(format!("{}: {e}", source.display())))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        std::io::Write::write_all(&mut output, &buf[..n]).map_err(local(partial))?;
        total += n as u64;
    }
    let actual = hex::encode(hasher.finalize());
    if total != expected.size || actual != expected.sha256 {
        drop(output);
        let _ = std::fs::remove_file(partial);
        return Err(AttemptError::Mismatch(format!(
            "expected {} bytes sha256 {}, got {total} bytes sha256 {actual}",
            expected.size, expected.sha256
        )));
    }
    Ok(total)
}
