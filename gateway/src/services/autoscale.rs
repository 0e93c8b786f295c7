//! The autoscaler's decisions, as a pure function of what it observed (tested without Docker).
//!
//! Once a second the scaler ([`crate::services::scaler`]) gives each scaled funko's [`Tracker`] its
//! running instances, its requests in flight and its request count. The tracker answers with at
//! most one [`Decision`]:
//! - below `min` (and not stopped by hand): up to `min`; above `max` for a whole up window (a
//!   rolling deploy runs one more for a moment): down to `max`;
//! - no request for `idle_timeout`: down to `min` (0 is scale to zero);
//! - in-flight requests per instance above `target_inflight` on average over the up window
//!   (10 s): up, to as many instances as that load needs at the target, at most `max`;
//! - the load would fit on one instance fewer at half the target, on average over the down
//!   window (60 s): down by one.
//!
//! Hysteresis: every change of the instance count starts both windows afresh, so each decision
//! needs a whole window of evidence after the last one, and a removal leaves each instance
//! below half the target (far from the threshold that adds one): the count never flaps.
//! A funko with no running instance is left alone: it was stopped by hand (`faaso down`), or it
//! is at zero and a request wakes it.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use faaso::settings::Settings;
use faaso::units::format_duration;

/// What the scaler aims at for one funko.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub min: u32,
    pub max: u32,
    pub idle: Duration,
    pub target: u32,
    pub up_window: Duration,
    pub down_window: Duration,
}

impl Policy {
    /// The policy of a funko's settings with the gateway's windows.
    pub fn new(settings: &Settings, up_window: Duration, down_window: Duration) -> Policy {
        Policy {
            min: settings.min(),
            max: settings.max(),
            idle: settings.idle(),
            target: settings.target().max(1),
            up_window,
            down_window,
        }
    }
}

/// One look at a funko.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    pub now: Instant,
    /// Instances that take requests (not draining).
    pub running: u32,
    /// Requests in flight on them, together.
    pub in_flight: u64,
    /// Requests the funko has had so far (a counter; only its changes matter).
    pub requests: u64,
}

/// A change of the instance count, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Up { to: u32, reason: String },
    Down { to: u32, reason: String },
}

impl Decision {
    pub fn direction(&self) -> &'static str {
        match self {
            Decision::Up { .. } => "up",
            Decision::Down { .. } => "down",
        }
    }

    pub fn to(&self) -> u32 {
        match self {
            Decision::Up { to, .. } | Decision::Down { to, .. } => *to,
        }
    }

    pub fn reason(&self) -> &str {
        match self {
            Decision::Up { reason, .. } | Decision::Down { reason, .. } => reason,
        }
    }
}

/// What the scaler remembers of one funko between looks.
#[derive(Debug)]
pub struct Tracker {
    /// In-flight totals over the down window, oldest first.
    samples: VecDeque<(Instant, u64)>,
    /// Since when the instance count is what it is (both windows start here).
    since: Instant,
    running: u32,
    requests: u64,
    last_active: Instant,
}

impl Tracker {
    pub fn new(now: Instant) -> Tracker {
        Tracker {
            samples: VecDeque::new(),
            since: now,
            running: 0,
            requests: 0,
            last_active: now,
        }
    }

