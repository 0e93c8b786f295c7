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
//!
//! This module holds what the orchestrators' canaries share (the tag, what an operation did);
//! the operations are `Lifecycle::deploy_canary`, `promote` and `rollback` in
//! [`crate::engine::deploy`].

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
