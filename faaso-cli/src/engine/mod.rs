//! Running funkos: containers on one Docker engine or services on a Swarm, behind one seam.
//!
//! [`Lifecycle`] holds where and how funkos run; its operations (in [`lifecycle`], [`deploy`],
//! [`logs`], [`status`]) check names and take the funko's lock, then hand the work to the
//! orchestrator through [`Orchestrate`]. [`Lifecycle::backend`] is the one place that looks at
//! [`Orchestrator`]: [`containers`] implements the seam for one engine, [`swarm`] for a Swarm.
//!
//! - [`docker`]: the Docker engine's containers and images (bollard), as FaaSO uses them.
//! - [`lifecycle`]: scale, up, down, retire, purge, restore and secrets.
//! - [`deploy`]: zero-downtime rollout of the newest image, and rollback.
//! - [`canary`]: a canary release beside the serving one, promoted or ended.
//! - [`logs`]: the merged logs of a funko's instances.
//! - [`status`]: funkos, instances and images as data (table or JSON).
//! - [`containers`]: the seam on one engine: containers, readiness, rollout, log readers.
//! - [`swarm`]: the seam on a Swarm: services, tasks and Swarm secrets.
//! - [`releases`]: a funko's release tags, and pruning the old ones.
//! - [`handover`]: secrets handed to the funko's user through Docker (FaaSO not root).
//! - [`probe`]: the `GET /ping` health probe.

pub mod canary;
pub(crate) mod containers;
pub mod deploy;
pub mod docker;
pub mod handover;
pub mod lifecycle;
pub mod logs;
pub mod probe;
pub mod releases;
pub mod status;
pub mod swarm;

use std::time::Duration;

use bollard::Docker;
use bollard::models::ContainerSummary;

use crate::conventions::{self, NETWORK};
use crate::engine::docker::DockerError;
use crate::store::secrets::{SecretError, SecretsDir};
use crate::store::state::{StateDir, StateError};

/// What an operation failed on.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Name(#[from] conventions::InvalidName),
    #[error("funko {funko} has no image {image}; build it first with `faaso build`")]
    NoImage { funko: String, image: String },
    /// `hint` is [`conventions::did_you_mean`]'s suggestion (or empty).
    #[error("funko {funko} does not exist (no image, no containers){hint}")]
    Unknown { funko: String, hint: String },
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
    #[error(
        "funko {funko} already has a canary; `faaso promote {funko}` or `faaso rollback {funko}` ends it"
    )]
    CanaryRuns { funko: String },
    #[error("funko {funko} has no canary (`faaso deploy {funko} --canary 20` starts one)")]
    NoCanary { funko: String },
    #[error(
        "the newest image of {funko} ({image}) already serves: build a new release first, then deploy it as a canary"
    )]
    NothingNew { funko: String, image: String },
    #[error("canary share {percent}: expected a whole percent from 1 to 99")]
    CanaryShare { percent: u32 },
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
    pub orchestrator: Orchestrator,
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

/// What a deploy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployed {
    /// Instances replaced.
    pub replaced: usize,
    /// Instances that already ran the newest image.
    pub current: usize,
}

impl Deployed {
    /// The one-line summary, the same in local and remote mode.
    pub fn summary(&self, funko: &str) -> String {
        format!(
            "{funko}: {} instance{} replaced, {} already current",
            self.replaced,
            if self.replaced == 1 { "" } else { "s" },
            self.current
        )
    }
}

/// One log line of one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub instance: String,
    pub line: String,
}

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

/// Progress lines of an operation, one at a time.
pub type Report<'a> = &'a mut (dyn FnMut(String) + Send);

