//! Async calls and cron triggers.
//!
//! `/async/funko/<name>/<rest>` (and `/async-function/<name>/<rest>`) stores the request
//! durably and answers 202 with its call id (on the request path: `crate::proxy`); the call then runs against the
//! funko like a proxied request ([`attempt`]), is retried after a 5xx, 429 or lost connection
//! with the funko's backoff, never runs more than the funko's `async.max_inflight` at once,
//! and its answer goes to `X-Callback-Url` if it named one ([`callback`]). Cron triggers
//! ([`cron`]) make a call at each tick.
//!
//! Where calls wait ([`QueueConfig`]):
//! - embedded (the default): [`embedded`] stores them in `state_dir`, [`queue`] runs them;
//! - `nats://host:port`: [`nats`] keeps them in NATS JetStream, so several gateways share the
//!   work and a gateway that dies loses nothing.
//!
//! [`service`] is the background service that opens the queue, recovers what a restart left
//! and runs the dispatcher and the cron ticks. [`record`] is what a call is, for both.

pub mod attempt;
pub mod callback;
pub mod cron;
pub mod embedded;
pub mod nats;
pub mod queue;
pub mod record;
pub mod service;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use faaso::settings::Settings;

use self::attempt::Attempt;
use self::callback::Delivery;
pub use self::record::Answer;
use self::record::{CallId, CallbackState, Record, Request, State};

/// Most calls listed at once.
pub const MAX_LIST: usize = 1000;

/// Where calls are queued (`queue`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum QueueConfig {
    /// In `state_dir/calls.redb`.
    #[default]
    Embedded,
    /// A NATS server with JetStream, by URL (`nats://host:4222`).
    Nats(String),
}

impl std::fmt::Display for QueueConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueueConfig::Embedded => f.write_str("embedded"),
            QueueConfig::Nats(url) => f.write_str(url),
        }
    }
}

impl std::str::FromStr for QueueConfig {
    type Err = String;

    fn from_str(text: &str) -> Result<QueueConfig, String> {
        let text = text.trim();
        if text.is_empty() || text == "embedded" {
            return Ok(QueueConfig::Embedded);
        }
        let rest = text
            .strip_prefix("nats://")
            .or_else(|| text.strip_prefix("tls://"))
            .ok_or_else(|| format!("expected embedded or nats://host:port, got {text:?}"))?;
        if rest.is_empty() || rest.contains(char::is_whitespace) {
            return Err(format!("expected nats://host:port, got {text:?}"));
        }
        Ok(QueueConfig::Nats(text.to_string()))
    }
}

/// Why a call was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// `async_max_queued` calls wait already (429).
    #[error("the async queue is full ({0} calls wait); try again later")]
    Full(usize),
    /// The store failed (503).
    #[error("the call could not be stored: {0}")]
    Store(String),
    /// It does not fit one message of the NATS server (413).
    #[error("the call is larger than the queue's largest message ({0} bytes with its headers)")]
    TooLarge(usize),
    /// A call with this id is stored already (a cron tick another gateway made).
    #[error("the call is stored already")]
    Duplicate,
}

/// The gateway's async calls, whichever queue holds them.
#[derive(Clone)]
pub enum Calls {
    Embedded(Arc<queue::EmbeddedQueue>),
    Nats(Arc<nats::NatsQueue>),
}

impl Calls {
    /// Stores a call for `funko`; `Ok` once it is durable.
    pub async fn accept(
        &self,
        id: CallId,
        funko: &str,
        request: Request,
        body: Bytes,
    ) -> Result<(), AcceptError> {
        let accepted = match self {
            Calls::Embedded(queue) => queue.accept(id, funko, request, body).await,
            Calls::Nats(queue) => queue.accept(id, funko, request, body).await,
        };
        match &accepted {
            Ok(()) => crate::metrics::calls::call(funko, "accepted"),
            Err(AcceptError::Duplicate) => {}
            Err(_) => crate::metrics::calls::call(funko, "refused"),
        }
        accepted
    }

    /// Where callbacks may go.
    pub fn reach(&self) -> &callback::Reach {
        match self {
            Calls::Embedded(queue) => &queue.runner.reach,
            Calls::Nats(queue) => &queue.runner.reach,
        }
    }

    /// A call's record.
    pub async fn record(&self, id: CallId) -> Result<Option<Record>, String> {
        match self {
            Calls::Embedded(queue) => queue.store()?.record(id),
            Calls::Nats(queue) => queue.record(id).await,
        }
    }

    /// The newest `limit` calls of `funko`, newest first.
    pub async fn list(&self, funko: &str, limit: usize) -> Result<Vec<Record>, String> {
        let limit = limit.min(MAX_LIST);
        match self {
            Calls::Embedded(queue) => queue.store()?.list(funko, limit),
            Calls::Nats(queue) => queue.list(funko, limit).await,
        }
    }
}

impl Answer {
    /// The answer a callback gets when there was none from the funko: only its status.
    pub fn without_body(status: u16) -> Answer {
        Answer {
            status,
            content_type: None,
            body: Bytes::new(),
        }
    }
}

/// What follows an attempt.
#[derive(Debug, PartialEq, Eq)]
pub enum Settled {
    /// Another attempt at this time (ms since the epoch).
    Retry(u64),
    /// The call is final; the answer for its callback.
    Final(Option<Answer>),
}

