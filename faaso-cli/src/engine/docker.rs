//! The one place where the `faaso` library talks to the Docker engine.
//!
//! - [`connect`]: connect through `DOCKER_HOST` or the local socket and negotiate the API version
//!   (engines as old as API 1.41 are supported); failures carry a hint.
//! - [`ensure_network`]: exactly one `faaso-net`: created when missing, duplicates repaired.
//! - [`build_image`]: build a tar context into a tagged image, streaming Docker's output.
//! - [`tag_image`]: add a tag to an image.
//! - Instances: [`list_instances`], [`create_instance`], [`stop_and_remove`], [`remove_container`],
//!   [`inspect_state`], [`container_logs`], [`instance_starts`].
//! - Images: [`image_inspect`], [`list_images`], [`remove_image`].
//!
//! Later operations (build, scale, status, logs) are added here so that every Docker call of the
//! CLI and of the gateway's admin API goes through one module.

use std::collections::HashMap;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, EndpointSettings, HostConfig, ImageInspect,
    ImageSummary, NetworkCreateRequest, NetworkingConfig, RestartPolicy, RestartPolicyNameEnum,
};
use bollard::query_parameters::{
    BuildImageOptions, CreateContainerOptions, InspectNetworkOptions, ListContainersOptions,
    ListImagesOptions, ListNetworksOptions, LogsOptions, RemoveContainerOptions,
    RemoveImageOptions, StopContainerOptions, TagImageOptions,
};
use futures_util::{Stream, StreamExt};

use crate::conventions::{self, FUNKO_LABEL, MANAGED_LABEL, parse_instance_name};

/// Docker's health of a container (from its image's `HEALTHCHECK`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    pub fn as_str(&self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// Docker's health from the status text of a container list (`Up 5 minutes (healthy)`; the
/// structured field is missing from older engines); `None` without a health check.
pub fn health_of_status(status: &str) -> Option<Health> {
    if status.ends_with("(healthy)") {
        Some(Health::Healthy)
    } else if status.ends_with("(unhealthy)") {
        Some(Health::Unhealthy)
    } else if status.ends_with("(health: starting)") {
        Some(Health::Starting)
    } else {
        None
    }
}

/// A Docker operation that failed, with what we were doing and a hint for the user.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    #[error(
        "cannot reach the Docker engine at {host}: {source} (is the engine running? DOCKER_HOST={host_env})"
    )]
    Unreachable {
        host: String,
        host_env: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("Docker failed to {action}: {source}")]
    Call {
        action: String,
        #[source]
        source: bollard::errors::Error,
    },
    #[error("{0}")]
    Gone(String),
}

impl DockerError {
    /// Wraps a bollard error with the action that failed, for example "create network faaso-net".
    pub fn call(action: impl Into<String>) -> impl FnOnce(bollard::errors::Error) -> Self {
        let action = action.into();
        move |source| DockerError::Call { action, source }
    }
}

/// Where the engine is expected: `DOCKER_HOST`, or the default local socket.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST").unwrap_or_else(|_| "unix:///var/run/docker.sock".to_string())
}

/// Connects to the engine and negotiates the API version with it.
///
/// The connection is checked (a `/version` round trip), so an engine that is not running is
/// reported here with a hint rather than on the first real call.
pub async fn connect() -> Result<Docker, DockerError> {
    connect_to(None).await
}

/// Like [`connect`], to an explicit engine address (`unix:///path`, `tcp://host:port`) when
/// one is given.
pub async fn connect_to(host: Option<&str>) -> Result<Docker, DockerError> {
    let host = host.map_or_else(docker_host, str::to_string);
    let unreachable = |source| DockerError::Unreachable {
        host: host.clone(),
        host_env: std::env::var("DOCKER_HOST").unwrap_or_else(|_| "(unset)".to_string()),
        source,
    };
    let docker = Docker::connect_with_host(&host).map_err(unreachable)?;
    docker.negotiate_version().await.map_err(unreachable)
}

