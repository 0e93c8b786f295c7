//! Draining on shutdown. Pingora stops accepting on SIGTERM (and on SIGQUIT, after handing its
//! listeners to a new process with `-u`), then waits its grace period before it drops whatever
//! is still running. The gateway counts requests in flight and exits as soon as the last one is
//! answered, so a stop takes as long as the slowest request, at most `grace_period`, rather
//! than always the whole grace period.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

/// Requests the gateway is answering right now.
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Counts one request until dropped (held in the request context).
#[derive(Debug)]
pub struct RequestGuard(());

impl RequestGuard {
    pub fn new() -> RequestGuard {
        IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
        RequestGuard(())
    }
}

impl Default for RequestGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Requests in flight.
pub fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
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
            // Give the log writer thread a moment to write the last lines.
            std::thread::sleep(Duration::from_millis(20));
            std::process::exit(0);
        });
    }
}
