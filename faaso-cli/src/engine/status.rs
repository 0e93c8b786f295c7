//! `faaso status`: what runs, per funko, as data that prints as a table or as JSON (the JSON
//! is also what the admin API's `GET funkos` returns).
//!
//! JSON schema (an array, one object per funko, sorted by name):
//!
//! ```text
//! [{
//!   "name": "hello",                      funko name
//!   "scale": 2,                           saved desired scale, or null
//!   "state_error": "...",                 only when the saved state cannot be read
//!   "problem": "...",                     only when the gateway cannot bring it to its scale
//!   "running": 2,                         instances running now
//!   "scaling": {                          only for a funko the gateway scales (scaling: set)
//!     "min": 0, "max": 3,                 instance range
//!     "idle_timeout": "5m",               no request this long: down to min
//!     "target_inflight": 10,              in-flight requests per instance aimed at
//!     "idle": true                        at zero, and the next request starts an instance
//!   },
//!   "private": true,                      only for access: private (requests need a key)
//!   "domains": ["api.example.com"],       only when it claims host names
//!   "refused_domains": [{"domain": "api.example.com", "owner": "other"}],
//!                                         claims the gateway refused: another funko had it first
//!   "instances": [{
//!     "name": "faaso-hello-ab12cd",       container name
//!     "id": "3f2a9c1e0b7d",               short container id
//!     "state": "running",                 Docker state
//!     "health": "healthy",                Docker health: healthy, unhealthy, starting, or null
//!     "current": true,                    runs the image tagged latest
//!     "created": 1764403200,              unix seconds
//!     "age_seconds": 125,
//!     "ip": "172.18.0.5"                  address on faaso-net, or null
//!   }],
//!   "images": [{
//!     "id": "9c1e0b7d3f2a",               short image id
//!     "tags": ["faaso-hello:latest", "faaso-hello:1764403100"],
//!     "created": 1764403100,              unix seconds
//!     "latest": true                      tagged latest
//!   }]
//! }]
//! ```

use std::collections::{BTreeMap, BTreeSet};

use bollard::models::{ContainerSummary, ImageSummary};
use serde::{Deserialize, Serialize};

use crate::conventions::{image_repo, parse_instance_name, validate_name};
use crate::engine::docker;
use crate::engine::{Lifecycle, LifecycleError, Orchestrate, short_id};

/// One funko's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunkoStatus {
    pub name: String,
    pub scale: Option<u32>,
    /// Why the saved state could not be read, when it could not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_error: Option<String>,
    /// Why the gateway cannot bring the funko to its saved scale, when it cannot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    pub running: usize,
    /// For a funko the gateway scales: its range and whether it is idle at zero.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<ScalingStatus>,
    /// `access: private`: requests need one of its keys.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub private: bool,
    /// The host names it claims (`domains:`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// A canary release beside the serving one, while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<CanaryStatus>,
    /// Its domain claims the gateway refused, each with the funko that holds the domain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused_domains: Vec<RefusedDomainStatus>,
    pub instances: Vec<InstanceStatus>,
    pub images: Vec<ImageStatus>,
}

/// A scaled funko's settings as the gateway reads them (its newest running instance's labels,
/// else its image's), and whether it sleeps at zero.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScalingStatus {
    pub min: u32,
    pub max: u32,
    pub idle_timeout: String,
    pub target_inflight: u32,
    /// No instance runs and a request starts one (`min` 0, an image to start).
    pub idle: bool,
}

/// A domain a funko claims that another funko holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedDomainStatus {
    pub domain: String,
    pub owner: String,
}

/// One instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub name: String,
    pub id: String,
    pub state: String,
    pub health: Option<String>,
    pub current: bool,
    pub created: i64,
    pub age_seconds: i64,
    pub ip: Option<String>,
    /// Swarm mode: the node the task runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Whether it is a canary instance (`faaso.canary`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub canary: bool,
}

impl InstanceStatus {
    /// Its health as `faaso status` and the web UI show it: Docker's health check result
    /// while it runs (`healthy`, `unhealthy`, `starting`), `running` when its image has no
    /// check, else its state (`paused`, `exited`, ...).
    pub fn health_label(&self) -> &str {
        match (self.state.as_str(), self.health.as_deref()) {
            ("running", Some(health)) => health,
            (state, _) => state,
        }
    }
}

/// A canary release beside the serving one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CanaryStatus {
    /// The canary's share of requests, in percent.
    pub percent: u8,
    pub sticky: bool,
    /// The canary's image (short id).
    pub image: String,
    /// Running canary instances.
    pub instances: usize,
}