/// Makes sure there is exactly one network named `name` and returns its id: creates the bridge
/// network when there is none, and repairs duplicates. Safe to race with other creators.
///
/// Docker before 25 keeps two networks with the same name when two creators race (it refuses
/// only when asked with `CheckDuplicate`, which the API models no longer have), and from then on
/// every use of the name fails as ambiguous. So after creating, the networks of that name are
/// listed again and every creator keeps the same one: the one with containers attached, else the
/// oldest (then the smallest id); the others, when empty, are removed. A creation that started
/// earlier can become visible later, so a creator lists again, 100 ms apart, until two lists agree.
/// Callers attach containers by the returned id, so a duplicate made meanwhile by someone else
/// cannot make them fail, and they look again when that id was removed by a racing creator.
pub async fn ensure_network(docker: &Docker, name: &str) -> Result<String, DockerError> {
    // A network whose creation started before ours can show up in the list only after we looked,
    // so whoever created or removed a network looks again until two lists agree.
    let mut settling = false;
    let mut last_keep: Option<String> = None;
    for _ in 0..20 {
        let networks = networks_named(docker, name).await?;
        if networks.is_empty() {
            let request = NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".to_string()),
                labels: Some(
                    [(
                        crate::conventions::MANAGED_LABEL.to_string(),
                        "true".to_string(),
                    )]
                    .into(),
                ),
                ..Default::default()
            };
            let created = docker.create_network(request).await;
            if let Err(source) = created
                && networks_named(docker, name).await?.is_empty()
            {
                return Err(DockerError::call(format!("create network {name}"))(source));
            }
            settling = true;
            continue;
        }
        let keep = keeper(&networks)
            .map(|n| n.id.clone())
            .ok_or_else(|| DockerError::Gone(format!("network {name} vanished")))?;
        let stable = networks.len() == 1 && (!settling || last_keep.as_deref() == Some(&keep));
        if stable {
            return Ok(keep);
        }
        for network in networks
            .iter()
            .filter(|n| n.id != keep && n.containers == 0)
        {
            // Gone already, or someone attached a container meanwhile (then it stays): either way
            // there is nothing more to do with it.
            let _ = docker.remove_network(&network.id).await;
        }
        if networks.iter().any(|n| n.id != keep && n.containers > 0) {
            // Duplicates in use stay; every creator still picks the same keeper among them.
            if last_keep.as_deref() == Some(&keep) {
                return Ok(keep);
            }
        }
        settling = true;
        last_keep = Some(keep);
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    last_keep.ok_or_else(|| DockerError::Gone(format!("network {name} did not settle")))
}

/// A network as [`ensure_network`] judges duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedNetwork {
    pub id: String,
    /// Docker's creation time (RFC 3339, which sorts as text within one engine).
    pub created: String,
    pub containers: usize,
}

/// The network every creator keeps among duplicates: containers attached first, then the
/// oldest, then the smallest id.
pub fn keeper(networks: &[NamedNetwork]) -> Option<&NamedNetwork> {
    networks.iter().min_by(|a, b| {
        (b.containers > 0)
            .cmp(&(a.containers > 0))
            .then_with(|| a.created.cmp(&b.created))
            .then_with(|| a.id.cmp(&b.id))
    })
}

/// The networks whose name is exactly `name` (Docker's name filter matches parts of names).
async fn networks_named(docker: &Docker, name: &str) -> Result<Vec<NamedNetwork>, DockerError> {
    let options = ListNetworksOptions {
        filters: Some(HashMap::from([(
            "name".to_string(),
            vec![name.to_string()],
        )])),
    };
    let listed = docker
        .list_networks(Some(options))
        .await
        .map_err(DockerError::call(format!("list networks named {name}")))?;
    let mut networks = Vec::new();
    for network in listed
        .into_iter()
        .filter(|n| n.name.as_deref() == Some(name))
    {
        let Some(id) = network.id else { continue };
        // The list leaves containers out; inspecting by id tells them.
        let info = match docker
            .inspect_network(&id, None::<InspectNetworkOptions>)
            .await
        {
            Ok(info) => info,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => continue,
            Err(source) => {
                return Err(DockerError::call(format!("inspect network {id}"))(source));
            }
        };
        networks.push(NamedNetwork {
            id,
            created: info.created.unwrap_or_default(),
            containers: info.containers.map_or(0, |c| c.len()),
        });
    }
    Ok(networks)
}

