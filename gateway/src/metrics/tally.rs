//! Client connections by state, for `faaso_client_connections{state}`: `active` while a request
//! is read or answered (and during a TLS handshake), `idle` while the connection waits for the
//! first byte of its next request.
//!
//! A connection changes state twice per request, so the counts live per thread, each on a
//! cache line of its own (as [`crate::services::drain`] counts requests): the request path touches only
//! its own line, and a scrape adds the threads up.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

#[repr(align(128))]
#[derive(Debug, Default)]
struct Counts {
    active: AtomicI64,
    idle: AtomicI64,
}

/// Every thread's counts (threads live as long as the process, so the counts do too).
static ALL: Mutex<Vec<&'static Counts>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: &'static Counts = {
        let counts: &'static Counts = Box::leak(Box::default());
        ALL.lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(counts);
        counts
    };
}

/// What a connection is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Active,
    Idle,
}

/// Counts one connection in its current phase until dropped.
#[derive(Debug)]
pub struct Tally {
    counts: &'static Counts,
    phase: Phase,
}

impl Tally {
    /// A connection starting in `phase`, counted on this thread.
    pub fn new(phase: Phase) -> Tally {
        let counts = LOCAL.with(|counts| *counts);
        counts.of(phase).fetch_add(1, Ordering::Relaxed);
        Tally { counts, phase }
    }

    /// Moves the connection to `phase`.
    pub fn set(&mut self, phase: Phase) {
        if phase != self.phase {
            self.counts.of(self.phase).fetch_sub(1, Ordering::Relaxed);
            self.counts.of(phase).fetch_add(1, Ordering::Relaxed);
            self.phase = phase;
        }
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        self.counts.of(self.phase).fetch_sub(1, Ordering::Relaxed);
    }
}

impl Counts {
    fn of(&self, phase: Phase) -> &AtomicI64 {
        match phase {
            Phase::Active => &self.active,
            Phase::Idle => &self.idle,
        }
    }
}

/// Connections `(active, idle)` over every thread.
pub fn totals() -> (i64, i64) {
    ALL.lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .fold((0, 0), |(active, idle), counts| {
            (
                active + counts.active.load(Ordering::Relaxed),
                idle + counts.idle.load(Ordering::Relaxed),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phases_move_and_drops_give_back() {
        // Other tests may count at the same time: look at this thread's own line.
        let mine = LOCAL.with(|counts| *counts);
        let read = || {
            (
                mine.active.load(Ordering::Relaxed),
                mine.idle.load(Ordering::Relaxed),
            )
        };
        let before = read();
        let mut a = Tally::new(Phase::Idle);
        let b = Tally::new(Phase::Active);
        assert_eq!(read(), (before.0 + 1, before.1 + 1));
        a.set(Phase::Active);
        a.set(Phase::Active);
        assert_eq!(read(), (before.0 + 2, before.1));
        a.set(Phase::Idle);
        drop(b);
        assert_eq!(read(), (before.0, before.1 + 1));
        drop(a);
        assert_eq!(read(), before);
        let (active, idle) = totals();
        assert!(active >= 0 && idle >= 0);
    }
}