/// Records an attempt in `record` and decides what follows: a retry after the funko's
/// backoff while its retries last, else the outcome (`done` for an answer that is not
/// retried, `failed` otherwise). A call with a callback URL gets its callback pending.
pub fn settle(record: &mut Record, attempt: Attempt, settings: &Settings, now_ms: u64) -> Settled {
    record.last_status = Some(attempt.status());
    record.last_error = attempt.error();
    let retries_used = record.attempts.saturating_sub(1);
    if attempt.retryable() && retries_used < settings.async_retries() {
        let wait = callback::backoff(settings.async_backoff(), record.attempts);
        let due = now_ms + wait.as_millis() as u64;
        record.state = State::Queued;
        record.next_attempt_at_ms = Some(due);
        return Settled::Retry(due);
    }
    record.state = if attempt.retryable() || matches!(attempt, Attempt::NoFunko) {
        State::Failed
    } else {
        State::Done
    };
    record.finished_at_ms = Some(now_ms);
    record.next_attempt_at_ms = None;
    if record.callback_url.is_some() {
        record.callback = Some(CallbackState::Pending);
    }
    let status = attempt.status();
    Settled::Final(match attempt {
        Attempt::Answered(answer) => Some(answer),
        _ => Some(Answer::without_body(status)),
    })
}

/// Records a callback delivery in `record`; gives the wait before the next delivery, or
/// `None` when the callback is settled (delivered, or out of attempts).
pub fn callback_settled(
    record: &mut Record,
    delivery: &Delivery,
    settings: &Settings,
) -> Option<Duration> {
    record.callback_attempts += 1;
    match delivery {
        Delivery::Delivered(status) => {
            record.callback_status = Some(*status);
            record.callback = Some(CallbackState::Delivered);
            crate::metrics::calls::callback("delivered");
            None
        }
        Delivery::Refused(status, error) => {
            record.callback_status = *status;
            if record.callback_attempts > settings.async_retries() {
                tracing::warn!(call_id = %record.call_id, funko = %record.funko, error = %error, attempts = record.callback_attempts, "a callback could not be delivered");
                record.callback = Some(CallbackState::Failed);
                crate::metrics::calls::callback("failed");
                None
            } else {
                crate::metrics::calls::callback("retried");
                Some(callback::backoff(
                    settings.async_backoff(),
                    record.callback_attempts,
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(callback: bool) -> Record {
        let request = Request {
            method: "POST".to_string(),
            target: "/".to_string(),
            headers: Vec::new(),
            callback: callback.then(|| "http://127.0.0.1:1/cb".to_string()),
            source: "http".to_string(),
        };
        Record::accepted(CallId::new(), "f", &request, 0)
    }

    fn answered(status: u16) -> Attempt {
        Attempt::Answered(Answer::without_body(status))
    }

    #[test]
    fn failures_are_retried_with_doubling_backoff_then_fail() {
        let settings = Settings {
            async_retries: Some(2),
            async_backoff: Some(Duration::from_millis(100)),
            ..Settings::default()
        };
        let mut call = record(true);
        call.attempts = 1;
        assert_eq!(
            settle(&mut call, answered(500), &settings, 1_000),
            Settled::Retry(1_100)
        );
        assert_eq!(call.state, State::Queued);
        call.attempts = 2;
        let lost = Attempt::NoAnswer {
            status: 502,
            error: "refused".to_string(),
        };
        assert_eq!(
            settle(&mut call, lost, &settings, 2_000),
            Settled::Retry(2_200)
        );
        assert_eq!(call.last_error.as_deref(), Some("refused"));
        call.attempts = 3;
        assert_eq!(
            settle(&mut call, answered(429), &settings, 3_000),
            Settled::Final(Some(Answer::without_body(429)))
        );
        assert_eq!(call.state, State::Failed);
        assert_eq!(call.finished_at_ms, Some(3_000));
        assert_eq!(call.callback, Some(CallbackState::Pending));
    }

    #[test]
    fn an_answer_that_is_not_retried_is_done_at_once() {
        let settings = Settings::default();
        for status in [200, 204, 400, 404, 422] {
            let mut call = record(false);
            call.attempts = 1;
            assert!(matches!(
                settle(&mut call, answered(status), &settings, 5),
                Settled::Final(Some(_))
            ));
            assert_eq!(call.state, State::Done, "{status}");
            assert_eq!(call.callback, None, "no callback URL");
        }
        let mut gone = record(false);
        gone.attempts = 1;
        settle(&mut gone, Attempt::NoFunko, &settings, 5);
        assert_eq!(gone.state, State::Failed);
        assert_eq!(gone.last_status, Some(404));
    }

    #[test]
    fn callbacks_retry_until_delivered_or_out_of_attempts() {
        let settings = Settings {
            async_retries: Some(1),
            async_backoff: Some(Duration::from_secs(1)),
            ..Settings::default()
        };
        let mut call = record(true);
        let refused = Delivery::Refused(Some(500), "500".to_string());
        assert_eq!(
            callback_settled(&mut call, &refused, &settings),
            Some(Duration::from_secs(1))
        );
        assert_eq!(callback_settled(&mut call, &refused, &settings), None);
        assert_eq!(call.callback, Some(CallbackState::Failed));
        let mut call = record(true);
        assert_eq!(
            callback_settled(&mut call, &Delivery::Delivered(204), &settings),
            None
        );
        assert_eq!(call.callback, Some(CallbackState::Delivered));
        assert_eq!(call.callback_status, Some(204));
    }

    #[test]
    fn queue_setting() {
        assert_eq!("embedded".parse(), Ok(QueueConfig::Embedded));
        assert_eq!(
            "nats://127.0.0.1:4222".parse(),
            Ok(QueueConfig::Nats("nats://127.0.0.1:4222".to_string()))
        );
        assert!("redis://x".parse::<QueueConfig>().is_err());
        assert!("nats://".parse::<QueueConfig>().is_err());
    }
}