/// One piece of Docker's build output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildOutput {
    /// A line of the build log.
    Line(String),
    /// The build failed with this message.
    Error(String),
    /// The built image's id.
    ImageId(String),
}

/// A build context for the engine: an uncompressed tar in memory, or a stream of its chunks.
pub enum ContextBody {
    Tar(Vec<u8>),
    Stream(std::pin::Pin<Box<dyn Stream<Item = std::io::Result<bytes::Bytes>> + Send>>),
}

/// Builds a context as image `tag`, passing Docker's output to `on_output` as it arrives. A
/// failed build is reported through `on_output` as [`BuildOutput::Error`] and returns `Ok`;
/// `Err` means Docker itself could not be used.
pub async fn build_image(
    docker: &Docker,
    context: ContextBody,
    tag: &str,
    no_cache: bool,
    mut on_output: impl FnMut(BuildOutput),
) -> Result<(), DockerError> {
    let options = BuildImageOptions {
        t: Some(tag.to_string()),
        nocache: no_cache,
        rm: true,
        forcerm: true,
        ..Default::default()
    };
    let body = match context {
        ContextBody::Tar(tar) => bollard::body_full(tar.into()),
        ContextBody::Stream(stream) => bollard::body_try_stream(stream),
    };
    let mut stream = docker.build_image(options, None, Some(body));
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => {
                if let Some(detail) = info.error_detail {
                    on_output(BuildOutput::Error(detail.message.unwrap_or_default()));
                }
                if let Some(text) = info.stream {
                    for line in text.lines().filter(|l| !l.trim().is_empty()) {
                        on_output(BuildOutput::Line(line.to_string()));
                    }
                }
                if let Some(id) = info.aux.and_then(|image| image.id) {
                    on_output(BuildOutput::ImageId(id));
                }
            }
            Err(bollard::errors::Error::DockerStreamError { error }) => {
                on_output(BuildOutput::Error(error));
            }
            Err(source) => return Err(DockerError::call(format!("build {tag}"))(source)),
        }
    }
    Ok(())
}

/// Tags `image` as `repo:tag`.
pub async fn tag_image(
    docker: &Docker,
    image: &str,
    repo: &str,
    tag: &str,
) -> Result<(), DockerError> {
    let options = TagImageOptions {
        repo: Some(repo.to_string()),
        tag: Some(tag.to_string()),
    };
    docker
        .tag_image(image, Some(options))
        .await
        .map_err(DockerError::call(format!("tag {image} as {repo}:{tag}")))
}

/// Every container (running or not) that is an instance of `funko` by name.
pub async fn list_instances(
    docker: &Docker,
    funko: &str,
) -> Result<Vec<ContainerSummary>, DockerError> {
    list_instances_where(docker, &conventions::image_repo(funko), |f| f == funko).await
}

/// Every container that follows the instance convention, of any funko.
pub async fn list_all_instances(docker: &Docker) -> Result<Vec<ContainerSummary>, DockerError> {
    list_instances_where(docker, conventions::PREFIX, |_| true).await
}

/// Containers whose name contains `name_filter` (Docker's filter) and parses as an instance
/// of a funko accepted by `funko`.
async fn list_instances_where(
    docker: &Docker,
    name_filter: &str,
    funko: impl Fn(&str) -> bool,
) -> Result<Vec<ContainerSummary>, DockerError> {
    let options = ListContainersOptions {
        all: true,
        filters: Some(HashMap::from([(
            "name".to_string(),
            vec![name_filter.to_string()],
        )])),
        ..Default::default()
    };
    let containers = docker
        .list_containers(Some(options))
        .await
        .map_err(DockerError::call(format!(
            "list containers named {name_filter}*"
        )))?;
    Ok(containers
        .into_iter()
        .filter(|c| {
            c.names
                .as_ref()
                .and_then(|names| names.first())
                .and_then(|name| parse_instance_name(name))
                .is_some_and(|parsed| funko(parsed.funko))
        })
        .collect())
}

