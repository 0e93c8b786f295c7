//! Funkos are kept at their saved scale (`state_dir`): a background service that uses the same
//! library code as `faaso scale`.
//!
//! - At start, every funko with a saved scale and an image is brought back to it. Docker being
//!   unreachable is retried (the engine may start after the gateway).
//! - Then, every [`RECONCILE_EVERY`], a funko with fewer running instances than its saved scale
//!   (one removed by hand, one that crashed for good) gets new ones; the saved scale is read
//!   again under the funko's lock ([`Lifecycle::top_up`]), so a `scale 0` that was running
//!   when the instances were counted is never undone. A funko busy with another
//!   operation (its lock is held) is left for the next round. One that cannot be brought up (a
//!   release that crashes at start) is retried with a backoff from 10 s doubling to 5 min, and
//!   the reason is saved where `faaso status` shows it; a successful `scale` clears it.
//! - More instances than the saved scale are left alone (a `docker run` of your own).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use faaso::engine::Lifecycle;
use faaso::store::secrets::SecretsDir;
use faaso::store::state::StateDir;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::services::backoff::Backoff;

/// How often running instances are compared with the saved scales.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(5);

/// First and longest wait before a funko that failed to come up is tried again.
const RETRY_FIRST: Duration = Duration::from_secs(10);
const RETRY_MOST: Duration = Duration::from_secs(300);

/// Where funkos run: what a background service needs for its own [`Lifecycle`].
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    pub docker_host: Option<String>,
    pub network: String,
    pub state_dir: PathBuf,
    pub secrets_dir: PathBuf,
    pub orchestrator: faaso::engine::Orchestrator,
    pub registry: Option<String>,
}

impl LifecycleConfig {
    /// A lifecycle on a Docker client, once the engine answers (it may start after the
    /// gateway); `service` names the waiting service in the debug log.
    pub async fn connect(&self, service: &str) -> Lifecycle {
        let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(10));
        let docker = loop {
            match faaso::engine::docker::connect_to(self.docker_host.as_deref()).await {
                Ok(docker) => break docker,
                Err(err) => {
                    tracing::debug!(error = %err, "{service}: waiting for Docker");
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
        lifecycle.orchestrator = self.orchestrator;
        lifecycle.registry = self.registry.clone();
        lifecycle
    }
}

/// The restore service.
pub struct Restore {
    pub lifecycle: LifecycleConfig,
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
        let mut lifecycle = self.lifecycle.connect("restore").await;
        let mut report = |line: String| tracing::info!("restore: {line}");
        if let Err(err) = lifecycle.restore(&mut report).await {
            tracing::warn!(error = %err, "restore: cannot read saved scales");
        }
        // Waiting for another operation is for people; the loop comes back later.
        lifecycle.lock_timeout = Duration::from_millis(200);
        let mut retries: HashMap<String, (Instant, Duration)> = HashMap::new();
        let mut every = tokio::time::interval(RECONCILE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            reconcile(&lifecycle, &mut retries).await;
        }
    }
}

/// One round: each funko below its saved scale that is not waiting out a backoff is scaled.
async fn reconcile(lifecycle: &Lifecycle, retries: &mut HashMap<String, (Instant, Duration)>) {
    let Ok(listing) = lifecycle.state.all() else {
        return;
    };
    let now = Instant::now();
    // One list for all funkos; Docker unreachable: discovery says so, try again next round.
    let Ok(containers) = faaso::engine::docker::list_all_instances(&lifecycle.docker).await else {
        return;
    };
    let mut running_of: HashMap<&str, usize> = HashMap::new();
    for container in &containers {
        let funko = container
            .names
            .as_ref()
            .and_then(|names| names.first())
            .and_then(|name| faaso::conventions::parse_instance_name(name));
        if let Some(parsed) = funko
            && container.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
        {
            *running_of.entry(parsed.funko).or_default() += 1;
        }
    }
    for (funko, state) in listing.funkos {
        if state.scale == 0 || retries.get(&funko).is_some_and(|(at, _)| *at > now) {
            continue;
        }
        let running = running_of.get(funko.as_str()).copied().unwrap_or(0);
        if running >= state.scale as usize {
            retries.remove(&funko);
            continue;
        }
        // A funko whose image is gone (purged) has nothing to start.
        let image = faaso::conventions::image_latest(&funko);
        if !matches!(
            faaso::engine::docker::image_inspect(&lifecycle.docker, &image).await,
            Ok(Some(_))
        ) {
            continue;
        }
        let mut report = |line: String| tracing::info!(funko = %funko, "reconcile: {line}");
        // Decided again under the funko's lock: a `scale` running now may be lowering it.
        match lifecycle.top_up(&funko, &mut report).await {
            Ok(Some(was)) => {
                tracing::info!(funko = %funko, was, "reconcile: back at its scale");
                retries.remove(&funko);
            }
            Ok(None) => {
                retries.remove(&funko);
            }
            Err(faaso::engine::LifecycleError::State(err)) if err.is_busy() => {}
            Err(err) => {
                let delay = retries
                    .get(&funko)
                    .map_or(RETRY_FIRST, |(_, last)| (*last * 2).min(RETRY_MOST));
                retries.insert(funko.clone(), (now + delay, delay));
                let problem = format!(
                    "{running} of {} running; starting more failed: {err} (next try in {}s)",
                    state.scale,
                    delay.as_secs()
                );
                tracing::warn!(funko = %funko, "reconcile: {problem}");
                if let Err(err) = lifecycle.state.set_problem(&funko, Some(&problem)) {
                    tracing::warn!(error = %err, "reconcile: cannot save the problem");
                }
            }
        }
    }
}
