//! A real registry for the container-image tests: Debian's `docker-registry` (the CNCF
//! distribution registry) on a free loopback port with its storage in a temp dir, filled with
//! generated `TestImage`s through the distribution push API so every manifest keeps its exact
//! bytes and digest. Tests pull from it through `authfront::AuthFront`, which adds the bearer-token
//! and redirect behaviour of public registries that this registry, run plainly, lacks.

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::harness::{Daemon, free_port};
use crate::ociimage::{Blob, TestImage, is_index_type};

/// A running `docker-registry`; stopped on drop, its log printed if a test is failing then.
pub struct Registry {
    // Declared before `dir` so the process stops before its storage is removed.
    process: Daemon,
    port: u16,
    agent: ureq::Agent,
    dir: tempfile::TempDir,
}

/// How long a registry may take to answer `GET /v2/` after it starts.
const READY_LIMIT: Duration = Duration::from_secs(30);

impl Registry {
    /// Starts a registry on a free port, retrying on another port if this one was taken between
    /// picking and binding.
    pub fn start() -> Result<Registry> {
        Self::start_in(&std::env::temp_dir())
    }

    /// Starts a registry whose storage lives under `parent`. A process that is killed rather
    /// than dropping the registry (the benches' and demo's long-running upstream) leaves its
    /// storage there, in a directory its caller removes, instead of in /tmp.
    pub fn start_in(parent: &std::path::Path) -> Result<Registry> {
        let mut last_log = String::new();
        for _ in 0..5 {
            match Self::start_once(parent)? {
                Ok(registry) => return Ok(registry),
                Err(log) if log.contains("address already in use") => last_log = log,
                Err(log) => bail!("docker-registry exited at start:\n{log}"),
            }
        }
        bail!("docker-registry found no free port in 5 tries; last log:\n{last_log}")
    }

    /// Ok(Err(log)) when the process exited before it answered.
    fn start_once(parent: &std::path::Path) -> Result<std::result::Result<Registry, String>> {
        let dir = tempfile::Builder::new()
            .prefix("koi-registry")
            .tempdir_in(parent)
            .with_context(|| format!("a registry directory in {}", parent.display()))?;
        let port = free_port();
        let config = dir.path().join("config.yml");
        // Warnings and errors only: a failing test prints this log, and a line per request
        // would bury the registry's own complaint.
        fs_err::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                 storage:\n  filesystem:\n    rootdirectory: {}\n\
                 http:\n  addr: 127.0.0.1:{port}\n  secret: koi-test-registry\n",
                dir.path().join("storage").display()
            ),
        )?;
        let mut cmd = Command::new("docker-registry");
        cmd.arg("serve").arg(&config);
        let process = Daemon::spawn("docker-registry", &mut cmd, &dir.path().join("log")).context(
            "is Debian's docker-registry installed? scripts/install-test-deps installs it",
        )?;
        let agent = agent();
        let mut registry = Registry {
            process,
            port,
            agent,
            dir,
        };
        let start = Instant::now();
        loop {
            if registry.process.exited().is_some() {
                return Ok(Err(registry.process.log()));
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                let ping = registry.agent.get(format!("{}/v2/", registry.url())).call();
                if matches!(&ping, Ok(r) if r.status() == 200) {
                    return Ok(Ok(registry));
                }
            }
            if start.elapsed() > READY_LIMIT {
                bail!(
                    "docker-registry on port {port} did not answer GET /v2/ within {READY_LIMIT:?}; log:\n{}",
                    registry.process.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The registry's storage directory (what a test may damage on purpose).
    pub fn storage_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("storage")
    }

    /// What the registry has logged so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Pushes every image: configs and layers, then per-platform manifests by digest, then the
    /// top manifest or index by tag.
    pub fn push_all(&self, images: &[TestImage]) -> Result<()> {
        images.iter().try_for_each(|i| self.push(i))
    }

    pub fn push(&self, image: &TestImage) -> Result<()> {
        let (manifests, others): (Vec<&Blob>, Vec<&Blob>) =
            image.blobs.iter().partition(|b| b.is_manifest());
        for blob in others {
            self.push_blob(&image.name, blob)
                .with_context(|| format!("pushing {}", image.reference()))?;
        }
        // An index may only name manifests the registry already has.
        let (indexes, plain): (Vec<&Blob>, Vec<&Blob>) = manifests
            .into_iter()
            .partition(|b| is_index_type(&b.media_type));
        for manifest in plain.into_iter().chain(indexes) {
            self.put_manifest(&image.name, &manifest.digest, manifest)
                .with_context(|| format!("pushing {}", image.reference()))?;
        }
        self.put_manifest(&image.name, &image.tag, &image.top)
            .with_context(|| format!("pushing {}", image.reference()))
    }

    /// Uploads one blob to repository `name` (monolithic: POST for an upload URL, then PUT the
    /// bytes with `?digest=`). A blob already there is uploaded again, which the registry
    /// accepts; checking first would only add requests.
    pub fn push_blob(&self, name: &str, blob: &Blob) -> Result<()> {
        let start_url = format!("{}/v2/{name}/blobs/uploads/", self.url());
        let response = self
            .agent
            .post(&start_url)
            .send_empty()
            .with_context(|| format!("POST {start_url}"))?;
        let response = expect_status(response, 202, "POST", &start_url)?;
        let location = header(&response, "location")
            .with_context(|| format!("POST {start_url}: 202 without a Location"))?;
        let location = if location.starts_with('/') {
            format!("{}{location}", self.url())
        } else {
            location
        };
        let separator = if location.contains('?') { '&' } else { '?' };
        let put_url = format!(
            "{location}{separator}digest={}",
            blob.digest.replace(':', "%3A")
        );
        let response = self
            .agent
            .put(&put_url)
            .header("Content-Type", "application/octet-stream")
            .send(&blob.bytes[..])
            .with_context(|| format!("PUT blob {} to {name}", blob.digest))?;
        expect_status(response, 201, "PUT", &put_url)?;
        Ok(())
    }

    /// Puts a manifest or index under `reference` (a tag or its digest) with its exact media
    /// type, and checks the registry computed the same digest (it kept the bytes).
    pub fn put_manifest(&self, name: &str, reference: &str, manifest: &Blob) -> Result<()> {
        let url = format!("{}/v2/{name}/manifests/{reference}", self.url());
        let response = self
            .agent
            .put(&url)
            .header("Content-Type", &manifest.media_type)
            .send(&manifest.bytes[..])
            .with_context(|| format!("PUT {url}"))?;
        let response = expect_status(response, 201, "PUT", &url)?;
        let digest = header(&response, "docker-content-digest").unwrap_or_default();
        ensure!(
            digest == manifest.digest,
            "PUT {url}: registry stored digest `{digest}`, the bytes have {}",
            manifest.digest
        );
        Ok(())
    }
}

/// The client for talking to the registry directly: errors are statuses to report, not `Err`s,
/// and nothing is followed or decompressed.
fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into()
}

fn header(response: &ureq::http::Response<ureq::Body>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `response` if its status is `want`, else an error naming the request and the registry's body.
fn expect_status(
    mut response: ureq::http::Response<ureq::Body>,
    want: u16,
    method: &str,
    url: &str,
) -> Result<ureq::http::Response<ureq::Body>> {
    if response.status().as_u16() == want {
        return Ok(response);
    }
    let body = response.body_mut().read_to_string().unwrap_or_default();
    bail!(
        "{method} {url}: registry answered {} (wanted {want}): {body}",
        response.status()
    )
}