/// What a new instance is made of.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub funko: String,
    /// The container name, `faaso-<funko>-<suffix>`.
    pub name: String,
    /// The image to run (an id or a tag).
    pub image: String,
    pub network: String,
    /// Host folder mounted read-only at `/secrets`.
    pub secrets_dir: std::path::PathBuf,
    /// Labels besides FaaSO's own (a canary's share).
    pub labels: Vec<(String, String)>,
}

/// Freezes a running container (`docker pause`): its memory stays, its processes stop.
pub async fn pause_container(docker: &Docker, container: &str) -> Result<(), DockerError> {
    docker
        .pause_container(container)
        .await
        .map_err(DockerError::call(format!("pause container {container}")))
}

/// Thaws a paused container (`docker unpause`); one already running is left as it is.
pub async fn unpause_container(docker: &Docker, container: &str) -> Result<(), DockerError> {
    match docker.unpause_container(container).await {
        Ok(())
        // Not paused (already running): nothing to do.
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) => Ok(()),
        Err(source) => Err(DockerError::call(format!("unpause container {container}"))(source)),
    }
}

/// Creates and starts an instance. Returns the container id.
pub async fn create_instance(docker: &Docker, spec: &InstanceSpec) -> Result<String, DockerError> {
    let id = create_only(docker, spec).await?;
    start_created(docker, &id, spec).await?;
    Ok(id)
}

/// Creates an instance without starting it: a ready container (see
/// [`crate::conventions::READY_LABEL`]) that a wake starts, skipping the create.
pub async fn create_only(docker: &Docker, spec: &InstanceSpec) -> Result<String, DockerError> {
    let network = ensure_network(docker, &spec.network).await?;
    let mut labels = HashMap::from([
        (FUNKO_LABEL.to_string(), spec.funko.clone()),
        (MANAGED_LABEL.to_string(), "true".to_string()),
    ]);
    labels.extend(spec.labels.iter().cloned());
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some(network.clone()),
            binds: Some(vec![format!("{}:/secrets:ro", spec.secrets_dir.display())]),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(network, EndpointSettings::default())])),
        }),
        ..Default::default()
    };
    let options = CreateContainerOptions {
        name: Some(spec.name.clone()),
        ..Default::default()
    };
    let created = match docker
        .create_container(Some(options.clone()), body.clone())
        .await
    {
        // The network we were given was a duplicate that a racing creator removed: look again.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            message,
        }) if message.contains("network") => {
            let network = ensure_network(docker, &spec.network).await?;
            let mut body = body;
            if let Some(host_config) = body.host_config.as_mut() {
                host_config.network_mode = Some(network.clone());
            }
            body.networking_config = Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(network, EndpointSettings::default())])),
            });
            docker.create_container(Some(options), body).await
        }
        other => other,
    }
    .map_err(DockerError::call(format!("create container {}", spec.name)))?;
    Ok(created.id)
}

/// Starts a created instance; one that cannot start is removed.
pub async fn start_created(
    docker: &Docker,
    id: &str,
    spec: &InstanceSpec,
) -> Result<(), DockerError> {
    // A duplicate of the network made by a racing creator after our check makes the start fail
    // as ambiguous until it is repaired: repair it and start again.
    let mut attempts = 0;
    while let Err(source) = docker.start_container(id, None).await {
        attempts += 1;
        if attempts < 5 && source.to_string().contains("is ambiguous") {
            ensure_network(docker, &spec.network).await?;
            continue;
        }
        let _ = remove_container(docker, id).await;
        return Err(DockerError::call(format!("start container {}", spec.name))(
            source,
        ));
    }
    Ok(())
}

