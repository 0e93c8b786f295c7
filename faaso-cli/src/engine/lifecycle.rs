//! Running funkos on Docker: scale (and `up`/`down` on top of it), purge, and restoring saved
//! scales. The same code serves the CLI's local mode and the gateway's admin API.
//!
//! Every operation that changes a funko's containers holds the funko's lock (see
//! [`crate::store::state`]), so two concurrent runs cannot overshoot, and saves the desired scale. Each
//! reports what it does through a `report` callback, one line at a time.

use std::net::SocketAddr;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};

use crate::conventions::{self, NETWORK, validate_name};
use crate::engine::docker::{self, DockerError, InstanceSpec};
use crate::store::secrets::{SecretError, SecretsDir, numeric_user};
use crate::store::state::{FunkoState, StateDir, StateError};

/// What an operation failed on.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Name(#[from] conventions::InvalidName),
    #[error("funko {funko} has no image {image}; build it first with `faaso build`")]
    NoImage { funko: String, image: String },
    #[error("funko {funko} does not exist (no image, no containers)")]
    Unknown { funko: String },
    #[error("funko {funko} has no release older than the one that serves")]
    NoEarlierRelease { funko: String },
    #[error("funko {funko} has no running instance; start it with `faaso up {funko}`")]
    NotRunning { funko: String },
    #[error(transparent)]
    Docker(#[from] DockerError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error("new instance {instance} did not become ready: {reason}{logs}")]
    NotReady {
        instance: String,
        reason: String,
        logs: String,
    },
}

/// Where and how funkos run.
#[derive(Debug, Clone)]
pub struct Lifecycle {
    pub docker: Docker,
    pub network: String,
    pub state: StateDir,
    pub secrets: SecretsDir,
    /// SIGTERM grace before SIGKILL when an instance is stopped.
    pub stop_grace: Duration,
    /// How long a new instance may take to run (and be healthy, or answer `/ping`).
    pub ready_timeout: Duration,
    /// How long to wait for another operation on the same funko.
    pub lock_timeout: Duration,
    /// How often a starting instance is looked at while waiting for it to be ready.
    pub ready_poll: Duration,
    /// When the wait for a ready instance ends at the latest, whatever `ready_timeout` says:
    /// the gateway's cold start gives up in time to answer its waiting requests with the reason.
    pub ready_by: Option<std::time::Instant>,
    /// Containers on this engine, or services on its Swarm.
    pub orchestrator: crate::engine::swarm::Orchestrator,
    /// Swarm mode: the registry services pull funko images from (`host:port`), or none (the
    /// images are on this node only).
    pub registry: Option<String>,
}

/// A running instance, as the lifecycle sees it.
#[derive(Debug, Clone)]
pub struct RunningInstance {
    pub id: String,
    pub name: String,
    pub image_id: String,
    pub created: i64,
}

impl Lifecycle {
    /// A lifecycle on `docker` with the default network and the given folders.
    pub fn new(docker: Docker, state: StateDir, secrets: SecretsDir) -> Lifecycle {
        Lifecycle {
            docker,
            network: NETWORK.to_string(),
            state,
            secrets,
            stop_grace: Duration::from_secs(10),
            ready_timeout: Duration::from_secs(60),
            lock_timeout: Duration::from_secs(300),
            ready_poll: Duration::from_millis(200),
            ready_by: None,
            orchestrator: crate::engine::swarm::Orchestrator::Docker,
            registry: None,
        }
    }

    /// The id of `faaso-<funko>:latest` and the image's `USER`.
    pub(crate) async fn latest_image(
        &self,
        funko: &str,
    ) -> Result<(String, String), LifecycleError> {
        let image = conventions::image_latest(funko);
        let info = docker::image_inspect(&self.docker, &image)
            .await?
            .ok_or_else(|| LifecycleError::NoImage {
                funko: funko.to_string(),
                image: image.clone(),
            })?;
        let user = info.config.and_then(|c| c.user).unwrap_or_default();
        Ok((info.id.unwrap_or(image), user))
    }

    /// The funko's containers: running ones (oldest first) and the rest.
    async fn containers(
        &self,
        funko: &str,
    ) -> Result<(Vec<RunningInstance>, Vec<ContainerSummary>), LifecycleError> {
        let mut running = Vec::new();
        let mut other = Vec::new();
        for container in docker::list_instances(&self.docker, funko).await? {
            if container.state == Some(ContainerSummaryStateEnum::RUNNING) {
                running.push(RunningInstance {
                    id: container.id.clone().unwrap_or_default(),
                    name: container
                        .names
                        .as_ref()
                        .and_then(|n| n.first())
                        .map(|n| n.trim_start_matches('/').to_string())
                        .unwrap_or_default(),
                    image_id: container.image_id.clone().unwrap_or_default(),
                    created: container.created.unwrap_or_default(),
                });
            } else {
                other.push(container);
            }
        }
        running.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
        Ok((running, other))
    }

