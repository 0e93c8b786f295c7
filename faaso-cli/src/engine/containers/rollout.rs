//! `deploy` on one engine: for each container that runs an older image, start one of the new
//! image, wait until it is ready, then stop an old one. The first new container is the canary:
//! if it never becomes ready it is removed, the old ones keep serving, and `:latest` is put
//! back on the image they run. Paused instances are removed first: they would wake as the old
//! release.

use super::Containers;
use crate::conventions::{self, image_repo};
use crate::engine::docker;
use crate::engine::{Deployed, LifecycleError, Report, short_id};

impl Containers<'_> {
    pub(super) async fn roll_out(
        &self,
        funko: &str,
        report: Report<'_>,
    ) -> Result<Deployed, LifecycleError> {
        let (image, user) = self.latest_image(funko).await?;
        // Paused instances (`scaling.zero: pause`) would wake as the old release: they go, and
        // the next request starts the new one.
        let (running, leftovers) = self.containers(funko).await?;
        let mut paused = 0;
        for container in leftovers
            .iter()
            .filter(|c| c.state == Some(bollard::models::ContainerSummaryStateEnum::PAUSED))
        {
            if let Some(id) = &container.id {
                docker::remove_container(&self.docker, id).await?;
                report(format!(
                    "removed paused {}: the next request starts the new release",
                    docker::display_name(container)
                ));
                paused += 1;
            }
        }
        if running.is_empty() && paused > 0 {
            return Ok(Deployed {
                replaced: paused,
                current: 0,
            });
        }
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
