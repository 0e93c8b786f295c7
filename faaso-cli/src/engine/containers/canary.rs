//! Canary releases on one engine (see [`crate::engine::canary`]): canary instances are
//! containers labelled `faaso.canary=<percent>`, started beside the serving ones.

use super::Containers;
use crate::conventions::{self, CANARY_LABEL, CANARY_STICKY_LABEL, image_repo};
use crate::engine::canary::{CANARY_TAG, CanaryEnded, CanaryStarted};
use crate::engine::docker;
use crate::engine::{LifecycleError, Report, RunningInstance, short_id};

impl Containers<'_> {
    /// The funko's canary instances (any state), oldest first.
    pub(crate) async fn canaries(
        &self,
        funko: &str,
    ) -> Result<Vec<RunningInstance>, LifecycleError> {
        let mut canaries: Vec<RunningInstance> = docker::list_instances(&self.docker, funko)
            .await?
            .into_iter()
            .filter(|c| conventions::canary(c.labels.as_ref()).is_some())
            .map(|c| RunningInstance {
                id: c.id.clone().unwrap_or_default(),
                name: docker::container_name(&c).unwrap_or_default(),
                image_id: c.image_id.clone().unwrap_or_default(),
                created: c.created.unwrap_or_default(),
            })
            .collect();
        canaries.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
        Ok(canaries)
    }

    pub(crate) async fn start_canary(
        &self,
        funko: &str,
        percent: u8,
        sticky: bool,
        report: Report<'_>,
    ) -> Result<CanaryStarted, LifecycleError> {
        if !self.canaries(funko).await?.is_empty() {
            return Err(LifecycleError::CanaryRuns {
                funko: funko.to_string(),
            });
        }
        let (image, user) = self.latest_image(funko).await?;
        let (serving, _) = self.containers(funko).await?;
        let Some(newest) = serving.last() else {
            return Err(LifecycleError::NotRunning {
                funko: funko.to_string(),
            });
        };
        if serving.iter().all(|i| i.image_id == image) {
            return Err(LifecycleError::NothingNew {
                funko: funko.to_string(),
                image: short_id(&image).to_string(),
            });
        }
        let serving_image = newest.image_id.clone();
        // As many canary instances as the share of the serving ones, at least one.
        let count = (serving.len() * usize::from(percent)).div_ceil(100).max(1);
        // `latest` stays on what serves; the canary's image is `:canary`.
        let repo = image_repo(funko);
        docker::tag_image(&self.docker, &image, &repo, CANARY_TAG).await?;
        docker::tag_image(&self.docker, &serving_image, &repo, "latest").await?;
        let mut labels = vec![(CANARY_LABEL.to_string(), percent.to_string())];
        if sticky {
            labels.push((CANARY_STICKY_LABEL.to_string(), "true".to_string()));
        }
        let mut started = Vec::new();
        for _ in 0..count {
            let name = self
                .start_labelled(funko, &image, &user, labels.clone())
                .await;
            let ready = match name {
                Ok(name) => {
                    report(format!("started canary {name}, waiting for GET /ping"));
                    let ready = self.wait_ready(&name).await;
                    started.push(name);
                    ready
                }
                Err(err) => Err(err),
            };
            if let Err(err) = ready {
                for name in &started {
                    let _ = docker::remove_container(&self.docker, name).await;
                }
                let _ = docker::remove_image(&self.docker, &format!("{repo}:{CANARY_TAG}")).await;
                // The failed release goes back on `latest`: it is the newest build.
                docker::tag_image(&self.docker, &image, &repo, "latest").await?;
                report(format!(
                    "removed the canary; the serving instances were not touched, {} is image {} again",
                    conventions::image_latest(funko),
                    short_id(&image)
                ));
                return Err(err);
            }
        }
        Ok(CanaryStarted {
            percent,
            sticky,
            instances: started,
            image: short_id(&image).to_string(),
        })
    }

    pub(crate) async fn promote(
        &self,
        funko: &str,
        report: Report<'_>,
    ) -> Result<CanaryEnded, LifecycleError> {
        let canaries = self.canaries(funko).await?;
        let Some(first) = canaries.first() else {
            return Err(LifecycleError::NoCanary {
                funko: funko.to_string(),
            });
        };
        let image = first.image_id.clone();
        let repo = image_repo(funko);
        docker::tag_image(&self.docker, &image, &repo, "latest").await?;
        report(format!(
            "{} is now the canary's image {}",
            conventions::image_latest(funko),
            short_id(&image)
        ));
        // Serving instances first, each replaced by a ready one of the canary's image; the
        // canary keeps its share meanwhile.
        let deployed = match self.roll_out(funko, report).await {
            Ok(deployed) => deployed,
            Err(LifecycleError::NotRunning { .. }) => crate::engine::Deployed {
                replaced: 0,
                current: 0,
            },
            Err(err) => return Err(err),
        };
        if deployed.replaced + deployed.current == 0 {
            // No serving instance: the canary's instances are all there is; start as many
            // plain ones before they stop.
            let (_, user) = self.latest_image(funko).await?;
            for _ in &canaries {
                let name = self.start_instance(funko, &image, &user).await?;
                if let Err(err) = self.wait_ready(&name).await {
                    let _ = docker::remove_container(&self.docker, &name).await;
                    return Err(err);
                }
                report(format!("started {name}"));
            }
        }
        let stopped = self.stop_canaries(funko, &canaries, report).await?;
        Ok(CanaryEnded {
            promoted: true,
            replaced: deployed.replaced,
            stopped,
            image: short_id(&image).to_string(),
        })
    }

    pub(crate) async fn end_canary(
        &self,
        funko: &str,
        report: Report<'_>,
    ) -> Result<CanaryEnded, LifecycleError> {
        let canaries = self.canaries(funko).await?;
        if canaries.is_empty() {
            return Err(LifecycleError::NoCanary {
                funko: funko.to_string(),
            });
        }
        let stopped = self.stop_canaries(funko, &canaries, report).await?;
        Ok(CanaryEnded {
            promoted: false,
            replaced: 0,
            stopped,
            image: self.latest_short(funko).await,
        })
    }

    /// Stops the canary instances (SIGTERM, requests in flight finish) and drops the
    /// `:canary` tag.
    async fn stop_canaries(
        &self,
        funko: &str,
        canaries: &[RunningInstance],
        report: Report<'_>,
    ) -> Result<usize, LifecycleError> {
        for canary in canaries {
            docker::stop_and_remove(&self.docker, &canary.id, self.stop_seconds()).await?;
            report(format!("stopped canary {}", canary.name));
        }
        let tag = format!("{}:{CANARY_TAG}", image_repo(funko));
        if docker::image_inspect(&self.docker, &tag).await?.is_some() {
            docker::remove_image(&self.docker, &tag).await?;
        }
        Ok(canaries.len())
    }
}
