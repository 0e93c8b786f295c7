//! Docker discovery, the gateway's only Docker client: a background service that keeps the
//! routing snapshot in step with Docker.
//!
//! - At start (and after every reconnect) a full sync: list containers and `faaso-*` images,
//!   build a [`RouteTable`](crate::table::RouteTable), swap it in, and mark the gateway ready.
//! - Then Docker's event stream (container start, die, stop, kill, pause, unpause, destroy,
//!   health_status, network connect/disconnect): each relevant event triggers a rebuild; events
//!   that arrive together share one.
//! - A full resync every `resync_interval`, as a safety net for a missed event.
//! - When the stream ends or fails: reconnect with backoff (100 ms doubling to 5 s), then resync.
//!
//! A `kill` with SIGTERM/SIGINT/SIGKILL takes the instance out of routing at once, before the
//! container has stopped: the instance finishes what it has while new requests go elsewhere.
//!
//! Requests never wait on any of this: they read the last published snapshot.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{EventMessage, EventMessageTypeEnum};
use bollard::query_parameters::{EventsOptions, ListContainersOptions, ListImagesOptions};
use futures_util::{FutureExt, StreamExt};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::table::{self, BuildInput, PeerTimeouts, SharedTable};

/// The discovery service.
pub struct Discovery {
    pub docker_host: Option<String>,
    pub network: String,
    pub resync_interval: Duration,
    /// Connection settings of the instances' peers.
    pub timeouts: PeerTimeouts,
    pub table: SharedTable,
    /// Set once the first full sync has been published (`/readyz`).
    pub ready: Arc<AtomicBool>,
    /// Told about every new snapshot (the health checker checks new instances at once).
    pub snapshot_changed: Arc<tokio::sync::Notify>,
}

/// Why a connection to Docker ended.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Docker(#[from] faaso::docker::DockerError),
    #[error("Docker event stream ended")]
    StreamEnded,
    #[error("Docker event stream failed: {0}")]
    Stream(bollard::errors::Error),
    #[error("listing {what} failed: {source}")]
    List {
        what: &'static str,
        source: bollard::errors::Error,
    },
}

/// Containers being stopped (by id): out of routing until Docker says they stopped or started.
#[derive(Debug, Default)]
struct Stopping(HashSet<String>);

