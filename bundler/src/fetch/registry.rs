//! What the fetcher needs to speak to container registries (the OCI distribution API): the
//! anonymous bearer-token flow and manifest requests. Public registries answer an anonymous
//! request with `401` and `WWW-Authenticate: Bearer realm=…,service=…,scope=…`; the token from
//! the realm is then sent with every request for that repository. A token that expires during a
//! long build earns another 401, which fetches a fresh one. Blobs are ordinary [`Download`]s
//! with a [`RegistryAuth`] attached, so they get the fetcher's retries, resume, cache and
//! digest checks; a redirect to blob storage is followed by the client (which drops the
//! `Authorization` header when the host changes).
//!
//! [`Download`]: super::Download

use std::collections::HashMap;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderMap, WWW_AUTHENTICATE};
use sha2::{Digest, Sha256};
use url::Url;

use super::attempt::AttemptError;
use super::retry::single_failure;
use super::{FetchError, Fetcher};

/// Largest manifest or index accepted (real ones are a few KiB; the installer refuses larger).
pub const MAX_MANIFEST_BYTES: usize = 4 << 20;

/// Every manifest media type a pull accepts, both families.
pub const MANIFEST_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// The credentials of one repository on one registry: the token, once a challenge asked for
/// one. Shared by every request for that repository.
#[derive(Debug)]
pub struct RegistryAuth {
    /// `repository:<name>:pull`, used when a challenge names no scope.
    scope: String,
    token: tokio::sync::Mutex<Option<String>>,
}

impl RegistryAuth {
    pub fn new(repository: &str) -> Self {
        RegistryAuth {
            scope: format!("repository:{repository}:pull"),
            token: tokio::sync::Mutex::new(None),
        }
    }

    /// The `Authorization` header value for the next request, once a token was fetched.
    pub(crate) async fn header(&self) -> Option<String> {
        self.token
            .lock()
            .await
            .as_ref()
            .map(|t| format!("Bearer {t}"))
    }
}

/// A manifest or index exactly as the registry served it.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    /// `Content-Type` of the response (what the registry says the manifest is).
    pub media_type: String,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
}

/// The parameters of a `WWW-Authenticate: Bearer k="v",…` challenge.
fn parse_challenge(header: &str) -> Option<HashMap<String, String>> {
    let rest = header.trim().strip_prefix("Bearer")?.trim_start();
    let mut params = HashMap::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ',' || c.is_whitespace()).is_some() {}
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        if key.is_empty() || chars.next() != Some('=') {
            break;
        }
        let value: String = if chars.next_if_eq(&'"').is_some() {
            let mut v = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '"' => break,
                    '\\' => v.extend(chars.next()),
                    c => v.push(c),
                }
            }
            v
        } else {
            std::iter::from_fn(|| chars.next_if(|c| *c != ',')).collect()
        };
        params.insert(key.trim().to_ascii_lowercase(), value.trim().to_string());
    }
    Some(params)
}

