//! Docker discovery, the gateway's only Docker client: a background service that keeps the
//! routing snapshot in step with Docker.
//!
//! - At start (and after every reconnect) a full sync: list containers and `faaso-*` images,
//!   build a [`RouteTable`](crate::routing::table::RouteTable), swap it in, and mark the gateway ready.
//! - Then Docker's event stream (container start, die, stop, kill, pause, unpause, destroy,
//!   health_status, network connect/disconnect, image tag/untag/delete): each relevant event
//!   triggers a rebuild; events that arrive together share one.
//! - A full resync every `resync_interval`, as a safety net for a missed event.
//! - When the stream ends or fails: reconnect with backoff (100 ms doubling to 5 s; back to
//!   100 ms once a connection has synced), then resync. Meanwhile requests keep being routed
//!   from the last table.
//!
//! A `kill` with SIGTERM/SIGINT/SIGKILL marks the instance as stopping and takes it out of
//! routing at once, before the container has stopped: it finishes what it has while new
//! requests go elsewhere. The mark stays through `die` and `stop` (Docker's list can still show
//! the container running for a moment after them); it goes when a sync sees the container no
//! longer running, when it starts again (a `start` event, or a sync showing it up for less time
//! than the mark is old: a restart while events were missed), when it is destroyed, or after
//! [`STOPPING_AT_MOST`] (a container that treats the signal as something else keeps serving).
//!
//! Requests never wait on any of this: they read the last published snapshot. The web UI reads
//! the last lists and the connection's record from [`DiscoveryView`], without asking Docker.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{
    ContainerSummary, ContainerSummaryStateEnum, EventMessage, EventMessageTypeEnum, ImageSummary,
};
use bollard::query_parameters::{EventsOptions, ListContainersOptions, ListImagesOptions};
use futures_util::{FutureExt, StreamExt};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use crate::SharedRoutes;
use crate::routing::table::{self, BuildInput, PeerTimeouts};
use crate::services::backoff::Backoff;

/// The discovery service.
pub struct Discovery {
    pub docker_host: Option<String>,
    pub network: String,
    pub resync_interval: Duration,
    /// In Swarm mode the funko services' tasks are instances too (see [`faaso::engine::swarm`]).
    pub orchestrator: faaso::engine::Orchestrator,
    /// Connection settings of the instances' peers.
    pub timeouts: PeerTimeouts,
    pub table: SharedRoutes,
    /// Set once the first full sync has been published (`/readyz`).
    pub ready: Arc<AtomicBool>,
    /// Told about every new snapshot (the health checker checks new instances at once).
    pub snapshot_changed: Arc<tokio::sync::Notify>,
    /// Marks a rebuild under way, for requests that wait for it.
    pub rebuild: Arc<crate::routing::rebuild::Rebuild>,
    /// What the last sync listed, and how the connection fares (the web UI).
    pub view: Arc<DiscoveryView>,
    /// Where domain claims are recorded (`state_dir`), for `faaso status` and the next start.
    pub state: faaso::store::state::StateDir,
    /// The domain owners recorded before this start.
    pub held_domains: std::collections::BTreeMap<String, String>,
}

/// Docker's lists as of the last sync.
#[derive(Debug)]
pub struct Listing {
    pub containers: Vec<ContainerSummary>,
    pub images: Vec<ImageSummary>,
    pub at: SystemTime,
}

/// What discovery has seen, for the web UI's overview and system page.
#[derive(Debug, Default)]
pub struct DiscoveryView {
    pub listing: arc_swap::ArcSwapOption<Listing>,
    /// Full syncs done.
    pub syncs: AtomicU64,
    /// Events received from Docker's stream.
    pub events: AtomicU64,
    /// Whether the event stream is connected.
    pub connected: AtomicBool,
    /// Connections lost.
    pub errors: AtomicU64,
    /// The last connection error and when it happened.
    pub last_error: Mutex<Option<(SystemTime, String)>>,
}

impl DiscoveryView {
    fn failed(&self, error: String) {
        self.connected.store(false, Ordering::Relaxed);
        self.errors.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((SystemTime::now(), error));
    }
}

