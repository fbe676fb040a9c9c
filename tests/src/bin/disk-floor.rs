//! Benchmark tool, not a user command: measures what the disk alone allows, so that
//! `scripts/bench-mirror` can put a target next to the time no tool could beat on this machine.
//! Everything goes past the page cache (`O_DIRECT`), as the bundler's own bulk I/O does; the
//! buffers are aligned and reused, so the CPU it takes is the kernel's alone.
//!
//! ```text
//! disk-floor read DIR [THREADS]     read every file under DIR whole, THREADS at a time (8)
//! disk-floor write FILE BYTES       write BYTES of random data to FILE in 4 MiB requests,
//!                                   then fsync (FILE is removed afterwards)
//! ```

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};

/// Request size, and the alignment `O_DIRECT` asks for (a multiple of every block size).
const REQUEST: usize = 4 << 20;
const ALIGN: usize = 4096;

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("disk-floor: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(args: Vec<String>) -> anyhow::Result<()> {
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["read", dir] => read_all(Path::new(dir), 8),
        ["read", dir, threads] => read_all(Path::new(dir), threads.parse().context("THREADS")?),
        ["write", file, bytes] => write_file(Path::new(file), bytes.parse().context("BYTES")?),
        _ => bail!("usage: disk-floor read DIR [THREADS] | disk-floor write FILE BYTES"),
    }
}

/// An aligned buffer of `REQUEST` bytes (part of a larger allocation).
struct Aligned {
    store: Vec<u8>,
    start: usize,
}

impl Aligned {
    fn new() -> Self {
        let store = vec![0u8; REQUEST + ALIGN];
        let start = store.as_ptr().align_offset(ALIGN);
        Aligned { store, start }
    }

    fn get(&mut self) -> &mut [u8] {
        &mut self.store[self.start..self.start + REQUEST]
    }
}

fn read_all(dir: &Path, threads: usize) -> anyhow::Result<()> {
    let mut files = Vec::new();
    collect(dir, &mut files)?;
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| -> anyhow::Result<()> {
                    let mut buf = Aligned::new();
                    loop {
                        let Some(path) = files.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            return Ok(());
                        };
                        let mut file = File::options()
                            .read(true)
                            .custom_flags(libc::O_DIRECT)
                            .open(path)
                            .with_context(|| format!("open {}", path.display()))?;
                        while file.read(buf.get())? == REQUEST {}
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("reader thread")?;
        }
        Ok(())
    })
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in fs_err::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            collect(&entry.path(), out)?;
        } else {
            out.push(entry.path());
        }
    }
    Ok(())
}

fn write_file(path: &Path, bytes: u64) -> anyhow::Result<()> {
    let mut buf = Aligned::new();
    // Random bytes, so that no layer below can skip or compress them.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for chunk in buf.get().chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    let mut file = File::options()
        .write(true)
        .create(true)
        .truncate(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .with_context(|| format!("create {}", path.display()))?;
    let mut left = bytes;
    while left > 0 {
        file.write_all(buf.get())?;
        left = left.saturating_sub(REQUEST as u64);
    }
    file.sync_all()?;
    drop(file);
    fs_err::remove_file(path)?;
    Ok(())
}
