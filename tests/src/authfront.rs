//! The public-registry behaviour the bundler meets upstream, in front of a plain test registry:
//! anonymous bearer tokens (`401` + `WWW-Authenticate: Bearer realm=…,service=…,scope=…`, then
//! `GET /token`), blob downloads redirected (`307`) to a second listener standing in for blob
//! storage on another host (as registry.k8s.io does), and faults a hostile upstream could serve.
//! It counts what happened so a test can assert the client went through the whole flow.
//!
//! Synchronous on purpose: std::net listeners, a thread per connection, HTTP/1.1 with keep-alive,
//! every response with a `Content-Length`. Pulls only (GET and HEAD); pushes go to the registry
//! directly (`registry::Registry::push`).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::ociimage::sha256_digest;

mod http1;
use http1::{Body, Reply, Request, read_request, text, write_reply};

/// The `service` named in challenges and required on token requests.
pub const SERVICE: &str = "test-registry";

/// A way the front misbehaves for one path, for hostile-input tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// The real body with one byte flipped, under the real headers (`Docker-Content-Digest`
    /// and `Content-Length` of the real bytes): content that does not match its digest.
    CorruptBody,
    /// `404` with the registry's error JSON, as if the blob or manifest were missing.
    NotFound,
    /// The real body padded with spaces to this many bytes (a manifest stays valid JSON), sent
    /// with its true length and digest: only the size is wrong.
    Oversized(usize),
}

/// What the front saw and did, for assertions.
#[derive(Debug, Default)]
pub struct FrontStats {
    token_requests: AtomicU64,
    unauthorized: AtomicU64,
    redirects: AtomicU64,
    body_bytes: AtomicU64,
    requests: Mutex<BTreeMap<String, u64>>,
}

impl FrontStats {
    /// `GET /token` requests answered with a token.
    pub fn token_requests(&self) -> u64 {
        self.token_requests.load(Ordering::SeqCst)
    }
    /// `401` challenges sent.
    pub fn unauthorized(&self) -> u64 {
        self.unauthorized.load(Ordering::SeqCst)
    }
    /// Blob requests answered with a `307` to blob storage.
    pub fn redirects(&self) -> u64 {
        self.redirects.load(Ordering::SeqCst)
    }
    /// Body bytes sent by both listeners.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes.load(Ordering::SeqCst)
    }
    /// Requests seen for `path` (no query) with `method`, on either listener: API paths start
    /// `/v2/`, blob storage paths `/blobs/<name>/<digest>`, the token endpoint is `/token`.
    pub fn requests(&self, method: &str, path: &str) -> u64 {
        let key = format!("{method} {path}");
        self.lock().get(&key).copied().unwrap_or(0)
    }
    /// Every `METHOD path` seen, with its count.
    pub fn all_requests(&self) -> BTreeMap<String, u64> {
        self.lock().clone()
    }
    fn count(&self, method: &str, path: &str) {
        *self.lock().entry(format!("{method} {path}")).or_insert(0) += 1;
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, u64>> {
        self.requests.lock().expect("front stats lock")
    }
}

/// State the connection threads share.
struct Shared {
    /// The registry, `http://127.0.0.1:PORT`.
    upstream: String,
    api_url: String,
    blob_url: String,
    agent: ureq::Agent,
    stats: FrontStats,
    /// Issued token → the scopes it grants.
    tokens: Mutex<HashMap<String, Vec<String>>>,
    /// `/v2/…` path → its fault.
    faults: Mutex<HashMap<String, Fault>>,
}

/// The running front: an API listener and a blob-storage listener, stopped on drop.
pub struct AuthFront {
    shared: Arc<Shared>,
    api_port: u16,
    blob_port: u16,
    stop: Arc<AtomicBool>,
    accept: Vec<JoinHandle<()>>,
}

#[derive(Clone, Copy)]
enum Role {
    Api,
    BlobStorage,
}

