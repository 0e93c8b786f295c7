//! The one place where the `faaso` library talks to the Docker engine.
//!
//! - [`connect`]: connect through `DOCKER_HOST` or the local socket and negotiate the API version
//!   (engines as old as API 1.41 are supported); failures carry a hint.
//! - [`ensure_network`]: create `faaso-net` when it is missing.
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
    BuildImageOptions, CreateContainerOptions, ListContainersOptions, ListImagesOptions,
    LogsOptions, RemoveContainerOptions, RemoveImageOptions, StopContainerOptions, TagImageOptions,
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

/// Creates the bridge network `name` unless it exists. Safe to race with another creator.
pub async fn ensure_network(docker: &Docker, name: &str) -> Result<(), DockerError> {
    if docker.inspect_network(name, None).await.is_ok() {
        return Ok(());
    }
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
    match docker.create_network(request).await {
        Ok(_) => Ok(()),
        // Someone else created it between our inspect and create: that is what we wanted.
        Err(_) if docker.inspect_network(name, None).await.is_ok() => Ok(()),
        Err(source) => Err(DockerError::call(format!("create network {name}"))(source)),
    }
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
}

/// Creates and starts an instance. Returns the container id.
pub async fn create_instance(docker: &Docker, spec: &InstanceSpec) -> Result<String, DockerError> {
    ensure_network(docker, &spec.network).await?;
    let labels = HashMap::from([
        (FUNKO_LABEL.to_string(), spec.funko.clone()),
        (MANAGED_LABEL.to_string(), "true".to_string()),
    ]);
    let body = ContainerCreateBody {
        image: Some(spec.image.clone()),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: Some(spec.network.clone()),
            binds: Some(vec![format!("{}:/secrets:ro", spec.secrets_dir.display())]),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::UNLESS_STOPPED),
                maximum_retry_count: None,
            }),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                spec.network.clone(),
                EndpointSettings::default(),
            )])),
        }),
        ..Default::default()
    };
    let options = CreateContainerOptions {
        name: Some(spec.name.clone()),
        ..Default::default()
    };
    let created = docker
        .create_container(Some(options), body)
        .await
        .map_err(DockerError::call(format!("create container {}", spec.name)))?;
    if let Err(source) = docker.start_container(&created.id, None).await {
        let _ = remove_container(docker, &created.id).await;
        return Err(DockerError::call(format!("start container {}", spec.name))(
            source,
        ));
    }
    Ok(created.id)
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