impl Fetcher {
    /// Answers a 401's challenge: fetches a token from its realm and keeps it in `auth`.
    pub(crate) async fn authorize(
        &self,
        auth: &RegistryAuth,
        challenge: Option<&str>,
    ) -> Result<(), AttemptError> {
        let params = challenge.and_then(parse_challenge).ok_or_else(|| {
            AttemptError::Permanent(format!(
                "HTTP 401 without a Bearer challenge ({}); private registries are not supported",
                challenge.unwrap_or("no WWW-Authenticate header")
            ))
        })?;
        let realm = params
            .get("realm")
            .ok_or_else(|| AttemptError::Permanent("Bearer challenge without a realm".into()))?;
        let mut url = Url::parse(realm)
            .map_err(|e| AttemptError::Permanent(format!("token realm {realm}: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = params.get("service") {
                query.append_pair("service", service);
            }
            query.append_pair("scope", params.get("scope").unwrap_or(&auth.scope));
        }
        let response = self
            .client()
            .get(url.clone())
            .send()
            .await
            .map_err(|e| AttemptError::Transient(format!("token from {url}: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            let reason = format!("token from {url}: HTTP {status}");
            return Err(if status.is_server_error() || status.as_u16() == 429 {
                AttemptError::Transient(reason)
            } else {
                AttemptError::Permanent(reason)
            });
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| AttemptError::Transient(format!("token from {url}: {e}")))?;
        let body: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| AttemptError::Permanent(format!("token from {url}: {e}")))?;
        let token = body
            .get("token")
            .or_else(|| body.get("access_token"))
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| {
                AttemptError::Permanent(format!("token from {url}: no token in the answer"))
            })?;
        *auth.token.lock().await = Some(token.to_string());
        Ok(())
    }

    /// `GET` a manifest (by tag or digest) with every manifest type accepted, answering token
    /// challenges, retrying transient failures with the fetcher's policy, refusing anything
    /// over [`MAX_MANIFEST_BYTES`]. When `digest` is given the bytes must hash to it.
    pub async fn registry_manifest(
        &self,
        url: &Url,
        auth: &RegistryAuth,
        digest: Option<&str>,
    ) -> Result<FetchedManifest, FetchError> {
        let manifest = self
            .with_retries(url, Some(auth), || self.manifest_attempt(url, auth, digest))
            .await
            .map_err(|e| single_failure(url, e))?;
        self.count_downloaded(manifest.bytes.len() as u64);
        Ok(manifest)
    }

    async fn manifest_attempt(
        &self,
        url: &Url,
        auth: &RegistryAuth,
        digest: Option<&str>,
    ) -> Result<FetchedManifest, AttemptError> {
        let mut request = self
            .client()
            .get(url.clone())
            .header(ACCEPT, MANIFEST_TYPES.join(", "));
        if let Some(header) = auth.header().await {
            request = request.header(AUTHORIZATION, header);
        }
        let response = request
            .send()
            .await
            .map_err(|e| AttemptError::Transient(super::attempt::describe_reqwest(&e)))?;
        let status = response.status();
        match status.as_u16() {
            200 => {}
            401 => return Err(AttemptError::Unauthorized(challenge_of(response.headers()))),
            429 | 500..=599 => return Err(AttemptError::Transient(format!("HTTP {status}"))),
            _ => return Err(AttemptError::Permanent(format!("HTTP {status}"))),
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_MANIFEST_BYTES as u64)
        {
            return Err(AttemptError::Mismatch(format!(
                "a manifest of {} bytes, more than the {MAX_MANIFEST_BYTES} accepted",
                response.content_length().unwrap_or_default()
            )));
        }
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).trim().to_string())
            .unwrap_or_default();
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut bytes = Vec::new();
        let mut response = response;
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| AttemptError::Transient(format!("reading body: {e}")))?
        {
            if bytes.len() + chunk.len() > MAX_MANIFEST_BYTES {
                return Err(AttemptError::Mismatch(format!(
                    "a manifest of more than the {MAX_MANIFEST_BYTES} bytes accepted"
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        for (what, want) in [
            ("requested", digest),
            ("Docker-Content-Digest", header_digest.as_deref()),
        ] {
            if let Some(want) = want.filter(|w| w.starts_with("sha256:") && *w != actual) {
                return Err(AttemptError::Mismatch(format!(
                    "manifest bytes hash to {actual}, {what} digest is {want}"
                )));
            }
        }
        Ok(FetchedManifest {
            bytes,
            media_type,
            digest: actual,
        })
    }
}

pub(crate) fn challenge_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_parse_as_registries_send_them() {
        let p = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        )
        .unwrap();
        assert_eq!(p["realm"], "https://auth.docker.io/token");
        assert_eq!(p["service"], "registry.docker.io");
        assert_eq!(p["scope"], "repository:library/nginx:pull");
        let p = parse_challenge("Bearer realm=\"http://127.0.0.1:1/token\"").unwrap();
        assert_eq!(p.len(), 1);
        assert!(parse_challenge("Basic realm=\"x\"").is_none());
    }
}