/// The funkos the images name, each with the labels of its `:latest` image.
fn image_funkos(images: &[ImageSummary]) -> Vec<table::ImageFunko> {
    let mut funkos = Vec::new();
    for image in images {
        for tag in &image.repo_tags {
            let Some(name) = faaso::conventions::funko_of_image(tag) else {
                continue;
            };
            let latest = tag.ends_with(":latest");
            funkos.push(table::ImageFunko {
                name: name.to_string(),
                labels: latest.then(|| image.labels.clone()),
            });
        }
    }
    funkos
}

/// Why a connection to Docker ended.
#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Docker(#[from] faaso::engine::docker::DockerError),
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

/// How often Swarm mode lists services and tasks when no event says so.
pub const SWARM_RESYNC: Duration = Duration::from_secs(1);

/// Longest a stopping mark keeps a running container out of routing.
pub const STOPPING_AT_MOST: Duration = Duration::from_secs(120);

/// Containers being stopped (by id, with when the stop began): out of routing.
#[derive(Debug, Default)]
struct Stopping(HashMap<String, Instant>);

#[async_trait]
impl BackgroundService for Discovery {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
        let mut stopping = Stopping::default();
        loop {
            let mut synced = false;
            let err = tokio::select! {
                err = self.run_connected(&mut stopping, &mut synced) => err,
                _ = shutdown.changed() => return,
            };
            // A connection that synced starts the next backoff from the bottom.
            if synced {
                backoff.reset();
            }
            let delay = backoff.next_delay();
            self.view.failed(err.to_string());
            tracing::warn!(error = %err, retry_in = ?delay, "discovery: Docker connection lost; routing from the last table meanwhile");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.changed() => return,
            }
        }
    }
}

impl Discovery {
    /// One connection's life: connect, full sync, then follow events until the stream breaks
    /// (the error says why); `synced` tells whether a sync succeeded meanwhile.
    async fn run_connected(&self, stopping: &mut Stopping, synced: &mut bool) -> SyncError {
        match self.follow(stopping, synced).await {
            Ok(never) => match never {},
            Err(err) => err,
        }
    }