    /// The running instances of a funko, oldest first.
    pub async fn running(&self, funko: &str) -> Result<Vec<RunningInstance>, LifecycleError> {
        if self.orchestrator == crate::engine::swarm::Orchestrator::Swarm {
            return self.swarm_running(funko).await;
        }
        Ok(self.containers(funko).await?.0)
    }

    /// Sets the number of running instances to `scale`: prunes exited leftovers, starts new
    /// instances (waiting until each is ready, see [`Lifecycle::wait_ready`]; one that is not is
    /// removed and the scale is not saved) or stops the oldest, and saves the scale.
    pub async fn scale(
        &self,
        funko: &str,
        scale: u32,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        validate_name(funko)?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        self.scale_locked(funko, scale, report).await
    }

    async fn scale_locked(
        &self,
        funko: &str,
        scale: u32,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        if self.orchestrator == crate::engine::swarm::Orchestrator::Swarm {
            return self.swarm_scale(funko, scale, report).await;
        }
        let (running, leftovers) = self.containers(funko).await?;
        for container in leftovers {
            if let Some(id) = &container.id {
                docker::remove_container(&self.docker, id).await?;
                report(format!(
                    "removed exited container {}",
                    display_name(&container)
                ));
            }
        }
        let target = scale as usize;
        if running.len() < target {
            let (image, user) = self.latest_image(funko).await?;
            for _ in running.len()..target {
                let name = self.start_instance(funko, &image, &user).await?;
                if let Err(err) = self.wait_ready(&name).await {
                    let _ = docker::remove_container(&self.docker, &name).await;
                    return Err(err);
                }
                report(format!("started {name}"));
            }
        } else {
            for instance in running.iter().take(running.len() - target) {
                docker::stop_and_remove(&self.docker, &instance.id, self.stop_seconds()).await?;
                report(format!("stopped {}", instance.name));
            }
        }
        self.state.save(funko, FunkoState { scale })?;
        self.state.set_problem(funko, None)?;
        report(format!(
            "{funko}: {scale} instance{}",
            if scale == 1 { "" } else { "s" }
        ));
        Ok(())
    }

