//! Docker Swarm mode (`orchestrator: swarm`): a funko is the service `faaso-<name>`, with
//! replicas on the attachable overlay network (`faaso-net`), its secrets are Swarm secrets
//! `faaso-<funko>-<secret>` mounted at `/secrets/<secret>`.
//!
//! The same [`Lifecycle`] operations as on one engine, mapped onto the service:
//! - `scale`/`up`/`down` create the service or set its replicas, and wait for that many tasks
//!   to run;
//! - `deploy` is a rolling service update to the newest image: one task at a time, the new one
//!   started before the old one stops (`start-first`), rolled back by Swarm when a new task fails
//!   within the monitor period;
//! - `purge` removes the service, its secrets and its images; `add_secret` creates (or rotates)
//!   the Swarm secret and updates the service when it runs.
//!
//! - [`services`]: the service's spec, replicas, rolling updates and removal.
//! - [`tasks`]: the running tasks as instances, waiting for them, their errors and logs.
//! - [`secrets`]: Swarm secrets and the service's mounts of them.
//! - [`canary`]: a canary release as a second service, `faaso-<name>-canary`.
//!
//! Swarm keeps the replica count, so nothing is saved in `state_dir` (only the funko's lock
//! lives there). Every step can be done by hand: `docker service create --name faaso-<name>
//! --network faaso-net --replicas 2 faaso-<name>:latest`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerSummary, NetworkCreateRequest, Service, ServiceSpec, ServiceUpdateStatusStateEnum,
};
use bollard::query_parameters::{InspectNetworkOptions, ListServicesOptions, UpdateServiceOptions};

use crate::conventions::{MANAGED_LABEL, PREFIX, PROXY_CONTAINER, is_valid_name};
use crate::engine::docker::{self, DockerError};
use crate::engine::{
    Deployed, Lifecycle, LifecycleError, LogLine, Orchestrate, Report, RunningInstance, short_id,
};

pub mod canary;
mod secrets;
mod services;
mod tasks;

pub use tasks::{
    instances_of_tasks, list_running_tasks, task_addresses, task_instances, task_running,
};

/// A [`Lifecycle`] on a Swarm's services.
pub(crate) struct Swarm<'a>(pub(crate) &'a Lifecycle);

impl std::ops::Deref for Swarm<'_> {
    type Target = Lifecycle;

    fn deref(&self) -> &Lifecycle {
        self.0
    }
}

impl Orchestrate for Swarm<'_> {
    async fn running(&self, funko: &str) -> Result<Vec<RunningInstance>, LifecycleError> {
        self.running_replicas(funko).await
    }

    async fn scale(
        &self,
        funko: &str,
        scale: u32,
        report: Report<'_>,
    ) -> Result<(), LifecycleError> {
        self.set_replicas(funko, scale, report).await
    }

    async fn deploy(&self, funko: &str, report: Report<'_>) -> Result<Deployed, LifecycleError> {
        self.update_image(funko, report).await
    }

    async fn purge(&self, funko: &str, report: Report<'_>) -> Result<(), LifecycleError> {
        self.remove_service(funko, report).await
    }

    async fn logs(
        &self,
        funko: &str,
        follow: bool,
        tail: Option<u32>,
        out: &mut (dyn FnMut(LogLine) + Send),
    ) -> Result<(), LifecycleError> {
        self.service_logs(funko, follow, tail, out).await
    }

    async fn instances(&self) -> Result<Vec<ContainerSummary>, LifecycleError> {
        // Containers on this engine (a funko run before Swarm mode) and every node's tasks.
        let mut instances = docker::list_all_instances(&self.docker).await?;
        instances.extend(task_instances(&self.docker, &self.network).await?);
        Ok(instances)
    }

    async fn add_secret(
        &self,
        funko: &str,
        secret: &str,
        value: &[u8],
    ) -> Result<(), LifecycleError> {
        self.put_secret(funko, secret, value).await
    }

    async fn remove_secret(&self, funko: &str, secret: &str) -> Result<(), LifecycleError> {
        self.drop_secret(funko, secret).await
    }

    async fn secret_names(&self) -> Result<Vec<(String, Vec<String>)>, LifecycleError> {
        self.list_secrets().await
    }
}

/// Label of a Swarm secret naming the secret's file name (`/secrets/<name>`).
pub const SECRET_LABEL: &str = "faaso.secret";

/// The service of a funko: `faaso-<name>`.
pub fn service_name(funko: &str) -> String {
    format!("{PREFIX}{funko}")
}

