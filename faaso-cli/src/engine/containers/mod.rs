//! The seam on one Docker engine: a funko's instances are containers
//! `faaso-<name>-<suffix>` on the network `faaso-net`, its secrets are files mounted at
//! `/secrets`, and its scale is saved in `state_dir` (see [`crate::store::state`]).
//!
//! - [`rollout`]: `deploy`, one new container ready before each old one stops.
//! - [`logs`]: the merged logs of the funko's containers.
//! - [`canary`]: canary instances beside the serving ones, promoted or ended.
//!
//! A canary instance (label `faaso.canary`) is never counted, scaled or rolled over as one of
//! the funko's serving instances: [`Containers::containers`] leaves it out.

mod canary;
mod logs;
mod rollout;

use std::net::SocketAddr;
use std::ops::Deref;
use std::time::Duration;

use bollard::models::{ContainerSummary, ContainerSummaryStateEnum};

use crate::conventions;
use crate::engine::docker::{self, InstanceSpec};
use crate::engine::{
    Deployed, Lifecycle, LifecycleError, LogLine, Orchestrate, Report, RunningInstance,
};
use crate::store::secrets::{SecretError, numeric_user};
use crate::store::state::FunkoState;

/// A [`Lifecycle`] on one engine's containers.
pub(crate) struct Containers<'a>(pub(crate) &'a Lifecycle);

impl Deref for Containers<'_> {
    type Target = Lifecycle;

    fn deref(&self) -> &Lifecycle {
        self.0
    }
}

