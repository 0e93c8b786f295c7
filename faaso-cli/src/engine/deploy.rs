//! `faaso deploy`: a zero-downtime rollout of a funko's newest image (`faaso-<name>:latest`).
//!
//! For each instance that runs an older image: start one of the new image, wait until it
//! answers `GET /ping` (up to `ready_timeout`), then stop an old one (SIGTERM; the gateway stops
//! sending it requests on Docker's `kill` event and it finishes those it has). The first new
//! instance is the canary: if it never becomes ready, it is removed and the old instances keep
//! serving untouched, and `:latest` is put back on the image they run, so that the next `up` or
//! `scale` does not start the broken release.
//!
//! `faaso rollback` puts the release before the one that runs back on `:latest` and deploys it
//! the same way; while a canary runs, it ends the canary instead (see
//! [`crate::engine::canary`]). Releases are the image's `<unix-seconds>` tags.

use crate::conventions::{self, image_repo, validate_name};
use crate::engine::canary::{CanaryEnded, CanaryStarted};
use crate::engine::containers::Containers;
use crate::engine::docker;
use crate::engine::swarm::Swarm;
use crate::engine::{
    Deployed, Lifecycle, LifecycleError, Orchestrate, Orchestrator, Report, short_id,
};

impl Lifecycle {
    /// Rolls the funko's instances over to its newest image.
    pub async fn deploy(
        &self,
        funko: &str,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<Deployed, LifecycleError> {
        validate_name(funko)?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        self.deploy_locked(funko, report).await
    }

    /// [`Lifecycle::deploy`] with the funko's lock held.
    async fn deploy_locked(
        &self,
        funko: &str,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<Deployed, LifecycleError> {
        self.backend().deploy(funko, report).await
    }
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// The release now on `latest` (`faaso-<name>:<unix-seconds>`).
    pub release: String,
    /// The deploy that followed; `None` when no instance was running.
    pub deployed: Option<Deployed>,
    /// When a canary ran: the canary ended (and nothing else changed).
    pub canary: Option<crate::engine::canary::CanaryEnded>,
}

impl RolledBack {
    /// The one-line summary, the same in local and remote mode.
    pub fn summary(&self, funko: &str) -> String {
        if let Some(canary) = &self.canary {
            return canary.summary(funko);
        }
        match &self.deployed {
            Some(deployed) => format!(
                "{funko}: rolled back to {}, {}",
                self.release,
                deployed
                    .summary(funko)
                    .trim_start_matches(&format!("{funko}: "))
            ),
            None => format!(
                "{funko}: rolled back to {} (nothing runs; `faaso up {funko}` starts it)",
                self.release
            ),
        }
    }
}

impl Lifecycle {
    /// Puts the release before the one that serves back on `latest` and deploys it.
    pub async fn rollback(
        &self,
        funko: &str,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<RolledBack, LifecycleError> {
        validate_name(funko)?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        if self.has_canary(funko).await? {
            let ended = self.end_canary_locked(funko, report).await?;
            return Ok(RolledBack {
                release: String::new(),
                deployed: None,
                canary: Some(ended),
            });
        }
        let releases = crate::engine::releases::list(&self.docker, funko).await?;
        if releases.is_empty() {
            return Err(LifecycleError::NoImage {
                funko: funko.to_string(),
                image: conventions::image_latest(funko),
            });
        }
        // What serves: the image of the newest running instance, else `latest`.
        let running = self.running(funko).await?;
        let serving = match running.last() {
            Some(instance) => instance.image_id.clone(),
            None => self.latest_image(funko).await?.0,
        };
        let serving_stamp = releases
            .iter()
            .find(|(_, id)| *id == serving)
            .map(|(stamp, _)| *stamp);
        let previous = releases
            .iter()
            .filter(|(stamp, id)| *id != serving && serving_stamp.is_none_or(|s| *stamp < s))
            .max_by_key(|(stamp, _)| *stamp)
            .ok_or_else(|| LifecycleError::NoEarlierRelease {
                funko: funko.to_string(),
            })?;
        let release = format!("{}:{}", image_repo(funko), previous.0);
        docker::tag_image(&self.docker, &previous.1, &image_repo(funko), "latest").await?;
        report(format!(
            "{} is now {release} (image {})",
            conventions::image_latest(funko),
            short_id(&previous.1)
        ));
        if running.is_empty() {
            return Ok(RolledBack {
                release,
                deployed: None,
                canary: None,
            });
        }
        let deployed = self.deploy_locked(funko, report).await?;
        Ok(RolledBack {
            release,
            deployed: Some(deployed),
            canary: None,
        })
    }
}

/// Canary releases (see [`crate::engine::canary`]).
impl Lifecycle {
    /// Starts a canary of the funko's newest image with `percent` of its requests.
    pub async fn deploy_canary(
        &self,
        funko: &str,
        percent: u32,
        sticky: bool,
        report: Report<'_>,
    ) -> Result<CanaryStarted, LifecycleError> {
        validate_name(funko)?;
        let percent = u8::try_from(percent)
            .ok()
            .filter(|p| (1..=99).contains(p))
            .ok_or(LifecycleError::CanaryShare { percent })?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        match self.orchestrator {
            Orchestrator::Docker => {
                Containers(self)
                    .start_canary(funko, percent, sticky, report)
                    .await
            }
            Orchestrator::Swarm => {
                Swarm(self)
                    .start_canary(funko, percent, sticky, report)
                    .await
            }
        }
    }

    /// Makes the canary's image the one that serves, then stops the canary instances.
    pub async fn promote(
        &self,
        funko: &str,
        report: Report<'_>,
    ) -> Result<CanaryEnded, LifecycleError> {
        validate_name(funko)?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        match self.orchestrator {
            Orchestrator::Docker => Containers(self).promote(funko, report).await,
            Orchestrator::Swarm => Swarm(self).promote(funko, report).await,
        }
    }

    /// Whether the funko has canary instances.
    pub async fn has_canary(&self, funko: &str) -> Result<bool, LifecycleError> {
        match self.orchestrator {
            Orchestrator::Swarm => Swarm(self).has_canary_service(funko).await,
            Orchestrator::Docker => Ok(!Containers(self).canaries(funko).await?.is_empty()),
        }
    }

    /// Ends a canary: its instances stop, the serving release stays (the lock is the
    /// caller's).
    pub(crate) async fn end_canary_locked(
        &self,
        funko: &str,
        report: Report<'_>,
    ) -> Result<CanaryEnded, LifecycleError> {
        match self.orchestrator {
            Orchestrator::Docker => Containers(self).end_canary(funko, report).await,
            Orchestrator::Swarm => Swarm(self).end_canary(funko, report).await,
        }
    }
}

/// One of the operations that change which release serves a funko, for callers that run them
/// all the same way (the CLI's local mode, the admin API): each ends with a one-line summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rollout {
    /// [`Lifecycle::deploy`].
    Deploy,
    /// [`Lifecycle::deploy_canary`] with `percent` of the requests.
    Canary { percent: u32, sticky: bool },
    /// [`Lifecycle::promote`].
    Promote,
    /// [`Lifecycle::rollback`].
    Rollback,
}

impl Lifecycle {
    /// Runs `rollout` on the funko; returns its one-line summary.
    pub async fn roll_out(
        &self,
        funko: &str,
        rollout: Rollout,
        report: Report<'_>,
    ) -> Result<String, LifecycleError> {
        Ok(match rollout {
            Rollout::Deploy => self.deploy(funko, report).await?.summary(funko),
            Rollout::Canary { percent, sticky } => self
                .deploy_canary(funko, percent, sticky, report)
                .await?
                .summary(funko),
            Rollout::Promote => self.promote(funko, report).await?.summary(funko),
            Rollout::Rollback => self.rollback(funko, report).await?.summary(funko),
        })
    }
}
