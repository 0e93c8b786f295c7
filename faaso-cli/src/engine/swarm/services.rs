//! A funko's service: its spec, replicas (`scale`), rolling updates (`deploy`) and removal
//! (`purge`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::models::{
    EndpointSpec, EndpointSpecModeEnum, NetworkAttachmentConfig, ServiceSpec, ServiceSpecMode,
    ServiceSpecModeReplicated, ServiceSpecRollbackConfig,
    ServiceSpecRollbackConfigFailureActionEnum, ServiceSpecRollbackConfigOrderEnum,
    ServiceSpecUpdateConfig, ServiceSpecUpdateConfigFailureActionEnum,
    ServiceSpecUpdateConfigOrderEnum, TaskSpec, TaskSpecContainerSpec, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum,
};

use super::*;
use crate::conventions::{FUNKO_LABEL, MANAGED_LABEL};
use crate::engine::docker::DockerError;
use crate::engine::{Deployed, LifecycleError, short_id};

impl Swarm<'_> {
    /// The spec of a new service for `funko`, running `image` (the reference of the image
    /// `image_id`, see [`service_image`]) as `user`.
    pub(super) async fn service_spec(
        &self,
        funko: &str,
        image_id: &str,
        image: &str,
        user: &str,
        replicas: u32,
    ) -> Result<ServiceSpec, LifecycleError> {
        let labels = HashMap::from([
            (FUNKO_LABEL.to_string(), funko.to_string()),
            (MANAGED_LABEL.to_string(), "true".to_string()),
        ]);
        // The image's labels go on the service too: a node without the image yet and the
        // gateway's routing table read settings (port, limits, scaling) from the service.
        let mut container_labels = crate::engine::docker::image_inspect(&self.docker, image_id)
            .await?
            .and_then(|i| i.config)
            .and_then(|c| c.labels)
            .unwrap_or_default();
        container_labels.extend(labels.clone());
        let secrets = self.secret_refs(funko, user).await?;
        let grace = i64::try_from(self.stop_grace.as_nanos()).unwrap_or(i64::MAX);
        let monitor = Duration::from_secs(5).as_nanos() as i64;
        Ok(ServiceSpec {
            name: Some(service_name(funko)),
            labels: Some(labels),
            mode: Some(ServiceSpecMode {
                replicated: Some(ServiceSpecModeReplicated {
                    replicas: Some(i64::from(replicas)),
                }),
                ..Default::default()
            }),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(image.to_string()),
                    labels: Some(container_labels),
                    stop_grace_period: Some(grace),
                    secrets: Some(secrets),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                    ..Default::default()
                }),
                networks: Some(vec![NetworkAttachmentConfig {
                    target: Some(self.network.clone()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            update_config: Some(ServiceSpecUpdateConfig {
                parallelism: Some(1),
                failure_action: Some(ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK),
                monitor: Some(monitor),
                order: Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST),
                ..Default::default()
            }),
            rollback_config: Some(ServiceSpecRollbackConfig {
                parallelism: Some(1),
                failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
                monitor: Some(monitor),
                order: Some(ServiceSpecRollbackConfigOrderEnum::START_FIRST),
                ..Default::default()
            }),
            // The gateway balances over the tasks itself: no virtual IP in between.
            endpoint_spec: Some(EndpointSpec {
                mode: Some(EndpointSpecModeEnum::DNSRR),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// `scale` in Swarm mode: creates the service or sets its replicas, then waits until that
    /// many tasks run (up to `ready_timeout`).
    pub(super) async fn set_replicas(
        &self,
        funko: &str,
        replicas: u32,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        ensure_overlay(&self.docker, &self.network).await?;
        match self.service(funko).await? {
            Some(service) => {
                let mut spec = service.spec.clone().unwrap_or_default();
                spec.mode = Some(ServiceSpecMode {
                    replicated: Some(ServiceSpecModeReplicated {
                        replicas: Some(i64::from(replicas)),
                    }),
                    ..Default::default()
                });
                self.update_service(&service, spec).await?;
                report(format!(
                    "service {}: replicas set to {replicas}",
                    service_name(funko)
                ));
            }
            None if replicas == 0 => {}
            None => {
                let (image_id, user) = self.latest_image(funko).await?;
                if let Some(warning) = self.registry_warning().await {
                    report(warning);
                }
                let image = self.publish_image(funko, &image_id, report).await?;
                let spec = self
                    .service_spec(funko, &image_id, &image, &user, replicas)
                    .await?;
                self.docker
                    .create_service(spec, None)
                    .await
                    .map_err(DockerError::call(format!(
                        "create service {}",
                        service_name(funko)
                    )))?;
                report(format!(
                    "created service {} with {replicas} replica{} of image {}",
                    service_name(funko),
                    if replicas == 1 { "" } else { "s" },
                    short_id(&image_id)
                ));
            }
        }
        self.wait_for_tasks(funko, replicas as usize).await?;
        report(format!(
            "{funko}: {replicas} task{} running",
            if replicas == 1 { "" } else { "s" }
        ));
        Ok(())
    }

    /// `deploy` in Swarm mode: a rolling update of the service to the newest image, one task
    /// at a time, start-first; Swarm rolls it back when a new task fails.
    pub(super) async fn update_image(
        &self,
        funko: &str,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<Deployed, LifecycleError> {
        let (image_id, user) = self.latest_image(funko).await?;
        let Some(service) = self.service(funko).await? else {
            return Err(LifecycleError::NotRunning {
                funko: funko.to_string(),
            });
        };
        let replicas = replicas_of(&service);
        if replicas == 0 {
            return Err(LifecycleError::NotRunning {
                funko: funko.to_string(),
            });
        }
        let current = service
            .spec
            .as_ref()
            .and_then(|s| s.task_template.as_ref())
            .and_then(|t| t.container_spec.as_ref())
            .and_then(|c| c.image.clone())
            .unwrap_or_default();
        let tags = crate::engine::docker::image_inspect(&self.docker, &image_id)
            .await?
            .and_then(|i| i.repo_tags)
            .unwrap_or_default();
        if current == service_image(self.registry.as_deref(), funko, &image_id, &tags) {
            report(format!(
                "{funko}: all {replicas} tasks run the newest image"
            ));
            return Ok(Deployed {
                replaced: 0,
                current: replicas,
            });
        }
        let image = self.publish_image(funko, &image_id, report).await?;
        let mut spec = self
            .service_spec(funko, &image_id, &image, &user, replicas as u32)
            .await?;
        // What Swarm does not take from us stays as it was (placement, resources set by hand).
        if let Some(old) = service.spec.as_ref().and_then(|s| s.task_template.as_ref())
            && let Some(template) = spec.task_template.as_mut()
        {
            template.placement = old.placement.clone();
            template.resources = old.resources.clone();
        }
        self.update_service(&service, spec).await?;
        report(format!(
            "{funko}: rolling update of {replicas} task{} to image {} (start-first, one at a time)",
            if replicas == 1 { "" } else { "s" },
            short_id(&image_id)
        ));
        if let Err(err) = self.wait_for_update(funko, replicas, report).await {
            // What serves after a rollback is the release `latest` names again, so that the
            // next deploy or new service does not start the broken one.
            let serving = self
                .service(funko)
                .await?
                .as_ref()
                .and_then(|s| s.spec.as_ref())
                .and_then(|s| s.task_template.as_ref())
                .and_then(|t| t.container_spec.as_ref())
                .and_then(|c| c.image.clone());
            if let Some(serving) = serving.filter(|s| *s != image) {
                crate::engine::docker::tag_image(
                    &self.docker,
                    &serving,
                    &crate::conventions::image_repo(funko),
                    "latest",
                )
                .await?;
                report(format!(
                    "{} is back on image {}, which serves",
                    crate::conventions::image_latest(funko),
                    short_id(&serving)
                ));
            }
            return Err(err);
        }
        Ok(Deployed {
            replaced: replicas,
            current: 0,
        })
    }

    /// `purge` in Swarm mode: the service and the funko's Swarm secrets.
    pub(super) async fn remove_service(
        &self,
        funko: &str,
        report: &mut (dyn FnMut(String) + Send),
    ) -> Result<(), LifecycleError> {
        self.remove_canary_service(funko, report).await?;
        if self.service(funko).await?.is_some() {
            let name = service_name(funko);
            self.docker
                .delete_service(&name)
                .await
                .map_err(DockerError::call(format!("remove service {name}")))?;
            report(format!("removed service {name}"));
            // Its task containers (here) must be gone before its images can go.
            let started = Instant::now();
            while self.task_containers(&name).await? > 0
                && started.elapsed() < self.stop_grace + Duration::from_secs(10)
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        self.remove_secrets(funko, report).await
    }
}
