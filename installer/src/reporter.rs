//! Progress bars for the installer's long steps: an indicatif implementation of the library's
//! `Reporter`, drawn on stderr only when it is a terminal and `--quiet` is not set.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bundle::Reporter;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One bar per phase (`started` .. `finished`), counting bytes when the phase knows its size.
pub struct BarReporter {
    visible: bool,
    bar: Mutex<Option<ProgressBar>>,
    items_done: AtomicU64,
    items_total: AtomicU64,
}

impl BarReporter {
    /// Visible when stderr is a terminal and not `quiet`.
    pub fn new(quiet: bool) -> Self {
        BarReporter {
            visible: !quiet && std::io::stderr().is_terminal(),
            bar: Mutex::new(None),
            items_done: AtomicU64::new(0),
            items_total: AtomicU64::new(0),
        }
    }

    fn with_bar(&self, f: impl FnOnce(&ProgressBar)) {
        if let Some(bar) = self.bar.lock().expect("bar lock").as_ref() {
            f(bar);
        }
    }
}

impl Reporter for BarReporter {
    fn started(&self, what: &str, items: u64, bytes: u64) {
        if !self.visible {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(bytes), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{prefix:>8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_prefix(what.to_string());
        self.items_done.store(0, Ordering::Relaxed);
        self.items_total.store(items, Ordering::Relaxed);
        bar.set_message(format!("0/{items} files"));
        *self.bar.lock().expect("bar lock") = Some(bar);
    }

    fn advanced(&self, items: u64, bytes: u64) {
        self.with_bar(|bar| {
            bar.inc(bytes);
            if items > 0 {
                let done = self.items_done.fetch_add(items, Ordering::Relaxed) + items;
                let total = self.items_total.load(Ordering::Relaxed);
                bar.set_message(format!("{done}/{total} files"));
            }
        });
    }

    fn finished(&self) {
        if let Some(bar) = self.bar.lock().expect("bar lock").take() {
            bar.finish_and_clear();
        }
    }

    fn volume(&self, index: usize, count: usize, path: &std::path::Path) {
        if !self.visible {
            return;
        }
        let line = format!("reading volume {index} of {count}: {}", path.display());
        match self.bar.lock().expect("bar lock").as_ref() {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }
}

pub use installer::units::human_bytes;