/// One image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageStatus {
    pub id: String,
    pub tags: Vec<String>,
    pub created: i64,
    pub latest: bool,
}

impl Lifecycle {
    /// The status of the named funkos, or of every funko FaaSO knows (containers, images or
    /// saved state) when `names` is empty. A named funko that does not exist is an error.
    pub async fn status(&self, names: &[String]) -> Result<Vec<FunkoStatus>, LifecycleError> {
        for name in names {
            validate_name(name)?;
        }
        let containers = self.backend().instances().await?;
        let images = docker::list_all_images(&self.docker).await?;
        statuses(names, &containers, &images, &self.state, &self.network)
    }
}

/// The status of the named funkos (every funko when `names` is empty) from Docker's lists of
/// containers and images and the saved state: what [`Lifecycle::status`] answers, for callers
/// that have the lists already (the gateway's web UI has them from discovery).
pub fn statuses(
    names: &[String],
    containers: &[ContainerSummary],
    images: &[ImageSummary],
    state: &crate::store::state::StateDir,
    network: &str,
) -> Result<Vec<FunkoStatus>, LifecycleError> {
    let listing = state.all()?;
    let saved: BTreeMap<String, u32> = listing
        .funkos
        .into_iter()
        .map(|(n, s)| (n, s.scale))
        .collect();
    let unreadable: BTreeMap<String, String> = listing
        .unreadable
        .into_iter()
        .map(|(n, err)| (n, err.to_string()))
        .collect();
    let mut funkos: BTreeSet<String> = saved.keys().cloned().collect();
    funkos.extend(unreadable.keys().cloned());
    funkos.extend(
        containers
            .iter()
            .filter_map(|c| funko_of_container(c).map(str::to_string)),
    );
    funkos.extend(
        images
            .iter()
            .flat_map(|i| i.repo_tags.iter())
            .filter_map(|t| crate::conventions::funko_of_image(t).map(str::to_string)),
    );
    let wanted: Vec<String> = if names.is_empty() {
        funkos.into_iter().collect()
    } else {
        for name in names {
            if !funkos.contains(name) {
                return Err(LifecycleError::Unknown {
                    funko: name.clone(),
                    hint: crate::conventions::did_you_mean(name, funkos.iter().map(String::as_str)),
                });
            }
        }
        names.to_vec()
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let claims = state.domains();
    Ok(wanted
        .into_iter()
        .map(|name| {
            let mut status = build_status(
                &name,
                saved.get(&name).copied(),
                containers,
                images,
                network,
                now,
            );
            status.state_error = unreadable.get(&name).cloned();
            status.problem = state.problem(&name);
            status.refused_domains = claims
                .refused
                .iter()
                .filter(|r| r.funko == name && status.domains.contains(&r.domain))
                .map(|r| RefusedDomainStatus {
                    domain: r.domain.clone(),
                    owner: r.owner.clone(),
                })
                .collect();
            status
        })
        .collect())
}

fn funko_of_container(container: &ContainerSummary) -> Option<&str> {
    let name = container.names.as_ref()?.first()?;
    parse_instance_name(name).map(|parsed| parsed.funko)
}

fn build_status(
    name: &str,
    scale: Option<u32>,
    containers: &[ContainerSummary],
    images: &[ImageSummary],
    network: &str,
    now: i64,
) -> FunkoStatus {
    let repo = image_repo(name);
    let latest_tag = format!("{repo}:latest");
    let mut own_images: Vec<&ImageSummary> = images
        .iter()
        .filter(|i| {
            i.repo_tags
                .iter()
                .any(|t| crate::conventions::funko_of_image(t) == Some(name))
        })
        .collect();
    own_images.sort_by_key(|i| std::cmp::Reverse(i.created));
    let latest_id = own_images
        .iter()
        .find(|i| i.repo_tags.contains(&latest_tag))
        .map(|i| i.id.clone());
    let mut instances: Vec<InstanceStatus> = containers
        .iter()
        .filter(|c| funko_of_container(c) == Some(name))
        .map(|c| {
            let created = c.created.unwrap_or_default();
            InstanceStatus {
                name: docker::container_name(c).unwrap_or_default(),
                id: c
                    .id
                    .as_deref()
                    .map(short_id)
                    .unwrap_or_default()
                    .to_string(),
                state: c.state.map(|s| s.to_string()).unwrap_or_default(),
                health: docker::health_of_status(c.status.as_deref().unwrap_or(""))
                    .map(|h| h.as_str().to_string()),
                current: latest_id.is_some() && c.image_id == latest_id,
                canary: crate::conventions::canary(c.labels.as_ref()).is_some(),
                created,
                age_seconds: (now - created).max(0),
                ip: c
                    .network_settings
                    .as_ref()
                    .and_then(|s| s.networks.as_ref())
                    .and_then(|n| n.get(network))
                    .and_then(|e| e.ip_address.clone())
                    .filter(|ip| !ip.is_empty()),
                node: c
                    .labels
                    .as_ref()
                    .and_then(|l| l.get(crate::engine::swarm::NODE_LABEL))
                    .cloned(),
            }
        })
        .collect();
    instances.sort_by(|a, b| a.created.cmp(&b.created).then_with(|| a.name.cmp(&b.name)));
    let running = instances.iter().filter(|i| i.state == "running").count();
    let (settings, has_latest) = settings_of(name, containers, &own_images, &latest_tag);
    let scaling = settings.scales().then(|| ScalingStatus {
        min: settings.min(),
        max: settings.max(),
        idle_timeout: crate::units::format_duration(settings.idle()),
        target_inflight: settings.target(),
        idle: settings.min() == 0 && running == 0 && has_latest,
    });
    let images = own_images
        .into_iter()
        .map(|i| {
            let mut tags: Vec<String> = i
                .repo_tags
                .iter()
                .filter(|t| t.starts_with(&format!("{repo}:")))
                .cloned()
                .collect();
            tags.sort_by(|a, b| {
                b.ends_with(":latest")
                    .cmp(&a.ends_with(":latest"))
                    .then_with(|| b.cmp(a))
            });
            ImageStatus {
                id: short_id(&i.id).to_string(),
                latest: i.repo_tags.contains(&latest_tag),
                tags,
                created: i.created,
            }
        })
        .collect();
    FunkoStatus {
        name: name.to_string(),
        scale,
        state_error: None,
        problem: None,
        running,
        scaling,
        private: settings.is_private(),
        domains: settings.domains.clone().unwrap_or_default(),
        canary: canary_of(name, containers),
        refused_domains: Vec::new(),
        instances,
        images,
    }
}

/// The funko's running canary, as its newest running canary instance's labels say.
fn canary_of(name: &str, containers: &[ContainerSummary]) -> Option<CanaryStatus> {
    let running: Vec<&ContainerSummary> = containers
        .iter()
        .filter(|c| {
            funko_of_container(c) == Some(name)
                && c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
                && crate::conventions::canary(c.labels.as_ref()).is_some()
        })
        .collect();
    let newest = running
        .iter()
        .max_by_key(|c| c.created.unwrap_or_default())?;
    let (percent, sticky) = crate::conventions::canary(newest.labels.as_ref())?;
    Some(CanaryStatus {
        percent,
        sticky,
        image: short_id(newest.image_id.as_deref().unwrap_or_default()).to_string(),
        instances: running.len(),
    })
}

/// The settings of a funko, read as the gateway reads them: from the labels of its newest
/// running instance, else from its `:latest` image; and whether it has a `:latest` image.
fn settings_of(
    name: &str,
    containers: &[ContainerSummary],
    own_images: &[&ImageSummary],
    latest_tag: &str,
) -> (crate::settings::Settings, bool) {
    let newest = containers
        .iter()
        .filter(|c| {
            funko_of_container(c) == Some(name)
                && c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING)
        })
        .max_by_key(|c| c.created.unwrap_or_default());
    let latest = own_images
        .iter()
        .find(|i| i.repo_tags.iter().any(|t| t == latest_tag));
    let labels = match (newest, latest) {
        (Some(container), _) => container.labels.as_ref(),
        (None, Some(image)) => Some(&image.labels),
        (None, None) => None,
    };
    let (settings, _) = crate::settings::Settings::from_labels(labels);
    (settings, latest.is_some())
}

/// Seconds as a short age: `45s`, `12m`, `3h`, `2d`.
pub fn human_age(seconds: i64) -> String {
    match seconds {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_tags() {
        assert_eq!(human_age(5), "5s");
        assert_eq!(human_age(125), "2m");
        assert_eq!(human_age(7200), "2h");
        assert_eq!(human_age(200_000), "2d");
        assert_eq!(
            crate::conventions::funko_of_image("faaso-hello:latest"),
            Some("hello")
        );
        assert_eq!(crate::conventions::funko_of_image("nginx:1"), None);
        use crate::engine::docker::{Health, health_of_status};
        assert_eq!(
            health_of_status("Up 2 minutes (healthy)"),
            Some(Health::Healthy)
        );
        assert_eq!(
            health_of_status("Up 1 second (health: starting)"),
            Some(Health::Starting)
        );
        assert_eq!(health_of_status("Up 2 minutes"), None);
    }
}