/// What an orchestrator does for the lifecycle's operations, which have checked the funko's
/// name and hold its lock where they change it.
pub(crate) trait Orchestrate {
    /// The funko's running instances, oldest first.
    async fn running(&self, funko: &str) -> Result<Vec<RunningInstance>, LifecycleError>;
    /// Makes `scale` instances run, waiting until new ones are ready.
    async fn scale(
        &self,
        funko: &str,
        scale: u32,
        report: Report<'_>,
    ) -> Result<(), LifecycleError>;
    /// Rolls the running instances over to the newest image.
    async fn deploy(&self, funko: &str, report: Report<'_>) -> Result<Deployed, LifecycleError>;
    /// Removes what the orchestrator keeps of a funko beyond its containers and images.
    async fn purge(&self, funko: &str, report: Report<'_>) -> Result<(), LifecycleError>;
    /// Passes the log lines of the funko's instances to `out`.
    async fn logs(
        &self,
        funko: &str,
        follow: bool,
        tail: Option<u32>,
        out: &mut (dyn FnMut(LogLine) + Send),
    ) -> Result<(), LifecycleError>;
    /// Every funko instance, as Docker's container summaries (for `status`).
    async fn instances(&self) -> Result<Vec<ContainerSummary>, LifecycleError>;
    /// Adds or replaces a secret where the funko's instances read it.
    async fn add_secret(
        &self,
        funko: &str,
        secret: &str,
        value: &[u8],
    ) -> Result<(), LifecycleError>;
    /// Removes one of a funko's secrets.
    async fn remove_secret(&self, funko: &str, secret: &str) -> Result<(), LifecycleError>;
    /// The names of every funko's secrets, by funko.
    async fn secret_names(&self) -> Result<Vec<(String, Vec<String>)>, LifecycleError>;
}

/// The orchestrator a [`Lifecycle`] runs funkos on.
pub(crate) enum Backend<'a> {
    Containers(containers::Containers<'a>),
    Swarm(swarm::Swarm<'a>),
}

/// Calls the same method on whichever orchestrator it is.
macro_rules! dispatch {
    ($self:ident, $backend:ident => $call:expr) => {
        match $self {
            Backend::Containers($backend) => $call.await,
            Backend::Swarm($backend) => $call.await,
        }
    };
}

impl Orchestrate for Backend<'_> {
    async fn running(&self, funko: &str) -> Result<Vec<RunningInstance>, LifecycleError> {
        dispatch!(self, b => b.running(funko))
    }
    async fn scale(
        &self,
        funko: &str,
        scale: u32,
        report: Report<'_>,
    ) -> Result<(), LifecycleError> {
        dispatch!(self, b => b.scale(funko, scale, report))
    }
    async fn deploy(&self, funko: &str, report: Report<'_>) -> Result<Deployed, LifecycleError> {
        dispatch!(self, b => b.deploy(funko, report))
    }
    async fn purge(&self, funko: &str, report: Report<'_>) -> Result<(), LifecycleError> {
        dispatch!(self, b => b.purge(funko, report))
    }
    async fn logs(
        &self,
        funko: &str,
        follow: bool,
        tail: Option<u32>,
        out: &mut (dyn FnMut(LogLine) + Send),
    ) -> Result<(), LifecycleError> {
        dispatch!(self, b => b.logs(funko, follow, tail, out))
    }
    async fn instances(&self) -> Result<Vec<ContainerSummary>, LifecycleError> {
        dispatch!(self, b => b.instances())
    }
    async fn add_secret(
        &self,
        funko: &str,
        secret: &str,
        value: &[u8],
    ) -> Result<(), LifecycleError> {
        dispatch!(self, b => b.add_secret(funko, secret, value))
    }
    async fn remove_secret(&self, funko: &str, secret: &str) -> Result<(), LifecycleError> {
        dispatch!(self, b => b.remove_secret(funko, secret))
    }
    async fn secret_names(&self) -> Result<Vec<(String, Vec<String>)>, LifecycleError> {
        dispatch!(self, b => b.secret_names())
    }
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
            orchestrator: Orchestrator::Docker,
            registry: None,
        }
    }

    /// The orchestrator's side of the operations: the one place that looks at
    /// [`Lifecycle::orchestrator`].
    pub(crate) fn backend(&self) -> Backend<'_> {
        match self.orchestrator {
            Orchestrator::Docker => Backend::Containers(containers::Containers(self)),
            Orchestrator::Swarm => Backend::Swarm(swarm::Swarm(self)),
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

    /// The short id of `faaso-<funko>:latest`, for summaries (empty if it is gone).
    pub(crate) async fn latest_short(&self, funko: &str) -> String {
        self.latest_image(funko)
            .await
            .map(|(id, _)| short_id(&id).to_string())
            .unwrap_or_default()
    }

    pub(crate) fn stop_seconds(&self) -> i32 {
        i32::try_from(self.stop_grace.as_secs()).unwrap_or(i32::MAX)
    }
}

/// Every funko this engine has an image or a container of.
pub async fn funko_names(docker: &Docker) -> Result<Vec<String>, DockerError> {
    let mut names = std::collections::BTreeSet::new();
    for image in docker::list_all_images(docker).await? {
        for tag in &image.repo_tags {
            if let Some(name) = conventions::funko_of_image(tag) {
                names.insert(name.to_string());
            }
        }
    }
    for container in docker::list_all_instances(docker).await? {
        if let Some(name) = docker::container_name(&container)
            && let Some(instance) = conventions::parse_instance_name(&name)
        {
            names.insert(instance.funko.to_string());
        }
    }
    Ok(names.into_iter().collect())
}

/// The error for a funko that does not exist, naming the nearest existing one when a name is
/// close (`funko helo does not exist (...); did you mean hello?`).
pub async fn unknown_funko(docker: &Docker, funko: &str) -> LifecycleError {
    let known = funko_names(docker).await.unwrap_or_default();
    LifecycleError::Unknown {
        funko: funko.to_string(),
        hint: conventions::did_you_mean(funko, known.iter().map(String::as_str)),
    }
}

/// An image id without its `sha256:` prefix, 12 characters.
pub fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orchestrators_parse_with_a_clear_error() {
        assert_eq!("swarm".parse(), Ok(Orchestrator::Swarm));
        assert_eq!(" docker ".parse(), Ok(Orchestrator::Docker));
        let err = "k8s".parse::<Orchestrator>().unwrap_err();
        assert!(err.contains("\"k8s\"") && err.contains("swarm"), "{err}");
    }
}
