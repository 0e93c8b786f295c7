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
//! the same way. Releases are the image's `<unix-seconds>` tags.

use crate::conventions::{self, image_repo, validate_name};
use crate::engine::docker;
use crate::engine::lifecycle::{Lifecycle, LifecycleError};

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

    async fn deploy_locked(
        &self,
        funko: &str,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<Deployed, LifecycleError> {
        if self.orchestrator == crate::engine::swarm::Orchestrator::Swarm {
            return self.swarm_deploy(funko, report).await;
        }
        let (image, user) = self.latest_image(funko).await?;
        let running = self.running(funko).await?;
        if running.is_empty() {
            return Err(LifecycleError::NotRunning {
                funko: funko.to_string(),
            });
        }
        let (current, outdated): (Vec<_>, Vec<_>) =
            running.into_iter().partition(|i| i.image_id == image);
        if outdated.is_empty() {
            report(format!(
                "{funko}: all {} instances run the newest image",
                current.len()
            ));
            return Ok(Deployed {
                replaced: 0,
                current: current.len(),
            });
        }
        report(format!(
            "{funko}: replacing {} instance{} with image {}",
            outdated.len(),
            if outdated.len() == 1 { "" } else { "s" },
            short_id(&image)
        ));
        for (step, old) in outdated.iter().enumerate() {
            let new = self.start_instance(funko, &image, &user).await?;
            report(format!("started {new}, waiting for GET /ping"));
            if let Err(err) = self.wait_ready(&new).await {
                let _ = docker::remove_container(&self.docker, &new).await;
                report(format!(
                    "removed {new}; {} old instance{} kept serving",
                    outdated.len() - step,
                    if outdated.len() - step == 1 { "" } else { "s" }
                ));
                if step == 0 {
                    // Nothing runs the new image: `latest` goes back to what serves.
                    let serving = &outdated[0].image_id;
                    docker::tag_image(&self.docker, serving, &image_repo(funko), "latest").await?;
                    report(format!(
                        "{} is back on image {}, which serves",
                        conventions::image_latest(funko),
                        short_id(serving)
                    ));
                }
                return Err(err);
            }
            docker::stop_and_remove(&self.docker, &old.id, self.stop_seconds()).await?;
            report(format!("replaced {} with {new}", old.name));
        }
        report(format!(
            "{funko}: deployed to {} instances",
            outdated.len() + current.len()
        ));
        Ok(Deployed {
            replaced: outdated.len(),
            current: current.len(),
        })
    }
}

/// What a rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolledBack {
    /// The release now on `latest` (`faaso-<name>:<unix-seconds>`).
    pub release: String,
    /// The deploy that followed; `None` when no instance was running.
    pub deployed: Option<Deployed>,
}

impl RolledBack {
    /// The one-line summary, the same in local and remote mode.
    pub fn summary(&self, funko: &str) -> String {
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
            });
        }
        let deployed = self.deploy_locked(funko, report).await?;
        Ok(RolledBack {
            release,
            deployed: Some(deployed),
        })
    }
}

/// An image id without its `sha256:` prefix, 12 characters.
pub fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}
