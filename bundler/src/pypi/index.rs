//! The package index client: project pages (PEP 691 JSON, PEP 503 HTML as fallback) and
//! dependency metadata. Metadata comes from `<file>.metadata` (PEP 658, tried even when the
//! index does not advertise it), else from HTTP range reads of the wheel's zip directory,
//! else from the whole file. Pages and metadata are fetched once per run and shared by every
//! target's resolution. Every request goes through the build's one [`Fetcher`] (its client,
//! CA certificates and retry policy).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use pep508_rs::PackageName;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};
use serde::Deserialize;
use tokio::sync::OnceCell;
use url::Url;

use super::PypiError;
use super::html::parse_anchors;
use super::metadata::{CoreMetadata, SparseFile, sdist_pkg_info, wheel_metadata};
use crate::fetch::{Answer, Fetcher};

const ACCEPT: &str = "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
/// First range read of a wheel: the zip directory of most wheels and often METADATA itself.
const TAIL_BYTES: u64 = 64 * 1024;
/// Smallest follow-up range read.
const MIN_RANGE: u64 = 128 * 1024;

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
    fetcher: Arc<Fetcher>,
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
    pub fn new(index_url: &str, fetcher: Arc<Fetcher>) -> Result<Self, PypiError> {
        let mut index_url = Url::parse(index_url).map_err(|err| PypiError::Http {
            url: index_url.to_string(),
            message: format!("invalid index URL: {err}"),
        })?;
        if !index_url.path().ends_with('/') {
            index_url.set_path(&format!("{}/", index_url.path()));
        }
        Ok(Self {
            fetcher,
            index_url,
            pages: Mutex::default(),
            metadata: Mutex::default(),
            stats: MetadataStats::default(),
        })
    }

    pub fn index_url(&self) -> &Url {
        &self.index_url
    }

    /// The fetcher every request of this client goes through.
    pub fn fetcher(&self) -> &Arc<Fetcher> {
        &self.fetcher
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
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(ACCEPT));
        let answer = self.fetcher.get(&url, &headers).await?;
        if answer.status == StatusCode::NOT_FOUND {
            return Err(PypiError::ProjectNotFound {
                name: name.to_string(),
                url: url.to_string(),
            });
        }
        let answer = check_status(answer, &url)?;
        let content_type = answer.content_type();
        let (page_url, body) = (answer.url, answer.body);
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
        let answer = self.fetcher.get(&sidecar, &HeaderMap::new()).await?;
        if answer.status.is_success() {
            self.stats.sidecar.fetch_add(1, Ordering::Relaxed);
            return Ok(answer.body);
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
        let mut headers = HeaderMap::new();
        let range = match range {
            Some(RangeRequest::Suffix(n)) => Some(format!("bytes=-{n}")),
            Some(RangeRequest::Span(from, to)) => Some(format!("bytes={from}-{to}")),
            None => None,
        };
        if let Some(range) = range {
            headers.insert(
                header::RANGE,
                HeaderValue::from_str(&range).expect("a range is a valid header value"),
            );
        }
        let answer = check_status(self.fetcher.get(url, &headers).await?, url)?;
        let total = answer.range_total();
        Ok((answer.status, answer.body, total))
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

/// The answer when the server says success, else an error naming the URL and status.
pub(crate) fn check_status(answer: Answer, url: &Url) -> Result<Answer, PypiError> {
    if answer.status.is_success() {
        Ok(answer)
    } else {
        Err(PypiError::Http {
            url: url.to_string(),
            message: format!("server answered {}", answer.status),
        })
    }
}
