//! One instance of a funko as the request path sees it: where it is, the upstream peer made for
//! it once per snapshot, and what the gateway learns about it between snapshots (health and
//! requests in flight, in [`InstanceState`], carried over by container id).
//!
//! Everything here is read with atomics on the request path: no lock, no allocation.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use pingora::upstreams::peer::HttpPeer;

/// Docker's own health status of a container, from its `HEALTHCHECK`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DockerHealth {
    /// The image has no health check.
    None,
    Starting,
    Healthy,
    Unhealthy,
}

/// A running container that follows the instance convention and is on the network.
#[derive(Debug)]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub addr: SocketAddr,
    pub docker_health: DockerHealth,
    pub state: Arc<InstanceState>,
    /// The gateway's timeouts for connections to it.
    pub timeouts: PeerTimeouts,
    /// The upstream peer with those timeouts, for Pingora's proxy loop: made once per snapshot
    /// (a request only clones it).
    pub peer: HttpPeer,
    /// Whether the health checker sends it `GET /ping` (off with `faaso.healthcheck=off`).
    pub active_checks: bool,
    /// For a canary instance (`faaso.canary`): its release's share in percent and whether
    /// clients stick to a release.
    pub canary: Option<(u8, bool)>,
}

/// Connection settings of every instance's [`HttpPeer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerTimeouts {
    pub connect: Duration,
    pub read: Duration,
    pub write: Duration,
    /// How long an idle pooled connection is kept.
    pub idle: Duration,
}

impl Default for PeerTimeouts {
    fn default() -> Self {
        PeerTimeouts {
            connect: Duration::from_secs(2),
            read: Duration::from_secs(60),
            write: Duration::from_secs(60),
            idle: Duration::from_secs(30),
        }
    }
}

impl Instance {
    pub fn new(
        id: String,
        name: String,
        addr: SocketAddr,
        docker_health: DockerHealth,
        state: Arc<InstanceState>,
        timeouts: PeerTimeouts,
    ) -> Instance {
        let mut peer = HttpPeer::new(addr, false, String::new());
        let options = &mut peer.options;
        options.connection_timeout = Some(timeouts.connect);
        options.read_timeout = Some(timeouts.read);
        options.write_timeout = Some(timeouts.write);
        options.idle_timeout = Some(timeouts.idle);
        Instance {
            id,
            name,
            addr,
            docker_health,
            state,
            timeouts,
            peer,
            active_checks: true,
            canary: None,
        }
    }
}

/// What the gateway learns about an instance between rebuilds.
#[derive(Debug)]
pub struct InstanceState {
    /// False after 2 failed active checks or a failed connect, true again after 1 passed check.
    up: AtomicBool,
    /// Whether it ever passed a check: until then it only gets requests when no proven
    /// instance of its funko is available (a deploy's new instance waits for its first `/ping`).
    proven: AtomicBool,
    /// Consecutive failed active checks.
    failures: AtomicU32,
    /// Requests currently sent to this instance.
    in_flight: AtomicUsize,
    /// Set by the scaler before it stops the instance: out of routing for good, and no check
    /// brings it back.
    draining: AtomicBool,
    /// Frozen by `docker pause` (`scaling.zero: pause`): out of routing and of health checks
    /// until it is unpaused; it keeps its health (a wake sends requests at once).
    paused: AtomicBool,
    /// When it was paused (Unix milliseconds; as first seen paused after a gateway start).
    paused_at: AtomicU64,
    /// When the scaler last paused or thawed it (Unix milliseconds), so that a container list
    /// taken just before does not undo that in the routing table.
    changed_at: AtomicU64,
}

/// How long after the scaler paused or thawed an instance a container list that says otherwise
/// is taken to be older than the change.
pub const CHANGE_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Failed active checks that take an instance out.
pub const FAILURES_TO_DOWN: u32 = 2;

impl Default for InstanceState {
    fn default() -> Self {
        // A new instance is tried at once: it is routable as soon as Docker reports it, and a
        // connect failure (not listening yet) moves the request to another instance.
        InstanceState {
            up: AtomicBool::new(true),
            proven: AtomicBool::new(false),
            failures: AtomicU32::new(0),
            in_flight: AtomicUsize::new(0),
            draining: AtomicBool::new(false),
            paused: AtomicBool::new(false),
            paused_at: AtomicU64::new(0),
            changed_at: AtomicU64::new(0),
        }
    }
}

impl InstanceState {
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Whether it passed a check at least once.
    pub fn is_proven(&self) -> bool {
        self.proven.load(Ordering::Relaxed)
    }

    /// An active check passed: the instance is back (and proven), unless it is draining.
    pub fn check_passed(&self) {
        self.failures.store(0, Ordering::Relaxed);
        self.proven.store(true, Ordering::Relaxed);
        if !self.is_draining() {
            self.up.store(true, Ordering::Relaxed);
        }
    }

