//! `serve-dir`: serves a directory on 127.0.0.1 for `scripts/demo` (the same server the tests
//! use, without faults). Prints the URL, then serves until killed.

use std::path::PathBuf;

use anyhow::Result;
use clap::Parser;
use e2e::server::{Faults, TestServer};

/// Serve DIR over HTTP on 127.0.0.1 (Range and keep-alive supported).
///
/// Example:
///   serve-dir /tmp/mirror --port 8080
#[derive(Parser)]
#[command(verbatim_doc_comment)]
struct Args {
    dir: PathBuf,
    /// Port to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let server = TestServer::start_on(&args.dir, Faults::none(), args.port)?;
    println!("{}", server.url());
    loop {
        std::thread::park();
    }
}