/// The funko of a service name (`faaso-<name>`, or its canary's `faaso-<name>-canary`);
/// `None` for the gateway's own `faaso-proxy` and for other services.
pub fn funko_of_service(service: &str) -> Option<&str> {
    if service == PROXY_CONTAINER {
        return None;
    }
    let name = service.strip_prefix(PREFIX)?;
    let name = name.strip_suffix(canary::CANARY_SUFFIX).unwrap_or(name);
    Some(name).filter(|n| is_valid_name(n))
}

/// The Swarm secret of a funko's secret: `faaso-<funko>-<secret>`.
pub fn secret_name(funko: &str, secret: &str) -> String {
    format!("{PREFIX}{funko}-{secret}")
}

/// Makes sure the attachable overlay network `name` exists (funkos and the gateway share it).
pub async fn ensure_overlay(docker: &Docker, name: &str) -> Result<(), DockerError> {
    let found = docker
        .inspect_network(name, None::<InspectNetworkOptions>)
        .await;
    match found {
        Ok(network) if network.driver.as_deref() == Some("overlay") => return Ok(()),
        Ok(network) => {
            return Err(DockerError::Gone(format!(
                "network {name} is a {} network; Swarm mode needs an attachable overlay network \
                 (remove it, or set `network` to another name)",
                network.driver.unwrap_or_default()
            )));
        }
        Err(_) => {}
    }
    let request = NetworkCreateRequest {
        name: name.to_string(),
        driver: Some("overlay".to_string()),
        attachable: Some(true),
        labels: Some([(MANAGED_LABEL.to_string(), "true".to_string())].into()),
        ..Default::default()
    };
    if let Err(source) = docker.create_network(request).await {
        // Created meanwhile by another caller: fine.
        let again = docker
            .inspect_network(name, None::<InspectNetworkOptions>)
            .await;
        if again.is_err() {
            return Err(DockerError::call(format!("create overlay network {name}"))(
                source,
            ));
        }
    }
    Ok(())
}

/// The funko services (`faaso-<name>`, not `faaso-proxy`).
pub async fn list_services(docker: &Docker) -> Result<Vec<Service>, DockerError> {
    let options = ListServicesOptions {
        filters: Some(HashMap::from([(
            "name".to_string(),
            vec![PREFIX.to_string()],
        )])),
        ..Default::default()
    };
    let services = docker
        .list_services(Some(options))
        .await
        .map_err(DockerError::call("list services"))?;
    Ok(services
        .into_iter()
        .filter(|s| {
            s.spec
                .as_ref()
                .and_then(|spec| spec.name.as_deref())
                .and_then(funko_of_service)
                .is_some()
        })
        .collect())
}

/// Label the instances of tasks carry: the node they run on (its hostname).
pub const NODE_LABEL: &str = "faaso.swarm.node";

/// The image reference a service of `funko` runs for the image `image_id` with the release
/// tags `tags`: the image id itself without a registry (one node: the image is here), else
/// `<registry>/faaso-<funko>:<release>` (the newest `<unix-seconds>` tag, or the short id).
pub fn service_image(
    registry: Option<&str>,
    funko: &str,
    image_id: &str,
    tags: &[String],
) -> String {
    let Some(registry) = registry else {
        return image_id.to_string();
    };
    let repo = format!("{PREFIX}{funko}:");
    let release = tags
        .iter()
        .filter_map(|t| t.strip_prefix(&repo))
        .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
        .max_by_key(|t| t.parse::<u64>().unwrap_or(0))
        .map(str::to_string)
        .unwrap_or_else(|| short_id(image_id).to_string());
    format!(
        "{}/{PREFIX}{funko}:{release}",
        registry.trim_end_matches('/')
    )
}

