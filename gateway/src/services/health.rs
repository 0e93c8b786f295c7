//! Active health checks: a background service that sends `GET /ping` to every instance of the
//! current snapshot every `health_interval`. Two failures in a row take an instance out, one
//! success brings it back. Instances that are out (also those a failed connect took out) and
//! those that have not passed a check yet are checked every 250 ms, and a new snapshot from
//! discovery wakes the checker at once: a new instance is checked as soon as it is seen, and
//! proven (routable next to proven instances) as soon as it answers.
//!
//! The check is [`faaso::engine::probe::ping`]: minimal HTTP/1.1 over a fresh TCP connection
//! (`Connection: close`), so it never disturbs the proxy's connection pool.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::time::Instant;

use crate::SharedRoutes;
use crate::routing::table::Instance;

/// Checks run at once at most.
const CONCURRENCY: usize = 64;
/// How often instances that are out are checked again: often, because a new instance that
/// was tried before it listened is out until it passes a check.
const DOWN_INTERVAL: Duration = Duration::from_millis(250);

/// The health checker.
pub struct HealthChecker {
    pub table: SharedRoutes,
    /// Notified by discovery when it publishes a new snapshot.
    pub snapshot_changed: Arc<tokio::sync::Notify>,
    pub interval: Duration,
    /// Limit for one check (connect, send, first line).
    pub timeout: Duration,
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let tick = self.interval.min(DOWN_INTERVAL);
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_checked: HashMap<String, Instant> = HashMap::new();
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = self.snapshot_changed.notified() => {}
                _ = shutdown.changed() => return,
            }
            let now = Instant::now();
            let table = self.table.load_full();
            let due: Vec<Arc<Instance>> = table
                .instances()
                // A paused instance cannot answer; it keeps the health it had.
                .filter(|i| i.active_checks && !i.state.is_paused())
                .filter(|i| {
                    let interval = if i.state.is_up() && i.state.is_proven() {
                        self.interval
                    } else {
                        DOWN_INTERVAL
                    };
                    last_checked
                        .get(&i.id)
                        .is_none_or(|last| now.duration_since(*last) >= interval)
                })
                .cloned()
                .collect();
            // Forget instances that are gone.
            last_checked.retain(|id, _| table.instances().any(|i| &i.id == id));
            for instance in &due {
                last_checked.insert(instance.id.clone(), now);
            }
            let timeout = self.timeout;
            futures_util::stream::iter(due)
                .map(|instance| async move {
                    let passed = check(instance.addr, timeout).await;
                    record(&instance, passed);
                })
                .buffer_unordered(CONCURRENCY)
                .collect::<()>()
                .await;
            if let Some(metrics) = crate::metrics::if_enabled() {
                metrics.publish_instances(&table);
            }
        }
    }
}

fn record(instance: &Instance, passed: Result<(), String>) {
    if instance.state.is_paused() {
        // Paused while the check ran: no answer was to be had.
        return;
    }
    match passed {
        Ok(()) => {
            if !instance.state.is_up() {
                tracing::info!(instance = %instance.name, "health: instance is back");
            }
            instance.state.check_passed();
        }
        Err(reason) => {
            if instance.state.check_failed() {
                tracing::warn!(instance = %instance.name, %reason, "health: instance is out");
            }
        }
    }
}

/// One check: `GET /ping` must answer 2xx within `timeout` (shared with `faaso deploy`).
pub async fn check(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    faaso::engine::probe::ping(addr, timeout).await
}