impl AuthFront {
    /// Starts both listeners on free loopback ports, forwarding to `upstream`
    /// (`http://127.0.0.1:PORT` of a registry that needs no auth).
    pub fn start(upstream: &str) -> std::io::Result<AuthFront> {
        let api = TcpListener::bind("127.0.0.1:0")?;
        let blobs = TcpListener::bind("127.0.0.1:0")?;
        let (api_port, blob_port) = (api.local_addr()?.port(), blobs.local_addr()?.port());
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            api_url: format!("http://127.0.0.1:{api_port}"),
            blob_url: format!("http://127.0.0.1:{blob_port}"),
            agent: ureq::Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(0)
                .build()
                .into(),
            stats: FrontStats::default(),
            tokens: Mutex::default(),
            faults: Mutex::default(),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let accept = [(api, Role::Api), (blobs, Role::BlobStorage)]
            .into_iter()
            .map(|(listener, role)| {
                let (shared, stop) = (shared.clone(), stop.clone());
                std::thread::spawn(move || {
                    for conn in listener.incoming() {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let shared = shared.clone();
                        std::thread::spawn(move || {
                            let _ = serve_connection(conn, role, &shared);
                        });
                    }
                })
            })
            .collect();
        Ok(AuthFront {
            shared,
            api_port,
            blob_port,
            stop,
            accept,
        })
    }

    pub fn port(&self) -> u16 {
        self.api_port
    }

    /// `127.0.0.1:PORT`, the registry host in an image reference.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.api_port)
    }

    /// `http://127.0.0.1:PORT` of the API.
    pub fn url(&self) -> String {
        self.shared.api_url.clone()
    }

    /// `http://127.0.0.1:PORT` of blob storage, where blob requests are redirected.
    pub fn blob_storage_url(&self) -> String {
        self.shared.blob_url.clone()
    }

    pub fn stats(&self) -> &FrontStats {
        &self.shared.stats
    }

    /// Makes `path` (`/v2/<name>/manifests/<tag-or-digest>` or `/v2/<name>/blobs/<digest>`)
    /// misbehave from now on. A blob's `NotFound` answers on the API; its other faults apply
    /// where its bytes are served, after the redirect.
    pub fn inject(&self, path: &str, fault: Fault) {
        lock(&self.shared.faults).insert(path.to_string(), fault);
    }

    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }
}

impl Drop for AuthFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for port in [self.api_port, self.blob_port] {
            let _ = TcpStream::connect(("127.0.0.1", port));
        }
        for handle in self.accept.drain(..) {
            let _ = handle.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().expect("front lock")
}

fn serve_connection(conn: TcpStream, role: Role, shared: &Shared) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut writer = conn.try_clone()?;
    let mut reader = BufReader::new(conn);
    loop {
        // A TLS ClientHello (a client trying https first, as skopeo does with
        // --tls-verify=false) starts with 0x16 and may hold no newline: answer in plain HTTP,
        // which the client reports as "HTTP response to HTTPS client" and falls back on.
        if reader.fill_buf()?.first() == Some(&0x16) {
            let reply = text(400, "plain HTTP only\n");
            let sent = write_reply(&mut writer, reply, true)?;
            shared.stats.body_bytes.fetch_add(sent, Ordering::SeqCst);
            return Ok(());
        }
        let Some(request) = read_request(&mut reader)? else {
            return Ok(());
        };
        shared.stats.count(&request.method, &request.path);
        let close = request
            .header("connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let reply = match role {
            Role::Api => api(&request, shared),
            Role::BlobStorage => blob_storage(&request, shared),
        };
        let sent = write_reply(&mut writer, reply, close)?;
        shared.stats.body_bytes.fetch_add(sent, Ordering::SeqCst);
        if close {
            return Ok(());
        }
    }
}

