//! The one place where the `faaso` library talks to the Docker engine.
//!
//! - [`connect`]: connect through `DOCKER_HOST` or the local socket and negotiate the API version
//!   (engines as old as API 1.41 are supported); failures carry a hint.
//! - [`ensure_network`]: create `faaso-net` when it is missing.
//! - [`build_image`]: build a tar context into a tagged image, streaming Docker's output.
//! - [`tag_image`]: add a tag to an image.
//!
//! Later operations (build, scale, status, logs) are added here so that every Docker call of the
//! CLI and of the gateway's admin API goes through one module.

use bollard::Docker;
use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::{BuildImageOptions, TagImageOptions};
use futures_util::StreamExt;

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

/// Builds `tar` (an uncompressed build context) as image `tag`, passing Docker's output to
/// `on_output` as it arrives. A failed build is reported through `on_output` as
/// [`BuildOutput::Error`] and returns `Ok`; `Err` means Docker itself could not be used.
pub async fn build_image(
    docker: &Docker,
    tar: Vec<u8>,
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
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(tar.into())));
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
