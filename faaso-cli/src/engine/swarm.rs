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
//! Swarm keeps the replica count, so nothing is saved in `state_dir` (only the funko's lock
//! lives there). Every step can be done by hand: `docker service create --name faaso-<name>
//! --network faaso-net --replicas 2 faaso-<name>:latest`.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{
    ContainerSummary, ContainerSummaryNetworkSettings, ContainerSummaryStateEnum, EndpointSettings,
    EndpointSpec, EndpointSpecModeEnum, NetworkAttachmentConfig, NetworkCreateRequest, SecretSpec,
    Service, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum,
    ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, ServiceUpdateStatusStateEnum, Task, TaskSpec,
    TaskSpecContainerSpec, TaskSpecContainerSpecFile, TaskSpecContainerSpecSecrets,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{
    InspectNetworkOptions, ListSecretsOptions, ListServicesOptions, ListTasksOptions,
    UpdateServiceOptions,
};

use crate::conventions::{
    FUNKO_LABEL, MANAGED_LABEL, PREFIX, PROXY_CONTAINER, SUFFIX_LEN, instance_name, is_valid_name,
};
use crate::engine::deploy::{Deployed, short_id};
use crate::engine::docker::DockerError;
use crate::engine::lifecycle::{Lifecycle, LifecycleError};
use crate::store::secrets::numeric_user;

/// Where funkos run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Orchestrator {
    /// Containers on one Docker engine.
    #[default]
    Docker,
    /// Services on a Docker Swarm.
    Swarm,
}

impl Orchestrator {
    pub fn as_str(self) -> &'static str {
        match self {
            Orchestrator::Docker => "docker",
            Orchestrator::Swarm => "swarm",
        }
    }
}

impl std::str::FromStr for Orchestrator {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim() {
            "docker" => Ok(Orchestrator::Docker),
            "swarm" => Ok(Orchestrator::Swarm),
            other => Err(format!(
                "unknown orchestrator {other:?}: use `docker` or `swarm`"
            )),
        }
    }
}

/// Label of a Swarm secret naming the secret's file name (`/secrets/<name>`).
pub const SECRET_LABEL: &str = "faaso.secret";

/// The service of a funko: `faaso-<name>`.
pub fn service_name(funko: &str) -> String {
    format!("{PREFIX}{funko}")
}

