//! A funko's in-flight limit (`faaso.limits.max_inflight`) and its queue
//! (`faaso.limits.queue_timeout`).
//!
//! No instance of the funko gets more than `cap` requests at once. A request that finds every
//! instance full waits in a FIFO queue of its funko; each request that ends wakes the head of
//! the queue, which takes the freed slot (newcomers do not overtake waiters). A request that
//! has waited `queue_timeout` leaves the queue and gets 429 with `Retry-After`. The queue lives
//! as long as the setting does: it is carried across routing snapshots, and a new snapshot
//! wakes the head (an instance may have been added).
//!
//! Funkos without the setting never get here: the request path only checks that the funko has
//! no gate.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::routing::balancer::{Tried, pick_below};
use crate::routing::instance::{InFlight, Instance};

/// The default `faaso.limits.queue_timeout`.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(10);

/// One funko's limit and queue.
#[derive(Debug)]
pub struct Gate {
    /// Requests in flight per instance, at most.
    pub cap: usize,
    /// Longest wait in the queue.
    pub queue_timeout: Duration,
    waiters: Mutex<VecDeque<Arc<Notify>>>,
    queued: AtomicUsize,
}

/// A request admitted through a gate: it holds its slot on instance `index` of the snapshot it
/// was admitted in, and wakes the next waiter when it ends.
#[derive(Debug)]
pub struct Admitted {
    pub index: usize,
    in_flight: Option<InFlight>,
    gate: Arc<Gate>,
}

impl Admitted {
    pub fn new(index: usize, in_flight: InFlight, gate: Arc<Gate>) -> Admitted {
        Admitted {
            index,
            in_flight: Some(in_flight),
            gate,
        }
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        // The slot is free before the waiter looks for it.
        drop(self.in_flight.take());
        self.gate.wake_head();
    }
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// It waited `queue_timeout` (429).
    QueueTimeout,
    /// The funko left the routing table, or has no eligible instance (503).
    NoInstance,
}

/// What the gate admits to: a funko's current instances (the routing table's funko).
pub trait Instances {
    fn instances(&self) -> &[Arc<Instance>];
}

impl Gate {
    pub fn new(cap: usize, queue_timeout: Duration) -> Gate {
        Gate {
            cap: cap.max(1),
            queue_timeout,
            waiters: Mutex::new(VecDeque::new()),
            queued: AtomicUsize::new(0),
        }
    }