    /// Takes one observation in and says what to change, if anything.
    pub fn observe(&mut self, policy: &Policy, seen: Observation) -> Option<Decision> {
        let now = seen.now;
        if seen.requests != self.requests || seen.in_flight > 0 {
            self.requests = seen.requests;
            self.last_active = now;
        }
        if seen.running != self.running {
            self.running = seen.running;
            self.samples.clear();
            self.since = now;
        }
        let running = seen.running;
        if running == 0 {
            return None;
        }
        if running < policy.min {
            return Some(Decision::Up {
                to: policy.min,
                reason: format!("{running} running, below min {}", policy.min),
            });
        }
        let age = now.duration_since(self.since);
        if running > policy.max && age >= policy.up_window {
            return Some(Decision::Down {
                to: policy.max,
                reason: format!("{running} running, above max {}", policy.max),
            });
        }
        if running > policy.min && now.duration_since(self.last_active) >= policy.idle {
            return Some(Decision::Down {
                to: policy.min,
                reason: format!("no request for {}", format_duration(policy.idle)),
            });
        }
        self.samples.push_back((now, seen.in_flight));
        while self
            .samples
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > policy.down_window)
        {
            self.samples.pop_front();
        }
        let target = f64::from(policy.target);
        if running < policy.max && age >= policy.up_window {
            let load = self.mean_over(now, policy.up_window);
            let per_instance = load / f64::from(running);
            if per_instance > target {
                let needed = (load / target).ceil() as u32;
                let to = needed.clamp(running + 1, policy.max);
                return Some(Decision::Up {
                    to,
                    reason: format!(
                        "{per_instance:.1} requests in flight per instance over {}, target {}",
                        format_duration(policy.up_window),
                        policy.target
                    ),
                });
            }
        }
        if running > policy.min && age >= policy.down_window {
            let load = self.mean_over(now, policy.down_window);
            let fewer = f64::from(running - 1);
            if load / fewer < target / 2.0 {
                return Some(Decision::Down {
                    to: running - 1,
                    reason: format!(
                        "{:.1} requests in flight per instance over {}, target {}",
                        load / f64::from(running),
                        format_duration(policy.down_window),
                        policy.target
                    ),
                });
            }
        }
        None
    }

    /// The mean in-flight total of the samples within `window` of `now`.
    fn mean_over(&self, now: Instant, window: Duration) -> f64 {
        let (sum, count) = self
            .samples
            .iter()
            .filter(|(at, _)| now.duration_since(*at) <= window)
            .fold((0u64, 0u64), |(sum, count), (_, n)| (sum + n, count + 1));
        if count == 0 {
            0.0
        } else {
            sum as f64 / count as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(min: u32, max: u32) -> Policy {
        Policy {
            min,
            max,
            idle: Duration::from_secs(300),
            target: 10,
            up_window: Duration::from_secs(10),
            down_window: Duration::from_secs(60),
        }
    }

    /// Feeds one observation a second for `seconds`, counting a request each second when
    /// `in_flight` is above zero (the count stays where it was otherwise); returns the first
    /// decision and the second it came at.
    fn run(
        tracker: &mut Tracker,
        policy: &Policy,
        start: Instant,
        from: u64,
        seconds: u64,
        running: u32,
        in_flight: u64,
    ) -> Option<(u64, Decision)> {
        for second in from..from + seconds {
            let seen = Observation {
                now: start + Duration::from_secs(second),
                running,
                in_flight,
                requests: if in_flight > 0 {
                    second
                } else {
                    tracker.requests
                },
            };
            if let Some(decision) = tracker.observe(policy, seen) {
                return Some((second, decision));
            }
        }
        None
    }

    #[test]
    fn sustained_load_adds_what_it_needs_after_the_up_window() {
        let start = Instant::now();
        let mut tracker = Tracker::new(start);
        let policy = policy(1, 4);
        // 35 in flight on one instance, target 10: four are needed.
        let (at, decision) = run(&mut tracker, &policy, start, 0, 30, 1, 35).unwrap();
        assert_eq!(at, 10, "not before the window is full");
        assert_eq!(decision.to(), 4);
        assert_eq!(decision.direction(), "up");
    }

    #[test]
    fn never_above_max_and_nothing_at_max() {
        let start = Instant::now();
        let mut tracker = Tracker::new(start);
        let policy = policy(1, 2);
        let (_, decision) = run(&mut tracker, &policy, start, 0, 30, 1, 500).unwrap();
        assert_eq!(decision.to(), 2);
        assert_eq!(run(&mut tracker, &policy, start, 30, 120, 2, 500), None);
    }

    #[test]
    fn a_short_burst_does_not_scale() {
        let start = Instant::now();
        let mut tracker = Tracker::new(start);
        let policy = policy(1, 4);
        // Five busy seconds, then quiet: the mean over the window stays below the target.
        assert_eq!(run(&mut tracker, &policy, start, 0, 5, 1, 15), None);
        assert_eq!(run(&mut tracker, &policy, start, 5, 20, 1, 1), None);
    }

    #[test]
    fn light_load_removes_one_at_a_time_after_the_down_window() {
        let start = Instant::now();
        let mut tracker = Tracker::new(start);
        let policy = policy(1, 4);
        let (at, decision) = run(&mut tracker, &policy, start, 0, 200, 3, 2).unwrap();
        assert_eq!(at, 60);
        assert_eq!(
            decision,
            Decision::Down {
                to: 2,
                reason: decision.reason().to_string()
            }
        );
        // The count changed: a whole new window before the next removal.
        let (at, decision) = run(&mut tracker, &policy, start, 61, 200, 2, 2).unwrap();
        assert_eq!(at, 121);
        assert_eq!(decision.to(), 1);
    }

    #[test]
    fn no_flapping_around_the_target() {
        let start = Instant::now();
        let mut tracker = Tracker::new(start);
        let policy = policy(1, 4);
        // 12 in flight on 2 instances (6 each): below the target to add, too much to remove
        // (12 on one would be above half the target).
        assert_eq!(run(&mut tracker, &policy, start, 0, 600, 2, 12), None);
    }

    #[test]
    fn idle_goes_to_min_and_zero_is_left_alone() {
        let start = Instant::now();
        let mut tracker = Tracker::new(start);
        let mut policy = policy(0, 3);
        policy.idle = Duration::from_secs(5);
        assert_eq!(run(&mut tracker, &policy, start, 0, 3, 2, 1), None);
        let (at, decision) = run(&mut tracker, &policy, start, 3, 20, 2, 0).unwrap();
        assert_eq!(at, 7, "five seconds after the last request (second 2)");
        assert_eq!(decision.to(), 0);
        assert!(
            decision.reason().contains("no request for 5s"),
            "{decision:?}"
        );
        // At zero nothing is decided: a request wakes it.
        assert_eq!(run(&mut tracker, &policy, start, 8, 100, 0, 0), None);
    }

    #[test]
    fn requests_keep_it_awake() {
        let start = Instant::now();
        let mut tracker = Tracker::new(start);
        let mut policy = policy(0, 1);
        policy.idle = Duration::from_secs(5);
        for second in 0..30 {
            // A short request every other second: never in flight when looked at.
            let seen = Observation {
                now: start + Duration::from_secs(second),
                running: 1,
                in_flight: 0,
                requests: second / 2,
            };
            assert_eq!(tracker.observe(&policy, seen), None, "second {second}");
        }
    }

    #[test]
    fn min_and_max_are_kept() {
        let start = Instant::now();
        let mut tracker = Tracker::new(start);
        let (_, up) = run(&mut tracker, &policy(2, 4), start, 0, 1, 1, 0).unwrap();
        assert_eq!(up.to(), 2);
        // Above max: only once it lasts a whole up window (not a deploy's extra instance).
        let (at, down) = run(&mut tracker, &policy(1, 3), start, 1, 30, 5, 0).unwrap();
        assert_eq!((at, down.to()), (11, 3));
    }
}
