//! The embedded queue: calls stored in [`Store`], run by this gateway.
//!
//! In memory it keeps only ids: per funko the calls ready to run and how many run, and the
//! calls waiting for a retry, by due time. The dispatcher starts a funko's ready calls while
//! fewer than its `async.max_inflight` run. Each state change is committed before the next
//! step, so after a crash (or SIGKILL) [`EmbeddedQueue::recover`] finds every call that was
//! queued, waiting or running (run again: at least once) and every callback still pending; a
//! call whose outcome was recorded never runs again.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::Notify;

use super::attempt::Runner;
use super::embedded::{AnswerChange, Store};
use super::record::{CallId, CallbackState, Record, Request, State, now_ms};
use super::{AcceptError, Settled, settle};
use crate::SharedRoutes;
use crate::metrics::calls as metrics;

/// How often finished calls past `calls_retention` are removed.
const EXPIRY_INTERVAL: Duration = Duration::from_secs(60);

/// The embedded queue and its dispatcher.
pub struct EmbeddedQueue {
    /// Opened by [`EmbeddedQueue::open`] (after a `-u` upgrade, once the previous process has
    /// let go of the file).
    store: OnceLock<Store>,
    dir: PathBuf,
    pub runner: Runner,
    pub table: SharedRoutes,
    pub max_queued: usize,
    pub retention: Duration,
    queues: Mutex<Queues>,
    changed: Notify,
}

#[derive(Default)]
struct Queues {
    funkos: HashMap<Arc<str>, FunkoQueue>,
    /// Calls waiting for a retry: (due ms, id, funko).
    delayed: BinaryHeap<Reverse<(u64, CallId, Arc<str>)>>,
    /// Calls not final: ready, waiting or running.
    open: usize,
}

#[derive(Default)]
struct FunkoQueue {
    ready: VecDeque<CallId>,
    delayed: usize,
    running: usize,
}

impl Queues {
    /// `name`'s queue (made when it has none), and the name as the map keeps it.
    fn funko(&mut self, name: &str) -> (Arc<str>, &mut FunkoQueue) {
        let key = match self.funkos.get_key_value(name) {
            Some((key, _)) => Arc::clone(key),
            None => Arc::from(name),
        };
        let queue = self.funkos.entry(Arc::clone(&key)).or_default();
        (key, queue)
    }

    fn depth(&self, name: &str) -> usize {
        self.funkos
            .get(name)
            .map_or(0, |q| q.ready.len() + q.delayed)
    }
}

impl EmbeddedQueue {
    pub fn new(
        dir: PathBuf,
        runner: Runner,
        table: SharedRoutes,
        max_queued: usize,
        retention: Duration,
    ) -> EmbeddedQueue {
        EmbeddedQueue {
            store: OnceLock::new(),
            dir,
            runner,
            table,
            max_queued,
            retention,
            queues: Mutex::new(Queues::default()),
            changed: Notify::new(),
        }
    }

    /// The store, once open.
    pub fn store(&self) -> Result<&Store, String> {
        self.store
            .get()
            .ok_or_else(|| "the calls store is not open yet".to_string())
    }

