//! A package index on 127.0.0.1 for PyPI tests, shaped like the one our build machines reach:
//! PEP 691 JSON or PEP 503 HTML chosen by `Accept`, files with HTTP Range support, but no
//! core-metadata advertising, no `.metadata` side files and no per-version JSON API.
//! The server thread stops when the [`IndexServer`] is dropped.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

/// One file on a project page.
#[derive(Debug, Clone)]
pub struct IndexEntry {
    pub filename: String,
    pub bytes: Vec<u8>,
    pub requires_python: Option<String>,
    /// `Some(reason)` marks the file yanked.
    pub yanked: Option<String>,
    pub upload_time: String,
}

impl IndexEntry {
    pub fn new((filename, bytes): (String, Vec<u8>)) -> Self {
        Self {
            filename,
            bytes,
            requires_python: None,
            yanked: None,
            upload_time: "2025-01-01T00:00:00.000000Z".into(),
        }
    }

    pub fn requires_python(mut self, specifiers: &str) -> Self {
        self.requires_python = Some(specifiers.into());
        self
    }

    pub fn yanked(mut self, reason: &str) -> Self {
        self.yanked = Some(reason.into());
        self
    }

    pub fn uploaded(mut self, time: &str) -> Self {
        self.upload_time = time.into();
        self
    }

    pub fn sha256(&self) -> String {
        hex::encode(Sha256::digest(&self.bytes))
    }
}

/// The projects an index serves, keyed by normalized name.
#[derive(Debug, Clone, Default)]
pub struct IndexContent {
    pub projects: BTreeMap<String, Vec<IndexEntry>>,
    /// Answer project pages with HTML even when JSON is asked for.
    pub html_only: bool,
    /// Files whose full downloads arrive with one byte flipped (range reads stay intact), to
    /// exercise checksum verification.
    pub corrupt: Vec<String>,
    /// Serve PEP 658 `<file>.metadata` side files (still not advertised on the pages), like
    /// the proxy in front of pypi.org does.
    pub serve_metadata: bool,
}

impl IndexContent {
    pub fn add(&mut self, project: &str, entry: IndexEntry) -> &mut Self {
        self.projects
            .entry(normalize(project))
            .or_default()
            .push(entry);
        self
    }
}

/// Normalized project name (PEP 503): runs of `-`, `_`, `.` become one `-`, lowercase.
pub fn normalize(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('-') {
                out.push('-');
            }
        } else {
            out.extend(c.to_lowercase());
        }
    }
    out
}

pub struct IndexServer {
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    log: Arc<Mutex<Vec<String>>>,
}

impl IndexServer {
    pub fn start(content: IndexContent) -> Self {
        Self::start_on(content, "127.0.0.1:0").expect("bind 127.0.0.1")
    }

    /// Serve on `addr` (`ADDR:PORT`; port 0 picks one): the air-gap lab runs the index on its
    /// "internet" namespace's address.
    pub fn start_on(content: IndexContent, addr: &str) -> std::io::Result<Self> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let content = Arc::new(content);
        let thread = {
            let (stop, log) = (stop.clone(), log.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (content, log) = (content.clone(), log.clone());
                    std::thread::spawn(move || {
                        let _ = serve(stream, &content, &log);
                    });
                }
            })
        };
        Ok(Self {
            addr,
            stop,
            thread: Some(thread),
            log,
        })
    }

    /// The index URL (`http://127.0.0.1:<port>/simple/`).
    pub fn url(&self) -> String {
        format!("http://{}/simple/", self.addr)
    }

    /// Requests served so far, as `METHOD path [range]`.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}

