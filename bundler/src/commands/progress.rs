//! Progress display for the binary: indicatif bars (files, bytes, rate, ETA) when stderr is a
//! terminal, plain lines every few seconds otherwise (CI logs), nothing with `--quiet`. The
//! library only calls the `bundle::progress::Reporter` trait.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bundle::progress::Reporter;
use indicatif::{ProgressBar, ProgressStyle};

pub enum CliReporter {
    Quiet,
    /// The bar and whether it counts bytes (else files).
    Bar(Mutex<Option<(ProgressBar, bool)>>),
    Lines(Lines),
}

pub struct Lines {
    state: Mutex<LineState>,
    items: AtomicU64,
    bytes: AtomicU64,
}

struct LineState {
    what: String,
    total_items: u64,
    total_bytes: u64,
    started: Instant,
    last: Instant,
}

impl CliReporter {
    pub fn new(quiet: bool) -> Self {
        if quiet {
            CliReporter::Quiet
        } else if std::io::stderr().is_terminal() {
            CliReporter::Bar(Mutex::new(None))
        } else {
            CliReporter::Lines(Lines {
                state: Mutex::new(LineState {
                    what: String::new(),
                    total_items: 0,
                    total_bytes: 0,
                    started: Instant::now(),
                    last: Instant::now(),
                }),
                items: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
            })
        }
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

impl Lines {
    fn line(&self, s: &LineState, done: bool) {
        let items = self.items.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        let secs = s.started.elapsed().as_secs_f64().max(0.001);
        eprintln!(
            "{}{}: {items}/{} files, {:.1}/{:.1} MiB, {:.1} MiB/s",
            s.what,
            if done { " done" } else { "" },
            s.total_items,
            mib(bytes),
            mib(s.total_bytes),
            mib(bytes) / secs
        );
    }
}

impl Reporter for CliReporter {
    fn started(&self, what: &str, items: u64, bytes: u64) {
        match self {
            CliReporter::Quiet => {}
            CliReporter::Bar(bar) => {
                let pb = if bytes > 0 {
                    ProgressBar::new(bytes).with_style(
                        ProgressStyle::with_template(
                            "{msg:>18} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}",
                        )
                        .expect("valid template")
                        .progress_chars("=> "),
                    )
                } else {
                    ProgressBar::new(items).with_style(
                        ProgressStyle::with_template("{msg:>18} [{bar:30}] {pos}/{len} ETA {eta}")
                            .expect("valid template")
                            .progress_chars("=> "),
                    )
                };
                pb.set_message(what.to_string());
                pb.enable_steady_tick(Duration::from_millis(200));
                *bar.lock().expect("bar lock") = Some((pb, bytes > 0));
            }
            CliReporter::Lines(l) => {
                l.items.store(0, Ordering::Relaxed);
                l.bytes.store(0, Ordering::Relaxed);
                let mut s = l.state.lock().expect("lines lock");
                s.what = what.to_string();
                s.total_items = items;
                s.total_bytes = bytes;
                s.started = Instant::now();
                s.last = Instant::now();
                eprintln!("{what}: {items} files, {:.1} MiB", mib(bytes));
            }
        }
    }

    fn advanced(&self, items: u64, bytes: u64) {
        match self {
            CliReporter::Quiet => {}
            CliReporter::Bar(bar) => {
                if let Some((pb, by_bytes)) = bar.lock().expect("bar lock").as_ref() {
                    pb.inc(if *by_bytes { bytes } else { items });
                }
            }
            CliReporter::Lines(l) => {
                l.items.fetch_add(items, Ordering::Relaxed);
                l.bytes.fetch_add(bytes, Ordering::Relaxed);
                let mut s = l.state.lock().expect("lines lock");
                if s.last.elapsed() >= Duration::from_secs(5) {
                    s.last = Instant::now();
                    l.line(&s, false);
                }
            }
        }
    }

    /// Notes are shown even with `--quiet`: they say how the run differs from what was asked.
    fn note(&self, message: &str) {
        match self {
            CliReporter::Bar(bar) => match bar.lock().expect("bar lock").as_ref() {
                Some((pb, _)) => pb.println(format!("note: {message}")),
                None => eprintln!("note: {message}"),
            },
            CliReporter::Quiet | CliReporter::Lines(_) => eprintln!("note: {message}"),
        }
    }

    fn finished(&self) {
        match self {
            CliReporter::Quiet => {}
            CliReporter::Bar(bar) => {
                if let Some((pb, _)) = bar.lock().expect("bar lock").take() {
                    pb.finish_and_clear();
                }
            }
            CliReporter::Lines(l) => {
                let s = l.state.lock().expect("lines lock");
                l.line(&s, true);
            }
        }
    }
}