    /// Stops and removes the named instances of a funko (those still running) and saves the
    /// number left running as its scale. The gateway's scaler calls it for instances it has
    /// taken out of routing and drained, so no request in flight is cut.
    pub async fn retire(
        &self,
        funko: &str,
        names: &[String],
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<u32, LifecycleError> {
        validate_name(funko)?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        let running = self.running(funko).await?;
        let mut left = running.len() as u32;
        for instance in running.iter().filter(|i| names.contains(&i.name)) {
            docker::stop_and_remove(&self.docker, &instance.id, self.stop_seconds()).await?;
            report(format!("stopped {}", instance.name));
            left -= 1;
        }
        self.state.save(funko, FunkoState { scale: left })?;
        Ok(left)
    }

    /// Makes sure at least `scale` instances run (default: the saved scale, else 1).
    /// Returns the scale now in effect.
    pub async fn up(
        &self,
        funko: &str,
        scale: Option<u32>,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<u32, LifecycleError> {
        validate_name(funko)?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        let wanted = match scale {
            Some(n) => n,
            None => self.state.load(funko)?.map_or(1, |s| s.scale.max(1)),
        };
        let running = self.running(funko).await?.len() as u32;
        let target = wanted.max(running);
        self.scale_locked(funko, target, report).await?;
        Ok(target)
    }

    /// The saved scale (if any) and the number of running instances.
    pub async fn current_scale(&self, funko: &str) -> Result<(Option<u32>, usize), LifecycleError> {
        validate_name(funko)?;
        let saved = self.state.load(funko)?.map(|s| s.scale);
        let running = self.running(funko).await?.len();
        if saved.is_none() && running == 0 && !self.funko_exists(funko).await? {
            return Err(LifecycleError::Unknown {
                funko: funko.to_string(),
            });
        }
        Ok((saved, running))
    }

    /// Whether the funko has an image or any container.
    pub async fn funko_exists(&self, funko: &str) -> Result<bool, LifecycleError> {
        Ok(!docker::list_images(&self.docker, funko).await?.is_empty()
            || !docker::list_instances(&self.docker, funko)
                .await?
                .is_empty())
    }

    /// Stops and removes all containers and images of a funko and forgets its scale. Its
    /// secrets are kept.
    pub async fn purge(
        &self,
        funko: &str,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        validate_name(funko)?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        if !self.funko_exists(funko).await? && self.state.load(funko)?.is_none() {
            return Err(LifecycleError::Unknown {
                funko: funko.to_string(),
            });
        }
        if self.orchestrator == crate::engine::swarm::Orchestrator::Swarm {
            self.swarm_purge(funko, report).await?;
        }
        for container in docker::list_instances(&self.docker, funko).await? {
            if let Some(id) = &container.id {
                docker::stop_and_remove(&self.docker, id, self.stop_seconds()).await?;
                report(format!("removed container {}", display_name(&container)));
            }
        }
        for image in docker::list_images(&self.docker, funko).await? {
            for tag in &image.repo_tags {
                docker::remove_image(&self.docker, tag).await?;
                report(format!("removed image {tag}"));
            }
        }
        self.state.remove(funko)?;
        report(format!("purged {funko} (its secrets are kept)"));
        Ok(())
    }

    /// Brings every funko with a saved scale back to it, when its image exists (the gateway
    /// does this at start). Failures are reported and do not stop the others.
    pub async fn restore(
        &self,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        let listing = self.state.all()?;
        for (funko, err) in &listing.unreadable {
            report(format!(
                "{funko}: not restored, its saved state is unreadable: {err}"
            ));
        }
        for (funko, state) in listing.funkos {
            if state.scale == 0 {
                continue;
            }
            let image = conventions::image_latest(&funko);
            if docker::image_inspect(&self.docker, &image).await?.is_none() {
                report(format!("{funko}: not restored, no image {image}"));
                continue;
            }
            if let Err(err) = self.scale(&funko, state.scale, report).await {
                report(format!(
                    "{funko}: restoring scale {} failed: {err}",
                    state.scale
                ));
            }
        }
        Ok(())
    }

    /// Adds or replaces a secret so that the funko's user can read it, whoever runs FaaSO (see
    /// [`crate::engine::handover`]): through Docker when the funko's image needs it, else as a file.
    pub async fn add_secret(
        &self,
        funko: &str,
        secret: &str,
        value: &[u8],
    ) -> Result<(), LifecycleError> {
        crate::store::secrets::validate_secret_name(secret)?;
        if self.orchestrator == crate::engine::swarm::Orchestrator::Swarm {
            return self.swarm_add_secret(funko, secret, value).await;
        }
        let dir = self.secrets.ensure_funko_dir(funko)?;
        let image = conventions::image_latest(funko);
        if let Some(info) = docker::image_inspect(&self.docker, &image).await? {
            let user = info.config.and_then(|c| c.user).unwrap_or_default();
            if crate::engine::handover::needed(&user) {
                let files = [(secret.to_string(), value.to_vec())];
                crate::engine::handover::hand_over(&self.docker, &image, &user, &dir, &files)
                    .await?;
                return Ok(());
            }
        }
        Ok(self.secrets.add(funko, secret, value)?)
    }

    /// Removes one of a funko's secrets (in Swarm mode, the service stops mounting it first).
    pub async fn remove_secret(&self, funko: &str, secret: &str) -> Result<(), LifecycleError> {
        crate::store::secrets::validate_secret_name(secret)?;
        if self.orchestrator == crate::engine::swarm::Orchestrator::Swarm {
            return self.swarm_remove_secret(funko, secret).await;
        }
        Ok(self.secrets.remove(funko, secret)?)
    }

    /// The names of every funko's secrets, by funko (never their values).
    pub async fn secret_names(&self) -> Result<Vec<(String, Vec<String>)>, LifecycleError> {
        if self.orchestrator == crate::engine::swarm::Orchestrator::Swarm {
            return self.swarm_secret_names().await;
        }
        Ok(self.secrets.list(None)?)
    }

    /// Creates and starts one instance of `image`, with the funko's secrets mounted.
    pub(crate) async fn start_instance(
        &self,
        funko: &str,
        image: &str,
        image_user: &str,
    ) -> Result<String, LifecycleError> {
        let secrets_dir = self.secrets.ensure_funko_dir(funko)?;
        if crate::engine::handover::needed(image_user) {
            let pending = crate::engine::handover::still_ours(&secrets_dir).map_err(|source| {
                SecretError::Io {
                    path: secrets_dir.clone(),
                    source,
                }
            })?;
            crate::engine::handover::hand_over(
                &self.docker,
                image,
                image_user,
                &secrets_dir,
                &pending,
            )
            .await?;
        } else if let Some((uid, gid)) = numeric_user(image_user) {
            self.secrets.give_to(funko, uid, gid)?;
        }
        let name = conventions::instance_name(funko, &conventions::random_suffix());
        let spec = InstanceSpec {
            funko: funko.to_string(),
            name: name.clone(),
            image: image.to_string(),
            network: self.network.clone(),
            secrets_dir,
        };
        docker::create_instance(&self.docker, &spec).await?;
        Ok(name)
    }

    /// Why an instance that Docker restarts failed. Once it runs again Docker reports exit code 0,
    /// so the exit code is read while it is between runs (Docker waits 100 ms and more before
    /// each restart), looking for up to 2 s.
    async fn restart_reason(
        &self,
        name: &str,
        mut state: docker::ContainerState,
    ) -> Result<String, LifecycleError> {
        let start = std::time::Instant::now();
        while state.status == "running" && start.elapsed() < Duration::from_secs(2) {
            tokio::time::sleep(Duration::from_millis(20)).await;
            match docker::inspect_state(&self.docker, name, &self.network).await? {
                Some(now) => state = now,
                None => return Ok("the container is gone".to_string()),
            }
        }
        Ok(match (state.status.as_str(), state.exit_code) {
            ("running", _) | (_, None) => format!(
                "it exited and Docker restarted it {} time(s)",
                state.restart_count
            ),
            (_, Some(code)) => format!("it exited with code {code} and Docker is restarting it"),
        })
    }

    /// Waits until a new instance is ready for requests: running without having restarted,
    /// healthy where the image has a health check, and answering `GET /ping` on its network
    /// address (unless labelled `faaso.healthcheck=off`). An instance that exits, restarts or is
    /// gone fails at once; one that is not ready within `ready_timeout` fails then. The error
    /// carries the instance's last log lines.
    pub(crate) async fn wait_ready(&self, name: &str) -> Result<(), LifecycleError> {
        let start = std::time::Instant::now();
        let end = self.ready_by.map_or(start + self.ready_timeout, |by| {
            by.min(start + self.ready_timeout)
        });
        let mut last = String::from("not started");
        let mut failed = false;
        while std::time::Instant::now() < end {
            match docker::inspect_state(&self.docker, name, &self.network).await? {
                None => {
                    last = "the container is gone".to_string();
                    failed = true;
                }
                Some(state) if state.restart_count > 0 || state.status == "restarting" => {
                    last = self.restart_reason(name, state).await?;
                    failed = true;
                }
                Some(state) if state.status == "exited" || state.status == "dead" => {
                    last = format!("it exited with code {}", state.exit_code.unwrap_or(-1));
                    failed = true;
                }
                Some(state) if state.status == "running" => match state.health.as_deref() {
                    Some("unhealthy") => {
                        last = "Docker's health check says unhealthy".to_string();
                        failed = true;
                    }
                    Some(other) if other != "healthy" => last = format!("Docker health is {other}"),
                    _ if !state.active_checks => return Ok(()),
                    _ => {
                        let addr = state
                            .ip
                            .as_deref()
                            .and_then(|ip| ip.parse().ok())
                            .map(|ip| SocketAddr::new(ip, state.port));
                        match addr {
                            Some(addr) => {
                                let left = end.saturating_duration_since(std::time::Instant::now());
                                let wait =
                                    left.clamp(Duration::from_millis(50), Duration::from_secs(2));
                                match crate::engine::probe::ping(addr, wait).await {
                                    Ok(()) => return Ok(()),
                                    Err(reason) => last = format!("GET /ping: {reason}"),
                                }
                            }
                            None => last = format!("no address on {}", self.network),
                        }
                    }
                },
                Some(state) => last = format!("state {}", state.status),
            }
            if failed {
                break;
            }
            tokio::time::sleep(self.ready_poll).await;
        }
        if !failed {
            last = format!("{last} (after {:?})", end.duration_since(start));
        }
        Err(LifecycleError::NotReady {
            instance: name.to_string(),
            reason: last,
            logs: self.last_log_lines(name, 10).await,
        })
    }

    /// The last lines of a container's log, as text for an error message.
    async fn last_log_lines(&self, name: &str, lines: usize) -> String {
        use futures_util::StreamExt;
        let stream = docker::container_logs(&self.docker, name, false, &lines.to_string(), false);
        let chunks: Vec<String> = stream.filter_map(|r| async move { r.ok() }).collect().await;
        let text = chunks.concat();
        let text = text.trim();
        if text.is_empty() {
            String::new()
        } else {
            format!(
                "; its last log lines: {}",
                text.lines().collect::<Vec<_>>().join(" | ")
            )
        }
    }

    pub(crate) fn stop_seconds(&self) -> i32 {
        i32::try_from(self.stop_grace.as_secs()).unwrap_or(i32::MAX)
    }
}

fn display_name(container: &ContainerSummary) -> String {
    container
        .names
        .as_ref()
        .and_then(|n| n.first())
        .map(|n| n.trim_start_matches('/').to_string())
        .or_else(|| container.id.clone())
        .unwrap_or_default()
}
