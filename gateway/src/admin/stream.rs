//! Streamed results, flushed line by line as they happen. The API speaks NDJSON ([`Ndjson`]):
//! `{"log": "..."}` (or `{"instance": ..., "log": ...}` for logs) lines, then exactly one
//! `{"ok": true}` or `{"error": "..."}` line, so a failure after the headers went out is still
//! unambiguous. The web UI streams the same lines as HTML through its own [`Encoding`].
//!
//! The operation runs as a task of its own and hands its lines over a bounded channel: a client
//! that reads slowly cannot make the gateway buffer without bound (lines that do not fit are
//! dropped, and a line says how many). The client leaving is noticed even while the operation
//! is quiet (a `logs -f` with nothing to say), and then:
//! - a read-only operation ([`WhenClientLeaves::Stop`], logs) is stopped;
//! - a state-changing one ([`WhenClientLeaves::Finish`], build, scale, deploy, purge) runs to its
//!   end: stopping half-way would leave a funko with one instance too many, an unsaved scale, or
//!   a lock released while Docker still works.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use tokio::sync::mpsc;

/// Lines waiting for a slow client, at most.
pub const BUFFERED_LINES: usize = 1024;

/// One line of a streamed result.
#[derive(Debug)]
pub enum Line {
    Log { instance: String, line: String },
    Plain(String),
}

/// What happens to the operation when the client goes away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenClientLeaves {
    /// Stop it (it only reads).
    Stop,
    /// Let it finish (it changes state).
    Finish,
}

/// What an operation writes its progress to.
pub struct Out {
    sender: mpsc::Sender<Line>,
    dropped: Arc<AtomicU64>,
}

impl Out {
    /// A progress line.
    pub fn log(&mut self, line: String) {
        self.send(Line::Plain(line));
    }

    /// Any line; dropped (and counted) when the client is too far behind.
    pub fn send(&mut self, line: Line) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.sender.try_send(line) {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// How a streamed result is written: its content type, what comes before the first line, each
/// line, and the outcome that ends it.
pub trait Encoding: Sync {
    fn content_type(&self) -> &'static str;
    /// Extra response headers.
    fn headers(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    fn start(&self) -> Vec<u8> {
        Vec::new()
    }
    fn line(&self, line: &Line) -> Vec<u8>;
    fn end(&self, outcome: std::result::Result<(), String>) -> Vec<u8>;
}

/// The admin API's NDJSON.
pub struct Ndjson;

impl Encoding for Ndjson {
    fn content_type(&self) -> &'static str {
        "application/x-ndjson"
    }

    fn line(&self, line: &Line) -> Vec<u8> {
        let value = match line {
            Line::Plain(text) => serde_json::json!({ "log": text }),
            Line::Log { instance, line } => {
                serde_json::json!({ "instance": instance, "log": line })
            }
        };
        format!("{value}\n").into_bytes()
    }

    fn end(&self, outcome: std::result::Result<(), String>) -> Vec<u8> {
        let value = match outcome {
            Ok(()) => serde_json::json!({ "ok": true }),
            Err(message) => serde_json::json!({ "error": message }),
        };
        format!("{value}\n").into_bytes()
    }
}

/// Runs `operation`, streaming its lines and its outcome to the client as NDJSON.
pub async fn stream_operation<F, Fut>(
    session: &mut Session,
    when_client_leaves: WhenClientLeaves,
    operation: F,
) -> Result<()>
where
    F: FnOnce(Out) -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<(), String>> + Send + 'static,
{
    stream_encoded(session, &Ndjson, when_client_leaves, operation).await
}

/// Runs `operation`, streaming its lines and its outcome to the client in `encoding`.
pub async fn stream_encoded<F, Fut>(
    session: &mut Session,
    encoding: &dyn Encoding,
    when_client_leaves: WhenClientLeaves,
    operation: F,
) -> Result<()>
where
    F: FnOnce(Out) -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<(), String>> + Send + 'static,
{
    let extra = encoding.headers();
    let mut header = ResponseHeader::build(200, Some(3 + extra.len()))?;
    header.insert_header("Content-Type", encoding.content_type())?;
    header.insert_header("Cache-Control", "no-store")?;
    header.insert_header("Transfer-Encoding", "chunked")?;
    for (name, value) in extra {
        header.insert_header(name, value)?;
    }
    session
        .write_response_header(Box::new(header), false)
        .await?;
    let start = encoding.start();
    if !start.is_empty() {
        session
            .write_response_body(Some(Bytes::from(start)), false)
            .await?;
    }

    let (sender, mut receiver) = mpsc::channel(BUFFERED_LINES);
    let dropped = Arc::new(AtomicU64::new(0));
    let task = tokio::spawn(operation(Out {
        sender,
        dropped: Arc::clone(&dropped),
    }));
    let mut left = None;
    loop {
        let line = tokio::select! {
            line = receiver.recv() => line,
            // The request is read: anything from the client now is its going away.
            gone = session.downstream_session.read_body_or_idle(true) => {
                left = Some(gone.err().map_or("the client sent more".to_string(), |e| e.to_string()));
                break;
            }
        };
        // The operation dropped its sender: it has finished.
        let Some(line) = line else { break };
        let skipped = dropped.swap(0, Ordering::Relaxed);
        let mut chunk = Vec::new();
        if skipped > 0 {
            chunk.extend_from_slice(&encoding.line(&Line::Plain(format!(
                "({skipped} lines dropped: the client reads too slowly)"
            ))));
        }
        chunk.extend_from_slice(&encoding.line(&line));
        if let Err(err) = session
            .write_response_body(Some(Bytes::from(chunk)), false)
            .await
        {
            left = Some(err.to_string());
            break;
        }
    }
    if let Some(reason) = left {
        match when_client_leaves {
            WhenClientLeaves::Stop => task.abort(),
            WhenClientLeaves::Finish => {
                tracing::info!(target: "faaso::admin", %reason, "the client left; the operation continues");
                tokio::spawn(async move {
                    match task.await {
                        Ok(Ok(())) => {
                            tracing::info!(target: "faaso::admin", "operation finished after its client left")
                        }
                        Ok(Err(message)) => {
                            tracing::warn!(target: "faaso::admin", %message, "operation failed after its client left")
                        }
                        Err(err) => {
                            tracing::warn!(target: "faaso::admin", error = %err, "operation stopped")
                        }
                    }
                });
            }
        }
        return Ok(());
    }
    let outcome = match task.await {
        Ok(outcome) => outcome,
        Err(err) => Err(format!("the operation failed: {err}")),
    };
    session
        .write_response_body(Some(Bytes::from(encoding.end(outcome))), true)
        .await
}
