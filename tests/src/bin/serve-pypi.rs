//! `serve-pypi`: serves a directory of wheels as a package index shaped like the one our build
//! machines reach (PEP 691 JSON or PEP 503 HTML by `Accept`, Range reads, no core-metadata
//! advertising): the air-gap lab's stand-in for pypi.org inside its "internet" namespace.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Parser;
use e2e::pypi_index::{IndexContent, IndexEntry, IndexServer};

/// Serve every `*.whl` under DIR as a simple index at http://ADDR/simple/.
///
/// Example:
///   serve-pypi /tmp/wheels --listen 203.0.113.1:8080
#[derive(Parser)]
#[command(verbatim_doc_comment)]
struct Args {
    dir: PathBuf,
    /// Address to listen on (`ADDR:PORT`).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let mut content = IndexContent::default();
    let mut count = 0;
    for path in wheels(&args.dir)? {
        let filename = path
            .file_name()
            .and_then(|n| n.to_str())
            .with_context(|| format!("{}: not a UTF-8 file name", path.display()))?
            .to_string();
        let project = filename.split('-').next().unwrap_or_default().to_string();
        let bytes = fs_err::read(&path)?;
        content.add(&project, IndexEntry::new((filename, bytes)));
        count += 1;
    }
    if count == 0 {
        bail!("no *.whl files under {}", args.dir.display());
    }
    let server = IndexServer::start_on(content, &args.listen)
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!("{} ({count} files)", server.url());
    loop {
        std::thread::park();
    }
}

fn wheels(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs_err::read_dir(&d)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "whl") {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}