impl Orchestrate for Containers<'_> {
    async fn running(&self, funko: &str) -> Result<Vec<RunningInstance>, LifecycleError> {
        Ok(self.containers(funko).await?.0)
    }

    async fn scale(
        &self,
        funko: &str,
        scale: u32,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        let (mut running, leftovers) = self.containers(funko).await?;
        let target = scale as usize;
        let latest = match leftovers.iter().any(is_ready) {
            true => Some(self.latest_image(funko).await?),
            false => None,
        };
        for container in leftovers {
            let Some(id) = &container.id else { continue };
            let name = docker::display_name(&container);
            if is_ready(&container)
                && let Some((image, user)) = &latest
                && container.image_id.as_deref() == Some(image.as_str())
            {
                // A ready container of the newest image: started when one more is wanted (no
                // create), else kept for the next wake.
                if running.len() < target {
                    let started = self.start_ready(funko, &container, image, user).await?;
                    if let Err(err) = self.wait_ready(&started).await {
                        let _ = docker::remove_container(&self.docker, id).await;
                        return Err(err);
                    }
                    report(format!("started ready container {started}"));
                    running.push(RunningInstance {
                        id: id.clone(),
                        name: started,
                        image_id: image.clone(),
                        created: container.created.unwrap_or_default(),
                    });
                }
                continue;
            }
            // A paused instance (`scaling.zero: pause`) is the fastest way to one more: thawed
            // rather than removed, while more are wanted.
            if container.state == Some(ContainerSummaryStateEnum::PAUSED) && running.len() < target
            {
                docker::unpause_container(&self.docker, id).await?;
                report(format!("unpaused {name}"));
                running.push(RunningInstance {
                    id: id.clone(),
                    name: docker::container_name(&container).unwrap_or_default(),
                    image_id: container.image_id.clone().unwrap_or_default(),
                    created: container.created.unwrap_or_default(),
                });
                continue;
            }
            docker::remove_container(&self.docker, id).await?;
            report(format!(
                "removed {} container {name}",
                container
                    .state
                    .map_or_else(|| "stopped".to_string(), |s| s.to_string())
            ));
        }
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

    async fn deploy(&self, funko: &str, report: Report<'_>) -> Result<Deployed, LifecycleError> {
        self.roll_out(funko, report).await
    }

    async fn purge(&self, _funko: &str, _report: Report<'_>) -> Result<(), LifecycleError> {
        // A funko on one engine is its containers and images, which purge removes anyway.
        Ok(())
    }

    async fn logs(
        &self,
        funko: &str,
        follow: bool,
        tail: Option<u32>,
        out: &mut (dyn FnMut(LogLine) + Send),
    ) -> Result<(), LifecycleError> {
        self.merged_logs(funko, follow, tail, out).await
    }

    async fn instances(&self) -> Result<Vec<ContainerSummary>, LifecycleError> {
        Ok(docker::list_all_instances(&self.docker).await?)
    }

    async fn add_secret(
        &self,
        funko: &str,
        secret: &str,
        value: &[u8],
    ) -> Result<(), LifecycleError> {
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

    async fn remove_secret(&self, funko: &str, secret: &str) -> Result<(), LifecycleError> {
        Ok(self.secrets.remove(funko, secret)?)
    }

    async fn secret_names(&self) -> Result<Vec<(String, Vec<String>)>, LifecycleError> {
        Ok(self.secrets.list(None)?)
    }
}

/// Whether a container is a ready one (created by [`Containers::prepare`], not started).
fn is_ready(container: &ContainerSummary) -> bool {
    container.state == Some(ContainerSummaryStateEnum::CREATED)
        && container
            .labels
            .as_ref()
            .is_some_and(|l| l.contains_key(conventions::READY_LABEL))
}

impl Containers<'_> {
    /// The funko's containers: running ones (oldest first) and the rest; canary instances are
    /// in neither (see [`Containers::canaries`]).
    async fn containers(
        &self,
        funko: &str,
    ) -> Result<(Vec<RunningInstance>, Vec<ContainerSummary>), LifecycleError> {
        let mut running = Vec::new();
        let mut other = Vec::new();
        for container in docker::list_instances(&self.docker, funko).await? {
            if conventions::canary(container.labels.as_ref()).is_some() {
                continue;
            }
            if container.state == Some(ContainerSummaryStateEnum::RUNNING) {
                running.push(RunningInstance {
                    id: container.id.clone().unwrap_or_default(),
                    name: docker::container_name(&container).unwrap_or_default(),
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

    /// Creates and starts one instance of `image`, with the funko's secrets mounted.
    pub(crate) async fn start_instance(
        &self,
        funko: &str,
        image: &str,
        image_user: &str,
    ) -> Result<String, LifecycleError> {
        self.start_labelled(funko, image, image_user, Vec::new())
            .await
    }

    /// [`Containers::start_instance`] with labels of its own (a canary's share).
    pub(crate) async fn start_labelled(
        &self,
        funko: &str,
        image: &str,
        image_user: &str,
        labels: Vec<(String, String)>,
    ) -> Result<String, LifecycleError> {
        let spec = self.spec(funko, image, image_user, labels).await?;
        docker::create_instance(&self.docker, &spec).await?;
        Ok(spec.name)
    }

    /// The spec of a new instance of `image`, its secrets handed to the image's user first.
    async fn spec(
        &self,
        funko: &str,
        image: &str,
        image_user: &str,
        labels: Vec<(String, String)>,
    ) -> Result<InstanceSpec, LifecycleError> {
        let secrets_dir = self.secrets_for(funko, image, image_user).await?;
        Ok(InstanceSpec {
            funko: funko.to_string(),
            name: conventions::instance_name(funko, &conventions::random_suffix()),
            image: image.to_string(),
            network: self.network.clone(),
            secrets_dir,
            labels,
        })
    }

    /// The funko's secrets folder, its files handed to the image's user (a numeric non-root
    /// `USER`) when they are not yet.
    async fn secrets_for(
        &self,
        funko: &str,
        image: &str,
        image_user: &str,
    ) -> Result<std::path::PathBuf, LifecycleError> {
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
        Ok(secrets_dir)
    }

    /// Keeps one ready container of the funko's newest image (created, not started), so that
    /// the next wake starts it rather than creating one; ready containers of older images are
    /// removed. Returns whether one was made.
    pub(crate) async fn prepare(
        &self,
        funko: &str,
        report: Report<'_>,
    ) -> Result<bool, LifecycleError> {
        let (image, user) = self.latest_image(funko).await?;
        let (_, leftovers) = self.containers(funko).await?;
        let mut kept = false;
        for container in leftovers.iter().filter(|c| is_ready(c)) {
            if !kept && container.image_id.as_deref() == Some(image.as_str()) {
                kept = true;
                continue;
            }
            if let Some(id) = &container.id {
                docker::remove_container(&self.docker, id).await?;
                report(format!(
                    "removed ready container {}",
                    docker::display_name(container)
                ));
            }
        }
        if kept {
            return Ok(false);
        }
        let spec = self
            .spec(
                funko,
                &image,
                &user,
                vec![(conventions::READY_LABEL.to_string(), "true".to_string())],
            )
            .await?;
        docker::create_only(&self.docker, &spec).await?;
        report(format!(
            "ready container {} created (not started)",
            spec.name
        ));
        Ok(true)
    }

    /// Starts a ready container for a wake, its secrets handed over as for a new one.
    async fn start_ready(
        &self,
        funko: &str,
        container: &ContainerSummary,
        image: &str,
        user: &str,
    ) -> Result<String, LifecycleError> {
        let secrets_dir = self.secrets_for(funko, image, user).await?;
        let name = docker::container_name(container).unwrap_or_default();
        let spec = InstanceSpec {
            funko: funko.to_string(),
            name: name.clone(),
            image: image.to_string(),
            network: self.network.clone(),
            secrets_dir,
            labels: Vec::new(),
        };
        docker::start_created(
            &self.docker,
            container.id.as_deref().unwrap_or(&name),
            &spec,
        )
        .await?;
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
}
