//! The package index client: project pages (PEP 691 JSON, PEP 503 HTML as fallback) and
//! dependency metadata. Metadata comes from `<file>.metadata` (PEP 658, tried even when the
//! index does not advertise it), else from HTTP range reads of the wheel's zip directory,
//! else from the whole file. Pages and metadata are fetched once per run and shared by every
//! target's resolution.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pep508_rs::PackageName;
use reqwest::{StatusCode, header};
use serde::Deserialize;
use tokio::sync::OnceCell;
use url::Url;

use super::PypiError;
use super::html::parse_anchors;
use super::metadata::{CoreMetadata, SparseFile, sdist_pkg_info, wheel_metadata};

const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
/// First range read of a wheel: the zip directory of most wheels and often METADATA itself.
const TAIL_BYTES: u64 = 64 * 1024;
/// Smallest follow-up range read.
const MIN_RANGE: u64 = 128 * 1024;
const ATTEMPTS: u32 = 3;

/// One file listed on a project page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexFile {
    pub filename: String,
    /// Absolute URL without fragment.
    pub url: Url,
    pub sha256: Option<String>,
    pub requires_python: Option<String>,
    /// `Some(reason)` (possibly empty) when yanked.
    pub yanked: Option<String>,
    pub size: Option<u64>,
    pub upload_time: Option<String>,
}

/// A project page: every file of every release.
#[derive(Debug, Clone)]
pub struct ProjectPage {
    pub name: PackageName,
    pub url: Url,
    pub files: Vec<IndexFile>,
}

/// How metadata was obtained, counted for diagnostics and tests.
#[derive(Debug, Default)]
pub struct MetadataStats {
    pub sidecar: AtomicUsize,
    pub range: AtomicUsize,
    pub whole_file: AtomicUsize,
}

type Shared<T> = Arc<OnceCell<Arc<T>>>;

pub struct IndexClient {
    http: reqwest::Client,
    index_url: Url,
    pages: Mutex<HashMap<PackageName, Shared<ProjectPage>>>,
    metadata: Mutex<HashMap<Url, Shared<CoreMetadata>>>,
    pub stats: MetadataStats,
}

impl std::fmt::Debug for IndexClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexClient")
            .field("index_url", &self.index_url.as_str())
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct JsonPage {
    #[serde(default)]
    meta: Option<JsonMeta>,
    files: Vec<JsonFile>,
}

#[derive(Deserialize)]
struct JsonMeta {
    #[serde(rename = "api-version")]
    api_version: Option<String>,
}

#[derive(Deserialize)]
struct JsonFile {
    filename: String,
    url: String,
    #[serde(default)]
    hashes: HashMap<String, String>,
    #[serde(rename = "requires-python", default)]
    requires_python: Option<String>,
    #[serde(default)]
    yanked: Option<serde_json::Value>,
    #[serde(default)]
    size: Option<u64>,
    #[serde(rename = "upload-time", default)]
    upload_time: Option<String>,
}

impl IndexClient {
    pub fn new(index_url: &str) -> Result<Self, PypiError> {
        let mut index_url = Url::parse(index_url).map_err(|err| PypiError::Http {
            url: index_url.to_string(),
            message: format!("invalid index URL: {err}"),
        })?;
        if !index_url.path().ends_with('/') {
            index_url.set_path(&format!("{}/", index_url.path()));
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!(
                "kubespray-offline-bundler/",
                env!("CARGO_PKG_VERSION")
            ))
            .connect_timeout(Duration::from_secs(20))
            .read_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(16)
            .build()
            .map_err(|err| PypiError::Http {
                url: index_url.to_string(),
                message: err.to_string(),
            })?;
        Ok(Self {
            http,
            index_url,
            pages: Mutex::default(),
            metadata: Mutex::default(),
            stats: MetadataStats::default(),
        })
    }

    pub fn index_url(&self) -> &Url {
        &self.index_url
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The project page of `name`, fetched at most once per client.
    pub async fn project(&self, name: &PackageName) -> Result<Arc<ProjectPage>, PypiError> {
        let cell = self
            .pages
            .lock()
            .expect("page cache")
            .entry(name.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async { self.fetch_project(name).await.map(Arc::new) })
            .await
            .cloned()
    }

    async fn fetch_project(&self, name: &PackageName) -> Result<ProjectPage, PypiError> {
        let url = self
            .index_url
            .join(&format!("{name}/"))
            .expect("normalized names are valid URL segments");
        let response = self
            .send(
                || self.http.get(url.clone()).header(header::ACCEPT, ACCEPT),
                &url,
            )
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Err(PypiError::ProjectNotFound {
                name: name.to_string(),
                url: url.to_string(),
            });
        }
        let response = check_status(response, &url)?;
        let page_url = response.url().clone();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let body = response
            .bytes()
            .await
            .map_err(|err| http_error(&url, err))?;
        parse_project_page(name, page_url, &content_type, &body)
    }

