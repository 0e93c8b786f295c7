//! Instance choice: the power of two random choices on requests in flight.
//!
//! Two eligible instances are drawn at random and the one with fewer requests in flight wins.
//! Compared with round robin this steers around an instance that is slow right now (a long
//! request, a GC pause, a cold cache) without any shared cursor that threads contend on, and it
//! costs two atomic loads. Eligibility follows the health rules:
//! - an instance that failed its checks or a connect is out, and so is a paused one;
//! - Docker's `unhealthy` is out;
//! - an instance that has not yet passed a check (`GET /ping`, or Docker's `healthy`), and one
//!   in Docker's `starting`, only get requests while no proven, ready instance is there: a
//!   deploy's new instance waits for its first passed check, a funko's only instance does not;
//! - instances already tried for this request are skipped on retries.
//!
//! Nothing here allocates; it runs on every request.

use std::sync::Arc;

use crate::routing::instance::{DockerHealth, InFlight, Instance};

/// Instances already tried for one request, by position in the funko's instance list.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tried(u64);

impl Tried {
    pub fn insert(&mut self, index: usize) {
        if index < 64 {
            self.0 |= 1 << index;
        }
    }

    pub fn contains(&self, index: usize) -> bool {
        index < 64 && self.0 & (1 << index) != 0
    }

    /// Both sets.
    pub fn union(self, other: Tried) -> Tried {
        Tried(self.0 | other.0)
    }
}

/// The instances tried, carried from one snapshot's list to a newer one's by container id:
/// one tried before stays tried at its new position; one gone is dropped.
pub fn carry_tried(tried: Tried, from: &[Arc<Instance>], to: &[Arc<Instance>]) -> Tried {
    let mut carried = Tried::default();
    for (index, instance) in to.iter().enumerate() {
        let was_tried = from
            .iter()
            .enumerate()
            .any(|(old, before)| tried.contains(old) && before.id == instance.id);
        if was_tried {
            carried.insert(index);
        }
    }
    carried
}

/// Whether any instance could be picked for a fresh request: a funko with none gets a 503.
pub fn any_available(instances: &[Arc<Instance>]) -> bool {
    instances.iter().any(|i| usable(i, false))
}

/// Whether one instance could be picked for a fresh request.
pub fn available(instance: &Instance) -> bool {
    usable(instance, false)
}

/// Picks an instance (its position in `instances`), or `None` when none is eligible.
pub fn pick(instances: &[Arc<Instance>], tried: Tried) -> Option<usize> {
    let prefer_ready = instances
        .iter()
        .enumerate()
        .any(|(index, i)| !tried.contains(index) && usable(i, true));
    let eligible = |index: usize, i: &Instance| !tried.contains(index) && usable(i, prefer_ready);
    let count = instances
        .iter()
        .enumerate()
        .filter(|(index, i)| eligible(*index, i))
        .count();
    if count == 0 {
        return None;
    }
    let nth = |n: usize| {
        instances
            .iter()
            .enumerate()
            .filter(|(index, i)| eligible(*index, i))
            .nth(n)
            .map(|(index, _)| index)
    };
    if count == 1 {
        return nth(0);
    }
    let first = fastrand::usize(..count);
    // A second, different draw: offset by 1..count so it never equals the first.
    let second = (first + 1 + fastrand::usize(..count - 1)) % count;
    let (a, b) = (nth(first)?, nth(second)?);
    let load = |index: usize| instances[index].state.in_flight();
    Some(if load(b) < load(a) { b } else { a })
}

/// For a funko with an in-flight limit: reserves a request on the eligible instance with the
/// fewest in flight, if it has fewer than `cap` (checked and counted in one atomic step, so
/// racing requests cannot both take the last slot). `None` when every eligible instance is full
/// (or none is eligible).
pub fn pick_below(
    instances: &[Arc<Instance>],
    tried: Tried,
    cap: usize,
) -> Option<(usize, InFlight)> {
    let prefer_ready = instances
        .iter()
        .enumerate()
        .any(|(index, i)| !tried.contains(index) && usable(i, true));
    // A slot taken by a racer between the look and the reservation: look again.
    for _ in 0..instances.len().max(1) * 2 {
        let (index, _) = instances
            .iter()
            .enumerate()
            .filter(|(index, i)| !tried.contains(*index) && usable(i, prefer_ready))
            .map(|(index, i)| (index, i.state.in_flight()))
            .filter(|(_, load)| *load < cap)
            .min_by_key(|(_, load)| *load)?;
        if let Some(in_flight) = instances[index].state.try_start_below(cap) {
            return Some((index, in_flight));
        }
    }
    None
}

/// Whether an instance may get requests; with `ready_only`, only a proven one that Docker
/// does not call `starting`.
fn usable(instance: &Instance, ready_only: bool) -> bool {
    if !instance.state.is_up() || instance.state.is_paused() {
        return false;
    }
    match instance.docker_health {
        DockerHealth::Unhealthy => false,
        DockerHealth::Starting => !ready_only,
        DockerHealth::Healthy => true,
        DockerHealth::None => !ready_only || instance.state.is_proven() || !instance.active_checks,
    }
}