impl Drop for IndexServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    content: &IndexContent,
    log: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = BTreeMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((key, value)) = line.split_once(':') {
            headers.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let range = headers.get("range").cloned();
    log.lock().expect("log").push(format!(
        "{method} {path}{}",
        range.as_ref().map(|r| format!(" {r}")).unwrap_or_default()
    ));
    let accept = headers.get("accept").cloned().unwrap_or_default();
    let mut out = stream;
    if let Some(project) = path.strip_prefix("/simple/") {
        let Some(project) = project.strip_suffix('/') else {
            return respond(
                &mut out,
                "301 Moved Permanently",
                &[("Location", &format!("{path}/"))],
                b"",
            );
        };
        let Some(files) = content.projects.get(project) else {
            return respond(
                &mut out,
                "404 Not Found",
                &[("Content-Type", "text/plain")],
                b"no such project",
            );
        };
        if accept.contains("application/vnd.pypi.simple.v1+json") && !content.html_only {
            let body = json_page(project, files);
            return respond(
                &mut out,
                "200 OK",
                &[("Content-Type", "application/vnd.pypi.simple.v1+json")],
                body.as_bytes(),
            );
        }
        let body = html_page(project, files);
        return respond(
            &mut out,
            "200 OK",
            &[("Content-Type", "text/html; charset=utf-8")],
            body.as_bytes(),
        );
    }
    if let Some(wheel) = path
        .strip_prefix("/files/")
        .and_then(|p| p.strip_suffix(".metadata"))
    {
        let file = content
            .projects
            .values()
            .flatten()
            .find(|entry| entry.filename == wheel);
        if let (true, Some(file)) = (content.serve_metadata, file) {
            let metadata = wheel_metadata(&file.bytes);
            return respond(
                &mut out,
                "200 OK",
                &[("Content-Type", "application/octet-stream")],
                &metadata,
            );
        }
        return respond(
            &mut out,
            "404 Not Found",
            &[("Content-Type", "text/plain")],
            b"no side file",
        );
    }
    if let Some(filename) = path.strip_prefix("/files/") {
        let file = content
            .projects
            .values()
            .flatten()
            .find(|entry| entry.filename == filename);
        let Some(file) = file else {
            return respond(
                &mut out,
                "404 Not Found",
                &[("Content-Type", "text/plain")],
                b"no such file",
            );
        };
        let total = file.bytes.len();
        if let Some((start, end)) = range.as_deref().and_then(|range| parse_range(range, total)) {
            let content_range = format!("bytes {start}-{end}/{total}");
            let headers = [
                ("Content-Type", "application/octet-stream"),
                ("Content-Range", content_range.as_str()),
            ];
            return respond(
                &mut out,
                "206 Partial Content",
                &headers,
                &file.bytes[start..=end],
            );
        }
        let mut bytes = file.bytes.clone();
        if content.corrupt.contains(&file.filename) {
            bytes[total / 2] ^= 0xff;
        }
        return respond(
            &mut out,
            "200 OK",
            &[("Content-Type", "application/octet-stream")],
            &bytes,
        );
    }
    respond(
        &mut out,
        "404 Not Found",
        &[("Content-Type", "text/plain")],
        b"not here",
    )
}

/// The exact bytes of `*.dist-info/METADATA` in a wheel.
fn wheel_metadata(wheel: &[u8]) -> Vec<u8> {
    let mut archive =
        zip::ZipArchive::new(std::io::Cursor::new(wheel)).expect("generated wheel is a zip");
    let name = archive
        .file_names()
        .find(|name| name.ends_with(".dist-info/METADATA"))
        .expect("wheel has METADATA")
        .to_string();
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut archive.by_name(&name).expect("METADATA member"),
        &mut bytes,
    )
    .expect("read METADATA");
    bytes
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` -> inclusive span within `total`.
fn parse_range(range: &str, total: usize) -> Option<(usize, usize)> {
    let spec = range.strip_prefix("bytes=")?;
    let (from, to) = spec.split_once('-')?;
    if total == 0 {
        return None;
    }
    if from.is_empty() {
        let suffix: usize = to.parse().ok()?;
        return Some((total.saturating_sub(suffix), total - 1));
    }
    let start: usize = from.parse().ok()?;
    let end = if to.is_empty() {
        total - 1
    } else {
        to.parse::<usize>().ok()?.min(total - 1)
    };
    (start <= end).then_some((start, end))
}

fn respond(
    out: &mut TcpStream,
    status: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (key, value) in headers {
        head.push_str(&format!("{key}: {value}\r\n"));
    }
    head.push_str("\r\n");
    out.write_all(head.as_bytes())?;
    out.write_all(body)?;
    out.flush()
}

fn json_page(project: &str, files: &[IndexEntry]) -> String {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|file| {
            let mut value = serde_json::json!({
                "filename": file.filename,
                "url": format!("../../files/{}", file.filename),
                "hashes": {"sha256": file.sha256()},
                "size": file.bytes.len(),
                "upload-time": file.upload_time,
                "yanked": file.yanked.clone().map_or(serde_json::Value::Bool(false), serde_json::Value::String),
            });
            if let Some(requires) = &file.requires_python {
                value["requires-python"] = serde_json::Value::String(requires.clone());
            }
            value
        })
        .collect();
    serde_json::json!({"meta": {"api-version": "1.1"}, "name": project, "files": files}).to_string()
}

fn html_page(project: &str, files: &[IndexEntry]) -> String {
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta name=\"pypi:repository-version\" content=\"1.0\"><title>Links for {project}</title></head><body>\n"
    );
    for file in files {
        let mut attributes = String::new();
        if let Some(requires) = &file.requires_python {
            attributes.push_str(&format!(" data-requires-python=\"{}\"", escape(requires)));
        }
        if let Some(reason) = &file.yanked {
            attributes.push_str(&format!(" data-yanked=\"{}\"", escape(reason)));
        }
        html.push_str(&format!(
            "<a href=\"../../files/{0}#sha256={1}\"{attributes}>{0}</a><br/>\n",
            file.filename,
            file.sha256()
        ));
    }
    html.push_str("</body></html>\n");
    html
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=-10", 100), Some((90, 99)));
        assert_eq!(parse_range("bytes=-1000", 100), Some((0, 99)));
        assert_eq!(parse_range("bytes=5-", 100), Some((5, 99)));
        assert_eq!(parse_range("bytes=5-500", 100), Some((5, 99)));
        assert_eq!(parse_range("bytes=50-5", 100), None);
    }
}