/// The funko of a service name (`faaso-<name>`); `None` for the gateway's own `faaso-proxy` and
/// for other services.
pub fn funko_of_service(service: &str) -> Option<&str> {
    if service == PROXY_CONTAINER {
        return None;
    }
    service.strip_prefix(PREFIX).filter(|n| is_valid_name(n))
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

/// A task list's filters: of one funko's service (or of all), only those Swarm wants running
/// (or all, failed ones too).
fn task_filters(funko: Option<&str>, running_only: bool) -> ListTasksOptions {
    let mut filters = HashMap::new();
    if let Some(funko) = funko {
        filters.insert("service".to_string(), vec![service_name(funko)]);
    }
    if running_only {
        filters.insert("desired-state".to_string(), vec!["running".to_string()]);
    }
    ListTasksOptions {
        filters: Some(filters),
    }
}

/// The tasks Swarm wants running (`desired-state=running`), of every service.
pub async fn list_running_tasks(docker: &Docker) -> Result<Vec<Task>, DockerError> {
    docker
        .list_tasks(Some(task_filters(None, true)))
        .await
        .map_err(DockerError::call("list tasks"))
}

/// The addresses of the tasks attached to `network`, by task id, from the network's verbose
/// view (Swarm's own service discovery: every node's tasks, as the embedded DNS knows them).
pub async fn task_addresses(
    docker: &Docker,
    network: &str,
) -> Result<HashMap<String, std::net::IpAddr>, DockerError> {
    let options = InspectNetworkOptions {
        verbose: true,
        scope: Some("swarm".to_string()),
    };
    let inspected = docker
        .inspect_network(network, Some(options))
        .await
        .map_err(DockerError::call(format!("inspect network {network}")))?;
    let mut addresses = HashMap::new();
    for service in inspected.services.unwrap_or_default().values() {
        let tasks = service.get("Tasks").and_then(|t| t.as_array());
        for task in tasks.into_iter().flatten() {
            let name = task.get("Name").and_then(|n| n.as_str()).unwrap_or("");
            let ip = task
                .get("EndpointIP")
                .and_then(|n| n.as_str())
                .unwrap_or("");
            // Task names are `<service>.<slot>.<task id>` (or `<service>.<node id>.<task id>`).
            let (Some(id), Ok(ip)) = (name.rsplit('.').next(), ip.parse()) else {
                continue;
            };
            addresses.insert(id.to_string(), ip);
        }
    }
    Ok(addresses)
}

/// The funko services' tasks as instances, in the shape of Docker's container list, so that
/// the routing table, `faaso status` and the web UI treat them as they treat containers: named
/// `faaso-<funko>-<first 6 characters of the task id>`, with the task id as id, the service's
/// image and labels, the task's address on `network`, and running only while Swarm both wants
/// it running and reports it running.
pub async fn task_instances(
    docker: &Docker,
    network: &str,
) -> Result<Vec<ContainerSummary>, DockerError> {
    let services = list_services(docker).await?;
    if services.is_empty() {
        return Ok(Vec::new());
    }
    let mut tasks = list_running_tasks(docker).await?;
    let addresses = task_addresses(docker, network).await?;
    // Nodes by their hostnames, as `docker node ls` shows them.
    let nodes = docker
        .list_nodes(None::<bollard::query_parameters::ListNodesOptions>)
        .await
        .map_err(DockerError::call("list nodes"))?;
    let hostnames: HashMap<String, String> = nodes
        .into_iter()
        .filter_map(|n| Some((n.id?, n.description?.hostname?)))
        .collect();
    for task in &mut tasks {
        if let Some(hostname) = task.node_id.as_ref().and_then(|id| hostnames.get(id)) {
            task.node_id = Some(hostname.clone());
        }
    }
    Ok(instances_of_tasks(&services, &tasks, &addresses, network))
}

/// [`task_instances`] from the lists (pure).
pub fn instances_of_tasks(
    services: &[Service],
    tasks: &[Task],
    addresses: &HashMap<String, std::net::IpAddr>,
    network: &str,
) -> Vec<ContainerSummary> {
    let by_id: HashMap<&str, (&str, &ServiceSpec)> = services
        .iter()
        .filter_map(|s| {
            let spec = s.spec.as_ref()?;
            Some((
                s.id.as_deref()?,
                (funko_of_service(spec.name.as_deref()?)?, spec),
            ))
        })
        .collect();
    let mut instances = Vec::new();
    for task in tasks {
        let Some((funko, spec)) = task.service_id.as_deref().and_then(|id| by_id.get(id)) else {
            continue;
        };
        let Some(id) = task.id.as_deref().filter(|id| id.len() >= SUFFIX_LEN) else {
            continue;
        };
        let suffix = &id[..SUFFIX_LEN];
        if !suffix
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            continue;
        }
        let container = spec
            .task_template
            .as_ref()
            .and_then(|t| t.container_spec.as_ref());
        let mut labels = container.and_then(|c| c.labels.clone()).unwrap_or_default();
        if let Some(node) = &task.node_id {
            labels.insert(NODE_LABEL.to_string(), node.clone());
        }
        let running = task_running(task);
        let ip = addresses.get(id);
        let networks = ip.map(|ip| {
            HashMap::from([(
                network.to_string(),
                EndpointSettings {
                    ip_address: Some(ip.to_string()),
                    ..Default::default()
                },
            )])
        });
        instances.push(ContainerSummary {
            id: Some(id.to_string()),
            names: Some(vec![format!("/{}", instance_name(funko, suffix))]),
            image: container.and_then(|c| c.image.clone()),
            image_id: container.and_then(|c| c.image.clone()),
            created: task.created_at.as_ref().map(date_seconds),
            labels: Some(labels),
            state: Some(if running {
                ContainerSummaryStateEnum::RUNNING
            } else {
                ContainerSummaryStateEnum::CREATED
            }),
            status: Some(if running { "Up" } else { "Starting" }.to_string()),
            network_settings: networks.map(|networks| ContainerSummaryNetworkSettings {
                networks: Some(networks),
            }),
            ..Default::default()
        });
    }
    instances
}