/// Stops a container with SIGTERM, waiting up to `grace_seconds` before SIGKILL, then removes it.
pub async fn stop_and_remove(
    docker: &Docker,
    container: &str,
    grace_seconds: i32,
) -> Result<(), DockerError> {
    let options = StopContainerOptions {
        t: Some(grace_seconds),
        ..Default::default()
    };
    match docker.stop_container(container, Some(options)).await {
        Ok(()) => {}
        // Already stopped (304) or gone (404): removing is all that is left.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 304 | 404,
            ..
        }) => {}
        Err(source) => {
            return Err(DockerError::call(format!("stop container {container}"))(
                source,
            ));
        }
    }
    remove_container(docker, container).await
}

/// Removes a container, forcing it when it still runs. A container already gone is fine.
pub async fn remove_container(docker: &Docker, container: &str) -> Result<(), DockerError> {
    let options = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    match docker.remove_container(container, Some(options)).await {
        Ok(())
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(source) => Err(DockerError::call(format!("remove container {container}"))(
            source,
        )),
    }
}

/// A container's state as `inspect` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerState {
    /// `running`, `exited`, ...
    pub status: String,
    /// Docker's health (`healthy`, `unhealthy`, `starting`), if the image has a health check.
    pub health: Option<String>,
    /// The address on `network`.
    pub ip: Option<String>,
    /// The port it listens on (its `faaso.port` label, else 3000).
    pub port: u16,
    pub exit_code: Option<i64>,
    /// How often Docker restarted it (its restart policy after it exited).
    pub restart_count: i64,
    /// Whether it answers `GET /ping` (not labelled `faaso.healthcheck=off`).
    pub active_checks: bool,
}

/// Inspects a container's state; `None` when it does not exist.
pub async fn inspect_state(
    docker: &Docker,
    container: &str,
    network: &str,
) -> Result<Option<ContainerState>, DockerError> {
    let info = match docker.inspect_container(container, None).await {
        Ok(info) => info,
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => return Ok(None),
        Err(source) => {
            return Err(DockerError::call(format!("inspect container {container}"))(
                source,
            ));
        }
    };
    let state = info.state.unwrap_or_default();
    let labels = info.config.as_ref().and_then(|c| c.labels.as_ref());
    let port = conventions::instance_port(labels);
    let active_checks = conventions::active_checks(labels);
    let ip = info
        .network_settings
        .and_then(|settings| settings.networks)
        .and_then(|mut networks| networks.remove(network))
        .and_then(|endpoint| endpoint.ip_address)
        .filter(|ip| !ip.is_empty());
    Ok(Some(ContainerState {
        status: state.status.map(|s| s.to_string()).unwrap_or_default(),
        health: state
            .health
            .and_then(|h| h.status)
            .map(|s| s.to_string())
            .filter(|s| !s.is_empty() && s != "none"),
        ip,
        port,
        exit_code: state.exit_code,
        restart_count: info.restart_count.unwrap_or_default(),
        active_checks,
    }))
}

/// Inspects an image; `None` when there is no such image.
pub async fn image_inspect(
    docker: &Docker,
    image: &str,
) -> Result<Option<ImageInspect>, DockerError> {
    match docker.inspect_image(image).await {
        Ok(info) => Ok(Some(info)),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(source) => Err(DockerError::call(format!("inspect image {image}"))(source)),
    }
}

/// The images of `funko` (repository `faaso-<funko>`, any tag).
pub async fn list_images(docker: &Docker, funko: &str) -> Result<Vec<ImageSummary>, DockerError> {
    let options = ListImagesOptions {
        filters: Some(HashMap::from([(
            "reference".to_string(),
            vec![conventions::image_repo(funko)],
        )])),
        ..Default::default()
    };
    docker
        .list_images(Some(options))
        .await
        .map_err(DockerError::call(format!("list the images of {funko}")))
}

/// Every `faaso-*` image.
pub async fn list_all_images(docker: &Docker) -> Result<Vec<ImageSummary>, DockerError> {
    let options = ListImagesOptions {
        filters: Some(HashMap::from([(
            "reference".to_string(),
            vec![format!("{}*", conventions::PREFIX)],
        )])),
        ..Default::default()
    };
    docker
        .list_images(Some(options))
        .await
        .map_err(DockerError::call("list images"))
}

