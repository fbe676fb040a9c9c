//! The little HTTP/1.1 the token front speaks: parse a request head (discarding any body so
//! keep-alive stays in step) and write a reply that always carries a `Content-Length`. Enough
//! for skopeo, containerd and reqwest on loopback; not a general server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

use crate::server::percent_decode;

/// One parsed request head.
pub(super) struct Request {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn query_all(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A response head and body.
pub(super) struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

pub(super) enum Body {
    Bytes(Vec<u8>),
    /// Streamed from the registry; `len` is its `Content-Length`.
    Stream {
        reader: ureq::BodyReader<'static>,
        len: u64,
    },
    /// HEAD: no body, this `Content-Length`.
    None {
        len: u64,
    },
}

/// Reads a request head, and discards any body so the next request on the connection parses.
pub(super) fn read_request(reader: &mut BufReader<TcpStream>) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(&v.replace('+', " ")))
        })
        .collect();
    let request = Request {
        method,
        path: percent_decode(path),
        query,
        headers,
    };
    let body_len: u64 = request
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    std::io::copy(&mut reader.by_ref().take(body_len), &mut std::io::sink())?;
    Ok(Some(request))
}

/// A plain-text reply.
pub(super) fn text(status: u16, body: &str) -> Reply {
    Reply {
        status,
        headers: vec![("Content-Type".into(), "text/plain".into())],
        body: Body::Bytes(body.as_bytes().to_vec()),
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        502 => "Bad Gateway",
        _ => "Status",
    }
}

/// Writes `reply` with a `Content-Length` (and `Connection: close` when `close`); returns the
/// body bytes sent.
pub(super) fn write_reply(
    writer: &mut TcpStream,
    reply: Reply,
    close: bool,
) -> std::io::Result<u64> {
    let len = match &reply.body {
        Body::Bytes(b) => b.len() as u64,
        Body::Stream { len, .. } | Body::None { len } => *len,
    };
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (name, value) in &reply.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {len}\r\n"));
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    writer.write_all(head.as_bytes())?;
    let sent = match reply.body {
        Body::Bytes(bytes) => {
            writer.write_all(&bytes)?;
            bytes.len() as u64
        }
        Body::Stream { mut reader, .. } => std::io::copy(&mut reader, writer)?,
        Body::None { .. } => 0,
    };
    writer.flush()?;
    Ok(sent)
}