fn api(request: &Request, shared: &Shared) -> Reply {
    if request.path == "/token" {
        return token(request, shared);
    }
    if !request.path.starts_with("/v2") {
        return error(404, "NOT_FOUND", "no such endpoint");
    }
    let repository = repository_of(&request.path);
    if let Some(challenge) = challenge(request, repository.as_deref(), shared) {
        return challenge;
    }
    if request.method != "GET" && request.method != "HEAD" {
        return error(405, "UNSUPPORTED", "this front serves pulls only");
    }
    let fault = lock(&shared.faults).get(&request.path).cloned();
    if fault == Some(Fault::NotFound) {
        let (code, what) = if request.path.contains("/blobs/") {
            ("BLOB_UNKNOWN", "blob unknown to registry")
        } else {
            ("MANIFEST_UNKNOWN", "manifest unknown")
        };
        return error(404, code, what);
    }
    if let (Some(name), Some((_, digest))) = (&repository, request.path.split_once("/blobs/")) {
        shared.stats.redirects.fetch_add(1, Ordering::SeqCst);
        let location = format!("{}/blobs/{name}/{digest}", shared.blob_url);
        return Reply {
            status: 307,
            headers: vec![("Location".into(), location)],
            body: Body::Bytes(Vec::new()),
        };
    }
    forward(request, &request.path, fault, shared)
}

/// Blob storage: `/blobs/<name>/<digest>`, no auth, served from the registry's blob endpoint.
fn blob_storage(request: &Request, shared: &Shared) -> Reply {
    let Some((name, digest)) = request
        .path
        .strip_prefix("/blobs/")
        .and_then(|rest| rest.rsplit_once('/'))
    else {
        return text(404, "no such object\n");
    };
    if request.method != "GET" && request.method != "HEAD" {
        return text(405, "read-only\n");
    }
    let api_path = format!("/v2/{name}/blobs/{digest}");
    let fault = lock(&shared.faults).get(&api_path).cloned();
    if fault == Some(Fault::NotFound) {
        return text(404, "no such object\n");
    }
    forward(request, &api_path, fault, shared)
}

/// `GET /token?service=…&scope=…`: any anonymous caller gets a token for the scopes it asks.
fn token(request: &Request, shared: &Shared) -> Reply {
    let service = request.query_all("service");
    if service != [SERVICE] {
        return error(
            400,
            "DENIED",
            &format!("service must be `{SERVICE}`, got {service:?}"),
        );
    }
    let scopes: Vec<String> = request
        .query_all("scope")
        .iter()
        .flat_map(|s| s.split(' '))
        .map(str::to_string)
        .collect();
    let n = shared.stats.token_requests.fetch_add(1, Ordering::SeqCst) + 1;
    let token = format!("koi-test-token-{n}");
    lock(&shared.tokens).insert(token.clone(), scopes);
    let body = serde_json::json!({"token": token, "access_token": token, "expires_in": 300});
    Reply {
        status: 200,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: Body::Bytes(serde_json::to_vec(&body).expect("JSON")),
    }
}

/// The repository of `/v2/<name>/{manifests,blobs,tags}/…`; None for `/v2/` and the like.
fn repository_of(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/v2/")?;
    ["/manifests/", "/blobs/", "/tags/"]
        .iter()
        .filter_map(|marker| rest.rfind(marker))
        .min()
        .map(|end| rest[..end].to_string())
        .filter(|name| !name.is_empty())
}

/// None when the request carries a token we issued that grants pull on `repository` (any issued
/// token for the base `/v2/`); else the `401` challenge a public registry sends.
fn challenge(request: &Request, repository: Option<&str>, shared: &Shared) -> Option<Reply> {
    let presented = request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let granted = presented.and_then(|t| lock(&shared.tokens).get(t).cloned());
    let scope = repository.map(|name| format!("repository:{name}:pull"));
    let allowed = match (&granted, repository) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(scopes), Some(name)) => scopes.iter().any(|s| grants_pull(s, name)),
    };
    if allowed {
        return None;
    }
    shared.stats.unauthorized.fetch_add(1, Ordering::SeqCst);
    let mut challenge = format!(
        "Bearer realm=\"{}/token\",service=\"{SERVICE}\"",
        shared.api_url
    );
    if let Some(scope) = &scope {
        challenge.push_str(&format!(",scope=\"{scope}\""));
    }
    if granted.is_some() {
        challenge.push_str(",error=\"insufficient_scope\"");
    }
    let mut reply = error(401, "UNAUTHORIZED", "authentication required");
    reply.headers.push(("WWW-Authenticate".into(), challenge));
    Some(reply)
}

