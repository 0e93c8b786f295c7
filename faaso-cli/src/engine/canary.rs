//! Canary releases: `faaso deploy <name> --canary <percent> [--sticky]` starts instances of
//! the newest image beside the serving ones, labelled `faaso.canary=<percent>` (and
//! `faaso.canary.sticky=true`), and the gateway sends that share of the requests to them, by a
//! random draw per request or, sticky, by a hash of the client's address. During the canary
//! its image is tagged `faaso-<name>:canary` and `:latest` stays on the serving image, so a
//! scale, an `up` or a restart never starts the canary release as a serving instance.
//!
//! In Swarm mode the canary is a second service, `faaso-<name>-canary`, whose tasks carry the
//! same labels (see [`crate::engine::swarm::canary`]).
//!
//! `faaso promote <name>` puts `:latest` on the canary's image, replaces the serving instances
//! one by one (a new one ready before an old one stops), then stops the canary instances;
//! `faaso rollback <name>` stops them and leaves the serving release as it is. Every stop is a
//! SIGTERM the gateway sees first, so requests in flight finish and none fails.

use crate::conventions::validate_name;
use crate::engine::containers::Containers;
use crate::engine::swarm::Swarm;
use crate::engine::{Lifecycle, LifecycleError, Orchestrator, Report};

/// The tag of a canary's image.
pub const CANARY_TAG: &str = "canary";

/// What `deploy --canary` started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryStarted {
    pub percent: u8,
    pub sticky: bool,
    /// The canary instances started.
    pub instances: Vec<String>,
    /// The canary's image (short id).
    pub image: String,
}

impl CanaryStarted {
    /// The one-line summary, the same in local and remote mode.
    pub fn summary(&self, funko: &str) -> String {
        format!(
            "{funko}: canary of image {} on {} instance{} gets {} % of requests{}",
            self.image,
            self.instances.len(),
            if self.instances.len() == 1 { "" } else { "s" },
            self.percent,
            if self.sticky {
                " (sticky by client address)"
            } else {
                ""
            }
        )
    }
}

/// What `promote` or a rollback of a canary did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanaryEnded {
    /// Whether the canary's image now serves (promote) or was dropped (rollback).
    pub promoted: bool,
    /// Serving instances replaced by ones of the canary's image.
    pub replaced: usize,
    /// Canary instances stopped.
    pub stopped: usize,
    /// The image that serves now (short id).
    pub image: String,
}

impl CanaryEnded {
    /// The one-line summary, the same in local and remote mode.
    pub fn summary(&self, funko: &str) -> String {
        if self.promoted {
            format!(
                "{funko}: promoted image {}: {} serving instance{} replaced, {} canary instance{} stopped",
                self.image,
                self.replaced,
                if self.replaced == 1 { "" } else { "s" },
                self.stopped,
                if self.stopped == 1 { "" } else { "s" },
            )
        } else {
            format!(
                "{funko}: canary ended, {} instance{} stopped; image {} serves",
                self.stopped,
                if self.stopped == 1 { "" } else { "s" },
                self.image
            )
        }
    }
}

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
