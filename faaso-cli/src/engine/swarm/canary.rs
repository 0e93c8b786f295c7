//! Canary releases in Swarm mode (see [`crate::engine::canary`]): the canary is a second
//! service, `faaso-<name>-canary`, on the same overlay network, whose containers carry
//! `faaso.canary=<percent>`; the gateway routes its tasks as the funko's canary instances, the
//! same way as on one engine. `promote` is a rolling update of the funko's service to the
//! canary's image, then the canary service's removal; `rollback` removes the canary service.

use std::time::{Duration, Instant};

use super::*;
use crate::conventions::{CANARY_LABEL, CANARY_STICKY_LABEL, image_repo};
use crate::engine::canary::{CANARY_TAG, CanaryEnded, CanaryStarted};

/// The canary service of a funko: `faaso-<name>-canary`.
pub fn canary_service_name(funko: &str) -> String {
    format!("{PREFIX}{funko}{CANARY_SUFFIX}")
}

/// What a canary service's name ends with.
pub const CANARY_SUFFIX: &str = "-canary";

impl Swarm<'_> {
    /// The funko's canary service, if it exists.
    async fn canary_service(&self, funko: &str) -> Result<Option<Service>, LifecycleError> {
        self.service_named(&canary_service_name(funko)).await
    }

    pub(crate) async fn has_canary_service(&self, funko: &str) -> Result<bool, LifecycleError> {
        Ok(self.canary_service(funko).await?.is_some())
    }

    pub(crate) async fn start_canary(
        &self,
        funko: &str,
        percent: u8,
        sticky: bool,
        report: Report<'_>,
    ) -> Result<CanaryStarted, LifecycleError> {
        if self.canary_service(funko).await?.is_some() {
            return Err(LifecycleError::CanaryRuns {
                funko: funko.to_string(),
            });
        }
        let (image_id, user) = self.latest_image(funko).await?;
        let Some(service) = self.service(funko).await?.filter(|s| replicas_of(s) > 0) else {
            return Err(LifecycleError::NotRunning {
                funko: funko.to_string(),
            });
        };
        let serving = service_image_of(&service);
        let tags = docker::image_inspect(&self.docker, &image_id)
            .await?
            .and_then(|i| i.repo_tags)
            .unwrap_or_default();
        if serving == service_image(self.registry.as_deref(), funko, &image_id, &tags) {
            return Err(LifecycleError::NothingNew {
                funko: funko.to_string(),
                image: short_id(&image_id).to_string(),
            });
        }
        let count = (replicas_of(&service) * usize::from(percent))
            .div_ceil(100)
            .max(1);
        let image = self.publish_image(funko, &image_id, report).await?;
        let mut spec = self
            .service_spec(funko, &image_id, &image, &user, count as u32)
            .await?;
        let name = canary_service_name(funko);
        spec.name = Some(name.clone());
        if let Some(labels) = spec
            .task_template
            .as_mut()
            .and_then(|t| t.container_spec.as_mut())
            .and_then(|c| c.labels.as_mut())
        {
            labels.insert(CANARY_LABEL.to_string(), percent.to_string());
            if sticky {
                labels.insert(CANARY_STICKY_LABEL.to_string(), "true".to_string());
            }
        }
        let repo = image_repo(funko);
        docker::tag_image(&self.docker, &image_id, &repo, CANARY_TAG).await?;
        docker::tag_image(&self.docker, &serving, &repo, "latest").await?;
        self.docker
            .create_service(spec, None)
            .await
            .map_err(DockerError::call(format!("create service {name}")))?;
        report(format!(
            "created service {name} with {count} replica{} of image {}",
            if count == 1 { "" } else { "s" },
            short_id(&image_id)
        ));
        if let Err(err) = self.wait_for_service_tasks(&name, count).await {
            let _ = self.remove_canary_service(funko, report).await;
            docker::tag_image(&self.docker, &image_id, &repo, "latest").await?;
            return Err(err);
        }
        Ok(CanaryStarted {
            percent,
            sticky,
            instances: vec![name; count],
            image: short_id(&image_id).to_string(),
        })
    }

    pub(crate) async fn promote(
        &self,
        funko: &str,
        report: Report<'_>,
    ) -> Result<CanaryEnded, LifecycleError> {
        let Some(canary) = self.canary_service(funko).await? else {
            return Err(LifecycleError::NoCanary {
                funko: funko.to_string(),
            });
        };
        let canary_image = service_image_of(&canary);
        let repo = image_repo(funko);
        docker::tag_image(&self.docker, &canary_image, &repo, "latest").await?;
        let deployed = self.update_image(funko, report).await?;
        let stopped = replicas_of(&canary);
        self.remove_canary_service(funko, report).await?;
        Ok(CanaryEnded {
            promoted: true,
            replaced: deployed.replaced,
            stopped,
            image: self.latest_short(funko).await,
        })
    }

    pub(crate) async fn end_canary(
        &self,
        funko: &str,
        report: Report<'_>,
    ) -> Result<CanaryEnded, LifecycleError> {
        let Some(canary) = self.canary_service(funko).await? else {
            return Err(LifecycleError::NoCanary {
                funko: funko.to_string(),
            });
        };
        let stopped = replicas_of(&canary);
        self.remove_canary_service(funko, report).await?;
        Ok(CanaryEnded {
            promoted: false,
            replaced: 0,
            stopped,
            image: self.latest_short(funko).await,
        })
    }

    /// Removes the canary service (its tasks get SIGTERM and their grace), waits until its
    /// containers here are gone, and drops the `:canary` tag.
    pub(super) async fn remove_canary_service(
        &self,
        funko: &str,
        report: Report<'_>,
    ) -> Result<(), LifecycleError> {
        let name = canary_service_name(funko);
        if self.canary_service(funko).await?.is_some() {
            self.docker
                .delete_service(&name)
                .await
                .map_err(DockerError::call(format!("remove service {name}")))?;
            report(format!("removed service {name}"));
            let started = Instant::now();
            while self.task_containers(&name).await? > 0
                && started.elapsed() < self.stop_grace + Duration::from_secs(10)
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let tag = format!("{}:{CANARY_TAG}", image_repo(funko));
        if docker::image_inspect(&self.docker, &tag).await?.is_some() {
            docker::remove_image(&self.docker, &tag).await?;
        }
        Ok(())
    }
}

/// The image reference a service runs.
fn service_image_of(service: &Service) -> String {
    service
        .spec
        .as_ref()
        .and_then(|s| s.task_template.as_ref())
        .and_then(|t| t.container_spec.as_ref())
        .and_then(|c| c.image.clone())
        .unwrap_or_default()
}
