//! The embedded store of async calls: one redb file, `state_dir/calls.redb`.
//!
//! redb is an embedded, ACID key-value store in Rust; a commit is synced to disk (`fsync`)
//! before it returns, so a 202 is only sent for a call that survives a crash or a SIGKILL.
//! Writes go through one writer thread that commits everything queued since its last commit
//! as one transaction (group commit): many calls accepted at once share one sync. Reads run
//! anywhere, beside the writer (redb's readers see the last commit).
//!
//! Tables: `records` (id → the call's [`Record`] as JSON), `requests` (id → the request and
//! its body, until the call is final), `answers` (id → the funko's answer, until its callback
//! is delivered), `by_funko` ((funko, id) → (), for listing) and `expiry` ((finished ms, id) →
//! (), for removing records after `calls_retention`).

use std::path::Path;
use std::sync::mpsc;

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::record::{Answer, CallId, Record, Request};

const RECORDS: TableDefinition<u128, &[u8]> = TableDefinition::new("records");
const REQUESTS: TableDefinition<u128, &[u8]> = TableDefinition::new("requests");
const ANSWERS: TableDefinition<u128, &[u8]> = TableDefinition::new("answers");
const BY_FUNKO: TableDefinition<(&str, u128), ()> = TableDefinition::new("by_funko");
const EXPIRY: TableDefinition<(u64, u128), ()> = TableDefinition::new("expiry");

/// Most writes committed in one transaction.
const MAX_BATCH: usize = 512;

/// What changes about a call's stored answer with an update.
#[derive(Debug)]
pub enum AnswerChange {
    Keep,
    Put(Answer),
    Remove,
}

/// One write, applied in the writer's next transaction.
#[derive(Debug)]
enum Write {
    Accept {
        record: Record,
        request: Request,
        body: Bytes,
    },
    Update {
        record: Record,
        answer: AnswerChange,
    },
    /// Removes the records of calls finished before this time (ms since the epoch).
    Expire { before_ms: u64 },
}

/// A store error, as text for logs and answers.
pub type StoreError = String;

/// A write and where its outcome (how many records it touched) goes.
type Queued = (Write, oneshot::Sender<Result<usize, StoreError>>);