/// `repository:<name>:<actions>` with `pull` among the actions.
fn grants_pull(scope: &str, name: &str) -> bool {
    scope
        .strip_prefix("repository:")
        .and_then(|rest| rest.rsplit_once(':'))
        .is_some_and(|(n, actions)| {
            n == name && actions.split(',').any(|a| a == "pull" || a == "*")
        })
}

/// Headers of the registry's answer worth passing on.
const KEPT_HEADERS: [&str; 6] = [
    "content-type",
    "docker-content-digest",
    "docker-distribution-api-version",
    "content-range",
    "accept-ranges",
    "etag",
];

/// Sends the request on to the registry at `upstream_path` and relays its answer, streaming the
/// body unless a fault needs it whole.
fn forward(request: &Request, upstream_path: &str, fault: Option<Fault>, shared: &Shared) -> Reply {
    let url = format!("{}{upstream_path}", shared.upstream);
    let mut outgoing = match request.method.as_str() {
        "HEAD" => ureq::http::Request::head(&url),
        _ => ureq::http::Request::get(&url),
    };
    // Accept decides which manifest type the registry may return; Range lets a client resume.
    for (name, value) in &request.headers {
        if name.eq_ignore_ascii_case("accept") || name.eq_ignore_ascii_case("range") {
            outgoing = outgoing.header(name.as_str(), value.as_str());
        }
    }
    let outgoing = outgoing.body(()).expect("valid request");
    let response = match shared.agent.run(outgoing) {
        Ok(r) => r,
        Err(e) => return text(502, &format!("registry at {url} failed: {e}\n")),
    };
    let status = response.status().as_u16();
    let mut headers: Vec<(String, String)> = response
        .headers()
        .iter()
        .filter(|(n, _)| KEPT_HEADERS.contains(&n.as_str()))
        .filter_map(|(n, v)| Some((n.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let len: Option<u64> = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let body = response.into_body();
    if request.method == "HEAD" {
        return Reply {
            status,
            headers,
            body: Body::None {
                len: len.unwrap_or(0),
            },
        };
    }
    match (fault, len) {
        (None, Some(len)) => Reply {
            status,
            headers,
            body: Body::Stream {
                reader: body.into_reader(),
                len,
            },
        },
        (fault, _) => {
            let mut bytes = Vec::new();
            if let Err(e) = body.into_reader().read_to_end(&mut bytes) {
                return text(502, &format!("reading {url} failed: {e}\n"));
            }
            match fault {
                Some(Fault::CorruptBody) if !bytes.is_empty() => {
                    let mid = bytes.len() / 2;
                    bytes[mid] ^= 0xff;
                }
                Some(Fault::Oversized(size)) if size > bytes.len() => {
                    bytes.resize(size, b' ');
                    headers.retain(|(n, _)| n != "docker-content-digest");
                    headers.push(("Docker-Content-Digest".into(), sha256_digest(&bytes)));
                }
                _ => {}
            }
            Reply {
                status,
                headers,
                body: Body::Bytes(bytes),
            }
        }
    }
}

/// An error in the distribution API's JSON shape.
fn error(status: u16, code: &str, message: &str) -> Reply {
    let body = serde_json::json!({"errors": [{"code": code, "message": message, "detail": null}]});
    Reply {
        status,
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            (
                "Docker-Distribution-Api-Version".into(),
                "registry/2.0".into(),
            ),
        ],
        body: Body::Bytes(serde_json::to_vec(&body).expect("JSON")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names_with_slashes() {
        assert_eq!(
            repository_of("/v2/calico/node/manifests/v3").as_deref(),
            Some("calico/node")
        );
        assert_eq!(
            repository_of("/v2/pause/blobs/sha256:ab").as_deref(),
            Some("pause")
        );
        assert_eq!(repository_of("/v2/a/b/tags/list").as_deref(), Some("a/b"));
        assert_eq!(repository_of("/v2/"), None);
    }

    #[test]
    fn scopes_grant_pull_on_their_repository_only() {
        assert!(grants_pull("repository:calico/node:pull", "calico/node"));
        assert!(grants_pull("repository:pause:push,pull", "pause"));
        assert!(!grants_pull("repository:pause:push", "pause"));
        assert!(!grants_pull("repository:calico/cni:pull", "calico/node"));
    }
}
