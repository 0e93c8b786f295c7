//! The scaler: the background service that starts and stops instances of the funkos the
//! gateway scales (those with a `scaling:` setting), through the same library operations as
//! `faaso scale`, so the saved scale is always the count it runs.
//!
//! - **Cold starts**: a start asked for by a request to a funko at zero ([`crate::routing::wake`]) runs
//!   `Lifecycle::up` with one instance (network, secrets, labels and restart policy as
//!   `faaso up`), waits for it to answer `/ping` and to be in the routing table, then lets the
//!   waiting requests go. A start that fails removes its container and answers with why. A
//!   funko with `scaling.zero: pause` has its idle instances paused rather than stopped: a
//!   wake thaws one (`docker unpause`) and the requests go as soon as that returns; paused
//!   longer than `scaling.pause_max`, they are stopped. A funko at zero that stops its
//!   instances keeps one ready container (created from its newest image, not started), which
//!   a wake starts instead of creating one, and which is replaced after.
//! - **Decisions**: once a second every scaled funko with a saved scale above zero is looked at
//!   ([`crate::services::autoscale`] decides; a funko stopped with `faaso down`, or run by
//!   another gateway with its own state folder, is left alone); an addition runs
//!   `Lifecycle::grow` (nothing when the funko was stopped meanwhile), a removal drains first:
//!   the instances to go are taken out of routing, their requests in flight finish, then
//!   `Lifecycle::retire` stops them and saves the count left. A request for a funko whose last instances are draining calls the
//!   drain off and gets them back at once.
//! - One operation per funko at a time; a failed one is retried after a backoff (10 s doubling
//!   to 5 min) and logged. Every change is logged and counted
//!   (`faaso_autoscale_events_total`, `faaso_cold_starts_total`).
//!
//! Nothing here is on the request path: requests count themselves in an atomic
//! ([`crate::routing::table::Activity`]) and the scaler reads it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use faaso::engine::Lifecycle;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::sync::mpsc;

use crate::SharedRoutes;
use crate::routing::table::{Instance, InstanceState};
use crate::routing::wake::{WakeStart, Wakes};
use crate::services::autoscale::{Decision, Observation, Policy, Tracker};

/// How often the scaled funkos are looked at.
pub const LOOK_EVERY: Duration = Duration::from_secs(1);

/// After a change, how long the funko is left alone (discovery shows the new count first).
const SETTLE: Duration = Duration::from_secs(2);

/// First and longest wait after a failed change.
const RETRY_FIRST: Duration = Duration::from_secs(10);
const RETRY_MOST: Duration = Duration::from_secs(300);

/// How often a starting instance is looked at during a cold start.
const COLD_START_POLL: Duration = Duration::from_millis(20);

/// How a funko at zero was woken (the `kind` of `faaso_cold_starts_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wake {
    /// A paused instance thawed.
    Unpause,
    /// An instance started.
    Start,
}

impl Wake {
    fn label(self) -> &'static str {
        match self {
            Wake::Unpause => "unpause",
            Wake::Start => "start",
        }
    }
}

/// The scaler service.
pub struct Scaler {
    pub lifecycle: crate::services::restore::LifecycleConfig,
    pub table: SharedRoutes,
    pub wakes: Arc<Wakes>,
    /// Starts asked for by requests (taken when the service starts).
    pub starts: Mutex<Option<mpsc::UnboundedReceiver<WakeStart>>>,
    pub up_window: Duration,
    pub down_window: Duration,
}

/// What the scaler's tasks share.
struct Shared {
    table: SharedRoutes,
    wakes: Arc<Wakes>,
    /// For decisions: waits briefly for another operation's lock.
    lifecycle: Lifecycle,
    /// For cold starts: waits up to `cold_start_timeout` in all.
    waking: Lifecycle,
    funkos: Mutex<HashMap<Arc<str>, Arc<FunkoOps>>>,
}

