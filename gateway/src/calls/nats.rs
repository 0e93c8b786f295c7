//! Async calls through NATS JetStream (`queue: nats://host:4222`): several gateways share the
//! calls and cron ticks, and a gateway that dies loses nothing.
//!
//! - Stream `FAASO_CALLS` (work queue, on disk) holds a message per call on
//!   `faaso.calls.<funko>` (the body as payload, the request in the `Faaso-Call` header,
//!   `Nats-Msg-Id` the call id) and a message per pending callback on
//!   `faaso.callbacks.<funko>` (the funko's answer as payload).
//! - Each funko has a durable pull consumer `faaso-<funko>` shared by every gateway; its
//!   `max_ack_pending` is the funko's `async.max_inflight`, so that limit holds across
//!   gateways. A message is acknowledged only once its outcome is recorded; a retry is a
//!   negative acknowledgement with the backoff as delay; a gateway that dies leaves its
//!   messages unacknowledged, and JetStream delivers them again after `ack_wait`.
//! - Records live in the key-value bucket `FAASO_CALL_RECORDS` under `<funko>.<id>`, kept
//!   `calls_retention`. A call whose record is final is acknowledged without running again.
//! - A cron tick's id is the same on every gateway ([`CallId::for_tick`]): the first gateway
//!   creates its record and publishes it, the others find the record and stop (and the
//!   stream drops a duplicate `Nats-Msg-Id` within its 2-minute window).

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer, kv, stream};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::attempt::Runner;
use super::record::{Answer, CallId, CallbackState, Record, Request, State, now_ms};
use super::{AcceptError, Settled, callback_settled, settle};
use crate::SharedRoutes;
use crate::metrics::calls as metrics;

const STREAM: &str = "FAASO_CALLS";
const RECORDS: &str = "FAASO_CALL_RECORDS";
const CALLBACKS_CONSUMER: &str = "faaso-callbacks";
/// Callbacks delivered at once by one gateway.
const CALLBACK_SLOTS: usize = 32;
/// Longest wait for an answer from the NATS server when looking up records.
const LOOKUP_TIMEOUT: Duration = Duration::from_secs(2);

/// What a call message carries besides its body.
#[derive(Debug, Serialize, Deserialize)]
struct Envelope {
    funko: String,
    request: Request,
}

/// What a callback message carries besides the answer's body.
#[derive(Debug, Serialize, Deserialize)]
struct CallbackJob {
    call_id: CallId,
    funko: String,
    url: String,
    status: u16,
    content_type: Option<String>,
}

/// The connection, once made.
struct Conn {
    js: jetstream::Context,
    stream: stream::Stream,
    /// The stream under the records bucket, for listing its keys.
    bucket: stream::Stream,
    records: kv::Store,
    max_payload: usize,
}

/// The NATS queue of this gateway.
pub struct NatsQueue {
    pub url: String,
    pub runner: Runner,
    pub table: SharedRoutes,
    pub max_queued: usize,
    pub retention: Duration,
    conn: OnceLock<Conn>,
}

fn call_subject(funko: &str) -> String {
    format!("faaso.calls.{funko}")
}

fn record_key(funko: &str, id: CallId) -> String {
    format!("{funko}.{id}")
}

fn text(err: impl std::fmt::Display) -> String {
    err.to_string()
}

impl NatsQueue {
    pub fn new(
        url: String,
        runner: Runner,
        table: SharedRoutes,
        max_queued: usize,
        retention: Duration,
    ) -> NatsQueue {
        NatsQueue {
            url,
            runner,
            table,
            max_queued,
            retention,
            conn: OnceLock::new(),
        }
    }

