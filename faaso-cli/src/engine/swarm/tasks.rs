//! A funko's tasks: the running replicas as instances (also for the routing table and the
//! UI, in the shape of Docker's container list), waiting for a count of them, their errors and
//! the service's logs.

use std::collections::HashMap;
use std::time::Instant;

use bollard::Docker;
use bollard::models::{
    ContainerSummary, ContainerSummaryNetworkSettings, ContainerSummaryStateEnum, EndpointSettings,
    Service, ServiceSpec, Task, TaskState,
};
use bollard::query_parameters::ListTasksOptions;

use super::*;
use crate::conventions::{FUNKO_LABEL, SUFFIX_LEN, instance_name};
use crate::engine::LifecycleError;
use crate::engine::docker::DockerError;

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
pub(super) fn parse_rfc3339_seconds(text: &str) -> Option<i64> {
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

/// Whether a task runs.
pub fn task_running(task: &Task) -> bool {
    task.status.as_ref().and_then(|s| s.state) == Some(TaskState::RUNNING)
        && task.desired_state == Some(TaskState::RUNNING)
}

impl Swarm<'_> {
    /// The funko's running tasks as the lifecycle's running instances, oldest first.
    pub(super) async fn running_replicas(
        &self,
        funko: &str,
    ) -> Result<Vec<crate::engine::RunningInstance>, LifecycleError> {
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
            // The canary service's tasks are not the funko's serving replicas.
            .filter(|c| crate::conventions::canary(c.labels.as_ref()).is_none())
            .map(|c| crate::engine::RunningInstance {
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

    /// The tasks Swarm wants running of the service `name` (and only of it: the filter
    /// matches names by prefix, so `faaso-x` would take `faaso-x-canary`'s too).
    pub(super) async fn tasks_of_service(&self, name: &str) -> Result<Vec<Task>, LifecycleError> {
        let Some(id) = self.service_id(name).await? else {
            return Ok(Vec::new());
        };
        let mut filters = HashMap::new();
        filters.insert("service".to_string(), vec![id.clone()]);
        filters.insert("desired-state".to_string(), vec!["running".to_string()]);
        let tasks = self
            .docker
            .list_tasks(Some(ListTasksOptions {
                filters: Some(filters),
            }))
            .await
            .map_err(DockerError::call(format!("list tasks of {name}")))?;
        Ok(tasks
            .into_iter()
            .filter(|t| t.service_id.as_deref() == Some(id.as_str()))
            .collect())
    }

    /// A service's id, by its exact name.
    async fn service_id(&self, name: &str) -> Result<Option<String>, LifecycleError> {
        Ok(self.service_named(name).await?.and_then(|s| s.id))
    }

    /// Waits until exactly `count` of the funko's tasks run.
    pub(super) async fn wait_for_tasks(
        &self,
        funko: &str,
        count: usize,
    ) -> Result<(), LifecycleError> {
        self.wait_for_service_tasks(&service_name(funko), count)
            .await
    }

    /// Waits until exactly `count` of the service `name`'s tasks run.
    pub(super) async fn wait_for_service_tasks(
        &self,
        name: &str,
        count: usize,
    ) -> Result<(), LifecycleError> {
        let started = Instant::now();
        loop {
            let tasks = self.tasks_of_service(name).await?;
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
                    instance: name.to_string(),
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

    /// How many containers of a service's tasks this engine still has.
    pub(super) async fn task_containers(&self, service: &str) -> Result<usize, LifecycleError> {
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
    pub(super) async fn last_task_error(&self, funko: &str) -> Option<String> {
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
    pub(super) async fn service_logs(
        &self,
        funko: &str,
        follow: bool,
        tail: Option<u32>,
        out: &mut (dyn FnMut(crate::engine::LogLine) + Send),
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
                out(crate::engine::LogLine {
                    instance: name.clone(),
                    line: line.trim_end_matches(['\n', '\r']).to_string(),
                });
            }
        }
        if !pending.is_empty() {
            out(crate::engine::LogLine {
                instance: name,
                line: pending,
            });
        }
        Ok(())
    }
}