/// The open store: the writer thread's queue, and the database for reads.
pub struct Store {
    db: std::sync::Arc<Database>,
    /// `None` only while dropping.
    writes: Option<mpsc::Sender<Queued>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Store {
    /// Ends the writer thread (after its last commit) and waits for it: the file is closed
    /// when the store is gone.
    fn drop(&mut self) {
        drop(self.writes.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl Store {
    /// Opens (or creates) `dir/calls.redb` and starts its writer thread.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = dir.join("calls.redb");
        let db = Database::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        // Every table exists from the start, so that readers never meet a missing one.
        let init = || -> Result<(), redb::Error> {
            let txn = db.begin_write()?;
            txn.open_table(RECORDS)?;
            txn.open_table(REQUESTS)?;
            txn.open_table(ANSWERS)?;
            txn.open_table(BY_FUNKO)?;
            txn.open_table(EXPIRY)?;
            txn.commit()?;
            Ok(())
        };
        init().map_err(|e| format!("{}: {e}", path.display()))?;
        let db = std::sync::Arc::new(db);
        let (writes, queue) = mpsc::channel();
        let writer_db = std::sync::Arc::clone(&db);
        let writer = std::thread::Builder::new()
            .name("faaso-calls-writer".to_string())
            .spawn(move || writer(&writer_db, &queue))
            .map_err(|e| format!("cannot start the calls writer: {e}"))?;
        Ok(Store {
            db,
            writes: Some(writes),
            writer: Some(writer),
        })
    }

    async fn write(&self, write: Write) -> Result<usize, StoreError> {
        let (done, outcome) = oneshot::channel();
        self.writes
            .as_ref()
            .and_then(|writes| writes.send((write, done)).ok())
            .ok_or_else(|| "the calls writer has stopped".to_string())?;
        outcome
            .await
            .map_err(|_| "the calls writer has stopped".to_string())?
    }

    /// Stores a new call, synced, and returns once it is on disk.
    pub async fn accept(
        &self,
        record: Record,
        request: Request,
        body: Bytes,
    ) -> Result<(), StoreError> {
        self.write(Write::Accept {
            record,
            request,
            body,
        })
        .await
        .map(drop)
    }

    /// Replaces a call's record (and its stored answer); a final record drops the request.
    pub async fn update(&self, record: Record, answer: AnswerChange) -> Result<(), StoreError> {
        self.write(Write::Update { record, answer }).await.map(drop)
    }

    /// Removes calls finished before `before_ms`; gives how many.
    pub async fn expire(&self, before_ms: u64) -> Result<usize, StoreError> {
        self.write(Write::Expire { before_ms }).await
    }

    pub fn record(&self, id: CallId) -> Result<Option<Record>, StoreError> {
        let txn = self.db.begin_read().map_err(text)?;
        let table = txn.open_table(RECORDS).map_err(text)?;
        let value = table.get(id.0).map_err(text)?;
        value.map(|v| decode_record(v.value())).transpose()
    }

    /// The request of a call that is not final yet, and its body.
    pub fn request(&self, id: CallId) -> Result<Option<(Request, Bytes)>, StoreError> {
        let txn = self.db.begin_read().map_err(text)?;
        let table = txn.open_table(REQUESTS).map_err(text)?;
        let value = table.get(id.0).map_err(text)?;
        value
            .map(|v| split::<Request>(v.value()).map(|(r, body)| (r, Bytes::copy_from_slice(body))))
            .transpose()
    }

    /// The stored answer of a call whose callback is pending.
    pub fn answer(&self, id: CallId) -> Result<Option<Answer>, StoreError> {
        let txn = self.db.begin_read().map_err(text)?;
        let table = txn.open_table(ANSWERS).map_err(text)?;
        let value = table.get(id.0).map_err(text)?;
        value
            .map(|v| {
                split::<Answer>(v.value()).map(|(mut answer, body)| {
                    answer.body = Bytes::copy_from_slice(body);
                    answer
                })
            })
            .transpose()
    }

    /// The newest `limit` calls of `funko`, newest first.
    pub fn list(&self, funko: &str, limit: usize) -> Result<Vec<Record>, StoreError> {
        let txn = self.db.begin_read().map_err(text)?;
        let index = txn.open_table(BY_FUNKO).map_err(text)?;
        let records = txn.open_table(RECORDS).map_err(text)?;
        let mut found = Vec::new();
        for entry in index
            .range((funko, 0)..=(funko, u128::MAX))
            .map_err(text)?
            .rev()
            .take(limit)
        {
            let (key, _) = entry.map_err(text)?;
            let (_, id) = key.value();
            if let Some(value) = records.get(id).map_err(text)? {
                found.push(decode_record(value.value())?);
            }
        }
        Ok(found)
    }

    /// Every record that still needs work: not final, or with a callback pending.
    pub fn unfinished(&self) -> Result<Vec<Record>, StoreError> {
        let txn = self.db.begin_read().map_err(text)?;
        let table = txn.open_table(RECORDS).map_err(text)?;
        let mut found = Vec::new();
        for entry in table.iter().map_err(text)? {
            let (_, value) = entry.map_err(text)?;
            let record = decode_record(value.value())?;
            let callback_pending = record.callback == Some(super::record::CallbackState::Pending);
            if !record.state.is_final() || callback_pending {
                found.push(record);
            }
        }
        Ok(found)
    }
}

fn text(err: impl std::fmt::Display) -> StoreError {
    err.to_string()
}

fn decode_record(bytes: &[u8]) -> Result<Record, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| format!("a stored call record is damaged: {e}"))
}

/// `[u32 length][JSON][body]`: a value's JSON part and the bytes after it.
fn join(json: &impl serde::Serialize, body: &[u8]) -> Vec<u8> {
    let json = serde_json::to_vec(json).unwrap_or_default();
    let mut bytes = Vec::with_capacity(4 + json.len() + body.len());
    bytes.extend_from_slice(&(json.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&json);
    bytes.extend_from_slice(body);
    bytes
}

fn split<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<(T, &[u8]), StoreError> {
    let damaged = || "a stored call is damaged".to_string();
    let length = bytes
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(|b| u32::from_le_bytes(b) as usize)
        .ok_or_else(damaged)?;
    let json = bytes.get(4..4 + length).ok_or_else(damaged)?;
    let value = serde_json::from_slice(json).map_err(|_| damaged())?;
    Ok((value, &bytes[4 + length..]))
}

/// The writer thread: takes every queued write, applies them in one transaction, commits
/// (synced), and answers each. Ends when the store is dropped.
fn writer(db: &Database, queue: &mpsc::Receiver<Queued>) {
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH
            && let Ok(next) = queue.try_recv()
        {
            batch.push(next);
        }
        let applied = apply(db, batch.iter().map(|(write, _)| write));
        match applied {
            Ok(counts) => {
                for ((_, done), count) in batch.into_iter().zip(counts) {
                    let _ = done.send(Ok(count));
                }
            }
            Err(err) => {
                tracing::error!(error = %err, writes = batch.len(), "storing async calls failed");
                for (_, done) in batch {
                    let _ = done.send(Err(err.to_string()));
                }
            }
        }
    }
}

fn apply<'a>(
    db: &Database,
    writes: impl Iterator<Item = &'a Write>,
) -> Result<Vec<usize>, redb::Error> {
    let txn = db.begin_write()?;
    let mut counts = Vec::new();
    {
        let mut records = txn.open_table(RECORDS)?;
        let mut requests = txn.open_table(REQUESTS)?;
        let mut answers = txn.open_table(ANSWERS)?;
        let mut by_funko = txn.open_table(BY_FUNKO)?;
        let mut expiry = txn.open_table(EXPIRY)?;
        for write in writes {
            let mut count = 1;
            match write {
                Write::Accept {
                    record,
                    request,
                    body,
                } => {
                    let id = record.call_id.0;
                    records.insert(
                        id,
                        serde_json::to_vec(record).unwrap_or_default().as_slice(),
                    )?;
                    requests.insert(id, join(request, body).as_slice())?;
                    by_funko.insert((record.funko.as_str(), id), ())?;
                }
                Write::Update { record, answer } => {
                    let id = record.call_id.0;
                    records.insert(
                        id,
                        serde_json::to_vec(record).unwrap_or_default().as_slice(),
                    )?;
                    if record.state.is_final() {
                        requests.remove(id)?;
                        if let Some(finished) = record.finished_at_ms {
                            expiry.insert((finished, id), ())?;
                        }
                    }
                    match answer {
                        AnswerChange::Keep => {}
                        AnswerChange::Put(answer) => {
                            answers.insert(id, join(answer, &answer.body).as_slice())?;
                        }
                        AnswerChange::Remove => {
                            answers.remove(id)?;
                        }
                    }
                }
                Write::Expire { before_ms } => {
                    let gone: Vec<(u64, u128)> = expiry
                        .range((0, 0)..(*before_ms, 0))?
                        .map(|entry| entry.map(|(key, _)| key.value()))
                        .collect::<Result<_, _>>()?;
                    count = gone.len();
                    for (finished, id) in gone {
                        expiry.remove((finished, id))?;
                        answers.remove(id)?;
                        requests.remove(id)?;
                        let removed = records.remove(id)?;
                        let funko = removed
                            .and_then(|v| decode_record(v.value()).ok())
                            .map(|r| r.funko);
                        if let Some(funko) = funko {
                            by_funko.remove((funko.as_str(), id))?;
                        }
                    }
                }
            }
            counts.push(count);
        }
    }
    txn.commit()?;
    Ok(counts)
}

