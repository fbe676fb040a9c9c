//! One memory budget for the download bodies a build holds, shared by every mirror and every
//! download in flight. A fresh download small enough to be kept in memory (see
//! `attempt::KEEP_IN_MEMORY`) first reserves its size here; when the budget is spent it streams
//! into its cache file instead, as a large file does, and the writer reads it from there. So the
//! bodies held stay under one bound however many mirrors are given and however many downloads
//! the scheduler keeps in flight. A reservation ends when its body is handed to the bundle
//! writer (whose channel holds a few more, see `build::stream::WAITING`) or dropped.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Bytes of download bodies held in memory at most, in flight and finished ahead of the
/// writer together. 32 MiB: 8 downloads of the largest kept size, or 25-100 of Rocky's
/// typical 0.3-1.2 MB packages; with the writer's channel (8 x 4 MiB) at most 64 MiB of bodies.
/// The fetcher's look-ahead (`LOOK_AHEAD` in `mod.rs`) keeps it full on a fast link, so its
/// size is what the peak RSS follows (docs/BENCHMARKS.md, issue 18 WAN, Run 5).
pub(crate) const MEMORY_BUDGET: u64 = 32 << 20;

#[derive(Debug)]
pub(crate) struct MemoryBudget {
    held: AtomicU64,
    limit: u64,
}

/// Bytes of a [`MemoryBudget`] held until this is dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<MemoryBudget>,
    bytes: u64,
}

impl MemoryBudget {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(MemoryBudget {
            held: AtomicU64::new(0),
            limit,
        })
    }

    /// Reserve `bytes`, or None when that would pass the limit.
    pub fn try_reserve(self: &Arc<Self>, bytes: u64) -> Option<Reservation> {
        self.held
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |held| {
                held.checked_add(bytes).filter(|&total| total <= self.limit)
            })
            .ok()?;
        Some(Reservation {
            budget: self.clone(),
            bytes,
        })
    }

    /// Bytes reserved now.
    #[cfg(test)]
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Acquire)
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.held.fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_stay_under_the_limit_and_return_on_drop() {
        let budget = MemoryBudget::new(10);
        let a = budget.try_reserve(6).expect("fits");
        assert!(budget.try_reserve(5).is_none(), "6 + 5 passes 10");
        let b = budget.try_reserve(4).expect("6 + 4 fits");
        assert_eq!(budget.held(), 10);
        drop(a);
        assert_eq!(budget.held(), 4);
        assert!(budget.try_reserve(6).is_some());
        drop(b);
        assert_eq!(budget.held(), 0);
    }
}