#[async_trait]
impl BackgroundService for Discovery {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut backoff = Duration::from_millis(100);
        let mut stopping = Stopping::default();
        loop {
            let result = tokio::select! {
                result = self.run_connected(&mut stopping) => result,
                _ = shutdown.changed() => return,
            };
            match result {
                // A connection that worked for a while starts the next backoff from the bottom.
                Ok(()) => backoff = Duration::from_millis(100),
                Err(err) => {
                    tracing::warn!(error = %err, retry_in = ?backoff, "discovery: Docker connection lost")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = shutdown.changed() => return,
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }
}

impl Discovery {
    /// One connection's life: connect, full sync, then follow events until the stream breaks.
    /// Returns `Ok` only when the stream broke after a sync succeeded.
    async fn run_connected(&self, stopping: &mut Stopping) -> Result<(), SyncError> {
        let docker = faaso::docker::connect_to(self.docker_host.as_deref()).await?;
        if let Err(err) = faaso::docker::ensure_network(&docker, &self.network).await {
            tracing::warn!(error = %err, "discovery: cannot create network {}", self.network);
        }
        // Subscribe before listing, so nothing that happens in between is missed.
        let options = EventsOptions {
            filters: Some(HashMap::from([(
                "type".to_string(),
                vec!["container".to_string(), "network".to_string()],
            )])),
            ..Default::default()
        };
        let mut events = docker.events(Some(options));
        self.sync(&docker, stopping).await?;
        tracing::info!(
            funkos = self.table.load().len(),
            "discovery: synced with Docker"
        );
        let mut resync = tokio::time::interval(self.resync_interval);
        resync.tick().await;
        loop {
            let mut dirty = tokio::select! {
                event = events.next() => self.handle(event, stopping)?,
                _ = resync.tick() => true,
            };
            // Events that are already here join this rebuild.
            while let Some(event) = events.next().now_or_never() {
                dirty |= self.handle(event, stopping)?;
            }
            if dirty {
                self.sync(&docker, stopping).await?;
            }
        }
    }

    /// Applies one item of the event stream; `Ok(true)` when the table must be rebuilt.
    fn handle(
        &self,
        event: Option<Result<EventMessage, bollard::errors::Error>>,
        stopping: &mut Stopping,
    ) -> Result<bool, SyncError> {
        match event {
            Some(Ok(event)) => {
                let relevant = stopping.apply(&event, &self.network);
                if relevant {
                    let kind = event_kind(event.action.as_deref().unwrap_or(""));
                    crate::metrics::metrics()
                        .discovery_events
                        .with_label_values(&[kind])
                        .inc();
                }
                Ok(relevant)
            }
            Some(Err(err)) => Err(SyncError::Stream(err)),
            None => Err(SyncError::StreamEnded),
        }
    }

    /// Lists containers and images and publishes a new table.
    async fn sync(&self, docker: &Docker, stopping: &Stopping) -> Result<(), SyncError> {
        let containers = docker
            .list_containers(Some(ListContainersOptions {
                all: true,
                filters: Some(HashMap::from([(
                    "name".to_string(),
                    vec![faaso::conventions::PREFIX.to_string()],
                )])),
                ..Default::default()
            }))
            .await
            .map_err(|source| SyncError::List {
                what: "containers",
                source,
            })?;
        let images = docker
            .list_images(Some(ListImagesOptions {
                filters: Some(HashMap::from([(
                    "reference".to_string(),
                    vec![format!("{}*", faaso::conventions::PREFIX)],
                )])),
                ..Default::default()
            }))
            .await
            .map_err(|source| SyncError::List {
                what: "images",
                source,
            })?;
        let image_funkos: Vec<String> = images
            .iter()
            .flat_map(|image| image.repo_tags.iter())
            .filter_map(|tag| funko_of_image(tag))
            .map(str::to_string)
            .collect();
        let previous = self.table.load();
        let table = table::build(
            &containers,
            &BuildInput {
                network: &self.network,
                image_funkos: &image_funkos,
                stopping: &stopping.0,
                previous: &previous,
                timeouts: self.timeouts,
            },
        );
        let metrics = crate::metrics::metrics();
        metrics.publish_instances(&table);
        metrics.resyncs.inc();
        self.table.store(Arc::new(table));
        self.snapshot_changed.notify_one();
        self.ready.store(true, Ordering::Release);
        Ok(())
    }
}

impl Stopping {
    /// Records what an event says about stopping containers; `true` when it may change routing.
    fn apply(&mut self, event: &EventMessage, network: &str) -> bool {
        let action = event.action.as_deref().unwrap_or("");
        let actor = event.actor.as_ref();
        let attribute = |key: &str| {
            actor
                .and_then(|a| a.attributes.as_ref())
                .and_then(|attrs| attrs.get(key))
                .map(String::as_str)
        };
        match event.typ {
            Some(EventMessageTypeEnum::CONTAINER) => {
                let is_instance = attribute("name")
                    .and_then(faaso::conventions::parse_instance_name)
                    .is_some();
                let Some(id) = actor.and_then(|a| a.id.as_deref()) else {
                    return false;
                };
                if !is_instance {
                    return false;
                }
                match action {
                    "kill" if matches!(attribute("signal"), Some("15" | "2" | "9")) => {
                        self.0.insert(id.to_string());
                        true
                    }
                    "start" | "die" | "destroy" | "stop" => {
                        self.0.remove(id);
                        true
                    }
                    "pause" | "unpause" | "create" | "rename" => true,
                    _ => action.starts_with("health_status"),
                }
            }
            Some(EventMessageTypeEnum::NETWORK) => {
                matches!(action, "connect" | "disconnect") && attribute("name") == Some(network)
            }
            _ => false,
        }
    }
}

/// The metric label for an event: its action without details (`health_status: healthy` →
/// `health_status`), from a fixed set so the label cannot grow without bound.
fn event_kind(action: &str) -> &'static str {
    const KINDS: &[&str] = &[
        "start",
        "die",
        "stop",
        "kill",
        "pause",
        "unpause",
        "destroy",
        "create",
        "rename",
        "health_status",
        "connect",
        "disconnect",
    ];
    let action = action.split(':').next().unwrap_or("");
    KINDS
        .iter()
        .find(|k| **k == action)
        .copied()
        .unwrap_or("other")
}

/// The funko of an image tag `faaso-<name>:<tag>`.
fn funko_of_image(tag: &str) -> Option<&str> {
    let repo = tag.rsplit_once(':').map_or(tag, |(repo, _)| repo);
    let name = repo.strip_prefix(faaso::conventions::PREFIX)?;
    faaso::conventions::is_valid_name(name).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard::models::EventActor;

    fn event(
        typ: EventMessageTypeEnum,
        action: &str,
        id: &str,
        attrs: &[(&str, &str)],
    ) -> EventMessage {
        EventMessage {
            typ: Some(typ),
            action: Some(action.to_string()),
            actor: Some(EventActor {
                id: Some(id.to_string()),
                attributes: Some(
                    attrs
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            ..Default::default()
        }
    }

    use EventMessageTypeEnum::{CONTAINER, NETWORK};

    #[test]
    fn sigterm_takes_an_instance_out_until_it_stops() {
        let mut stopping = Stopping::default();
        let name = [("name", "faaso-hello-abc123"), ("signal", "15")];
        assert!(stopping.apply(&event(CONTAINER, "kill", "c1", &name), "faaso-net"));
        assert!(stopping.0.contains("c1"));
        assert!(stopping.apply(&event(CONTAINER, "die", "c1", &name), "faaso-net"));
        assert!(stopping.0.is_empty());
        // SIGHUP is a reload, not a stop.
        let hup = [("name", "faaso-hello-abc123"), ("signal", "1")];
        assert!(!stopping.apply(&event(CONTAINER, "kill", "c1", &hup), "faaso-net"));
        assert!(stopping.0.is_empty());
    }

    #[test]
    fn only_relevant_events_rebuild() {
        let mut s = Stopping::default();
        let inst = [("name", "faaso-hello-abc123")];
        assert!(s.apply(&event(CONTAINER, "start", "c1", &inst), "faaso-net"));
        assert!(s.apply(
            &event(CONTAINER, "health_status: healthy", "c1", &inst),
            "faaso-net"
        ));
        assert!(!s.apply(
            &event(CONTAINER, "exec_start: sh", "c1", &inst),
            "faaso-net"
        ));
        assert!(!s.apply(
            &event(CONTAINER, "start", "c2", &[("name", "nginx")]),
            "faaso-net"
        ));
        assert!(!s.apply(
            &event(CONTAINER, "start", "c3", &[("name", "faaso-proxy")]),
            "faaso-net"
        ));
        let net = [("name", "faaso-net"), ("container", "c1")];
        assert!(s.apply(&event(NETWORK, "connect", "n1", &net), "faaso-net"));
        let other = [("name", "bridge"), ("container", "c1")];
        assert!(!s.apply(&event(NETWORK, "connect", "n2", &other), "faaso-net"));
    }

    #[test]
    fn event_kinds_are_bounded() {
        assert_eq!(event_kind("health_status: healthy"), "health_status");
        assert_eq!(event_kind("start"), "start");
        assert_eq!(event_kind("exec_create: sh -c x"), "other");
    }

    #[test]
    fn image_tags_name_funkos() {
        assert_eq!(funko_of_image("faaso-hello:latest"), Some("hello"));
        assert_eq!(funko_of_image("faaso-hello:1700000000"), Some("hello"));
        assert_eq!(funko_of_image("faaso-Bad:latest"), None);
        assert_eq!(funko_of_image("nginx:latest"), None);
        assert_eq!(funko_of_image("localhost:5000/faaso-x:latest"), None);
    }
}