    /// Requests waiting now.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    /// Wakes the first waiter (a slot was freed, or the instances changed).
    pub fn wake_head(&self) {
        if let Some(head) = self.lock().front() {
            head.notify_one();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Notify>>> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a request: a slot on an instance of the funko's current snapshot (`current`
    /// loads it) other than those `skip` names in it (another release's), waiting in turn when
    /// all are full. `on_queue` is told +1 when the request starts to wait and -1 when it stops.
    pub async fn admit<F: Instances>(
        self: &Arc<Self>,
        current: impl Fn() -> Option<Arc<F>>,
        skip: impl Fn(&F) -> Tried,
        on_queue: impl Fn(i64),
    ) -> Result<(Arc<F>, Admitted), Refused> {
        // No one waiting: take a free slot at once.
        if self.lock().is_empty() {
            let funko = current().ok_or(Refused::NoInstance)?;
            if let Some((index, in_flight)) = pick_below(funko.instances(), skip(&funko), self.cap)
            {
                return Ok((funko, Admitted::new(index, in_flight, Arc::clone(self))));
            }
            if !crate::routing::balancer::any_available(funko.instances()) {
                return Err(Refused::NoInstance);
            }
        }
        let me = Arc::new(Notify::new());
        self.lock().push_back(Arc::clone(&me));
        self.queued.fetch_add(1, Ordering::Relaxed);
        on_queue(1);
        let deadline = Instant::now() + self.queue_timeout;
        let outcome = loop {
            let at_head = self
                .lock()
                .front()
                .is_some_and(|head| Arc::ptr_eq(head, &me));
            if at_head {
                let Some(funko) = current() else {
                    break Err(Refused::NoInstance);
                };
                if let Some((index, in_flight)) =
                    pick_below(funko.instances(), skip(&funko), self.cap)
                {
                    break Ok((funko, Admitted::new(index, in_flight, Arc::clone(self))));
                }
            }
            tokio::select! {
                _ = me.notified() => {}
                _ = tokio::time::sleep_until(deadline) => break Err(Refused::QueueTimeout),
            }
        };
        let was_head = {
            let mut waiters = self.lock();
            let was_head = waiters.front().is_some_and(|head| Arc::ptr_eq(head, &me));
            waiters.retain(|waiter| !Arc::ptr_eq(waiter, &me));
            was_head
        };
        self.queued.fetch_sub(1, Ordering::Relaxed);
        on_queue(-1);
        // The next in line may find a slot too (several freed at once, or this one gave up).
        if was_head {
            self.wake_head();
        }
        outcome
    }

    /// `Retry-After` for a request refused after waiting: the queue timeout, in whole seconds.
    pub fn retry_after(&self) -> u64 {
        self.queue_timeout.as_secs_f64().ceil().max(1.0) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routing::instance::{DockerHealth, InstanceState, PeerTimeouts};
    use crate::routing::table::Funko;

    fn funko(instances: usize) -> Arc<Funko<()>> {
        let instances = (0..instances)
            .map(|i| {
                let mut instance = Instance::new(
                    format!("id{i}"),
                    format!("faaso-f-{i:06}"),
                    format!("10.0.0.{i}:3000").parse().unwrap(),
                    DockerHealth::None,
                    Arc::new(InstanceState::default()),
                    PeerTimeouts::default(),
                );
                instance.active_checks = false;
                Arc::new(instance)
            })
            .collect();
        Arc::new(Funko::new("f", instances, Arc::new(())))
    }

    #[tokio::test(start_paused = true)]
    async fn no_instance_gets_more_than_the_cap_and_waiters_go_in_order() {
        let gate = Arc::new(Gate::new(2, Duration::from_secs(10)));
        let table = funko(2);
        let current = || Some(Arc::clone(&table));
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(
                gate.admit(current, |_| Tried::default(), |_| {})
                    .await
                    .unwrap()
                    .1,
            );
        }
        for instance in &table.instances {
            assert_eq!(instance.state.in_flight(), 2);
        }
        // Three more wait, in order.
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for n in 0..3 {
            let (gate, table, order) = (Arc::clone(&gate), Arc::clone(&table), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let admitted = gate
                    .admit(|| Some(Arc::clone(&table)), |_| Tried::default(), |_| {})
                    .await
                    .unwrap()
                    .1;
                order.lock().unwrap().push(n);
                admitted
            }));
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(gate.queued(), 3);
        // A newcomer does not overtake them even when a slot is free.
        drop(held.pop());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(*order.lock().unwrap(), [0]);
        drop(held.pop());
        drop(held.pop());
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
        assert_eq!(gate.queued(), 0);
        let total: usize = table.instances.iter().map(|i| i.state.in_flight()).sum();
        assert_eq!(total, 4);
        for task in tasks {
            drop(task.await.unwrap());
        }
        drop(held);
        let total: usize = table.instances.iter().map(|i| i.state.in_flight()).sum();
        assert_eq!(total, 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_waits_too_long_is_refused_and_leaves_the_queue() {
        let gate = Arc::new(Gate::new(1, Duration::from_secs(2)));
        let table = funko(1);
        let current = || Some(Arc::clone(&table));
        let _held = gate
            .admit(current, |_| Tried::default(), |_| {})
            .await
            .unwrap();
        let depth = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let started = Instant::now();
        let refused = gate
            .admit(
                current,
                |_| Tried::default(),
                |d| {
                    depth.fetch_add(d, Ordering::Relaxed);
                },
            )
            .await
            .unwrap_err();
        assert_eq!(refused, Refused::QueueTimeout);
        assert_eq!(started.elapsed(), Duration::from_secs(2));
        assert_eq!(gate.queued(), 0);
        assert_eq!(depth.load(Ordering::Relaxed), 0);
        assert_eq!(gate.retry_after(), 2);
        assert_eq!(
            gate.admit(|| None::<Arc<Funko<()>>>, |_| Tried::default(), |_| {})
                .await
                .unwrap_err(),
            Refused::NoInstance
        );
    }
}
