//! Draining on shutdown. Pingora stops accepting on SIGTERM (and on SIGQUIT, after handing its
//! listeners to a new process with `-u`), then waits its grace period before it drops whatever
//! is still running. The gateway counts requests in flight and exits as soon as the last one is
//! answered, so a stop takes as long as the slowest request, at most `grace_period`, rather
//! than always the whole grace period.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

/// Requests in flight on one thread, on a cache line of its own: each worker counts on its own
/// line, so counting costs no cross-core traffic on the request path.
#[repr(align(128))]
#[derive(Debug)]
struct Counter(AtomicUsize);

/// Every thread's counter (one per thread that ever answered a request; threads live as long
/// as the process, so the counters do too).
static COUNTERS: Mutex<Vec<&'static Counter>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: &'static Counter = {
        let counter: &'static Counter = Box::leak(Box::new(Counter(AtomicUsize::new(0))));
        COUNTERS
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(counter);
        counter
    };
}

/// Counts one request until dropped (held in the request context).
#[derive(Debug)]
pub struct RequestGuard(&'static Counter);

impl RequestGuard {
    pub fn new() -> RequestGuard {
        let counter = LOCAL.with(|counter| *counter);
        counter.0.fetch_add(1, Ordering::Relaxed);
        RequestGuard(counter)
    }
}

impl Default for RequestGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        // The counter it was counted on, whichever thread drops it.
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Requests in flight.
pub fn in_flight() -> usize {
    COUNTERS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .map(|counter| counter.0.load(Ordering::Relaxed))
        .sum()
}

/// Waits for the shutdown signal, then exits the process once no request is in flight (or the
/// grace period is over).
pub struct Drain {
    pub grace_period: Duration,
}

#[async_trait]
impl BackgroundService for Drain {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        if shutdown.changed().await.is_err() {
            return;
        }
        let grace_period = self.grace_period;
        // A plain thread: Pingora shuts the async runtimes down while this runs.
        std::thread::spawn(move || {
            let start = Instant::now();
            // Let the listeners close and requests already accepted reach the proxy.
            std::thread::sleep(Duration::from_millis(50));
            while in_flight() > 0 && start.elapsed() < grace_period {
                std::thread::sleep(Duration::from_millis(10));
            }
            tracing::info!(
                waited = ?start.elapsed(),
                left = in_flight(),
                "drained, exiting"
            );
            crate::http::access_log::flush();
            // Give the log writer thread a moment to write the last lines.
            std::thread::sleep(Duration::from_millis(20));
            std::process::exit(0);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_across_threads() {
        let before = in_flight();
        let here = RequestGuard::new();
        let there = std::thread::spawn(RequestGuard::new).join().unwrap();
        assert_eq!(in_flight(), before + 2);
        // Dropped on another thread than the one it counted on.
        std::thread::spawn(move || drop(there)).join().unwrap();
        drop(here);
        assert_eq!(in_flight(), before);
    }
}