    async fn follow(
        &self,
        stopping: &mut Stopping,
        synced: &mut bool,
    ) -> Result<std::convert::Infallible, SyncError> {
        let docker = faaso::engine::docker::connect_to(self.docker_host.as_deref()).await?;
        let swarm = self.orchestrator == faaso::engine::Orchestrator::Swarm;
        let network = if swarm {
            faaso::engine::swarm::ensure_overlay(&docker, &self.network).await
        } else {
            faaso::engine::docker::ensure_network(&docker, &self.network)
                .await
                .map(drop)
        };
        if let Err(err) = network {
            tracing::warn!(error = %err, "discovery: cannot create network {}", self.network);
        }
        // Subscribe before listing, so nothing that happens in between is missed.
        let options = EventsOptions {
            filters: Some(HashMap::from([(
                "type".to_string(),
                [
                    "container",
                    "network",
                    "image",
                    if swarm { "service" } else { "container" },
                ]
                .map(str::to_string)
                .to_vec(),
            )])),
            ..Default::default()
        };
        let mut events = docker.events(Some(options));
        self.sync(&docker, stopping).await?;
        *synced = true;
        tracing::info!(
            funkos = self.table.load().len(),
            "discovery: synced with Docker"
        );
        // A task on another node changes state without an event here: Swarm mode looks again
        // every second.
        let every = if swarm {
            self.resync_interval.min(SWARM_RESYNC)
        } else {
            self.resync_interval
        };
        let mut resync = tokio::time::interval(every);
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
                // Requests the last table cannot serve wait for this one (see
                // [`crate::routing::rebuild`]), and it ends only when the table has every
                // event received meanwhile too (a `start` that came during the list of a
                // `create`), so that a waiter never looks at a table one event behind.
                self.rebuild.begin();
                let rebuilt = self
                    .rebuild_until_current(&docker, &mut events, stopping)
                    .await;
                self.rebuild.end();
                rebuilt?;
            }
        }
    }

    /// Syncs, and again while relevant events came during the sync.
    async fn rebuild_until_current<S>(
        &self,
        docker: &Docker,
        events: &mut S,
        stopping: &mut Stopping,
    ) -> Result<(), SyncError>
    where
        S: futures_util::Stream<Item = Result<EventMessage, bollard::errors::Error>> + Unpin,
    {
        loop {
            self.sync(docker, stopping).await?;
            let mut more = false;
            while let Some(event) = events.next().now_or_never() {
                more |= self.handle(event, stopping)?;
            }
            if !more {
                return Ok(());
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
                self.view.events.fetch_add(1, Ordering::Relaxed);
                let relevant = stopping.apply(&event, &self.network);
                if relevant && let Some(metrics) = crate::metrics::if_enabled() {
                    let kind = event_kind(event.action.as_deref().unwrap_or(""));
                    metrics.discovery_events.with_label_values(&[kind]).inc();
                }
                Ok(relevant)
            }
            Some(Err(err)) => Err(SyncError::Stream(err)),
            None => Err(SyncError::StreamEnded),
        }
    }

    /// Lists containers and images and publishes a new table.
    async fn sync(&self, docker: &Docker, stopping: &mut Stopping) -> Result<(), SyncError> {
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
        let mut containers = containers;
        if self.orchestrator == faaso::engine::Orchestrator::Swarm {
            containers.extend(faaso::engine::swarm::task_instances(docker, &self.network).await?);
        }
        let image_funkos = image_funkos(&images);
        stopping.prune(&containers, Instant::now());
        let stopping_ids: HashSet<String> = stopping.0.keys().cloned().collect();
        let previous = self.table.load();
        let table = table::build(
            &containers,
            &BuildInput {
                network: &self.network,
                image_funkos: &image_funkos,
                stopping: &stopping_ids,
                previous: &previous,
                new_stats: &crate::metrics::FunkoMetrics::new,
                timeouts: self.timeouts,
                held_domains: &self.held_domains,
            },
        );
        if table.claims != previous.claims {
            self.record_claims(&previous.claims, &table.claims).await;
        }
        for funko in table.funkos() {
            // A canary that ended takes its release-labelled series with it.
            if funko.canary.is_none()
                && previous
                    .get(&funko.name)
                    .is_some_and(|f| f.canary.is_some())
                && crate::metrics::if_enabled().is_some()
            {
                funko.stats.remove_release_series();
            }
            let before = previous.get(&funko.name).map(|f| &f.setting_errors);
            if !funko.setting_errors.is_empty() && before != Some(&funko.setting_errors) {
                let errors = funko.setting_errors.join("; ");
                tracing::warn!(funko = %funko.name, %errors, "discovery: labels that cannot be read are left at their defaults");
            }
        }
        if let Some(metrics) = crate::metrics::if_enabled() {
            metrics.publish_instances(&table);
            metrics.resyncs.inc();
            crate::metrics::forget_gone(&previous, &table);
        }
        let table = Arc::new(table);
        self.table.store(Arc::clone(&table));
        // Requests waiting for a slot look again: an instance may have been added.
        for funko in table.funkos() {
            if let Some(gate) = &funko.gate {
                gate.wake_head();
            }
        }
        self.view.listing.store(Some(Arc::new(Listing {
            containers,
            images,
            at: SystemTime::now(),
        })));
        self.view.syncs.fetch_add(1, Ordering::Relaxed);
        self.view.connected.store(true, Ordering::Relaxed);
        self.snapshot_changed.notify_one();
        self.ready.store(true, Ordering::Release);
        Ok(())
    }
}

impl Discovery {
    /// Logs the domain claims refused since the last snapshot and records the claims.
    async fn record_claims(
        &self,
        before: &faaso::store::state::DomainClaims,
        now: &faaso::store::state::DomainClaims,
    ) {
        for refused in now.refused.iter().filter(|r| !before.refused.contains(r)) {
            tracing::warn!(
                domain = %refused.domain,
                funko = %refused.funko,
                owner = %refused.owner,
                "discovery: domain claim refused: another funko claimed it first"
            );
        }
        let state = self.state.clone();
        let claims = now.clone();
        let saved = tokio::task::spawn_blocking(move || state.save_domains(&claims)).await;
        if let Ok(Err(err)) = saved {
            tracing::warn!(error = %err, "discovery: domain claims not recorded");
        }
    }
}