/// An instance's state as the `faaso_funko_instances` metric reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceHealth {
    Healthy,
    Unhealthy,
    Starting,
    /// Frozen by `docker pause` until a request wakes it.
    Paused,
}

/// Classifies an instance: out (failed checks or Docker `unhealthy`) is unhealthy; Docker's
/// `starting`, or not yet through a first check, is starting; anything else is healthy.
pub fn state_of(instance: &Instance) -> InstanceHealth {
    if instance.state.is_paused() {
        return InstanceHealth::Paused;
    }
    if !instance.state.is_up() {
        return InstanceHealth::Unhealthy;
    }
    match instance.docker_health {
        DockerHealth::Unhealthy => InstanceHealth::Unhealthy,
        DockerHealth::Starting => InstanceHealth::Starting,
        DockerHealth::None if !instance.state.is_proven() && instance.active_checks => {
            InstanceHealth::Starting
        }
        DockerHealth::Healthy | DockerHealth::None => InstanceHealth::Healthy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::table::{InstanceState, PeerTimeouts};

    fn instances(healths: &[DockerHealth]) -> Vec<Arc<Instance>> {
        healths
            .iter()
            .enumerate()
            .map(|(n, health)| {
                Arc::new(Instance::new(
                    format!("id{n}"),
                    format!("faaso-f-{n:06}"),
                    format!("10.0.0.{}:3000", n + 1).parse().unwrap(),
                    *health,
                    Arc::new(InstanceState::default()),
                    PeerTimeouts::default(),
                ))
            })
            .collect()
    }

    use DockerHealth::{Healthy, Starting, Unhealthy};
    const NONE: DockerHealth = DockerHealth::None;

    fn proven(healths: &[DockerHealth]) -> Vec<Arc<Instance>> {
        let list = instances(healths);
        for instance in &list {
            instance.state.check_passed();
        }
        list
    }

    #[test]
    fn what_was_tried_follows_the_instances_into_a_newer_list() {
        let old = instances(&[NONE, NONE, NONE]);
        let mut tried = Tried::default();
        tried.insert(0);
        tried.insert(2);
        // The newer list lost id1, put id2 first and added a new instance.
        let added = instances(&[NONE, NONE, NONE, NONE]).pop().unwrap();
        let newer = vec![Arc::clone(&old[2]), Arc::clone(&old[0]), Arc::clone(&added)];
        let carried = carry_tried(tried, &old, &newer);
        assert!(carried.contains(0) && carried.contains(1));
        assert!(!carried.contains(2));
        assert_eq!(pick(&newer, carried), Some(2));
        // Nothing tried: nothing carried.
        let none = carry_tried(Tried::default(), &old, &newer);
        assert!((0..3).all(|i| !none.contains(i)));
    }

    #[test]
    fn unproven_instances_wait_while_proven_ones_serve() {
        let list = instances(&[NONE, NONE]);
        list[0].state.check_passed();
        for _ in 0..100 {
            assert_eq!(pick(&list, Tried::default()), Some(0));
        }
        // Alone, an unproven instance is tried rather than nothing.
        let fresh = instances(&[NONE]);
        assert_eq!(pick(&fresh, Tried::default()), Some(0));
        // Docker's `healthy` proves it too.
        let docker_healthy = instances(&[NONE, Healthy]);
        docker_healthy[0].state.check_passed();
        let mut seen = [false; 2];
        for _ in 0..200 {
            seen[pick(&docker_healthy, Tried::default()).unwrap()] = true;
        }
        assert_eq!(seen, [true, true]);
    }

    #[test]
    fn spreads_over_equal_instances() {
        let list = proven(&[NONE, NONE, NONE]);
        let mut counts = [0; 3];
        for _ in 0..3000 {
            counts[pick(&list, Tried::default()).unwrap()] += 1;
        }
        assert!(counts.iter().all(|c| *c > 700), "{counts:?}");
    }

    #[test]
    fn prefers_the_less_loaded_instance() {
        let list = proven(&[NONE, NONE]);
        let _busy: Vec<_> = (0..5).map(|_| list[0].state.start_request()).collect();
        for _ in 0..100 {
            assert_eq!(pick(&list, Tried::default()), Some(1));
        }
    }

    #[test]
    fn health_rules() {
        let list = instances(&[Unhealthy, Starting, Healthy]);
        for _ in 0..50 {
            assert_eq!(pick(&list, Tried::default()), Some(2));
        }
        // Starting is used when nothing healthy is left.
        list[2].state.connect_failed();
        assert_eq!(pick(&list, Tried::default()), Some(1));
        assert!(any_available(&list));
        list[1].state.connect_failed();
        assert_eq!(pick(&list, Tried::default()), None);
        assert!(!any_available(&list));
    }

    #[test]
    fn retries_skip_tried_instances() {
        let list = instances(&[NONE, Healthy]);
        let mut tried = Tried::default();
        tried.insert(1);
        assert_eq!(pick(&list, tried), Some(0));
        tried.insert(0);
        assert_eq!(pick(&list, tried), None);
        assert_eq!(pick(&[], Tried::default()), None);
    }
}