    /// Opens the store, waiting while another process (the one a `-u` upgrade replaces)
    /// still has it open.
    pub async fn open(&self) {
        let mut logged = None;
        loop {
            match Store::open(&self.dir) {
                Ok(store) => {
                    let _ = self.store.set(store);
                    return;
                }
                Err(err) => {
                    if logged.is_none_or(|at: tokio::time::Instant| {
                        at.elapsed() > Duration::from_secs(10)
                    }) {
                        tracing::warn!(error = %err, "cannot open the calls store yet; retrying");
                        logged = Some(tokio::time::Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }

    /// The store, waiting up to 5 s for it to open.
    async fn open_store(&self) -> Result<&Store, String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match self.store() {
                Ok(store) => return Ok(store),
                Err(err) if tokio::time::Instant::now() >= deadline => return Err(err),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    fn queues(&self) -> std::sync::MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a call and queues it; returns once it is on disk.
    pub async fn accept(
        &self,
        id: CallId,
        funko: &str,
        request: Request,
        body: Bytes,
    ) -> Result<(), AcceptError> {
        {
            let mut queues = self.queues();
            if queues.open >= self.max_queued {
                return Err(AcceptError::Full(self.max_queued));
            }
            // Counted now, so that racing accepts cannot overfill the queue.
            queues.open += 1;
        }
        let record = Record::accepted(id, funko, &request, body.len() as u64);
        let stored = match self.open_store().await {
            Ok(store) => store.accept(record, request, body).await,
            Err(err) => Err(err),
        };
        if let Err(err) = stored {
            self.queues().open -= 1;
            return Err(AcceptError::Store(err));
        }
        {
            let mut queues = self.queues();
            queues.funko(funko).1.ready.push_back(id);
            metrics::queue_depth(funko, queues.depth(funko));
        }
        self.changed.notify_one();
        Ok(())
    }

    /// Queues what the store holds from before a restart: calls not final run (again), and
    /// pending callbacks are delivered.
    pub fn recover(self: &Arc<Self>) -> Result<usize, String> {
        let unfinished = self.store()?.unfinished()?;
        let now = now_ms();
        let count = unfinished.len();
        let mut queues = self.queues();
        for record in unfinished {
            if record.state.is_final() {
                let queue = Arc::clone(self);
                tokio::spawn(async move { queue.callback(record).await });
                continue;
            }
            queues.open += 1;
            let (name, queue) = queues.funko(&record.funko);
            match record.next_attempt_at_ms.filter(|due| *due > now) {
                Some(due) => {
                    queue.delayed += 1;
                    queues.delayed.push(Reverse((due, record.call_id, name)));
                }
                None => queue.ready.push_back(record.call_id),
            }
        }
        // Oldest first, as they were accepted.
        for queue in queues.funkos.values_mut() {
            queue.ready.make_contiguous().sort();
        }
        for name in queues.funkos.keys() {
            metrics::queue_depth(name, queues.depth(name));
        }
        Ok(count)
    }

    /// The dispatcher: starts ready calls within each funko's `async.max_inflight`, moves
    /// retries that are due back to ready, and removes expired records. Runs until shutdown.
    pub async fn dispatch(self: Arc<Self>, mut shutdown: pingora::server::ShutdownWatch) {
        let mut next_expiry = tokio::time::Instant::now();
        loop {
            let next_due = self.start_ready();
            if tokio::time::Instant::now() >= next_expiry {
                next_expiry = tokio::time::Instant::now() + EXPIRY_INTERVAL;
                let before = now_ms().saturating_sub(self.retention.as_millis() as u64);
                let expired = match self.store() {
                    Ok(store) => store.expire(before).await,
                    Err(err) => Err(err),
                };
                match expired {
                    Ok(0) => {}
                    Ok(removed) => tracing::info!(removed, "expired async call records"),
                    Err(err) => tracing::warn!(error = %err, "cannot expire async call records"),
                }
            }
            let wait = next_due
                .map(|due| Duration::from_millis(due.saturating_sub(now_ms())))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            tokio::select! {
                _ = self.changed.notified() => {}
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Starts every call that may start now; gives when the next retry is due.
    fn start_ready(self: &Arc<Self>) -> Option<u64> {
        let table = self.table.load();
        let now = now_ms();
        let mut launches = Vec::new();
        let next_due = {
            let mut queues = self.queues();
            while let Some(Reverse((due, _, _))) = queues.delayed.peek() {
                if *due > now {
                    break;
                }
                let Some(Reverse((_, id, name))) = queues.delayed.pop() else {
                    break;
                };
                let (_, queue) = queues.funko(&name);
                queue.delayed -= 1;
                queue.ready.push_back(id);
            }
            for (name, queue) in queues.funkos.iter_mut() {
                let cap = table
                    .get(name)
                    .map_or(faaso::settings::DEFAULT_ASYNC_MAX_INFLIGHT, |f| {
                        f.settings.async_max_inflight()
                    }) as usize;
                let before = queue.ready.len();
                while queue.running < cap
                    && let Some(id) = queue.ready.pop_front()
                {
                    queue.running += 1;
                    launches.push((Arc::clone(name), id));
                }
                if queue.ready.len() != before {
                    metrics::queue_depth(name, queue.ready.len() + queue.delayed);
                }
            }
            queues.funkos.retain(|name, q| {
                let busy = q.running > 0 || q.delayed > 0 || !q.ready.is_empty();
                if !busy {
                    metrics::forget_queue(name);
                }
                busy
            });
            queues.delayed.peek().map(|Reverse((due, _, _))| *due)
        };
        for (name, id) in launches {
            let queue = Arc::clone(self);
            tokio::spawn(async move { queue.run(name, id).await });
        }
        next_due
    }

    /// Runs one attempt of a call and records what follows: a retry, or its outcome.
    async fn run(self: Arc<Self>, funko: Arc<str>, id: CallId) {
        let retry_at = match self.attempt(&funko, id).await {
            Ok(retry_at) => retry_at,
            Err(err) => {
                tracing::error!(call_id = %id, funko = %funko, error = %err, "an async call could not be run; it stays queued");
                Some(now_ms() + 5_000)
            }
        };
        {
            let mut queues = self.queues();
            let (name, queue) = queues.funko(&funko);
            queue.running = queue.running.saturating_sub(1);
            match retry_at {
                Some(due) => {
                    queue.delayed += 1;
                    queues.delayed.push(Reverse((due, id, name)));
                }
                None => queues.open = queues.open.saturating_sub(1),
            }
            metrics::queue_depth(&funko, queues.depth(&funko));
        }
        self.changed.notify_one();
    }

    /// The attempt itself; `Ok(Some(due))` when the call is retried at `due`.
    async fn attempt(self: &Arc<Self>, funko: &str, id: CallId) -> Result<Option<u64>, String> {
        let store = self.store()?;
        let Some(mut record) = store.record(id)? else {
            return Ok(None);
        };
        if record.state.is_final() {
            return Ok(None);
        }
        let Some((request, body)) = store.request(id)? else {
            return Err("its request is missing from the store".to_string());
        };
        let settings = self.runner.settings(funko);
        record.state = State::Running;
        record.attempts += 1;
        record.started_at_ms = Some(now_ms());
        record.next_attempt_at_ms = None;
        store.update(record.clone(), AnswerChange::Keep).await?;
        metrics::attempt(funko);
        let attempt = self
            .runner
            .attempt(funko, id, &request, body, settings.async_timeout())
            .await;
        match settle(&mut record, attempt, &settings, now_ms()) {
            Settled::Retry(due) => {
                store.update(record, AnswerChange::Keep).await?;
                Ok(Some(due))
            }
            Settled::Final(answer) => {
                let outcome = if record.state == State::Done {
                    "done"
                } else {
                    "failed"
                };
                let change = match (&record.callback, answer) {
                    (Some(CallbackState::Pending), Some(answer)) => AnswerChange::Put(answer),
                    _ => AnswerChange::Keep,
                };
                store.update(record.clone(), change).await?;
                metrics::call(funko, outcome);
                if record.callback == Some(CallbackState::Pending) {
                    let queue = Arc::clone(self);
                    tokio::spawn(async move { queue.callback(record).await });
                }
                Ok(None)
            }
        }
    }

    /// Delivers a finished call's callback, retrying with its funko's backoff; each attempt
    /// is recorded.
    async fn callback(self: Arc<Self>, mut record: Record) {
        let Some(url) = record.callback_url.clone() else {
            return;
        };
        let Ok(store) = self.store() else {
            return;
        };
        let answer = match store.answer(record.call_id) {
            Ok(Some(answer)) => answer,
            Ok(None) => super::Answer::without_body(record.last_status.unwrap_or(502)),
            Err(err) => {
                tracing::error!(call_id = %record.call_id, error = %err, "cannot read a stored answer for its callback");
                return;
            }
        };
        let settings = self.runner.settings(record.funko.as_str());
        loop {
            let delivery = super::callback::deliver(
                &self.runner.reach,
                &self.runner.callbacks,
                &url,
                record.call_id,
                &record.funko,
                &answer,
            )
            .await;
            let retry = super::callback_settled(&mut record, &delivery, &settings);
            let change = match record.callback {
                Some(CallbackState::Pending) => AnswerChange::Keep,
                _ => AnswerChange::Remove,
            };
            if let Err(err) = store.update(record.clone(), change).await {
                tracing::error!(call_id = %record.call_id, error = %err, "cannot record a callback");
            }
            match retry {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return,
            }
        }
    }
}
