//! Streamed results: NDJSON, one object per line, flushed as it happens.
//! `{"log": "..."}` (or `{"instance": ..., "log": ...}` for logs) lines, then exactly one
//! `{"ok": true}` or `{"error": "..."}` line, so a failure after the headers went out is still
//! unambiguous. If the client goes away, the operation is cancelled.

use std::future::Future;

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use tokio::sync::mpsc;

/// One line of a streamed result.
#[derive(Debug)]
pub enum Line {
    Log { instance: String, line: String },
    Plain(String),
}

/// What an operation writes its progress to.
pub struct Out {
    sender: mpsc::UnboundedSender<Line>,
}

impl Out {
    /// A progress line.
    pub fn log(&mut self, line: String) {
        let _ = self.sender.send(Line::Plain(line));
    }

    /// Any line.
    pub fn send(&mut self, line: Line) {
        let _ = self.sender.send(line);
    }
}

/// Runs `operation`, streaming its lines and its outcome to the client.
pub async fn stream_operation<F, Fut>(session: &mut Session, operation: F) -> Result<()>
where
    F: FnOnce(Out) -> Fut + Send + 'static,
    Fut: Future<Output = std::result::Result<(), String>> + Send + 'static,
{
    let mut header = ResponseHeader::build(200, Some(3))?;
    header.insert_header("Content-Type", "application/x-ndjson")?;
    header.insert_header("Cache-Control", "no-store")?;
    header.insert_header("Transfer-Encoding", "chunked")?;
    session
        .write_response_header(Box::new(header), false)
        .await?;

    let (sender, mut receiver) = mpsc::unbounded_channel();
    let task = tokio::spawn(operation(Out { sender }));
    let task_abort = task.abort_handle();
    // Lines until the operation drops its sender (it has finished).
    while let Some(line) = receiver.recv().await {
        if let Err(err) = session
            .write_response_body(Some(encode(&line)), false)
            .await
        {
            task_abort.abort();
            return Err(err);
        }
    }
    let outcome = match task.await {
        Ok(Ok(())) => serde_json::json!({ "ok": true }),
        Ok(Err(message)) => serde_json::json!({ "error": message }),
        Err(err) => serde_json::json!({ "error": format!("the operation failed: {err}") }),
    };
    session
        .write_response_body(Some(Bytes::from(format!("{outcome}\n"))), true)
        .await
}

fn encode(line: &Line) -> Bytes {
    let value = match line {
        Line::Plain(text) => serde_json::json!({ "log": text }),
        Line::Log { instance, line } => serde_json::json!({ "instance": instance, "log": line }),
    };
    Bytes::from(format!("{value}\n"))
}
