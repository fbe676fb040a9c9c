//! Progress reporting seam, the one progress trait of the project. The library never prints; it
//! calls a [`Reporter`] that the binary supplies (`term::TermReporter` with the `term`
//! feature: bars on a terminal, lines elsewhere, nothing when quiet), and tests pass
//! [`NoProgress`].
//!
//! Counts are increments: `advanced(0, n)` after `n` more bytes, `advanced(1, 0)` when one more
//! item (a file; a PyPI target resolved) is complete. A reporter is shared between threads,
//! hence `Sync`.

#[cfg(feature = "term")]
pub mod term;

/// Receives progress from long-running library calls.
pub trait Reporter: Sync {
    /// A phase starts; `items` and `bytes` are the totals it will report (0 when unknown).
    fn started(&self, _what: &str, _items: u64, _bytes: u64) {}
    /// More work is done since the last call.
    fn advanced(&self, _items: u64, _bytes: u64) {}
    /// The phase started last is over.
    fn finished(&self) {}
    /// A split bundle is being read: volume `index` (from 1) of `count`, at `path`, is the one
    /// being read now. Called once per volume as the reading moves on.
    fn volume(&self, _index: usize, _count: usize, _path: &std::path::Path) {}
    /// Something the operator should know that does not stop the work (a mirror dropped).
    fn note(&self, _message: &str) {}
}

/// A reporter that ignores everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Reporter for NoProgress {}
