//! Docker for tests: the one rule for tests that need an engine, unique names, and cleanup.
//!
//! The rule: under `CI=true` a test that cannot reach Docker fails; elsewhere it is skipped with
//! one printed reason. Use [`require_docker!`](crate::require_docker) at the top of such a test.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use bollard::Docker;
use bollard::models::{ContainerCreateBody, EndpointSettings, HostConfig, NetworkingConfig};
use bollard::query_parameters::{CreateContainerOptions, RemoveContainerOptions};

/// Connects to Docker, or applies the rule: panic under `CI=true`, else print why and skip.
pub async fn docker_or_skip(test: &str) -> Option<Docker> {
    match faaso::engine::docker::connect().await {
        Ok(docker) => Some(docker),
        Err(err) if is_ci() => panic!("{test}: Docker is required under CI=true: {err}"),
        Err(err) => {
            crate::skip::skip(test, &err.to_string());
            None
        }
    }
}

/// Whether we run in CI (`CI=true` or `CI=1`), where skipping a Docker test is a failure.
pub fn is_ci() -> bool {
    matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1"))
}

/// Connects to Docker or returns from the calling test, per [`docker_or_skip`].
#[macro_export]
macro_rules! require_docker {
    () => {
        match $crate::docker::docker_or_skip(module_path!()).await {
            Some(docker) => docker,
            None => return,
        }
    };
}

/// Removes the containers (and images) a test registered, when dropped, even after a panic.
#[derive(Default)]
pub struct Cleanup {
    containers: Mutex<Vec<String>>,
    images: Mutex<Vec<String>>,
    networks: Mutex<Vec<String>>,
    funkos: Mutex<Vec<String>>,
}

impl Cleanup {
    pub fn new() -> Cleanup {
        Cleanup::default()
    }

    /// Registers a container (by name or id) for removal.
    pub fn container(&self, name: impl Into<String>) {
        lock(&self.containers).push(name.into());
    }

    /// Registers an image tag for removal.
    pub fn image(&self, name: impl Into<String>) {
        lock(&self.images).push(name.into());
    }

    /// Registers every instance of a funko for removal, whoever starts them (the gateway's
    /// scaler, say): they are listed when the cleanup runs.
    pub fn funko(&self, name: impl Into<String>) {
        lock(&self.funkos).push(name.into());
    }

    /// Registers a network for removal (after the containers).
    pub fn network(&self, name: impl Into<String>) {
        lock(&self.networks).push(name.into());
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let containers = std::mem::take(&mut *lock(&self.containers));
        let images = std::mem::take(&mut *lock(&self.images));
        let networks = std::mem::take(&mut *lock(&self.networks));
        let funkos = std::mem::take(&mut *lock(&self.funkos));
        if containers.is_empty() && images.is_empty() && networks.is_empty() && funkos.is_empty() {
            return;
        }
        // Drop may run inside a Tokio runtime (or during a panic): use a thread with its own.
        let worker = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let Ok(docker) = faaso::engine::docker::connect().await else {
                    return;
                };
                let mut containers = containers;
                for funko in funkos {
                    let listed = faaso::engine::docker::list_instances(&docker, &funko).await;
                    containers.extend(listed.unwrap_or_default().into_iter().filter_map(|c| c.id));
                }
                for name in containers {
                    let options = RemoveContainerOptions {
                        force: true,
                        ..Default::default()
                    };
                    let _ = docker.remove_container(&name, Some(options)).await;
                }
                for image in images {
                    let options = bollard::query_parameters::RemoveImageOptions {
                        force: true,
                        ..Default::default()
                    };
                    let _ = docker.remove_image(&image, Some(options), None).await;
                }
                for network in networks {
                    let _ = docker.remove_network(&network).await;
                }
            });
        });
        let _ = worker.join();
    }
}

/// Creates and starts a container named `name` from `image` on `network`, registered with
/// `cleanup`. `env` entries are `KEY=value`.
pub async fn run_container(
    docker: &Docker,
    cleanup: &Cleanup,
    name: &str,
    image: &str,
    network: &str,
    env: &[&str],
    labels: &[(&str, &str)],
) -> String {
    // A network given by id is used as it is; a name is made sure of (and resolved to its id).
    let network = match docker
        .inspect_network(
            network,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
    {
        Ok(info) if info.id.as_deref() == Some(network) => network.to_string(),
        _ => faaso::engine::docker::ensure_network(docker, network)
            .await
            .expect("network can be created"),
    };
    let network = network.as_str();
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        env: Some(env.iter().map(|e| e.to_string()).collect()),
        labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        host_config: Some(HostConfig {
            network_mode: Some(network.to_string()),
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.to_string(),
                EndpointSettings::default(),
            )])),
        }),
        ..Default::default()
    };
    let options = CreateContainerOptions {
        name: Some(name.to_string()),
        ..Default::default()
    };
    cleanup.container(name);
    let created = docker
        .create_container(Some(options), body)
        .await
        .unwrap_or_else(|err| panic!("create container {name}: {err}"));
    docker
        .start_container(&created.id, None)
        .await
        .unwrap_or_else(|err| panic!("start container {name}: {err}"));
    created.id
}

/// The container's IP address on `network`, waiting briefly for Docker to assign it.
pub async fn ip_on_network(docker: &Docker, container: &str, network: &str) -> String {
    for _ in 0..50 {
        let info = docker
            .inspect_container(container, None)
            .await
            .unwrap_or_else(|err| panic!("inspect {container}: {err}"));
        let ip = info
            .network_settings
            .and_then(|settings| settings.networks)
            .and_then(|mut networks| networks.remove(network))
            .and_then(|endpoint| endpoint.ip_address)
            .filter(|ip| !ip.is_empty());
        if let Some(ip) = ip {
            return ip;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{container} has no address on {network}");
}

/// Starts an instance of `funko` from the test funko image, named per the convention
/// (`faaso-<funko>-<suffix>`, or exactly `faaso-<funko>` when `bare`), on `faaso-net`.
/// Returns the container name.
pub async fn start_instance(
    docker: &Docker,
    cleanup: &Cleanup,
    funko: &str,
    env: &[&str],
) -> String {
    let image = crate::testfunko::image(docker).await;
    let suffix = faaso::conventions::random_suffix();
    let name = faaso::conventions::instance_name(funko, &suffix);
    run_container(
        docker,
        cleanup,
        &name,
        &image,
        faaso::conventions::NETWORK,
        env,
        &[],
    )
    .await;
    name
}
