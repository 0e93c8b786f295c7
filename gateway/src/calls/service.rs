//! The background service of async calls: opens the embedded store and queues what a restart
//! left (calls not final, callbacks pending), or connects to NATS, then runs the dispatcher
//! and the cron schedules until shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use super::Calls;
use crate::SharedRoutes;

pub struct CallsService {
    pub calls: Calls,
    pub table: SharedRoutes,
    /// Set once the first Docker sync is in the snapshot: calls wait for it, so that a
    /// restart does not fail them as "no such funko".
    pub ready: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for CallsService {
    async fn start(&self, shutdown: pingora::server::ShutdownWatch) {
        while !self.ready.load(Ordering::Acquire) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let dispatcher = match &self.calls {
            Calls::Embedded(queue) => {
                queue.open().await;
                match queue.recover() {
                    Ok(0) => {}
                    Ok(count) => tracing::info!(count, "async calls taken up after a restart"),
                    Err(err) => {
                        tracing::error!(error = %err, "cannot read the calls left by a restart")
                    }
                }
                tokio::spawn(Arc::clone(queue).dispatch(shutdown.clone()))
            }
            // JetStream keeps what a restart left: its consumers deliver it again.
            Calls::Nats(queue) => {
                queue.connect().await;
                tokio::spawn(Arc::clone(queue).dispatch(shutdown.clone()))
            }
        };
        super::cron::run(Arc::clone(&self.table), self.calls.clone(), shutdown).await;
        let _ = dispatcher.await;
    }
}
