//! Just enough of HTTP, DNS and NTP to ask the admin's services a question: `installer node`
//! fetches the node files with `http_get`, and `installer status` checks each service with a
//! real query. Plain std sockets with timeouts; the admin's nginx, named and chronyd are the
//! servers, so no general-purpose client is needed.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("{url}: {source}")]
    Io { url: String, source: std::io::Error },
    #[error("{url}: HTTP status {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: {reason}")]
    Malformed { url: String, reason: String },
}

const TIMEOUT: Duration = Duration::from_secs(3);

/// GETs an `http://HOST[:PORT]/path` URL and returns the body of a 200 response.
pub fn http_get(url: &str) -> Result<Vec<u8>, ProbeError> {
    let response = http_request("GET", url)?;
    if response.status != 200 {
        return Err(ProbeError::Status {
            url: url.into(),
            status: response.status,
        });
    }
    Ok(response.body)
}

/// One HTTP response: status, headers (names lowercased) and body (empty for HEAD).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `method` (GET or HEAD) to an `http://HOST[:PORT]/path` URL; any status is returned.
pub fn http_request(method: &str, url: &str) -> Result<HttpResponse, ProbeError> {
    let malformed = |reason: &str| ProbeError::Malformed {
        url: url.into(),
        reason: reason.into(),
    };
    let io = |source| ProbeError::Io {
        url: url.into(),
        source,
    };
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| malformed("only http:// URLs are served by the admin"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = if authority.contains(':') {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let sock: SocketAddr = addr
        .parse()
        .map_err(|_| malformed("the host must be an IPv4 address"))?;
    let mut stream = TcpStream::connect_timeout(&sock, TIMEOUT).map_err(io)?;
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    // HTTP/1.0 keeps the response unchunked and closes the connection at its end.
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nUser-Agent: kubespray-offline-installer\r\n\r\n"
    )
    .map_err(io)?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).map_err(io)?;
    let head_end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| malformed("no end of headers"))?;
    let head = String::from_utf8_lossy(&response[..head_end]);
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| malformed("no status line"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(HttpResponse {
        status,
        headers,
        body: response[head_end + 4..].to_vec(),
    })
}

/// The answer to an A query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    /// 0 NOERROR, 2 SERVFAIL, 3 NXDOMAIN, 5 REFUSED...
    pub rcode: u8,
    pub addresses: Vec<Ipv4Addr>,
}

/// Asks `server` for the A records of `name` with recursion desired.
pub fn dns_query_a(server: SocketAddr, name: &str) -> Result<DnsAnswer, ProbeError> {
    let url = format!("dns://{server}/{name}");
    let io = |source| ProbeError::Io {
        url: url.clone(),
        source,
    };
    let malformed = |reason: &str| ProbeError::Malformed {
        url: url.clone(),
        reason: reason.into(),
    };
    let id: u16 = (std::process::id() as u16) ^ 0x5a5a;
    let mut q = Vec::with_capacity(64);
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    let sock = UdpSocket::bind(("0.0.0.0", 0)).map_err(io)?;
    sock.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    sock.send_to(&q, server).map_err(io)?;
    let mut buf = [0u8; 1500];
    let (n, _) = sock.recv_from(&mut buf).map_err(io)?;
    let r = &buf[..n];
    if n < 12 || r[..2] != id.to_be_bytes() {
        return Err(malformed("short answer or wrong id"));
    }
    let rcode = r[3] & 0x0f;
    let qdcount = u16::from_be_bytes([r[4], r[5]]);
    let ancount = u16::from_be_bytes([r[6], r[7]]);
    let mut pos = 12;
    for _ in 0..qdcount {
        pos = skip_name(r, pos).ok_or_else(|| malformed("bad question"))? + 4;
    }
    let mut addresses = Vec::new();
    for _ in 0..ancount {
        pos = skip_name(r, pos).ok_or_else(|| malformed("bad answer name"))?;
        let fixed = r
            .get(pos..pos + 10)
            .ok_or_else(|| malformed("truncated answer"))?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlen = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let data = r
            .get(pos + 10..pos + 10 + rdlen)
            .ok_or_else(|| malformed("truncated record"))?;
        if rtype == 1 && rdlen == 4 {
            addresses.push(Ipv4Addr::new(data[0], data[1], data[2], data[3]));
        }
        pos += 10 + rdlen;
    }
    Ok(DnsAnswer { rcode, addresses })
}

fn skip_name(r: &[u8], mut pos: usize) -> Option<usize> {
    loop {
        let len = *r.get(pos)?;
        if len & 0xc0 == 0xc0 {
            return Some(pos + 2);
        }
        if len == 0 {
            return Some(pos + 1);
        }
        pos += 1 + usize::from(len);
    }
}

/// What an NTP server said about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NtpReply {
    pub stratum: u8,
    /// 3 means the server's clock is not synchronised.
    pub leap: u8,
}

/// Sends one NTPv4 client request.
pub fn ntp_query(server: SocketAddr) -> Result<NtpReply, ProbeError> {
    let url = format!("ntp://{server}");
    let io = |source| ProbeError::Io {
        url: url.clone(),
        source,
    };
    let mut req = [0u8; 48];
    req[0] = 0b00_100_011; // leap 0, version 4, mode 3 (client)
    // A transmit timestamp the server must echo as the origin timestamp.
    let cookie = u64::from(std::process::id()) << 32 | 0x1234_5678;
    req[40..48].copy_from_slice(&cookie.to_be_bytes());
    let sock = UdpSocket::bind(("0.0.0.0", 0)).map_err(io)?;
    sock.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    sock.send_to(&req, server).map_err(io)?;
    let mut buf = [0u8; 512];
    let (n, _) = sock.recv_from(&mut buf).map_err(io)?;
    if n < 48 || buf[0] & 0x07 != 4 || buf[24..32] != cookie.to_be_bytes() {
        return Err(ProbeError::Malformed {
            url,
            reason: "not an NTP server reply to our request".into(),
        });
    }
    Ok(NtpReply {
        stratum: buf[1],
        leap: buf[0] >> 6,
    })
}