impl Stopping {
    /// Drops the marks a full list shows are no longer needed: containers gone or not running,
    /// restarted since they were marked, or marked for longer than [`STOPPING_AT_MOST`].
    fn prune(&mut self, containers: &[ContainerSummary], now: Instant) {
        self.0.retain(|id, since| {
            let Some(container) = containers.iter().find(|c| c.id.as_deref() == Some(id)) else {
                return false;
            };
            if container.state != Some(ContainerSummaryStateEnum::RUNNING) {
                return false;
            }
            let marked_for = now.duration_since(*since);
            let restarted = uptime(container.status.as_deref().unwrap_or(""))
                .is_some_and(|up| up + Duration::from_secs(1) < marked_for);
            !restarted && marked_for < STOPPING_AT_MOST
        });
    }

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
                // A funko service's task container on this node: its instance is the task.
                let task = attribute("com.docker.swarm.task.id").filter(|_| {
                    attribute("com.docker.swarm.service.name")
                        .and_then(faaso::engine::swarm::funko_of_service)
                        .is_some()
                });
                let is_instance = is_instance || task.is_some();
                let Some(id) = task.or_else(|| actor.and_then(|a| a.id.as_deref())) else {
                    return false;
                };
                if !is_instance {
                    return false;
                }
                match action {
                    "kill" if matches!(attribute("signal"), Some("15" | "2" | "9")) => {
                        self.0.entry(id.to_string()).or_insert_with(Instant::now);
                        true
                    }
                    "start" | "destroy" => {
                        self.0.remove(id);
                        true
                    }
                    // On its way out: the mark stays until a sync sees it stopped.
                    "die" | "stop" => true,
                    "pause" | "unpause" | "create" | "rename" => true,
                    _ => action.starts_with("health_status"),
                }
            }
            Some(EventMessageTypeEnum::NETWORK) => {
                matches!(action, "connect" | "disconnect") && attribute("name") == Some(network)
            }
            // A funko's image removed (`purge`) or tagged: the table knows funkos by their
            // images too (404 for a funko without one, 503 for one without an instance).
            // Image events name the image by id, not always by its tags: every one counts.
            Some(EventMessageTypeEnum::IMAGE) => matches!(action, "tag" | "untag" | "delete"),
            // A funko service created, scaled, updated or removed (Swarm mode).
            Some(EventMessageTypeEnum::SERVICE) => attribute("name")
                .and_then(faaso::engine::swarm::funko_of_service)
                .is_some(),
            _ => false,
        }
    }
}

