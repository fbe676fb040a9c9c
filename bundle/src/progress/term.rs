//! The one terminal front-end for [`Reporter`], shared by `bundler` and `installer` (feature
//! `term`, which only the binaries' crates turn on, so library code paths still never print).
//! Bars on stderr when it is a terminal, a plain line per phase (and one every few seconds
//! during it) when it is not (CI logs, `ssh` without a tty), nothing but notes with `--quiet`.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Reporter;

/// How often a phase prints a line when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(5);

/// How progress is shown; [`TermReporter::new`] picks it from `--quiet` and stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    /// Notes only (they say how the run differs from what was asked); no bars, no lines.
    Quiet,
    /// indicatif bars, redrawn in place.
    Bars,
    /// Plain lines: what starts, every few seconds how far it got, what finished.
    Lines,
}

impl Display {
    /// `Quiet` when asked, else bars on a terminal and lines elsewhere.
    pub fn detect(quiet: bool) -> Display {
        if quiet {
            Display::Quiet
        } else if std::io::stderr().is_terminal() {
            Display::Bars
        } else {
            Display::Lines
        }
    }
}

/// A [`Reporter`] that draws on stderr. One phase at a time, as the library reports them.
pub struct TermReporter {
    display: Display,
    phase: Mutex<Option<Phase>>,
    items: AtomicU64,
    bytes: AtomicU64,
}

struct Phase {
    what: String,
    items: u64,
    bytes: u64,
    started: Instant,
    last_line: Instant,
    bar: Option<ProgressBar>,
}

impl TermReporter {
    /// The reporter for a command run with (or without) `--quiet`.
    pub fn new(quiet: bool) -> Self {
        Self::with_display(Display::detect(quiet))
    }

    pub fn with_display(display: Display) -> Self {
        TermReporter {
            display,
            phase: Mutex::new(None),
            items: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        }
    }

    pub fn display(&self) -> Display {
        self.display
    }

    /// A line that must not tear a bar being drawn.
    fn println(&self, line: &str) {
        match self.lock().as_ref().and_then(|p| p.bar.as_ref()) {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Phase>> {
        // A panic while drawing leaves nothing half-updated that matters: keep reporting.
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn progress_line(&self, phase: &Phase, done: bool) -> String {
        let items = self.items.load(Ordering::Relaxed);
        let bytes = self.bytes.load(Ordering::Relaxed);
        let mut line = format!(
            "{}{}: {items}/{}",
            phase.what,
            if done { " done" } else { "" },
            phase.items
        );
        // A phase that counts only items has no bytes to tell, and its items need not be files
        // (PyPI targets resolved); a phase that counts bytes moves files.
        if phase.bytes > 0 {
            let secs = phase.started.elapsed().as_secs_f64().max(0.001);
            line.push_str(&format!(
                " files, {}/{}, {}/s",
                HumanBytes(bytes),
                HumanBytes(phase.bytes),
                HumanBytes((bytes as f64 / secs) as u64)
            ));
        }
        line
    }
}

fn bar_for(what: &str, items: u64, bytes: u64) -> ProgressBar {
    // A phase that knows its size counts bytes (and shows files done as its message); one that
    // does not counts items.
    let (len, template) = if bytes > 0 {
        (
            bytes,
            "{prefix:>18} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg} ETA {eta}",
        )
    } else {
        (items, "{prefix:>18} [{bar:30}] {pos}/{len} ETA {eta}")
    };
    // Hidden until styled and labelled, so the first frame drawn is a complete one.
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::hidden());
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("the bar templates are valid")
            .progress_chars("=> "),
    );
    bar.set_prefix(what.to_string());
    if bytes > 0 {
        bar.set_message(format!("0/{items} files"));
    }
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

impl Reporter for TermReporter {
    fn started(&self, what: &str, items: u64, bytes: u64) {
        if self.display == Display::Quiet {
            return;
        }
        self.items.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        let bar = match self.display {
            Display::Bars => Some(bar_for(what, items, bytes)),
            _ if bytes > 0 => {
                eprintln!("{what}: {items} files, {}", HumanBytes(bytes));
                None
            }
            _ => {
                eprintln!("{what}: {items}");
                None
            }
        };
        let now = Instant::now();
        let previous = self.lock().replace(Phase {
            what: what.to_string(),
            items,
            bytes,
            started: now,
            last_line: now,
            bar,
        });
        if let Some(bar) = previous.and_then(|p| p.bar) {
            bar.finish_and_clear();
        }
    }

    fn advanced(&self, items: u64, bytes: u64) {
        if self.display == Display::Quiet {
            return;
        }
        let done_items = self.items.fetch_add(items, Ordering::Relaxed) + items;
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        let mut phase = self.lock();
        let Some(phase) = phase.as_mut() else { return };
        match &phase.bar {
            Some(bar) if phase.bytes > 0 => {
                bar.inc(bytes);
                if items > 0 {
                    bar.set_message(format!("{done_items}/{} files", phase.items));
                }
            }
            Some(bar) => bar.inc(items),
            None if phase.last_line.elapsed() >= LINE_EVERY => {
                phase.last_line = Instant::now();
                eprintln!("{}", self.progress_line(phase, false));
            }
            None => {}
        }
    }

    fn finished(&self) {
        let Some(phase) = self.lock().take() else {
            return;
        };
        match phase.bar {
            Some(bar) => bar.finish_and_clear(),
            None => eprintln!("{}", self.progress_line(&phase, true)),
        }
    }

    fn volume(&self, index: usize, count: usize, path: &Path) {
        if self.display != Display::Quiet {
            self.println(&format!(
                "reading volume {index} of {count}: {}",
                path.display()
            ));
        }
    }

    /// Notes are shown even with `--quiet`: they say how the run differs from what was asked.
    fn note(&self, message: &str) {
        self.println(&format!("note: {message}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quiet_keeps_no_phase_and_lines_track_counts() {
        let quiet = TermReporter::with_display(Display::Quiet);
        quiet.started("fetch", 2, 10);
        quiet.advanced(1, 5);
        assert!(quiet.lock().is_none());
        quiet.finished();

        let lines = TermReporter::with_display(Display::Lines);
        lines.started("fetch", 2, 3 << 20);
        lines.advanced(1, 1 << 20);
        lines.advanced(1, 2 << 20);
        let line = lines.progress_line(lines.lock().as_ref().unwrap(), true);
        assert!(
            line.starts_with("fetch done: 2/2 files, 3.00 MiB/3.00 MiB, "),
            "{line}"
        );
        lines.finished();
        assert!(lines.lock().is_none());
        lines.started("repodata baseos", 3, 0);
        lines.advanced(1, 0);
        let line = lines.progress_line(lines.lock().as_ref().unwrap(), false);
        assert_eq!(line, "repodata baseos: 1/3");
    }
}