/// Removes an image (by tag or id).
pub async fn remove_image(docker: &Docker, image: &str) -> Result<(), DockerError> {
    let options = RemoveImageOptions {
        force: true,
        ..Default::default()
    };
    match docker.remove_image(image, Some(options), None).await {
        Ok(_)
        | Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(source) => Err(DockerError::call(format!("remove image {image}"))(source)),
    }
}

/// A container's log output (stdout and stderr) in chunks, following when asked; `tail` as
/// Docker takes it (`all` or a number); with `timestamps`, each line starts with its RFC 3339
/// time and a space.
pub fn container_logs(
    docker: &Docker,
    container: &str,
    follow: bool,
    tail: &str,
    timestamps: bool,
) -> impl Stream<Item = Result<String, DockerError>> + use<> {
    let options = LogsOptions {
        follow,
        stdout: true,
        stderr: true,
        tail: tail.to_string(),
        timestamps,
        ..Default::default()
    };
    let name = container.to_string();
    docker
        .logs(container, Some(options))
        .map(move |item| match item {
            Ok(
                LogOutput::StdOut { message }
                | LogOutput::StdErr { message }
                | LogOutput::Console { message }
                | LogOutput::StdIn { message },
            ) => Ok(String::from_utf8_lossy(&message).into_owned()),
            Err(source) => Err(DockerError::call(format!("read the logs of {name}"))(
                source,
            )),
        })
}

/// Names of containers of `funko` as they start (Docker's event stream), for following logs.
pub fn instance_starts(
    docker: &Docker,
    funko: &str,
) -> impl Stream<Item = Result<String, DockerError>> + use<> {
    let options = bollard::query_parameters::EventsOptions {
        filters: Some(HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("event".to_string(), vec!["start".to_string()]),
        ])),
        ..Default::default()
    };
    let funko = funko.to_string();
    docker.events(Some(options)).filter_map(move |event| {
        let result = match event {
            Ok(event) => event
                .actor
                .and_then(|a| a.attributes)
                .and_then(|mut attrs| attrs.remove("name"))
                .filter(|name| parse_instance_name(name).is_some_and(|p| p.funko == funko))
                .map(Ok),
            Err(source) => Some(Err(DockerError::call("follow Docker events")(source))),
        };
        std::future::ready(result)
    })
}

/// A container's name as Docker lists it, without the leading `/`.
pub fn container_name(container: &ContainerSummary) -> Option<String> {
    container
        .names
        .as_ref()
        .and_then(|names| names.first())
        .map(|name| name.trim_start_matches('/').to_string())
}

/// A container's name, else its id, for messages.
pub fn display_name(container: &ContainerSummary) -> String {
    container_name(container)
        .or_else(|| container.id.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_creator_keeps_the_same_network() {
        let net = |id: &str, created: &str, containers| NamedNetwork {
            id: id.into(),
            created: created.into(),
            containers,
        };
        let empty_old = net("b", "2026-01-01T00:00:00.1Z", 0);
        let empty_new = net("a", "2026-01-01T00:00:00.2Z", 0);
        let used_new = net("c", "2026-01-01T00:00:00.3Z", 2);
        let both = [empty_new.clone(), empty_old.clone()];
        assert_eq!(keeper(&both), Some(&empty_old));
        let both = [empty_old.clone(), empty_new.clone()];
        assert_eq!(keeper(&both), Some(&empty_old));
        let three = [empty_old.clone(), used_new.clone(), empty_new];
        assert_eq!(keeper(&three), Some(&used_new), "the one with containers");
        let twin = net("a", "2026-01-01T00:00:00.1Z", 0);
        let twins = [empty_old, twin.clone()];
        assert_eq!(keeper(&twins), Some(&twin), "same time: smallest id");
        assert_eq!(keeper(&[]), None);
    }
}