/// How long a container has been up, from the status text of a container list (`Up 3
/// seconds`, `Up About a minute (healthy)`, `Up 2 hours`); `None` when it is not up.
fn uptime(status: &str) -> Option<Duration> {
    let rest = status.strip_prefix("Up ")?;
    let rest = rest.split(" (").next().unwrap_or(rest).trim();
    if rest.starts_with("Less than a second") {
        return Some(Duration::ZERO);
    }
    let (amount, unit) = rest.split_once(' ')?;
    let amount: u64 = match amount {
        "About" | "an" | "a" => 1,
        n => n.parse().ok()?,
    };
    let unit = unit.trim_start_matches("an ").trim_start_matches("a ");
    let seconds = match unit.trim_end_matches('s') {
        "second" => 1,
        "minute" => 60,
        "hour" => 3600,
        "day" => 86_400,
        "week" => 604_800,
        "month" => 2_592_000,
        "year" => 31_536_000,
        _ => return None,
    };
    Some(Duration::from_secs(amount * seconds))
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
        "tag",
        "untag",
        "delete",
    ];
    let action = action.split(':').next().unwrap_or("");
    KINDS
        .iter()
        .find(|k| **k == action)
        .copied()
        .unwrap_or("other")
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

    use EventMessageTypeEnum::{CONTAINER, IMAGE, NETWORK};

    #[test]
    fn image_removal_and_tags_rebuild_the_table() {
        let mut stopping = Stopping::default();
        for action in ["tag", "untag", "delete"] {
            let event = event(IMAGE, action, "sha256:1", &[("name", "faaso-x:latest")]);
            assert!(stopping.apply(&event, "faaso-net"), "{action}");
        }
        let pull = event(IMAGE, "pull", "sha256:1", &[("name", "alpine")]);
        assert!(!stopping.apply(&pull, "faaso-net"));
    }

    #[test]
    fn sigterm_takes_an_instance_out_until_it_stopped() {
        let mut stopping = Stopping::default();
        let name = [("name", "faaso-hello-abc123"), ("signal", "15")];
        assert!(stopping.apply(&event(CONTAINER, "kill", "c1", &name), "faaso-net"));
        assert!(stopping.0.contains_key("c1"));
        // `die` is not the end: Docker may still list it as running for a moment.
        assert!(stopping.apply(&event(CONTAINER, "die", "c1", &name), "faaso-net"));
        assert!(stopping.0.contains_key("c1"));
        let now = Instant::now();
        let running = crate::routing::table::tests::container(
            "c1",
            "faaso-hello-abc123",
            ContainerSummaryStateEnum::RUNNING,
            &[],
            "Up 5 minutes",
        );
        stopping.prune(std::slice::from_ref(&running), now);
        assert!(stopping.0.contains_key("c1"), "still listed as running");
        let exited = crate::routing::table::tests::container(
            "c1",
            "faaso-hello-abc123",
            ContainerSummaryStateEnum::EXITED,
            &[],
            "Exited (0)",
        );
        stopping.prune(&[exited], now);
        assert!(stopping.0.is_empty(), "a sync saw it stopped");
        // SIGHUP is a reload, not a stop.
        let hup = [("name", "faaso-hello-abc123"), ("signal", "1")];
        assert!(!stopping.apply(&event(CONTAINER, "kill", "c1", &hup), "faaso-net"));
        assert!(stopping.0.is_empty());
    }

    #[test]
    fn stale_marks_go_on_a_full_sync() {
        let now = Instant::now();
        let running = |status: &str| {
            crate::routing::table::tests::container(
                "c1",
                "faaso-hello-abc123",
                ContainerSummaryStateEnum::RUNNING,
                &[],
                status,
            )
        };
        // Restarted while its events were missed: up for less time than it has been marked.
        let mut stopping = Stopping(HashMap::from([(
            "c1".to_string(),
            now - Duration::from_secs(30),
        )]));
        stopping.prune(&[running("Up 5 seconds")], now);
        assert!(stopping.0.is_empty());
        // Marked too long ago: it did not stop, it serves again.
        let mut stopping = Stopping(HashMap::from([("c1".to_string(), now - STOPPING_AT_MOST)]));
        stopping.prune(&[running("Up 3 hours")], now);
        assert!(stopping.0.is_empty());
        // Gone from the list.
        let mut stopping = Stopping(HashMap::from([("c1".to_string(), now)]));
        stopping.prune(&[], now);
        assert!(stopping.0.is_empty());
    }

    #[test]
    fn uptimes_from_status_texts() {
        assert_eq!(uptime("Up Less than a second"), Some(Duration::ZERO));
        assert_eq!(uptime("Up 3 seconds"), Some(Duration::from_secs(3)));
        assert_eq!(uptime("Up About a minute"), Some(Duration::from_secs(60)));
        assert_eq!(
            uptime("Up 2 hours (healthy)"),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(uptime("Up About an hour"), Some(Duration::from_secs(3600)));
        assert_eq!(uptime("Exited (0) 3 seconds ago"), None);
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
        use faaso::conventions::funko_of_image;
        assert_eq!(funko_of_image("faaso-hello:latest"), Some("hello"));
        assert_eq!(funko_of_image("faaso-hello:1700000000"), Some("hello"));
        assert_eq!(funko_of_image("faaso-Bad:latest"), None);
        assert_eq!(funko_of_image("nginx:latest"), None);
        assert_eq!(funko_of_image("localhost:5000/faaso-x:latest"), None);
    }
}
