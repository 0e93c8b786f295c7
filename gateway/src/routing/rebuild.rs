//! Whether the routing snapshot is being rebuilt after Docker said something changed, so that a
//! request the last snapshot cannot serve (its funko unknown, or with no instance at all) waits
//! for the rebuild under way rather than being refused from a table a few milliseconds old.
//!
//! `faaso up x && curl .../funko/x/` (or a plain `docker run` and a request) is the case: the
//! container answers before discovery has listed it. Discovery marks a rebuild from the moment
//! it takes up a relevant event until the new snapshot is published. A request waits only when
//! a rebuild is marked, and for at most [`REBUILD_WAIT`]; requests the snapshot can serve never
//! look at this.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// Longest a request waits for a rebuild under way (a rebuild is two Docker list calls, tens
/// of milliseconds; an engine that hangs must not hold requests).
pub const REBUILD_WAIT: Duration = Duration::from_secs(1);

/// Discovery's mark of a rebuild under way, and the wake-up of those waiting for it.
#[derive(Debug, Default)]
pub struct Rebuild {
    under_way: AtomicBool,
    done: Notify,
}

impl Rebuild {
    /// Discovery: a relevant event was taken up; a new snapshot will follow.
    pub fn begin(&self) {
        self.under_way.store(true, Ordering::Release);
    }

    /// Discovery: the new snapshot is published (or the rebuild failed): wake the waiters.
    pub fn end(&self) {
        self.under_way.store(false, Ordering::Release);
        self.done.notify_waiters();
    }

    /// Waits until a rebuild under way ends, for at most `at_most`; returns at once when none
    /// is. The caller then loads the snapshot again: one published since it last looked is
    /// newer whether or not this waited.
    pub async fn settled(&self, at_most: Duration) {
        let done = self.done.notified();
        tokio::pin!(done);
        // Registered before the mark is read, so an end between the two is not missed.
        done.as_mut().enable();
        if self.under_way.load(Ordering::Acquire) {
            let _ = tokio::time::timeout(at_most, done).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Instant;

    use super::*;

    #[tokio::test]
    async fn no_rebuild_no_wait() {
        let rebuild = Rebuild::default();
        let started = Instant::now();
        rebuild.settled(Duration::from_secs(5)).await;
        assert!(started.elapsed() < Duration::from_secs(1));
    }

    #[tokio::test]
    async fn a_waiter_wakes_when_the_rebuild_ends() {
        let rebuild = Arc::new(Rebuild::default());
        rebuild.begin();
        let ender = Arc::clone(&rebuild);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            ender.end();
        });
        let started = Instant::now();
        rebuild.settled(Duration::from_secs(10)).await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(40), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }

    #[tokio::test]
    async fn a_rebuild_that_never_ends_is_waited_for_at_most_the_bound() {
        let rebuild = Rebuild::default();
        rebuild.begin();
        let started = Instant::now();
        rebuild.settled(Duration::from_millis(100)).await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(90), "{waited:?}");
        assert!(waited < Duration::from_secs(5), "{waited:?}");
    }
}