    /// Core metadata of a file, fetched at most once per client.
    pub async fn metadata(&self, file: &IndexFile) -> Result<Arc<CoreMetadata>, PypiError> {
        let cell = self
            .metadata
            .lock()
            .expect("metadata cache")
            .entry(file.url.clone())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async {
            let bytes = self.fetch_metadata_bytes(file).await?;
            CoreMetadata::parse(&bytes)
                .map(Arc::new)
                .map_err(|message| PypiError::BadMetadata {
                    url: file.url.to_string(),
                    message,
                })
        })
        .await
        .cloned()
    }

    async fn fetch_metadata_bytes(&self, file: &IndexFile) -> Result<Vec<u8>, PypiError> {
        let bad = |message: String| PypiError::BadMetadata {
            url: file.url.to_string(),
            message,
        };
        if !file.filename.ends_with(".whl") {
            // PyPI serves no side files for sdists; PKG-INFO is in the archive.
            self.stats.whole_file.fetch_add(1, Ordering::Relaxed);
            let bytes = self.get_bytes(&file.url, None).await?.1;
            if !file.filename.ends_with(".tar.gz") {
                return Err(bad("only .tar.gz sdists can be read".into()));
            }
            return sdist_pkg_info(&bytes).map_err(|err| bad(err.to_string()));
        }
        let sidecar =
            Url::parse(&format!("{}.metadata", file.url)).expect("URL plus suffix stays valid");
        let response = self
            .send(|| self.http.get(sidecar.clone()), &sidecar)
            .await?;
        if response.status().is_success() {
            self.stats.sidecar.fetch_add(1, Ordering::Relaxed);
            return Ok(response
                .bytes()
                .await
                .map_err(|err| http_error(&sidecar, err))?
                .to_vec());
        }
        let (status, tail, total) = self
            .get_bytes(&file.url, Some(RangeRequest::Suffix(TAIL_BYTES)))
            .await?;
        if status != StatusCode::PARTIAL_CONTENT {
            // The server sent the whole wheel.
            self.stats.whole_file.fetch_add(1, Ordering::Relaxed);
            return wheel_metadata(std::io::Cursor::new(tail)).map_err(|err| bad(err.to_string()));
        }
        self.stats.range.fetch_add(1, Ordering::Relaxed);
        let total =
            total.ok_or_else(|| bad("206 response without a Content-Range total".into()))?;
        let mut sparse = SparseFile::new(total);
        sparse.insert(total.saturating_sub(tail.len() as u64), tail);
        for _ in 0..8 {
            sparse.rewind();
            match wheel_metadata(&mut sparse) {
                Ok(bytes) => return Ok(bytes),
                Err(err) => {
                    let Some(offset) = SparseFile::missing(&err) else {
                        return Err(bad(err.to_string()));
                    };
                    let end = sparse
                        .next_present(offset)
                        .min(total)
                        .max(offset + MIN_RANGE)
                        .min(total);
                    let (_, bytes, _) = self
                        .get_bytes(&file.url, Some(RangeRequest::Span(offset, end - 1)))
                        .await?;
                    sparse.insert(offset, bytes);
                }
            }
        }
        Err(bad("METADATA still incomplete after 8 range reads".into()))
    }

    /// GET with an optional range; returns status, body and the total size from Content-Range.
    async fn get_bytes(
        &self,
        url: &Url,
        range: Option<RangeRequest>,
    ) -> Result<(StatusCode, Vec<u8>, Option<u64>), PypiError> {
        let response = self
            .send(
                || {
                    let request = self.http.get(url.clone());
                    match range {
                        Some(RangeRequest::Suffix(n)) => {
                            request.header(header::RANGE, format!("bytes=-{n}"))
                        }
                        Some(RangeRequest::Span(from, to)) => {
                            request.header(header::RANGE, format!("bytes={from}-{to}"))
                        }
                        None => request,
                    }
                },
                url,
            )
            .await?;
        let response = check_status(response, url)?;
        let status = response.status();
        let total = response
            .headers()
            .get(header::CONTENT_RANGE)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit('/').next())
            .and_then(|total| total.parse().ok());
        let body = response.bytes().await.map_err(|err| http_error(url, err))?;
        Ok((status, body.to_vec(), total))
    }

    /// Sends with retries on connection errors and 5xx answers.
    pub(crate) async fn send(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
        url: &Url,
    ) -> Result<reqwest::Response, PypiError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match build().send().await {
                Ok(response) if response.status().is_server_error() && attempt < ATTEMPTS => {}
                Ok(response) => return Ok(response),
                Err(err)
                    if attempt >= ATTEMPTS
                        || !(err.is_connect() || err.is_timeout() || err.is_request()) =>
                {
                    return Err(http_error(url, err));
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(250 * u64::from(attempt))).await;
        }
    }
}