#[cfg(test)]
mod tests {
    use super::super::record::{CallbackState, State};
    use super::*;

    fn request() -> Request {
        Request {
            method: "POST".to_string(),
            target: "/work?x=1".to_string(),
            headers: vec![("content-type".to_string(), "text/plain".to_string())],
            callback: Some("http://127.0.0.1:9/cb".to_string()),
            source: "http".to_string(),
        }
    }

    #[tokio::test]
    async fn a_call_is_stored_updated_listed_and_expired() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let ids: Vec<CallId> = (0..3).map(|_| CallId::new()).collect();
        for id in &ids {
            let record = Record::accepted(*id, "work", &request(), 5);
            store
                .accept(record, request(), Bytes::from_static(b"hello"))
                .await
                .unwrap();
        }
        let (read, body) = store.request(ids[0]).unwrap().unwrap();
        assert_eq!(read, request());
        assert_eq!(&body[..], b"hello");
        assert_eq!(store.unfinished().unwrap().len(), 3);

        let mut done = store.record(ids[0]).unwrap().unwrap();
        done.state = State::Done;
        done.last_status = Some(201);
        done.finished_at_ms = Some(1_000);
        done.callback = Some(CallbackState::Pending);
        let answer = Answer {
            status: 201,
            content_type: Some("application/json".to_string()),
            body: Bytes::from_static(b"{}"),
        };
        store
            .update(done.clone(), AnswerChange::Put(answer.clone()))
            .await
            .unwrap();
        assert_eq!(
            store.request(ids[0]).unwrap(),
            None,
            "a final call drops its request"
        );
        assert_eq!(store.answer(ids[0]).unwrap(), Some(answer.clone()));
        assert_eq!(store.answer(ids[0]).unwrap().unwrap().body, answer.body);
        assert_eq!(
            store.unfinished().unwrap().len(),
            3,
            "its callback is pending"
        );
        done.callback = Some(CallbackState::Delivered);
        store.update(done, AnswerChange::Remove).await.unwrap();
        assert_eq!(store.answer(ids[0]).unwrap(), None);
        assert_eq!(store.unfinished().unwrap().len(), 2);

        let listed: Vec<CallId> = store
            .list("work", 10)
            .unwrap()
            .iter()
            .map(|r| r.call_id)
            .collect();
        assert_eq!(listed, [ids[2], ids[1], ids[0]], "newest first");
        assert_eq!(store.list("work", 1).unwrap().len(), 1);
        assert!(store.list("other", 10).unwrap().is_empty());

        assert_eq!(
            store.expire(1_000).await.unwrap(),
            0,
            "finished at 1000 is kept"
        );
        assert_eq!(store.expire(1_001).await.unwrap(), 1);
        assert_eq!(store.record(ids[0]).unwrap(), None);
        assert_eq!(store.list("work", 10).unwrap().len(), 2);
        drop(store);

        // Everything survives a reopen.
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.unfinished().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn concurrent_accepts_share_commits_and_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(Store::open(dir.path()).unwrap());
        let mut tasks = Vec::new();
        for _ in 0..200 {
            let store = std::sync::Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let id = CallId::new();
                let record = Record::accepted(id, "many", &request(), 0);
                store.accept(record, request(), Bytes::new()).await.unwrap();
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(store.list("many", 1000).unwrap().len(), 200);
    }
}