/// One funko's operations.
#[derive(Default)]
struct FunkoOps {
    /// Held while an operation changes the funko's containers.
    serial: tokio::sync::Mutex<()>,
    /// A decision is being carried out.
    busy: AtomicBool,
    /// Instances being drained before they are stopped.
    drain: Mutex<Option<Draining>>,
    /// No decision before this; and the last retry delay.
    not_before: Mutex<(Option<Instant>, Duration)>,
}

struct Draining {
    cancelled: bool,
    instances: Vec<Arc<InstanceState>>,
}

impl FunkoOps {
    fn drain(&self) -> std::sync::MutexGuard<'_, Option<Draining>> {
        self.drain.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn not_before(&self) -> std::sync::MutexGuard<'_, (Option<Instant>, Duration)> {
        self.not_before.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn waiting(&self, now: Instant) -> bool {
        self.not_before().0.is_some_and(|at| at > now)
    }

    fn succeeded(&self) {
        *self.not_before() = (Some(Instant::now() + SETTLE), Duration::ZERO);
    }

    /// Backs off after a failure; returns the delay.
    fn failed(&self) -> Duration {
        let mut not_before = self.not_before();
        let delay = if not_before.1.is_zero() {
            RETRY_FIRST
        } else {
            (not_before.1 * 2).min(RETRY_MOST)
        };
        *not_before = (Some(Instant::now() + delay), delay);
        delay
    }

