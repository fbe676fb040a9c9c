//! The bundler's one retry policy, and the one request that every small fetch goes through.
//! Every request the bundler makes (packages, metadata, keys, registry manifests, PyPI pages and
//! metadata, sizes by HEAD) runs its attempts through [`Fetcher::with_retries`]: transient
//! failures (connect errors, timeouts, 5xx, 429, truncated bodies) are retried on the same URL
//! with exponential backoff, a registry's 401 earns one token fetch, and anything else ends
//! that URL's turn. Retries are logged here, at `info` (`bundler -v`), and nowhere else.

use std::future::Future;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use url::Url;

use super::attempt::{AttemptError, describe_reqwest};
use super::{FetchError, Fetcher, RegistryAuth};

/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// A server's answer to a GET whose status the policy does not retry: what the caller judges
/// (a PyPI project page that is 404, a metadata file that is not served, a 206 range).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// The URL that answered, after redirects.
    pub url: Url,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// `Content-Type` without parameters, lowercase.
    pub fn content_type(&self) -> String {
        self.headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    }

    /// The total size a `Content-Range: bytes a-b/TOTAL` header gives.
    pub fn range_total(&self) -> Option<u64> {
        self.headers
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit('/').next())
            .and_then(|total| total.parse().ok())
    }
}

impl Fetcher {
    /// Runs `attempt` until it succeeds, fails for good, or the retries are spent. A mirror
    /// the board dropped meanwhile (other downloads failed on it) is not waited for again.
    pub(crate) async fn with_retries<T, F, Fut>(
        &self,
        url: &Url,
        auth: Option<&RegistryAuth>,
        mut attempt: F,
    ) -> Result<T, AttemptError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, AttemptError>>,
    {
        let mut delay = self.settings.backoff;
        let mut retries = 0;
        let mut authorized = false;
        loop {
            match attempt().await {
                Ok(value) => return Ok(value),
                // A token that expired mid-build earns one more challenge per URL.
                Err(AttemptError::Unauthorized(challenge)) if !authorized && auth.is_some() => {
                    authorized = true;
                    let auth = auth.expect("checked in the guard");
                    self.authorize(auth, challenge.as_deref()).await?;
                }
                Err(AttemptError::Unauthorized(challenge)) => {
                    return Err(AttemptError::Permanent(match auth {
                        None => "HTTP 401".into(),
                        Some(_) => format!(
                            "HTTP 401 after a token was fetched ({})",
                            challenge.unwrap_or_default()
                        ),
                    }));
                }
                Err(AttemptError::Transient(reason))
                    if retries < self.settings.retries && !self.mirrors.is_dropped(url) =>
                {
                    retries += 1;
                    tracing::info!(
                        %url,
                        %reason,
                        "retry {retries} of {} in {} ms",
                        self.settings.retries,
                        delay.as_millis()
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_BACKOFF);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// GET `url` (with `headers`, e.g. `Accept` or `Range`) with the retry policy; the body is
    /// received into memory. Any status but 429 and 5xx is the caller's to judge.
    pub async fn get(&self, url: &Url, headers: &HeaderMap) -> Result<Answer, FetchError> {
        let answer = self
            .with_retries(url, None, || self.get_attempt(url, headers))
            .await
            .map_err(|e| single_failure(url, e))?;
        self.count_downloaded(answer.body.len() as u64);
        Ok(answer)
    }

    /// One GET: a `file://` URL is read from disk (as a 200); over HTTP, 429 and 5xx, network
    /// errors and a body shorter than announced are transient.
    pub(crate) async fn get_attempt(
        &self,
        url: &Url,
        headers: &HeaderMap,
    ) -> Result<Answer, AttemptError> {
        if url.scheme() == "file" {
            let path = url
                .to_file_path()
                .map_err(|()| AttemptError::Permanent(format!("not a local path: {url}")))?;
            let body = tokio::fs::read(&path)
                .await
                .map_err(|e| AttemptError::Permanent(format!("{}: {e}", path.display())))?;
            return Ok(Answer {
                status: StatusCode::OK,
                url: url.clone(),
                headers: HeaderMap::new(),
                body,
            });
        }
        let response = self
            .client()
            .get(url.clone())
            .headers(headers.clone())
            .send()
            .await
            .map_err(|e| AttemptError::Transient(describe_reqwest(&e)))?;
        let status = response.status();
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(AttemptError::Transient(format!("HTTP {status}")));
        }
        let final_url = response.url().clone();
        let response_headers = response.headers().clone();
        let expected_len = response.content_length();
        let body = response.bytes().await.map_err(|e| {
            AttemptError::Transient(format!("reading body: {}", describe_reqwest(&e)))
        })?;
        if expected_len.is_some_and(|n| n != body.len() as u64) {
            return Err(AttemptError::Transient("truncated body".into()));
        }
        Ok(Answer {
            status,
            url: final_url,
            headers: response_headers,
            body: body.to_vec(),
        })
    }
}

/// The error of a request to one URL that failed for good.
pub(crate) fn single_failure(url: &Url, e: AttemptError) -> FetchError {
    let (reason, checksum_mismatch) = match e {
        AttemptError::Local(path, source) => return FetchError::Io { path, source },
        AttemptError::Mismatch(r) => (r, true),
        AttemptError::Transient(r) | AttemptError::Permanent(r) => (r, false),
        AttemptError::Unauthorized(_) => ("HTTP 401".into(), false),
    };
    FetchError::AllMirrorsFailed {
        label: url.to_string(),
        attempts: vec![(url.to_string(), reason)],
        checksum_mismatch,
    }
}
