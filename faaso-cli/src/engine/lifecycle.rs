//! Running funkos: scale (and `up`/`down` on top of it), retire, purge, restoring saved scales,
//! and secrets. The same code serves the CLI's local mode and the gateway's admin API, on one
//! engine or on a Swarm (through [`crate::engine::Orchestrate`]).
//!
//! Every operation that changes a funko's instances holds the funko's lock (see
//! [`crate::store::state`]), so two concurrent runs cannot overshoot. Each reports what it does
//! through a `report` callback, one line at a time.

use crate::conventions::{self, validate_name};
use crate::engine::docker;
use crate::engine::{Lifecycle, LifecycleError, Orchestrate, RunningInstance, short_id};
use crate::store::state::FunkoState;

impl Lifecycle {
    /// The running instances of a funko, oldest first.
    pub async fn running(&self, funko: &str) -> Result<Vec<RunningInstance>, LifecycleError> {
        self.backend().running(funko).await
    }

    /// Sets the number of running instances to `scale`: prunes exited leftovers, starts new
    /// instances (waiting until each is ready, see `Containers::wait_ready`; one that is not is
    /// removed and the scale is not saved) or stops the oldest, and saves the scale.
    pub async fn scale(
        &self,
        funko: &str,
        scale: u32,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        validate_name(funko)?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        self.scale_locked(funko, scale, report).await
    }

    /// [`Lifecycle::scale`] with the funko's lock held.
    async fn scale_locked(
        &self,
        funko: &str,
        scale: u32,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        self.backend().scale(funko, scale, report).await
    }

