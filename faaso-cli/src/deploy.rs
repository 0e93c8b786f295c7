//! `faaso deploy`: a zero-downtime rollout of a funko's newest image (`faaso-<name>:latest`).
//!
//! For each instance that runs an older image: start one of the new image, wait until it
//! answers `GET /ping` (up to `ready_timeout`), then stop an old one (SIGTERM; the gateway stops
//! sending it requests on Docker's `kill` event and it finishes those it has). The first new
//! instance is the canary: if it never becomes ready, it is removed and the old instances keep
//! serving untouched.

use crate::conventions::validate_name;
use crate::docker;
use crate::lifecycle::{Lifecycle, LifecycleError};

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
            if let Err(err) = self.wait_ready(&new, true).await {
                let _ = docker::remove_container(&self.docker, &new).await;
                report(format!(
                    "removed {new}; {} old instance{} kept serving",
                    outdated.len() - step,
                    if outdated.len() - step == 1 { "" } else { "s" }
                ));
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

/// An image id without its `sha256:` prefix, 12 characters.
pub fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    &id[..id.len().min(12)]
}