impl Swarm<'_> {
    /// The reference the funko's service runs for `image_id` (see [`service_image`]), pushed
    /// to the registry when there is one.
    pub(super) async fn publish_image(
        &self,
        funko: &str,
        image_id: &str,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<String, LifecycleError> {
        let tags = crate::engine::docker::image_inspect(&self.docker, image_id)
            .await?
            .and_then(|i| i.repo_tags)
            .unwrap_or_default();
        let reference = service_image(self.registry.as_deref(), funko, image_id, &tags);
        if self.registry.is_none() {
            return Ok(reference);
        }
        let (repo, tag) = reference
            .rsplit_once(':')
            .unwrap_or((reference.as_str(), "latest"));
        crate::engine::docker::tag_image(&self.docker, image_id, repo, tag).await?;
        let options = bollard::query_parameters::PushImageOptions {
            tag: Some(tag.to_string()),
            ..Default::default()
        };
        let mut pushing = self.docker.push_image(repo, Some(options), None);
        use futures_util::StreamExt as _;
        while let Some(item) = pushing.next().await {
            let info = item.map_err(DockerError::call(format!("push {reference}")))?;
            if let Some(error) = info.error_detail.and_then(|d| d.message) {
                return Err(
                    DockerError::Gone(format!("pushing {reference} failed: {error}")).into(),
                );
            }
        }
        report(format!("pushed {reference}"));
        Ok(reference)
    }

    /// A line of warning when the swarm has more than one node and no registry is set: the
    /// other nodes cannot pull a funko's image.
    pub(super) async fn registry_warning(&self) -> Option<String> {
        if self.registry.is_some() {
            return None;
        }
        let info = self.docker.info().await.ok()?;
        let nodes = info.swarm.and_then(|s| s.nodes).unwrap_or(0);
        (nodes > 1).then(|| {
            format!(
                "warning: the swarm has {nodes} nodes and no `registry` is set: only nodes that \
                 have the image can run the funko's tasks"
            )
        })
    }

    /// The funko's service, if it exists.
    pub async fn service(&self, funko: &str) -> Result<Option<Service>, LifecycleError> {
        self.service_named(&service_name(funko)).await
    }

    /// The service named `name` (exactly), if it exists.
    pub(super) async fn service_named(
        &self,
        name: &str,
    ) -> Result<Option<Service>, LifecycleError> {
        match self.docker.inspect_service(name, None).await {
            Ok(service) => Ok(Some(service)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(source) => Err(DockerError::call(format!("inspect service {name}"))(source).into()),
        }
    }

    /// Writes a new version of the spec; Swarm then converges the tasks.
    pub(super) async fn update_service(
        &self,
        service: &Service,
        spec: ServiceSpec,
    ) -> Result<(), LifecycleError> {
        let name = spec.name.clone().unwrap_or_default();
        let version = service.version.as_ref().and_then(|v| v.index).unwrap_or(0);
        let options = UpdateServiceOptions {
            version: i32::try_from(version).unwrap_or(i32::MAX),
            registry_auth_from: "spec".to_string(),
            ..Default::default()
        };
        self.docker
            .update_service(&name, spec, options, None)
            .await
            .map_err(DockerError::call(format!("update service {name}")))?;
        Ok(())
    }

    /// Follows a service update until Swarm says it is complete, or rolled back.
    pub(super) async fn wait_for_update(
        &self,
        funko: &str,
        replicas: usize,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        let started = Instant::now();
        let mut last = None;
        // The update of every task may take its start, and the monitor period after it.
        let limit = self.ready_timeout * (replicas as u32 + 1);
        loop {
            let service = self.service(funko).await?.ok_or_else(|| {
                LifecycleError::Docker(DockerError::Gone(format!(
                    "service {} was removed during the update",
                    service_name(funko)
                )))
            })?;
            let status = service.update_status.clone().unwrap_or_default();
            let state = status.state;
            if state != last {
                if let Some(message) = &status.message {
                    report(format!("{funko}: {message}"));
                }
                last = state;
            }
            use ServiceUpdateStatusStateEnum as S;
            match state {
                Some(S::COMPLETED) => {
                    report(format!("{funko}: deployed to {replicas} tasks"));
                    return Ok(());
                }
                Some(S::ROLLBACK_COMPLETED | S::ROLLBACK_PAUSED | S::PAUSED) => {
                    let outcome = match state {
                        Some(S::PAUSED) => "Swarm paused the update",
                        Some(S::ROLLBACK_PAUSED) => "Swarm began a rollback and paused it",
                        _ => "Swarm rolled the update back; the earlier release serves",
                    };
                    let failed = self.last_task_error(funko).await;
                    return Err(LifecycleError::NotReady {
                        instance: service_name(funko),
                        reason: format!(
                            "a new task failed ({}); {outcome}",
                            failed.unwrap_or_else(|| status.message.unwrap_or_default())
                        ),
                        logs: String::new(),
                    });
                }
                _ => {}
            }
            if started.elapsed() > limit {
                return Err(LifecycleError::NotReady {
                    instance: service_name(funko),
                    reason: format!("the update did not finish within {limit:?}"),
                    logs: String::new(),
                });
            }
            tokio::time::sleep(self.ready_poll.max(Duration::from_millis(200))).await;
        }
    }
}

/// A service's replica count.
pub fn replicas_of(service: &Service) -> usize {
    service
        .spec
        .as_ref()
        .and_then(|s| s.mode.as_ref())
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or(0)
        .max(0) as usize
}

#[cfg(test)]
mod tests {
    use bollard::models::{
        ContainerSummaryStateEnum, Task, TaskSpec, TaskSpecContainerSpec, TaskState,
    };

    use super::tasks::parse_rfc3339_seconds;
    use super::*;

    #[test]
    fn service_names_follow_the_convention() {
        assert_eq!(service_name("hello"), "faaso-hello");
        assert_eq!(funko_of_service("faaso-hello"), Some("hello"));
        assert_eq!(funko_of_service("faaso-proxy"), None);
        assert_eq!(funko_of_service("faaso-Bad"), None);
        assert_eq!(funko_of_service("web"), None);
        // A canary's service belongs to its funko.
        assert_eq!(canary::canary_service_name("hello"), "faaso-hello-canary");
        assert_eq!(funko_of_service("faaso-hello-canary"), Some("hello"));
        assert_eq!(funko_of_service("faaso--canary"), None);
        assert_eq!(secret_name("hello", "api_key"), "faaso-hello-api_key");
    }

    #[test]
    fn services_run_the_image_id_here_and_the_release_from_a_registry() {
        let tags = [
            "faaso-hello:latest".to_string(),
            "faaso-hello:1796309303".to_string(),
            "faaso-hello:1796300000".to_string(),
        ];
        assert_eq!(
            service_image(None, "hello", "sha256:abc", &tags),
            "sha256:abc"
        );
        assert_eq!(
            service_image(Some("registry.lan:5000/"), "hello", "sha256:abc", &tags),
            "registry.lan:5000/faaso-hello:1796309303"
        );
        let untagged = service_image(Some("r:5000"), "hello", "sha256:0123456789abcdef", &[]);
        assert_eq!(untagged, "r:5000/faaso-hello:0123456789ab");
    }

    #[test]
    fn docker_times_become_unix_seconds() {
        assert_eq!(parse_rfc3339_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            parse_rfc3339_seconds("2026-12-03T14:48:23.471341064Z"),
            Some(1_796_309_303)
        );
        assert_eq!(parse_rfc3339_seconds("yesterday"), None);
    }

    #[test]
    fn tasks_become_instances_only_while_running_with_an_address() {
        let service = Service {
            id: Some("svc1".into()),
            spec: Some(ServiceSpec {
                name: Some("faaso-hello".into()),
                task_template: Some(TaskSpec {
                    container_spec: Some(TaskSpecContainerSpec {
                        image: Some("sha256:abc".into()),
                        labels: Some(HashMap::from([("faaso.port".into(), "8080".into())])),
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let task = |id: &str, state: TaskState| Task {
            id: Some(id.into()),
            service_id: Some("svc1".into()),
            node_id: Some("node1".into()),
            desired_state: Some(TaskState::RUNNING),
            status: Some(bollard::models::TaskStatus {
                state: Some(state),
                ..Default::default()
            }),
            ..Default::default()
        };
        let tasks = [
            task("k029jbadto7p0uud7x1ur90s9", TaskState::RUNNING),
            task("z37zucewerkuc66hbwyio8ksl", TaskState::STARTING),
        ];
        let addresses = HashMap::from([(
            "k029jbadto7p0uud7x1ur90s9".to_string(),
            "10.0.1.7".parse().unwrap(),
        )]);
        let instances = instances_of_tasks(&[service], &tasks, &addresses, "faaso-net");
        assert_eq!(instances.len(), 2);
        let first = &instances[0];
        assert_eq!(first.names.as_ref().unwrap()[0], "/faaso-hello-k029jb");
        assert_eq!(first.state, Some(ContainerSummaryStateEnum::RUNNING));
        assert_eq!(first.image_id.as_deref(), Some("sha256:abc"));
        let labels = first.labels.as_ref().unwrap();
        assert_eq!(labels["faaso.port"], "8080");
        assert_eq!(labels[NODE_LABEL], "node1");
        let ip = &first
            .network_settings
            .as_ref()
            .unwrap()
            .networks
            .as_ref()
            .unwrap()["faaso-net"];
        assert_eq!(ip.ip_address.as_deref(), Some("10.0.1.7"));
        assert_eq!(instances[1].state, Some(ContainerSummaryStateEnum::CREATED));
        assert!(instances[1].network_settings.is_none());
    }
}