    /// Stops and removes the named instances of a funko (those still running) and saves the
    /// number left running as its scale. The gateway's scaler calls it for instances it has
    /// taken out of routing and drained, so no request in flight is cut.
    pub async fn retire(
        &self,
        funko: &str,
        names: &[String],
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<u32, LifecycleError> {
        validate_name(funko)?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        let running = self.running(funko).await?;
        let mut left = running.len() as u32;
        for instance in running.iter().filter(|i| names.contains(&i.name)) {
            docker::stop_and_remove(&self.docker, &instance.id, self.stop_seconds()).await?;
            report(format!("stopped {}", instance.name));
            left -= 1;
        }
        self.state.save(funko, FunkoState { scale: left })?;
        Ok(left)
    }

    /// Pauses the named running instances (`scaling.zero: pause`: frozen, memory kept, woken
    /// in milliseconds) and saves the number left running as the funko's scale. Like
    /// [`Lifecycle::retire`], for instances the scaler has drained. One engine only: in Swarm
    /// mode a task cannot be paused, so this stops them as `retire` does.
    pub async fn pause(
        &self,
        funko: &str,
        names: &[String],
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<u32, LifecycleError> {
        if self.orchestrator == crate::engine::Orchestrator::Swarm {
            return self.retire(funko, names, report).await;
        }
        validate_name(funko)?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        let running = self.running(funko).await?;
        let mut left = running.len() as u32;
        for instance in running.iter().filter(|i| names.contains(&i.name)) {
            docker::pause_container(&self.docker, &instance.id).await?;
            report(format!("paused {}", instance.name));
            left -= 1;
        }
        self.state.save(funko, FunkoState { scale: left })?;
        Ok(left)
    }

    /// Thaws one paused instance (by id) for a request that woke its funko, then saves the
    /// number running as the funko's scale. The request goes on as soon as the thaw returns:
    /// the instance was serving when it was paused.
    pub async fn unpause(&self, funko: &str, id: &str) -> Result<(), LifecycleError> {
        validate_name(funko)?;
        docker::unpause_container(&self.docker, id).await?;
        Ok(())
    }

    /// After an [`Lifecycle::unpause`]: the running instances become the saved scale.
    pub async fn save_running(&self, funko: &str) -> Result<u32, LifecycleError> {
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        let running = self.running(funko).await?.len() as u32;
        self.state.save(funko, FunkoState { scale: running })?;
        Ok(running)
    }

    /// Stops and removes the named paused instances (paused longer than `scaling.pause_max`:
    /// their memory is freed; the next request starts a new one).
    pub async fn stop_paused(
        &self,
        funko: &str,
        ids: &[String],
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        validate_name(funko)?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        for id in ids {
            docker::stop_and_remove(&self.docker, id, self.stop_seconds()).await?;
            report(format!("stopped paused instance {}", short_id(id)));
        }
        Ok(())
    }

    /// Keeps one ready container of the funko's newest image (created, not started) for its
    /// next wake; nothing in Swarm mode. Returns whether one was made.
    pub async fn prepare(
        &self,
        funko: &str,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<bool, LifecycleError> {
        if self.orchestrator == crate::engine::Orchestrator::Swarm {
            return Ok(false);
        }
        validate_name(funko)?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        crate::engine::containers::Containers(self)
            .prepare(funko, report)
            .await
    }

    /// Makes sure at least `scale` instances run (default: the saved scale, else 1).
    /// Returns the scale now in effect.
    pub async fn up(
        &self,
        funko: &str,
        scale: Option<u32>,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<u32, LifecycleError> {
        validate_name(funko)?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        let wanted = match scale {
            Some(n) => n,
            None => self.state.load(funko)?.map_or(1, |s| s.scale.max(1)),
        };
        let running = self.running(funko).await?.len() as u32;
        let target = wanted.max(running);
        self.scale_locked(funko, target, report).await?;
        Ok(target)
    }

    /// Raises a running funko to at least `scale` instances (the autoscaler's step up), and
    /// returns the scale now in effect, or `None` when the funko was stopped (saved scale 0
    /// or none) by the time its lock was taken: a `faaso down` that finished while the step
    /// waited is not undone.
    pub async fn grow(
        &self,
        funko: &str,
        scale: u32,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<Option<u32>, LifecycleError> {
        validate_name(funko)?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        if self.state.load(funko)?.is_none_or(|saved| saved.scale == 0) {
            return Ok(None);
        }
        let running = self.running(funko).await?.len() as u32;
        let target = scale.max(running);
        self.scale_locked(funko, target, report).await?;
        Ok(Some(target))
    }

    /// The saved scale (if any) and the number of running instances.
    pub async fn current_scale(&self, funko: &str) -> Result<(Option<u32>, usize), LifecycleError> {
        validate_name(funko)?;
        let saved = self.state.load(funko)?.map(|s| s.scale);
        let running = self.running(funko).await?.len();
        if saved.is_none() && running == 0 && !self.funko_exists(funko).await? {
            return Err(crate::engine::unknown_funko(&self.docker, funko).await);
        }
        Ok((saved, running))
    }

    /// Whether the funko has an image or any container.
    pub async fn funko_exists(&self, funko: &str) -> Result<bool, LifecycleError> {
        Ok(!docker::list_images(&self.docker, funko).await?.is_empty()
            || !docker::list_instances(&self.docker, funko)
                .await?
                .is_empty())
    }

    /// Stops and removes all containers and images of a funko and forgets its scale. Its
    /// secrets are kept.
    pub async fn purge(
        &self,
        funko: &str,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        validate_name(funko)?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        if !self.funko_exists(funko).await? && self.state.load(funko)?.is_none() {
            return Err(crate::engine::unknown_funko(&self.docker, funko).await);
        }
        self.backend().purge(funko, report).await?;
        for container in docker::list_instances(&self.docker, funko).await? {
            if let Some(id) = &container.id {
                docker::stop_and_remove(&self.docker, id, self.stop_seconds()).await?;
                report(format!(
                    "removed container {}",
                    docker::display_name(&container)
                ));
            }
        }
        for image in docker::list_images(&self.docker, funko).await? {
            for tag in &image.repo_tags {
                docker::remove_image(&self.docker, tag).await?;
                report(format!("removed image {tag}"));
            }
        }
        self.state.remove(funko)?;
        report(format!("purged {funko} (its secrets are kept)"));
        Ok(())
    }

    /// Brings a funko that runs fewer instances than its saved scale back to it, and returns
    /// how many ran before, or `None` when nothing was started. The saved scale is read with
    /// the funko's lock held: a `scale` or `down` that held the lock first is never undone
    /// by a reading taken before it finished.
    pub async fn top_up(
        &self,
        funko: &str,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<Option<usize>, LifecycleError> {
        validate_name(funko)?;
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        let Some(saved) = self.state.load(funko)? else {
            return Ok(None);
        };
        let running = self.running(funko).await?.len();
        if saved.scale == 0 || running >= saved.scale as usize {
            return Ok(None);
        }
        self.scale_locked(funko, saved.scale, report).await?;
        Ok(Some(running))
    }

    /// Brings every funko with a saved scale back to it, when its image exists (the gateway
    /// does this at start). Failures are reported and do not stop the others.
    pub async fn restore(
        &self,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        let listing = self.state.all()?;
        for (funko, err) in &listing.unreadable {
            report(format!(
                "{funko}: not restored, its saved state is unreadable: {err}"
            ));
        }
        for (funko, state) in listing.funkos {
            if state.scale == 0 {
                continue;
            }
            let image = conventions::image_latest(&funko);
            if docker::image_inspect(&self.docker, &image).await?.is_none() {
                report(format!("{funko}: not restored, no image {image}"));
                continue;
            }
            if let Err(err) = self.restore_one(&funko, report).await {
                report(format!(
                    "{funko}: restoring scale {} failed: {err}",
                    state.scale
                ));
            }
        }
        Ok(())
    }

    /// [`Lifecycle::restore`] for one funko, its saved scale read again with its lock held.
    async fn restore_one(
        &self,
        funko: &str,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        let _lock = self.state.lock(funko, self.lock_timeout).await?;
        match self.state.load(funko)? {
            Some(saved) if saved.scale > 0 => self.scale_locked(funko, saved.scale, report).await,
            _ => Ok(()),
        }
    }

    /// Adds or replaces a secret so that the funko's user can read it, whoever runs FaaSO (see
    /// [`crate::engine::handover`]): through Docker when the funko's image needs it, else as a
    /// file; in Swarm mode, as a Swarm secret the service mounts.
    pub async fn add_secret(
        &self,
        funko: &str,
        secret: &str,
        value: &[u8],
    ) -> Result<(), LifecycleError> {
        crate::store::secrets::validate_secret_name(secret)?;
        self.backend().add_secret(funko, secret, value).await
    }

    /// Removes one of a funko's secrets (in Swarm mode, the service stops mounting it first).
    pub async fn remove_secret(&self, funko: &str, secret: &str) -> Result<(), LifecycleError> {
        crate::store::secrets::validate_secret_name(secret)?;
        self.backend().remove_secret(funko, secret).await
    }

    /// The names of every funko's secrets, by funko (never their values).
    pub async fn secret_names(&self) -> Result<Vec<(String, Vec<String>)>, LifecycleError> {
        self.backend().secret_names().await
    }
}