    /// Connects, and makes the stream and the bucket if they are missing; retries until
    /// the server answers.
    pub async fn connect(&self) {
        let mut logged: Option<tokio::time::Instant> = None;
        loop {
            match self.try_connect().await {
                Ok(conn) => {
                    tracing::info!(url = %self.url, "async calls go through NATS JetStream");
                    let _ = self.conn.set(conn);
                    return;
                }
                Err(err) => {
                    if logged.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                        tracing::warn!(url = %self.url, error = %err, "cannot use the NATS queue yet; retrying");
                        logged = Some(tokio::time::Instant::now());
                    }
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn try_connect(&self) -> Result<Conn, String> {
        let client = async_nats::ConnectOptions::new()
            .name("faaso-gateway")
            .connect(&self.url)
            .await
            .map_err(text)?;
        let max_payload = client.server_info().max_payload;
        let js = jetstream::new(client);
        let stream = js
            .get_or_create_stream(stream::Config {
                name: STREAM.to_string(),
                subjects: vec!["faaso.calls.>".to_string(), "faaso.callbacks.>".to_string()],
                retention: stream::RetentionPolicy::WorkQueue,
                storage: stream::StorageType::File,
                discard: stream::DiscardPolicy::New,
                max_messages: self.max_queued as i64,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .map_err(|e| format!("stream {STREAM}: {e}"))?;
        // The bucket's stream is made here, as `create_key_value` would make it: that call
        // first asks for the account's limits, whose answer from a 2.9 server (Debian's) the
        // client cannot read. `get_key_value` then opens the bucket on it.
        let bucket_stream = stream::Config {
            name: format!("KV_{RECORDS}"),
            subjects: vec![format!("$KV.{RECORDS}.>")],
            max_messages_per_subject: 1,
            max_age: self.retention,
            storage: stream::StorageType::File,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            discard: stream::DiscardPolicy::New,
            duplicate_window: self.retention.min(Duration::from_secs(120)),
            ..Default::default()
        };
        let bucket = js
            .get_or_create_stream(bucket_stream)
            .await
            .map_err(|e| format!("bucket {RECORDS}: {e}"))?;
        let records = js
            .get_key_value(RECORDS)
            .await
            .map_err(|e| format!("bucket {RECORDS}: {e}"))?;
        Ok(Conn {
            js,
            stream,
            bucket,
            records,
            max_payload,
        })
    }

    fn conn(&self) -> Result<&Conn, String> {
        self.conn
            .get()
            .ok_or_else(|| format!("the NATS queue at {} is not connected yet", self.url))
    }

    /// The connection, waiting up to 5 s for it.
    async fn ready_conn(&self) -> Result<&Conn, String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        loop {
            match self.conn() {
                Ok(conn) => return Ok(conn),
                Err(err) if tokio::time::Instant::now() >= deadline => return Err(err),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    }

    /// Records and publishes a call; `Ok` once JetStream has it on disk.
    pub async fn accept(
        &self,
        id: CallId,
        funko: &str,
        request: Request,
        body: Bytes,
    ) -> Result<(), AcceptError> {
        let conn = self.ready_conn().await.map_err(AcceptError::Store)?;
        let envelope = Envelope {
            funko: funko.to_string(),
            request,
        };
        let envelope_json =
            serde_json::to_string(&envelope).map_err(|e| AcceptError::Store(text(e)))?;
        // The headers and the body must fit the server's max_payload.
        if body.len() + envelope_json.len() + 256 > conn.max_payload {
            return Err(AcceptError::TooLarge(conn.max_payload));
        }
        let record = Record::accepted(id, funko, &envelope.request, body.len() as u64);
        let key = record_key(funko, id);
        let value = Bytes::from(serde_json::to_vec(&record).unwrap_or_default());
        if let Err(err) = conn.records.create(&key, value).await {
            return Err(match err.kind() {
                kv::CreateErrorKind::AlreadyExists => AcceptError::Duplicate,
                _ => AcceptError::Store(text(err)),
            });
        }
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.to_string().as_str());
        headers.insert("Faaso-Call", envelope_json.as_str());
        let published = match conn
            .js
            .publish_with_headers(call_subject(funko), headers, body)
            .await
        {
            Ok(ack) => ack.await.map(drop).map_err(text),
            Err(err) => Err(text(err)),
        };
        if let Err(err) = published {
            // Nothing half-written: the record goes with the call it was for.
            let _ = conn.records.purge(&key).await;
            if err.contains("maximum messages") {
                return Err(AcceptError::Full(self.max_queued));
            }
            return Err(AcceptError::Store(err));
        }
        Ok(())
    }

    /// A call's record, found by its id alone.
    pub async fn record(&self, id: CallId) -> Result<Option<Record>, String> {
        let conn = self.conn()?;
        let Some(key) = self.keys(conn, &format!("*.{id}")).await?.pop() else {
            return Ok(None);
        };
        self.get(conn, &key).await
    }

    /// The newest `limit` calls of `funko`, newest first.
    pub async fn list(&self, funko: &str, limit: usize) -> Result<Vec<Record>, String> {
        let conn = self.conn()?;
        let mut keys: Vec<(CallId, String)> = self
            .keys(conn, &format!("{funko}.*"))
            .await?
            .into_iter()
            .filter_map(|key| {
                let id = CallId::parse(key.rsplit('.').next()?)?;
                Some((id, key))
            })
            .collect();
        keys.sort_by_key(|(id, _)| std::cmp::Reverse(*id));
        let mut found = Vec::new();
        for (_, key) in keys {
            if found.len() == limit {
                break;
            }
            if let Some(record) = self.get(conn, &key).await? {
                found.push(record);
            }
        }
        Ok(found)
    }

    /// The keys matching `pattern`, as the bucket's stream lists its subjects (the server's
    /// own list: complete, unlike a watch, whose pending counts a 2.9 server can get wrong).
    async fn keys(&self, conn: &Conn, pattern: &str) -> Result<Vec<String>, String> {
        let prefix = format!("$KV.{RECORDS}.");
        let mut subjects = tokio::time::timeout(
            LOOKUP_TIMEOUT,
            conn.bucket.info_with_subjects(format!("{prefix}{pattern}")),
        )
        .await
        .map_err(|_| "the NATS server did not answer in time".to_string())?
        .map_err(text)?;
        let mut keys = Vec::new();
        while let Some(subject) = subjects.next().await {
            let (subject, _) = subject.map_err(text)?;
            if let Some(key) = subject.strip_prefix(&prefix) {
                keys.push(key.to_string());
            }
        }
        Ok(keys)
    }

    /// The record under `key`, unless it was removed.
    async fn get(&self, conn: &Conn, key: &str) -> Result<Option<Record>, String> {
        let value = tokio::time::timeout(LOOKUP_TIMEOUT, conn.records.get(key))
            .await
            .map_err(|_| "the NATS server did not answer in time".to_string())?
            .map_err(text)?;
        Ok(value.and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Runs the consumers of every funko in the routing snapshot (and of callbacks) until
    /// shutdown, following funkos as they come and go and their `async.max_inflight`.
    pub async fn dispatch(self: Arc<Self>, mut shutdown: pingora::server::ShutdownWatch) {
        let mut consumers: HashMap<Arc<str>, (u32, tokio::task::JoinHandle<()>)> = HashMap::new();
        let callbacks = tokio::spawn(Arc::clone(&self).consume_callbacks());
        let mut depth_at = tokio::time::Instant::now();
        loop {
            let table = self.table.load();
            consumers.retain(|name, (_, task)| {
                let known = table.get(name).is_some();
                if !known {
                    task.abort();
                    metrics::forget_queue(name);
                }
                known
            });
            for funko in table.funkos() {
                let cap = funko.settings.async_max_inflight();
                let current = consumers.get(&funko.name).map(|(cap, _)| *cap);
                if current == Some(cap) {
                    continue;
                }
                if let Some((_, task)) = consumers.remove(&funko.name) {
                    task.abort();
                }
                let task = tokio::spawn(Arc::clone(&self).consume(Arc::clone(&funko.name), cap));
                consumers.insert(Arc::clone(&funko.name), (cap, task));
            }
            if depth_at.elapsed() >= Duration::from_secs(5) {
                depth_at = tokio::time::Instant::now();
                self.publish_depths(consumers.keys()).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => break,
            }
        }
        callbacks.abort();
        for (_, (_, task)) in consumers {
            task.abort();
        }
    }

    /// Sets `faaso_async_queue_depth` from the consumers' pending counts.
    async fn publish_depths(&self, funkos: impl Iterator<Item = &Arc<str>>) {
        let Ok(conn) = self.conn() else { return };
        for funko in funkos {
            if let Ok(info) = conn.stream.consumer_info(consumer_name(funko)).await {
                metrics::queue_depth(funko, info.num_pending as usize);
            }
        }
    }

    /// Takes `funko`'s calls, at most `cap` running at once (on every gateway together).
    async fn consume(self: Arc<Self>, funko: Arc<str>, cap: u32) {
        let Ok(conn) = self.conn() else { return };
        let settings = self.runner.settings(&funko);
        let config = consumer::pull::Config {
            durable_name: Some(consumer_name(&funko)),
            filter_subject: call_subject(&funko),
            ack_policy: consumer::AckPolicy::Explicit,
            // An attempt ends within the timeout; the rest is for recording it.
            ack_wait: settings.async_timeout() + Duration::from_secs(5),
            max_ack_pending: i64::from(cap),
            max_deliver: -1,
            ..Default::default()
        };
        let queue = Arc::clone(&self);
        serve(conn, config, cap as usize, move |message| {
            let queue = Arc::clone(&queue);
            async move { queue.run(message).await }
        })
        .await;
    }

    /// One delivery of a call message: runs it unless its outcome is recorded, then records
    /// what follows and acknowledges (or asks for it again after the backoff).
    async fn run(&self, message: jetstream::Message) {
        let Ok(conn) = self.conn() else { return };
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_string())
        };
        let id = header("Nats-Msg-Id").and_then(|id| CallId::parse(&id));
        let envelope = header("Faaso-Call").and_then(|e| serde_json::from_str::<Envelope>(&e).ok());
        let (Some(id), Some(Envelope { funko, request })) = (id, envelope) else {
            tracing::error!(subject = %message.subject, "a call message without its id or request; dropped");
            let _ = message.ack_with(AckKind::Term).await;
            return;
        };
        let key = record_key(&funko, id);
        let stored = match conn.records.get(&key).await {
            Ok(value) => value.and_then(|v| serde_json::from_slice::<Record>(&v).ok()),
            Err(err) => {
                tracing::warn!(call_id = %id, error = %err, "cannot read a call's record; it runs later");
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(1))))
                    .await;
                return;
            }
        };
        let mut record = stored.unwrap_or_else(|| {
            Record::accepted(id, &funko, &request, message.payload.len() as u64)
        });
        if record.state.is_final() {
            let _ = message.double_ack().await;
            return;
        }
        let settings = self.runner.settings(funko.as_str());
        record.state = State::Running;
        record.attempts += 1;
        record.started_at_ms = Some(now_ms());
        record.next_attempt_at_ms = None;
        self.put(conn, &key, &record, Side::Run).await;
        metrics::attempt(&funko);
        let attempt = self
            .runner
            .attempt(
                &funko,
                id,
                &request,
                message.payload.clone(),
                settings.async_timeout(),
            )
            .await;
        let now = now_ms();
        match settle(&mut record, attempt, &settings, now) {
            Settled::Retry(due) => {
                self.put(conn, &key, &record, Side::Run).await;
                let wait = Duration::from_millis(due.saturating_sub(now));
                let _ = message.ack_with(AckKind::Nak(Some(wait))).await;
            }
            Settled::Final(answer) => {
                if record.callback == Some(CallbackState::Pending)
                    && let (Some(url), Some(answer)) = (record.callback_url.clone(), answer)
                    && let Err(err) = self.publish_callback(conn, &record, url, answer).await
                {
                    tracing::warn!(call_id = %id, error = %err, "cannot queue a callback");
                    record.callback = Some(CallbackState::Failed);
                }
                self.put(conn, &key, &record, Side::Run).await;
                let outcome = if record.state == State::Done {
                    "done"
                } else {
                    "failed"
                };
                metrics::call(&funko, outcome);
                let _ = message.double_ack().await;
            }
        }
    }

    /// Writes `record`'s fields of one side (`side`: what a run or a callback delivery
    /// owns) onto the stored record, compare-and-set on its revision: a run and a callback
    /// delivery of the same call, on any gateways, never undo each other's writes.
    async fn put(&self, conn: &Conn, key: &str, record: &Record, side: Side) {
        for _ in 0..10 {
            let entry = match conn.records.entry(key).await {
                Ok(entry) => entry.filter(|e| e.operation == kv::Operation::Put),
                Err(err) => {
                    tracing::warn!(call_id = %record.call_id, error = %err, "cannot read a call's record");
                    return;
                }
            };
            let mut current = entry
                .as_ref()
                .and_then(|e| serde_json::from_slice::<Record>(&e.value).ok())
                .unwrap_or_else(|| record.clone());
            side.copy(record, &mut current);
            let value = Bytes::from(serde_json::to_vec(&current).unwrap_or_default());
            let written = match &entry {
                Some(entry) => conn
                    .records
                    .update(key, value, entry.revision)
                    .await
                    .map(drop)
                    .map_err(|e| (e.kind() == kv::UpdateErrorKind::WrongLastRevision, text(e))),
                None => conn
                    .records
                    .create(key, value)
                    .await
                    .map(drop)
                    .map_err(|e| (e.kind() == kv::CreateErrorKind::AlreadyExists, text(e))),
            };
            match written {
                Ok(()) => return,
                // Someone wrote in between: read again and apply on top.
                Err((true, _)) => continue,
                Err((false, err)) => {
                    tracing::warn!(call_id = %record.call_id, error = %err, "cannot record a call");
                    return;
                }
            }
        }
        tracing::warn!(call_id = %record.call_id, "a call's record kept changing; this write is lost");
    }

    /// Queues a callback with the funko's answer.
    async fn publish_callback(
        &self,
        conn: &Conn,
        record: &Record,
        url: String,
        answer: Answer,
    ) -> Result<(), String> {
        let job = CallbackJob {
            call_id: record.call_id,
            funko: record.funko.clone(),
            url,
            status: answer.status,
            content_type: answer.content_type.clone(),
        };
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", format!("cb-{}", record.call_id).as_str());
        headers.insert(
            "Faaso-Callback",
            serde_json::to_string(&job).map_err(text)?.as_str(),
        );
        let subject = format!("faaso.callbacks.{}", record.funko);
        conn.js
            .publish_with_headers(subject, headers, answer.body)
            .await
            .map_err(text)?
            .await
            .map(drop)
            .map_err(text)
    }

    /// Delivers queued callbacks until the task is stopped.
    async fn consume_callbacks(self: Arc<Self>) {
        let conn = loop {
            match self.conn() {
                Ok(conn) => break conn,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let config = consumer::pull::Config {
            durable_name: Some(CALLBACKS_CONSUMER.to_string()),
            filter_subject: "faaso.callbacks.>".to_string(),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: super::callback::CALLBACK_TIMEOUT + Duration::from_secs(20),
            max_deliver: -1,
            ..Default::default()
        };
        let queue = Arc::clone(&self);
        serve(conn, config, CALLBACK_SLOTS, move |message| {
            let queue = Arc::clone(&queue);
            async move { queue.deliver(message).await }
        })
        .await;
    }

    /// One delivery attempt of a queued callback.
    async fn deliver(&self, message: jetstream::Message) {
        let Ok(conn) = self.conn() else { return };
        let job = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Faaso-Callback"))
            .and_then(|v| serde_json::from_str::<CallbackJob>(v.as_str()).ok());
        let Some(job) = job else {
            let _ = message.ack_with(AckKind::Term).await;
            return;
        };
        let answer = Answer {
            status: job.status,
            content_type: job.content_type.clone(),
            body: message.payload.clone(),
        };
        let delivery = super::callback::deliver(
            &self.runner.reach,
            &self.runner.callbacks,
            &job.url,
            job.call_id,
            &job.funko,
            &answer,
        )
        .await;
        let key = record_key(&job.funko, job.call_id);
        let stored = conn
            .records
            .get(&key)
            .await
            .ok()
            .flatten()
            .and_then(|v| serde_json::from_slice::<Record>(&v).ok());
        let Some(mut record) = stored else {
            // The record expired: nothing to count the attempts in; one delivery it was.
            let _ = message.double_ack().await;
            return;
        };
        let settings = self.runner.settings(job.funko.as_str());
        let retry = callback_settled(&mut record, &delivery, &settings);
        self.put(conn, &key, &record, Side::Callback).await;
        match retry {
            Some(wait) => {
                let _ = message.ack_with(AckKind::Nak(Some(wait))).await;
            }
            None => {
                let _ = message.double_ack().await;
            }
        }
    }
}

/// Makes (or opens) the durable consumer of `config`, retrying until the server takes it,
/// then hands its messages one by one to `handle`, at most `slots` at once.
async fn serve<F, Fut>(conn: &Conn, config: consumer::pull::Config, slots: usize, handle: F)
where
    F: Fn(jetstream::Message) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let name = config.durable_name.clone().unwrap_or_default();
    let consumer = loop {
        match conn.stream.create_consumer(config.clone()).await {
            Ok(consumer) => break consumer,
            Err(err) => {
                tracing::warn!(consumer = %name, error = %err, "cannot make a NATS consumer; retrying");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    let slots = Arc::new(tokio::sync::Semaphore::new(slots));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let fetched = consumer
            .fetch()
            .max_messages(1)
            .expires(Duration::from_secs(1))
            .messages()
            .await;
        let mut batch = match fetched {
            Ok(batch) => batch,
            Err(err) => {
                tracing::warn!(consumer = %name, error = %err, "fetching from NATS failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        match batch.next().await {
            Some(Ok(message)) => {
                let handled = handle(message);
                tokio::spawn(async move {
                    handled.await;
                    drop(slot);
                });
            }
            Some(Err(err)) => tracing::debug!(consumer = %name, error = %err, "nothing fetched"),
            None => {}
        }
    }
}

/// Which fields of a record a write owns.
#[derive(Debug, Clone, Copy)]
enum Side {
    /// A run: state, attempts, statuses, times; the callback's state only to start it.
    Run,
    /// A callback delivery: the callback's state, attempts and status.
    Callback,
}

impl Side {
    fn copy(self, from: &Record, to: &mut Record) {
        match self {
            Side::Run => {
                let callback = to.callback;
                let (callback_attempts, callback_status) =
                    (to.callback_attempts, to.callback_status);
                *to = from.clone();
                // A delivery that already happened stays recorded.
                if callback.is_some() {
                    to.callback = callback;
                    to.callback_attempts = callback_attempts;
                    to.callback_status = callback_status;
                }
            }
            Side::Callback => {
                to.callback = from.callback;
                to.callback_attempts = from.callback_attempts;
                to.callback_status = from.callback_status;
            }
        }
    }
}

/// The durable consumer of a funko's calls.
fn consumer_name(funko: &str) -> String {
    format!("faaso-{funko}")
}