    /// Calls off a drain in progress; returns whether there was one.
    fn call_off_drain(&self) -> bool {
        let mut drain = self.drain();
        match drain.as_mut() {
            Some(draining) => {
                draining.cancelled = true;
                for instance in &draining.instances {
                    instance.undrain();
                }
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl BackgroundService for Scaler {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let taken = self.starts.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(mut starts) = taken else {
            return;
        };
        tokio::select! {
            _ = self.run(&mut starts) => {}
            _ = shutdown.changed() => {}
        }
    }
}

impl Scaler {
    async fn run(&self, starts: &mut mpsc::UnboundedReceiver<WakeStart>) {
        let mut lifecycle = self.lifecycle.connect("scaler").await;
        lifecycle.ready_poll = COLD_START_POLL;
        let mut waking = lifecycle.clone();
        let timeout = self.wakes.timeout;
        waking.lock_timeout = timeout;
        // The start gives up before the requests do (creating and removing the container take
        // time too), so they get its reason, and its container is gone, rather than a bare
        // timeout.
        waking.ready_timeout = timeout.saturating_sub((timeout / 2).min(Duration::from_secs(2)));
        // A decision finding the funko busy (a deploy, a `faaso scale`) waits for the next look.
        lifecycle.lock_timeout = Duration::from_millis(500);
        let shared = Arc::new(Shared {
            table: Arc::clone(&self.table),
            wakes: Arc::clone(&self.wakes),
            lifecycle,
            waking,
            funkos: Mutex::new(HashMap::new()),
        });
        let mut trackers: HashMap<Arc<str>, Tracker> = HashMap::new();
        let mut every = tokio::time::interval(LOOK_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(start) = starts.recv() => {
                    tokio::spawn(Arc::clone(&shared).cold_start(start));
                }
                _ = every.tick() => self.look(&shared, &mut trackers),
            }
        }
    }

    /// Looks at every scaled funko once and starts what its tracker decides.
    fn look(&self, shared: &Arc<Shared>, trackers: &mut HashMap<Arc<str>, Tracker>) {
        let table = shared.table.load();
        let now = Instant::now();
        // The funkos this gateway runs: those with a saved scale above zero in its state folder
        // (another gateway on the same engine keeps its own; `faaso down` saves 0).
        let Ok(saved) = shared.lifecycle.state.all() else {
            return;
        };
        let up: std::collections::HashSet<&str> = saved
            .funkos
            .iter()
            .filter(|(_, state)| state.scale > 0)
            .map(|(name, _)| name.as_str())
            .collect();
        trackers.retain(|name, _| table.get(name).is_some_and(|f| f.activity.is_some()));
        for funko in table.funkos() {
            let Some(activity) = &funko.activity else {
                continue;
            };
            self.stop_long_paused(shared, funko);
            if !up.contains(&*funko.name) {
                trackers.remove(&funko.name);
                continue;
            }
            let serving: Vec<&Arc<Instance>> = funko
                .instances
                .iter()
                .filter(|i| !i.state.is_draining() && !i.state.is_paused())
                .collect();
            let seen = Observation {
                now,
                running: serving.len() as u32,
                in_flight: serving.iter().map(|i| i.state.in_flight() as u64).sum(),
                requests: activity.requests(),
            };
            let policy = Policy::new(&funko.settings, self.up_window, self.down_window);
            let tracker = trackers
                .entry(Arc::clone(&funko.name))
                .or_insert_with(|| Tracker::new(now));
            let Some(decision) = tracker.observe(&policy, seen) else {
                continue;
            };
            let ops = shared.ops(&funko.name);
            // A deploy or `faaso scale` under way (a deploy runs one instance more for a
            // while): nothing is decided until it is done.
            if ops.waiting(now) || shared.lifecycle.state.is_locked(&funko.name) {
                continue;
            }
            if ops.busy.swap(true, Ordering::AcqRel) {
                continue;
            }
            tracing::info!(
                funko = %funko.name,
                direction = decision.direction(),
                from = seen.running,
                to = decision.to(),
                reason = decision.reason(),
                "autoscale: changing the instance count"
            );
            let shared = Arc::clone(shared);
            let funko = Arc::clone(funko);
            tokio::spawn(async move {
                let done = shared.carry_out(&funko, &decision, &ops).await;
                match done {
                    Ok(changed) => {
                        ops.succeeded();
                        if changed {
                            crate::metrics::autoscale_event(&funko.name, decision.direction());
                        }
                    }
                    Err(err) => {
                        let delay = ops.failed();
                        tracing::warn!(funko = %funko.name, error = %err, retry_in = ?delay, "autoscale: change failed");
                    }
                }
                ops.busy.store(false, Ordering::Release);
            });
        }
    }
}

impl Scaler {
    /// Stops the instances of `funko` paused longer than its `scaling.pause_max`, so that a
    /// funko nobody calls does not hold its memory for ever.
    fn stop_long_paused(
        &self,
        shared: &Arc<Shared>,
        funko: &Arc<crate::routing::table::Funko<crate::metrics::FunkoMetrics>>,
    ) {
        let limit = funko.settings.pause_max();
        let stale: Vec<&Arc<Instance>> = funko
            .instances
            .iter()
            .filter(|i| {
                !i.state.is_draining() && i.state.paused_for().is_some_and(|paused| paused > limit)
            })
            .collect();
        if stale.is_empty() {
            return;
        }
        let ops = shared.ops(&funko.name);
        if ops.busy.swap(true, Ordering::AcqRel) {
            return;
        }
        // Out of routing for good first: `docker stop` thaws a paused container before it
        // stops it, and no request may reach it then.
        for instance in &stale {
            instance.state.drain();
        }
        let stale: Vec<String> = stale.iter().map(|i| i.id.clone()).collect();
        let shared = Arc::clone(shared);
        let name = Arc::clone(&funko.name);
        tokio::spawn(async move {
            let _serial = ops.serial.lock().await;
            let mut report = |line: String| tracing::info!(funko = %name, "pause_max: {line}");
            if let Err(err) = shared
                .lifecycle
                .stop_paused(&name, &stale, &mut report)
                .await
            {
                let delay = ops.failed();
                tracing::warn!(funko = %name, error = %err, retry_in = ?delay, "pause_max: stopping paused instances failed");
            }
            ops.busy.store(false, Ordering::Release);
        });
    }
}

impl Shared {
    fn ops(&self, funko: &Arc<str>) -> Arc<FunkoOps> {
        let mut funkos = self.funkos.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(funkos.entry(Arc::clone(funko)).or_default())
    }

    /// Carries out one decision; `false` when there was nothing left to do (the funko was
    /// stopped while the decision waited for its lock).
    async fn carry_out(
        &self,
        funko: &crate::routing::table::Funko<crate::metrics::FunkoMetrics>,
        decision: &Decision,
        ops: &FunkoOps,
    ) -> Result<bool, String> {
        let name = &*funko.name;
        let mut report = |line: String| tracing::info!(funko = %name, "autoscale: {line}");
        match decision {
            Decision::Up { to, .. } => {
                let _serial = ops.serial.lock().await;
                match self.lifecycle.grow(name, *to, &mut report).await {
                    Ok(Some(_)) => Ok(true),
                    Ok(None) => {
                        tracing::info!(funko = %name, "autoscale: stopped meanwhile, left at zero");
                        Ok(false)
                    }
                    Err(err) => Err(err.to_string()),
                }
            }
            Decision::Down { to, .. } => {
                self.drain_and_retire(funko, *to, ops).await?;
                if *to == 0 {
                    self.keep_ready(funko, ops).await;
                }
                Ok(true)
            }
        }
    }

    /// For a funko at zero that stops its instances (`min: 0`, `zero: stop`): one ready
    /// container (created, not started) for its next wake, which then skips the create.
    async fn keep_ready(
        &self,
        funko: &crate::routing::table::Funko<crate::metrics::FunkoMetrics>,
        ops: &FunkoOps,
    ) {
        if funko.settings.pauses() || funko.settings.scale_min != Some(0) {
            return;
        }
        let name = &*funko.name;
        let _serial = ops.serial.lock().await;
        let mut report = |line: String| tracing::info!(funko = %name, "ready container: {line}");
        if let Err(err) = self.lifecycle.prepare(name, &mut report).await {
            tracing::warn!(funko = %name, error = %err, "ready container: not made");
        }
    }

    /// Takes instances out of routing until `to` serve, waits for their requests in flight,
    /// then stops them; called off when a request arrives for a funko going to zero.
    async fn drain_and_retire(
        &self,
        funko: &crate::routing::table::Funko<crate::metrics::FunkoMetrics>,
        to: u32,
        ops: &FunkoOps,
    ) -> Result<(), String> {
        let name = &*funko.name;
        let mut serving: Vec<&Arc<Instance>> = funko
            .instances
            .iter()
            .filter(|i| !i.state.is_draining())
            .collect();
        // The least busy go; among equals the last in name order.
        serving.sort_by(|a, b| {
            a.state
                .in_flight()
                .cmp(&b.state.in_flight())
                .then_with(|| b.name.cmp(&a.name))
        });
        let leaving_count = serving.len().saturating_sub(to as usize);
        let leaving: Vec<&Arc<Instance>> = serving.into_iter().take(leaving_count).collect();
        if leaving.is_empty() {
            return Ok(());
        }
        *ops.drain() = Some(Draining {
            cancelled: false,
            instances: leaving.iter().map(|i| Arc::clone(&i.state)).collect(),
        });
        for instance in &leaving {
            instance.state.drain();
        }
        // A request that picked an instance just before the drain counts itself right after.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let longest = leaving
            .iter()
            .map(|i| i.timeouts.read)
            .max()
            .unwrap_or_default();
        let deadline = Instant::now() + longest + Duration::from_secs(1);
        while leaving.iter().any(|i| i.state.in_flight() > 0) && Instant::now() < deadline {
            if ops.drain().as_ref().is_none_or(|d| d.cancelled) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _serial = ops.serial.lock().await;
        let draining = ops.drain().take();
        if draining.is_none_or(|d| d.cancelled) {
            tracing::info!(funko = %name, "autoscale: a request arrived, the instances stay");
            return Ok(());
        }
        let names: Vec<String> = leaving.iter().map(|i| i.name.clone()).collect();
        let mut report = |line: String| tracing::info!(funko = %name, "autoscale: {line}");
        let done = if funko.settings.pauses() {
            let paused = self.lifecycle.pause(name, &names, &mut report).await;
            if paused.is_ok() {
                // Known paused at once, before discovery's next snapshot.
                for instance in &leaving {
                    instance.state.set_paused(true);
                }
            }
            paused
        } else {
            self.lifecycle.retire(name, &names, &mut report).await
        };
        match done {
            Ok(_) => Ok(()),
            Err(err) => {
                for instance in &leaving {
                    instance.state.undrain();
                }
                Err(err.to_string())
            }
        }
    }

    /// Starts the first instance of a funko at zero for the requests waiting on it.
    async fn cold_start(self: Arc<Self>, start: WakeStart) {
        let began = Instant::now();
        let name = Arc::clone(&start.funko);
        let ops = self.ops(&name);
        // Its last instances were being drained: they serve again, nothing needs starting.
        let drain_called_off = ops.call_off_drain();
        let outcome = match self.unpause_one(&name, &ops).await {
            Some(Ok(())) => Ok(Wake::Unpause),
            // Gone meanwhile (a deploy or purge removed it): a start instead.
            Some(Err(reason)) => {
                tracing::info!(funko = %name, %reason, "cold start: no paused instance to thaw, starting one");
                self.start_one(&name, &ops, began)
                    .await
                    .map(|()| Wake::Start)
            }
            None => self
                .start_one(&name, &ops, began)
                .await
                .map(|()| Wake::Start),
        };
        let took = began.elapsed();
        match &outcome {
            Ok(_) if drain_called_off => {}
            Ok(kind) => {
                tracing::info!(funko = %name, took = ?took, kind = kind.label(), "cold start: an instance is ready");
                crate::metrics::cold_start(&name, kind.label(), took.as_secs_f64());
            }
            Err(reason) => tracing::warn!(funko = %name, %reason, "cold start failed"),
        }
        let unpaused = matches!(outcome, Ok(Wake::Unpause));
        let started = matches!(outcome, Ok(Wake::Start));
        self.wakes.finish(start, outcome.map(|_| ()));
        if started {
            // The ready container (if there was one) is used: a new one for the next time the
            // funko is at zero.
            let funko = self.table.load().get(&name).cloned();
            if let Some(funko) = funko {
                self.keep_ready(&funko, &ops).await;
            }
        }
        if unpaused {
            // Off the requests' path: the thawed instance becomes the saved scale, so the
            // autoscaler looks after it again.
            let _serial = ops.serial.lock().await;
            if let Err(err) = self.lifecycle.save_running(&name).await {
                tracing::warn!(funko = %name, error = %err, "cold start: the scale was not saved");
            }
        }
    }

    /// For a funko that pauses its idle instances: thaws one paused instance and lets the
    /// requests go as soon as the thaw returns (it was healthy when it was paused). `None`
    /// when the funko has no paused instance (a start is needed).
    async fn unpause_one(&self, name: &str, ops: &FunkoOps) -> Option<Result<(), String>> {
        let instance = {
            let table = self.table.load();
            let funko = table.get(name)?;
            funko
                .instances
                .iter()
                .find(|i| i.state.is_paused())
                .cloned()?
        };
        let _serial = ops.serial.lock().await;
        match self.lifecycle.unpause(name, &instance.id).await {
            Ok(()) => {
                instance.state.set_paused(false);
                Some(Ok(()))
            }
            Err(err) => Some(Err(err.to_string())),
        }
    }

    async fn start_one(&self, name: &str, ops: &FunkoOps, began: Instant) -> Result<(), String> {
        let _serial = ops.serial.lock().await;
        let mut report = |line: String| tracing::info!(funko = %name, "cold start: {line}");
        // However long creating the container took, the wait for `/ping` ends in time for the
        // requests to get the reason (and the container to be removed) within the timeout.
        let timeout = self.wakes.timeout;
        let mut waking = self.waking.clone();
        waking.ready_by =
            Some(began + timeout.saturating_sub((timeout / 3).min(Duration::from_secs(2))));
        waking
            .up(name, Some(1), &mut report)
            .await
            .map_err(|err| err.to_string())?;
        // Ready; the requests go on once discovery has it in the routing table.
        let deadline = began + self.wakes.timeout;
        loop {
            let table = self.table.load();
            if table
                .get(name)
                .is_some_and(|f| crate::routing::balancer::any_available(&f.instances))
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err("the instance is ready but not yet in the routing table".to_string());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
