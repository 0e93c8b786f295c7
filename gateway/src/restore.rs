//! At start, funkos come back at their saved scale (`state_dir`), when their image exists: a
//! background service that runs once, through the same library code as `faaso scale`.
//! Docker being unreachable is retried (the engine may start after the gateway).

use std::path::PathBuf;
use std::time::Duration;

use async_trait::async_trait;
use faaso::lifecycle::Lifecycle;
use faaso::secrets::SecretsDir;
use faaso::state::StateDir;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::backoff::Backoff;

/// The restore service.
pub struct Restore {
    pub docker_host: Option<String>,
    pub network: String,
    pub state_dir: PathBuf,
    pub secrets_dir: PathBuf,
}

#[async_trait]
impl BackgroundService for Restore {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        tokio::select! {
            _ = self.run() => {}
            _ = shutdown.changed() => {}
        }
    }
}

impl Restore {
    async fn run(&self) {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let docker = loop {
            match faaso::docker::connect_to(self.docker_host.as_deref()).await {
                Ok(docker) => break docker,
                Err(err) => {
                    tracing::debug!(error = %err, "restore: waiting for Docker");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            }
        };
        let mut lifecycle = Lifecycle::new(
            docker,
            StateDir::new(&self.state_dir),
            SecretsDir::new(&self.secrets_dir),
        );
        lifecycle.network = self.network.clone();
        let mut report = |line: String| tracing::info!("restore: {line}");
        if let Err(err) = lifecycle.restore(&mut report).await {
            tracing::warn!(error = %err, "restore: cannot read saved scales");
        }
    }
}