    /// Takes the instance out of routing before it is stopped: requests in flight finish, no
    /// new one is sent to it.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.up.store(false, Ordering::Relaxed);
    }

    /// Brings back an instance whose drain was called off (a request arrived for a funko that
    /// was going to zero).
    pub fn undrain(&self) {
        self.draining.store(false, Ordering::Relaxed);
        self.up.store(true, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// The scaler paused or thawed it: believed over container lists for [`CHANGE_GRACE`].
    pub fn set_paused(&self, paused: bool) {
        self.changed_at.store(unix_ms(), Ordering::Relaxed);
        self.mark_paused(paused);
    }

    /// What a container list says: paused or not. A list that contradicts a change the
    /// scaler made less than [`CHANGE_GRACE`] ago was taken before it, and is not believed.
    pub fn observe_paused(&self, paused: bool) {
        let changed = self.changed_at.load(Ordering::Relaxed);
        if paused != self.is_paused()
            && unix_ms().saturating_sub(changed) < CHANGE_GRACE.as_millis() as u64
        {
            return;
        }
        self.mark_paused(paused);
    }

    /// A pause ends a drain and keeps its health: it was serving before the pause.
    fn mark_paused(&self, paused: bool) {
        if paused {
            // Only the pause itself ends the drain that came before it: a paused instance
            // drained afterwards (to be stopped) stays drained.
            if !self.paused.swap(true, Ordering::AcqRel) {
                self.paused_at.store(unix_ms(), Ordering::Relaxed);
                if self.draining.swap(false, Ordering::AcqRel) {
                    self.up.store(true, Ordering::Relaxed);
                }
            }
        } else {
            self.paused.store(false, Ordering::Release);
        }
    }

    /// How long it has been paused; `None` when it is not.
    pub fn paused_for(&self) -> Option<std::time::Duration> {
        if !self.is_paused() {
            return None;
        }
        let at = self.paused_at.load(Ordering::Relaxed);
        Some(std::time::Duration::from_millis(
            unix_ms().saturating_sub(at),
        ))
    }

    /// An active check failed: out after [`FAILURES_TO_DOWN`] in a row. Returns whether it
    /// went down with this failure.
    pub fn check_failed(&self) -> bool {
        let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
        failures >= FAILURES_TO_DOWN && self.up.swap(false, Ordering::Relaxed)
    }

    /// A connection attempt failed: out until an active check passes.
    pub fn connect_failed(&self) {
        self.failures.store(FAILURES_TO_DOWN, Ordering::Relaxed);
        self.up.store(false, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request in flight, as [`InstanceState::start_request`], only if fewer than
    /// `cap` are.
    pub fn try_start_below(self: &Arc<Self>, cap: usize) -> Option<InFlight> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .ok()
            .map(|_| InFlight(Arc::clone(self)))
    }

    /// Counts a request in flight until the returned guard is dropped.
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// A request in flight on an instance; dropping it ends the count.
#[derive(Debug)]
pub struct InFlight(Arc<InstanceState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Docker's health from the status text of a container list (see
/// [`faaso::engine::docker::health_of_status`]).
pub fn docker_health(status: &str) -> DockerHealth {
    match faaso::engine::docker::health_of_status(status) {
        Some(faaso::engine::docker::Health::Healthy) => DockerHealth::Healthy,
        Some(faaso::engine::docker::Health::Unhealthy) => DockerHealth::Unhealthy,
        Some(faaso::engine::docker::Health::Starting) => DockerHealth::Starting,
        None => DockerHealth::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_keeps_health_and_a_stale_list_does_not_undo_the_scalers_change() {
        let state = InstanceState::default();
        state.check_passed();
        // Drained, then paused by the scaler: out of routing, health kept for the wake.
        state.drain();
        state.set_paused(true);
        assert!(state.is_paused() && state.is_up() && !state.is_draining());
        assert!(state.paused_for().is_some());
        // A list taken before the pause says running: not believed within the grace.
        state.observe_paused(false);
        assert!(state.is_paused());
        // Thawed by the scaler; a list taken before says paused: not believed either.
        state.set_paused(false);
        state.observe_paused(true);
        assert!(!state.is_paused() && state.paused_for().is_none());
        // Lists that agree are always taken.
        state.observe_paused(false);
        assert!(!state.is_paused());
        // Drained while paused (to be stopped after pause_max): the thaw that `docker stop`
        // makes first does not bring it back.
        let stopping = InstanceState::default();
        stopping.observe_paused(true);
        stopping.drain();
        stopping.observe_paused(true);
        stopping.observe_paused(false);
        assert!(!stopping.is_up() && stopping.is_draining());
        // Paused by someone else (`docker pause`): seen at the next list after the grace.
        let other = InstanceState::default();
        other.observe_paused(true);
        assert!(other.is_paused());
    }
}