/// Unix seconds of a Docker timestamp.
fn date_seconds(date: &bollard::models::BollardDate) -> i64 {
    let text = date.to_string();
    parse_rfc3339_seconds(&text).unwrap_or_default()
}

/// Seconds since the epoch of an RFC 3339 UTC time (`2026-12-03T14:48:23.47Z`).
fn parse_rfc3339_seconds(text: &str) -> Option<i64> {
    let (date, time) = text.split_once(['T', ' '])?;
    let mut parts = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, d) = (parts.next()??, parts.next()??, parts.next()??);
    let mut clock = time.get(..8)?.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (hh, mm, ss) = (clock.next()??, clock.next()??, clock.next()??);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// Label the instances of tasks carry: the node they run on (its hostname).
pub const NODE_LABEL: &str = "faaso.swarm.node";

/// Whether a task runs.
pub fn task_running(task: &Task) -> bool {
    task.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING)
        && task.desired_state == Some(TaskState::RUNNING)
}

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

impl Lifecycle {
    /// The reference the funko's service runs for `image_id` (see [`service_image`]), pushed
    /// to the registry when there is one.
    async fn publish_image(
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
    async fn registry_warning(&self) -> Option<String> {
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

    /// The funko's running tasks as the lifecycle's running instances, oldest first.
    pub(crate) async fn swarm_running(
        &self,
        funko: &str,
    ) -> Result<Vec<crate::engine::lifecycle::RunningInstance>, LifecycleError> {
        let mut running: Vec<_> = task_instances(&self.docker, &self.network)
            .await?
            .into_iter()
            .filter(|c| c.state == Some(ContainerSummaryStateEnum::RUNNING))
            .filter(|c| {
                c.labels
                    .as_ref()
                    .and_then(|l| l.get(FUNKO_LABEL))
                    .map(String::as_str)
                    == Some(funko)
            })
            .map(|c| crate::engine::lifecycle::RunningInstance {
                id: c.id.unwrap_or_default(),
                name: c
                    .names
                    .and_then(|n| n.into_iter().next())
                    .map(|n| n.trim_start_matches('/').to_string())
                    .unwrap_or_default(),
                image_id: c.image_id.unwrap_or_default(),
                created: c.created.unwrap_or_default(),
            })
            .collect();
        running.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
        Ok(running)
    }

    /// The funko's service, if it exists.
    pub async fn service(&self, funko: &str) -> Result<Option<Service>, LifecycleError> {
        match self
            .docker
            .inspect_service(&service_name(funko), None)
            .await
        {
            Ok(service) => Ok(Some(service)),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(source) => Err(DockerError::call(format!(
                "inspect service {}",
                service_name(funko)
            ))(source)
            .into()),
        }
    }

    /// The funko's running tasks.
    async fn service_tasks(&self, funko: &str) -> Result<Vec<Task>, LifecycleError> {
        let tasks = self
            .docker
            .list_tasks(Some(task_filters(Some(funko), true)))
            .await
            .map_err(DockerError::call(format!(
                "list tasks of {}",
                service_name(funko)
            )))?;
        Ok(tasks)
    }

    /// The spec of a new service for `funko`, running `image` (the reference of the image
    /// `image_id`, see [`service_image`]) as `user`.
    async fn service_spec(
        &self,
        funko: &str,
        image_id: &str,
        image: &str,
        user: &str,
        replicas: u32,
    ) -> Result<ServiceSpec, LifecycleError> {
        let labels = HashMap::from([
            (FUNKO_LABEL.to_string(), funko.to_string()),
            (MANAGED_LABEL.to_string(), "true".to_string()),
        ]);
        // The image's labels go on the service too: a node without the image yet and the
        // gateway's routing table read settings (port, limits, scaling) from the service.
        let mut container_labels = crate::engine::docker::image_inspect(&self.docker, image_id)
            .await?
            .and_then(|i| i.config)
            .and_then(|c| c.labels)
            .unwrap_or_default();
        container_labels.extend(labels.clone());
        let secrets = self.secret_refs(funko, user).await?;
        let grace = i64::try_from(self.stop_grace.as_nanos()).unwrap_or(i64::MAX);
        let monitor = Duration::from_secs(5).as_nanos() as i64;
        Ok(ServiceSpec {
            name: Some(service_name(funko)),
            labels: Some(labels),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated {
                    replicas: Some(i64::from(replicas)),
                }),
                ..Default::default()
            }),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(image.to_string()),
                    labels: Some(container_labels),
                    stop_grace_period: Some(grace),
                    secrets: Some(secrets),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                    ..Default::default()
                }),
                networks: Some(vec![NetworkAttachmentConfig {
                    target: Some(self.network.clone()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            update_config: Some(ServiceSpecUpdateConfig {
                parallelism: Some(1),
                failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
                monitor: Some(monitor),
                order: Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST),
                ..Default::default()
            }),
            rollback_config: Some(ServiceSpecRollbackConfig {
                parallelism: Some(1),
                failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
                monitor: Some(monitor),
                order: Some(ServiceSpecRollbackConfigOrderEnum::START_FIRST),
                ..Default::default()
            }),
            // The gateway balances over the tasks itself: no virtual IP in between.
            endpoint_spec: Some(EndpointSpec {
                mode: Some(EndpointSpecModeEnum::DNSRR),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// The funko's Swarm secrets as the service mounts them: `/secrets/<secret>`, owned by the
    /// image's numeric user, mode 0400. The newest version of each secret wins.
    async fn secret_refs(
        &self,
        funko: &str,
        user: &str,
    ) -> Result<Vec<TaskSpecContainerSpecSecrets>, LifecycleError> {
        let (uid, gid) = numeric_user(user).unwrap_or((0, 0));
        let mut newest: HashMap<String, (String, String, String)> = HashMap::new();
        for secret in self.funko_secrets(funko).await? {
            let spec = secret.spec.unwrap_or_default();
            let labels = spec.labels.unwrap_or_default();
            let (Some(file), Some(id), Some(name)) =
                (labels.get(SECRET_LABEL), secret.id, spec.name)
            else {
                continue;
            };
            let created = secret.created_at.map(|c| c.to_string()).unwrap_or_default();
            if newest.get(file).is_none_or(|(at, _, _)| *at < created) {
                newest.insert(file.clone(), (created, id, name));
            }
        }
        let mut refs: Vec<_> = newest
            .into_iter()
            .map(|(file, (_, id, name))| TaskSpecContainerSpecSecrets {
                file: Some(TaskSpecContainerSpecFile {
                    name: Some(format!("/secrets/{file}")),
                    uid: Some(uid.to_string()),
                    gid: Some(gid.to_string()),
                    mode: Some(0o400),
                }),
                secret_id: Some(id),
                secret_name: Some(name),
            })
            .collect();
        refs.sort_by(|a, b| a.secret_name.cmp(&b.secret_name));
        Ok(refs)
    }

    /// The names of every funko's Swarm secrets (never their values, which Swarm does not give
    /// out), by funko, sorted.
    pub async fn swarm_secret_names(&self) -> Result<Vec<(String, Vec<String>)>, LifecycleError> {
        let options = ListSecretsOptions {
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![SECRET_LABEL.to_string()],
            )])),
        };
        let secrets = self
            .docker
            .list_secrets(Some(options))
            .await
            .map_err(DockerError::call("list secrets"))?;
        let mut by_funko: std::collections::BTreeMap<String, std::collections::BTreeSet<String>> =
            Default::default();
        for secret in secrets {
            let labels = secret.spec.and_then(|s| s.labels).unwrap_or_default();
            if let (Some(funko), Some(name)) = (labels.get(FUNKO_LABEL), labels.get(SECRET_LABEL)) {
                by_funko
                    .entry(funko.clone())
                    .or_default()
                    .insert(name.clone());
            }
        }
        Ok(by_funko
            .into_iter()
            .map(|(f, names)| (f, names.into_iter().collect()))
            .collect())
    }

    /// The Swarm secrets of a funko (label `faaso.funko=<funko>`).
    async fn funko_secrets(
        &self,
        funko: &str,
    ) -> Result<Vec<bollard::models::Secret>, LifecycleError> {
        let options = ListSecretsOptions {
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("{FUNKO_LABEL}={funko}")],
            )])),
        };
        Ok(self
            .docker
            .list_secrets(Some(options))
            .await
            .map_err(DockerError::call(format!("list secrets of {funko}")))?)
    }

    /// Writes a new version of the spec; Swarm then converges the tasks.
    async fn update_service(
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

    /// `scale` in Swarm mode: creates the service or sets its replicas, then waits until that
    /// many tasks run (up to `ready_timeout`).
    pub(crate) async fn swarm_scale(
        &self,
        funko: &str,
        replicas: u32,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        ensure_overlay(&self.docker, &self.network).await?;
        match self.service(funko).await? {
            Some(service) => {
                let mut spec = service.spec.clone().unwrap_or_default();
                spec.mode = Some(ServiceSpecMode {
                    replicated: Some(ServiceSpecModeReplicated {
                        replicas: Some(i64::from(replicas)),
                    }),
                    ..Default::default()
                });
                self.update_service(&service, spec).await?;
                report(format!(
                    "service {}: replicas set to {replicas}",
                    service_name(funko)
                ));
            }
            None if replicas == 0 => {}
            None => {
                let (image_id, user) = self.latest_image(funko).await?;
                if let Some(warning) = self.registry_warning().await {
                    report(warning);
                }
                let image = self.publish_image(funko, &image_id, report).await?;
                let spec = self
                    .service_spec(funko, &image_id, &image, &user, replicas)
                    .await?;
                self.docker
                    .create_service(spec, None)
                    .await
                    .map_err(DockerError::call(format!(
                        "create service {}",
                        service_name(funko)
                    )))?;
                report(format!(
                    "created service {} with {replicas} replica{} of image {}",
                    service_name(funko),
                    if replicas == 1 { "" } else { "s" },
                    short_id(&image_id)
                ));
            }
        }
        self.wait_for_tasks(funko, replicas as usize).await?;
        report(format!(
            "{funko}: {replicas} task{} running",
            if replicas == 1 { "" } else { "s" }
        ));
        Ok(())
    }

    /// Waits until exactly `count` of the funko's tasks run.
    async fn wait_for_tasks(&self, funko: &str, count: usize) -> Result<(), LifecycleError> {
        let started = Instant::now();
        loop {
            let tasks = self.service_tasks(funko).await?;
            let running = tasks.iter().filter(|t| task_running(t)).count();
            if running == count && tasks.len() == count {
                return Ok(());
            }
            if started.elapsed() > self.ready_timeout {
                let errors: Vec<String> = tasks
                    .iter()
                    .filter_map(|t| t.status.as_ref())
                    .filter_map(|s| s.err.clone().or_else(|| s.message.clone()))
                    .collect();
                return Err(LifecycleError::NotReady {
                    instance: service_name(funko),
                    reason: format!(
                        "{running} of {count} tasks running after {:?} ({})",
                        self.ready_timeout,
                        errors.join("; ")
                    ),
                    logs: String::new(),
                });
            }
            tokio::time::sleep(self.ready_poll).await;
        }
    }

    /// `deploy` in Swarm mode: a rolling update of the service to the newest image, one task
    /// at a time, start-first; Swarm rolls it back when a new task fails.
    pub(crate) async fn swarm_deploy(
        &self,
        funko: &str,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<Deployed, LifecycleError> {
        let (image_id, user) = self.latest_image(funko).await?;
        let Some(service) = self.service(funko).await? else {
            return Err(LifecycleError::NotRunning {
                funko: funko.to_string(),
            });
        };
        let replicas = replicas_of(&service);
        if replicas == 0 {
            return Err(LifecycleError::NotRunning {
                funko: funko.to_string(),
            });
        }
        let current = service
            .spec
            .as_ref()
            .and_then(|s| s.task_template.as_ref())
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let tags = crate::engine::docker::image_inspect(&self.docker, &image_id)
            .await?
            .and_then(|i| i.repo_tags)
            .unwrap_or_default();
        if current == service_image(self.registry.as_deref(), funko, &image_id, &tags) {
            report(format!(
                "{funko}: all {replicas} tasks run the newest image"
            ));
            return Ok(Deployed {
                replaced: 0,
                current: replicas,
            });
        }
        let image = self.publish_image(funko, &image_id, report).await?;
        let mut spec = self
            .service_spec(funko, &image_id, &image, &user, replicas as u32)
            .await?;
        // What Swarm does not take from us stays as it was (placement, resources set by hand).
        if let Some(old) = service.spec.as_ref().and_then(|s| s.task_template.as_ref())
            && let Some(template) = spec.task_template.as_mut()
        {
            template.placement = old.placement.clone();
            template.resources = old.resources.clone();
        }
        self.update_service(&service, spec).await?;
        report(format!(
            "{funko}: rolling update of {replicas} task{} to image {} (start-first, one at a time)",
            if replicas == 1 { "" } else { "s" },
            short_id(&image_id)
        ));
        if let Err(err) = self.wait_for_update(funko, replicas, report).await {
            // What serves after a rollback is the release `latest` names again, so that the
            // next deploy or new service does not start the broken one.
            let serving = self
                .service(funko)
                .await?
                .as_ref()
                .and_then(|s| s.spec.as_ref())
                .and_then(|s| s.task_template.as_ref())
                .and_then(|t| t.container_spec.as_ref())
                .and_then(|c| c.image.clone());
            if let Some(serving) = serving.filter(|s| *s != image) {
                crate::engine::docker::tag_image(
                    &self.docker,
                    &serving,
                    &crate::conventions::image_repo(funko),
                    "latest",
                )
                .await?;
                report(format!(
                    "{} is back on image {}, which serves",
                    crate::conventions::image_latest(funko),
                    short_id(&serving)
                ));
            }
            return Err(err);
        }
        Ok(Deployed {
            replaced: replicas,
            current: 0,
        })
    }

    /// Follows a service update until Swarm says it is complete, or rolled back.
    async fn wait_for_update(
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

    /// How many containers of a service's tasks this engine still has.
    async fn task_containers(&self, service: &str) -> Result<usize, LifecycleError> {
        let options = bollard::query_parameters::ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([(
                "label".to_string(),
                vec![format!("com.docker.swarm.service.name={service}")],
            )])),
            ..Default::default()
        };
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(DockerError::call(format!("list containers of {service}")))?;
        Ok(containers.len())
    }

    /// The error of the funko's most recent failed task, as Swarm reports it.
    async fn last_task_error(&self, funko: &str) -> Option<String> {
        let tasks = self
            .docker
            .list_tasks(Some(task_filters(Some(funko), false)))
            .await
            .ok()?;
        tasks
            .into_iter()
            .filter_map(|t| {
                let err = t.status.as_ref()?.err.clone()?;
                Some((t.created_at.map(|c| c.to_string()).unwrap_or_default(), err))
            })
            .max()
            .map(|(_, err)| err)
    }

    /// `logs` in Swarm mode: the service's logs, from the tasks on every node, as Swarm merges
    /// them; each line is attributed to the service (the API gives no task per line).
    pub(crate) async fn swarm_logs(
        &self,
        funko: &str,
        follow: bool,
        tail: Option<u32>,
        out: &mut (dyn FnMut(crate::engine::logs::LogLine) + Send),
    ) -> Result<(), LifecycleError> {
        use futures_util::StreamExt as _;
        let name = service_name(funko);
        if self.service(funko).await?.is_none() {
            return Err(LifecycleError::NotRunning {
                funko: funko.to_string(),
            });
        }
        let options = bollard::query_parameters::LogsOptions {
            follow,
            stdout: true,
            stderr: true,
            tail: tail.map_or_else(|| "all".to_string(), |n| n.to_string()),
            ..Default::default()
        };
        let mut stream = self.docker.service_logs(&name, Some(options));
        let mut pending = String::new();
        while let Some(item) = stream.next().await {
            let output = item.map_err(DockerError::call(format!("read the logs of {name}")))?;
            pending.push_str(&String::from_utf8_lossy(&output.into_bytes()));
            while let Some(end) = pending.find('\n') {
                let line: String = pending.drain(..=end).collect();
                out(crate::engine::logs::LogLine {
                    instance: name.clone(),
                    line: line.trim_end_matches(['\n', '\r']).to_string(),
                });
            }
        }
        if !pending.is_empty() {
            out(crate::engine::logs::LogLine {
                instance: name,
                line: pending,
            });
        }
        Ok(())
    }

    /// `purge` in Swarm mode: the service and the funko's Swarm secrets.
    pub(crate) async fn swarm_purge(
        &self,
        funko: &str,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        if self.service(funko).await?.is_some() {
            let name = service_name(funko);
            self.docker
                .delete_service(&name)
                .await
                .map_err(DockerError::call(format!("remove service {name}")))?;
            report(format!("removed service {name}"));
            // Its task containers (here) must be gone before its images can go.
            let started = Instant::now();
            while self.task_containers(&name).await? > 0
                && started.elapsed() < self.stop_grace + Duration::from_secs(10)
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        for secret in self.funko_secrets(funko).await? {
            let (Some(id), name) = (secret.id, secret.spec.and_then(|s| s.name)) else {
                continue;
            };
            self.docker
                .delete_secret(&id)
                .await
                .map_err(DockerError::call(format!("remove secret {id}")))?;
            report(format!("removed secret {}", name.unwrap_or(id)));
        }
        Ok(())
    }

    /// The (id, name) of every version of one of a funko's Swarm secrets.
    async fn secret_versions(
        &self,
        funko: &str,
        secret: &str,
    ) -> Result<Vec<(String, String)>, LifecycleError> {
        Ok(self
            .funko_secrets(funko)
            .await?
            .iter()
            .filter(|s| {
                s.spec
                    .as_ref()
                    .and_then(|spec| spec.labels.as_ref())
                    .and_then(|l| l.get(SECRET_LABEL))
                    .is_some_and(|f| f == secret)
            })
            .filter_map(|s| Some((s.id.clone()?, s.spec.as_ref()?.name.clone()?)))
            .collect())
    }

    /// Points the funko's service (when it exists) at its current secrets, leaving `without`
    /// out, and waits for the rolling update.
    async fn remount_secrets(&self, funko: &str, without: &[String]) -> Result<(), LifecycleError> {
        let Some(service) = self.service(funko).await? else {
            return Ok(());
        };
        let (_, user) = self.latest_image(funko).await?;
        let mut spec = service.spec.clone().unwrap_or_default();
        let mut refs = self.secret_refs(funko, &user).await?;
        refs.retain(|r| r.secret_id.as_ref().is_none_or(|id| !without.contains(id)));
        if let Some(container) = spec
            .task_template
            .as_mut()
            .and_then(|t| t.container_spec.as_mut())
        {
            container.secrets = Some(refs);
        }
        self.update_service(&service, spec).await?;
        if replicas_of(&service) > 0 {
            self.wait_for_update(funko, replicas_of(&service), &mut |_| {})
                .await?;
        }
        Ok(())
    }

    /// `secret rm` in Swarm mode: the service stops mounting it (a rolling update), then every
    /// version of it is removed.
    pub(crate) async fn swarm_remove_secret(
        &self,
        funko: &str,
        secret: &str,
    ) -> Result<(), LifecycleError> {
        let versions = self.secret_versions(funko, secret).await?;
        if versions.is_empty() {
            return Err(crate::store::secrets::SecretError::NotFound {
                funko: funko.to_string(),
                secret: secret.to_string(),
            }
            .into());
        }
        let ids: Vec<String> = versions.iter().map(|(id, _)| id.clone()).collect();
        self.remount_secrets(funko, &ids).await?;
        for (id, name) in versions {
            self.docker
                .delete_secret(&id)
                .await
                .map_err(DockerError::call(format!("remove secret {name}")))?;
        }
        Ok(())
    }

    /// `secret add` in Swarm mode: a Swarm secret `faaso-<funko>-<secret>` (a value already
    /// stored gets a new secret `faaso-<funko>-<secret>-<unix-seconds>`, since Swarm secrets
    /// cannot change); a running service is updated to mount it (a rolling update) and the
    /// versions it no longer uses are removed.
    pub(crate) async fn swarm_add_secret(
        &self,
        funko: &str,
        secret: &str,
        value: &[u8],
    ) -> Result<(), LifecycleError> {
        use base64::Engine as _;
        let versions = self.secret_versions(funko, secret).await?;
        let mut name = secret_name(funko, secret);
        if versions.iter().any(|(_, n)| *n == name) {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            name = format!("{name}-{now}");
        }
        let spec = SecretSpec {
            name: Some(name.clone()),
            labels: Some(HashMap::from([
                (FUNKO_LABEL.to_string(), funko.to_string()),
                (SECRET_LABEL.to_string(), secret.to_string()),
                (MANAGED_LABEL.to_string(), "true".to_string()),
            ])),
            data: Some(base64::engine::general_purpose::STANDARD.encode(value)),
            ..Default::default()
        };
        self.docker
            .create_secret(spec)
            .await
            .map_err(DockerError::call(format!("create secret {name}")))?;
        self.remount_secrets(funko, &[]).await?;
        // Older versions the service no longer mounts go (one still in use stays).
        for (id, _) in versions {
            let _ = self.docker.delete_secret(&id).await;
        }
        Ok(())
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
    use super::*;

    #[test]
    fn service_names_follow_the_convention() {
        assert_eq!(service_name("hello"), "faaso-hello");
        assert_eq!(funko_of_service("faaso-hello"), Some("hello"));
        assert_eq!(funko_of_service("faaso-proxy"), None);
        assert_eq!(funko_of_service("faaso-Bad"), None);
        assert_eq!(funko_of_service("web"), None);
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

    #[test]
    fn orchestrators_parse_with_a_clear_error() {
        assert_eq!("swarm".parse(), Ok(Orchestrator::Swarm));
        assert_eq!(" docker ".parse(), Ok(Orchestrator::Docker));
        let err = "k8s".parse::<Orchestrator>().unwrap_err();
        assert!(err.contains("\"k8s\"") && err.contains("swarm"), "{err}");
    }
}