#[derive(Clone, Copy)]
enum RangeRequest {
    Suffix(u64),
    Span(u64, u64),
}

/// Reads a PEP 691 JSON or PEP 503 HTML project page served at `page_url` with (lowercase,
/// parameter-free) `content_type`. Separate from the fetch so that it can be fuzzed.
pub fn parse_project_page(
    name: &PackageName,
    page_url: Url,
    content_type: &str,
    body: &[u8],
) -> Result<ProjectPage, PypiError> {
    let bad = |message: String| PypiError::BadIndexPage {
        url: page_url.to_string(),
        message,
    };
    let files = match content_type {
        "application/vnd.pypi.simple.v1+json" => {
            let page: JsonPage =
                serde_json::from_slice(body).map_err(|err| bad(err.to_string()))?;
            let version = page
                .meta
                .and_then(|meta| meta.api_version)
                .unwrap_or_else(|| "1.0".into());
            if !version.starts_with("1.") {
                return Err(bad(format!("unsupported simple API version {version}")));
            }
            page.files
                .into_iter()
                .map(|file| {
                    let url = page_url
                        .join(&file.url)
                        .map_err(|err| bad(format!("{}: {err}", file.url)))?;
                    Ok(IndexFile {
                        filename: file.filename,
                        url: without_fragment(url),
                        sha256: file
                            .hashes
                            .get("sha256")
                            .map(|hex| hex.to_ascii_lowercase()),
                        requires_python: file
                            .requires_python
                            .filter(|value| !value.trim().is_empty()),
                        yanked: match file.yanked {
                            Some(serde_json::Value::Bool(true)) => Some(String::new()),
                            Some(serde_json::Value::String(reason)) => Some(reason),
                            _ => None,
                        },
                        size: file.size,
                        upload_time: file.upload_time.filter(|time| !time.is_empty()),
                    })
                })
                .collect::<Result<Vec<_>, PypiError>>()?
        }
        "text/html" | "application/vnd.pypi.simple.v1+html" => {
            let (anchors, base) = parse_anchors(&String::from_utf8_lossy(body));
            let base = match base {
                Some(base) => page_url
                    .join(&base)
                    .map_err(|err| bad(format!("<base href>: {err}")))?,
                None => page_url.clone(),
            };
            anchors
                .into_iter()
                .map(|anchor| {
                    let url = base
                        .join(&anchor.href)
                        .map_err(|err| bad(format!("{}: {err}", anchor.href)))?;
                    let sha256 = url
                        .fragment()
                        .and_then(|fragment| fragment.strip_prefix("sha256="))
                        .map(|hex| hex.to_ascii_lowercase());
                    let filename = url
                        .path_segments()
                        .and_then(|mut segments| segments.next_back())
                        .unwrap_or("");
                    let filename = percent_encoding::percent_decode_str(filename)
                        .decode_utf8_lossy()
                        .to_string();
                    Ok(IndexFile {
                        filename,
                        url: without_fragment(url),
                        sha256,
                        requires_python: anchor
                            .requires_python
                            .filter(|value| !value.trim().is_empty()),
                        yanked: anchor.yanked,
                        size: None,
                        upload_time: None,
                    })
                })
                .collect::<Result<Vec<_>, PypiError>>()?
        }
        other => return Err(bad(format!("unexpected Content-Type `{other}`"))),
    };
    Ok(ProjectPage {
        name: name.clone(),
        url: page_url,
        files,
    })
}

fn without_fragment(mut url: Url) -> Url {
    url.set_fragment(None);
    url
}

pub(crate) fn http_error(url: &Url, err: reqwest::Error) -> PypiError {
    let mut message = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(inner) = source {
        message.push_str(": ");
        message.push_str(&inner.to_string());
        source = inner.source();
    }
    PypiError::Http {
        url: url.to_string(),
        message,
    }
}

pub(crate) fn check_status(
    response: reqwest::Response,
    url: &Url,
) -> Result<reqwest::Response, PypiError> {
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(PypiError::Http {
            url: url.to_string(),
            message: format!("server answered {}", response.status()),
        })
    }
}
