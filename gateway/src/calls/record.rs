//! What an async call is: its id, the request it carries, and its record (state, attempts,
//! times), as the stores keep them and the admin API shows them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A call's id: the acceptance time in milliseconds in the high 48 bits, then a counter of
/// this process (24 bits, so ids of one millisecond sort in acceptance order) and 56 random
/// bits; for a cron tick the 80 low bits are derived instead. Written as 32 hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CallId(pub u128);

impl CallId {
    /// A new id for a call accepted now.
    #[allow(clippy::new_without_default)] // Each id is new: there is no default one.
    pub fn new() -> CallId {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0xff_ffff;
        let random = fastrand::u64(..) >> 8;
        CallId((u128::from(now_ms()) << 80) | (u128::from(count) << 56) | u128::from(random))
    }

    /// The id of a cron tick: the same on every gateway for the same funko, trigger and tick,
    /// so that a tick made by several gateways is one call.
    pub fn for_tick(funko: &str, trigger: &str, tick_ms: u64) -> CallId {
        use std::hash::{BuildHasher, Hasher};
        // A fixed seed: the same on every gateway.
        let mut hasher = foldhash::quality::FixedState::with_seed(0x6661_6173_6f21).build_hasher();
        hasher.write(funko.as_bytes());
        hasher.write_u8(0);
        hasher.write(trigger.as_bytes());
        hasher.write_u64(tick_ms);
        let low = u128::from(hasher.finish()) << 16 | u128::from(tick_ms as u16);
        CallId((u128::from(tick_ms) << 80) | (low & ((1 << 80) - 1)))
    }

    /// Parses the 32 hex digits of [`CallId`]'s `Display`.
    pub fn parse(text: &str) -> Option<CallId> {
        if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        u128::from_str_radix(text, 16).ok().map(CallId)
    }

    /// When the call was accepted, in milliseconds since the epoch.
    pub fn accepted_ms(self) -> u64 {
        (self.0 >> 80) as u64
    }
}

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl Serialize for CallId {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CallId {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        CallId::parse(&text).ok_or_else(|| serde::de::Error::custom("not a call id"))
    }
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_millis() as u64
}

/// The request a call makes of its funko.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    pub method: String,
    /// Path and query as the funko sees them (the prefix stripped).
    pub target: String,
    /// The end-to-end headers to send, as received.
    pub headers: Vec<(String, String)>,
    /// Where the outcome is posted (`X-Callback-Url`).
    pub callback: Option<String>,
    /// `http` for a call a client made, `cron:<id>` for a tick.
    pub source: String,
}

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    Queued,
    Running,
    /// The funko answered with a status that is not retried (below 500, not 429).
    Done,
    /// Its attempts ran out, or its funko is gone.
    Failed,
}

impl State {
    pub fn is_final(self) -> bool {
        matches!(self, State::Done | State::Failed)
    }
}

/// Where a call's callback is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallbackState {
    Pending,
    Delivered,
    Failed,
}

/// A call's record: what `GET /admin/api/calls/<id>` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub call_id: CallId,
    pub funko: String,
    pub method: String,
    pub target: String,
    pub source: String,
    pub state: State,
    pub attempts: u32,
    /// The status of the last attempt (502 when the instance could not be reached or cut
    /// the answer, 503 when none could be started, 504 when it timed out).
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub body_bytes: u64,
    pub accepted_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub finished_at_ms: Option<u64>,
    /// When the next attempt is due (after a retried failure).
    pub next_attempt_at_ms: Option<u64>,
    pub callback_url: Option<String>,
    pub callback: Option<CallbackState>,
    pub callback_attempts: u32,
    /// The status the callback receiver last answered.
    pub callback_status: Option<u16>,
}

impl Record {
    /// The record of a call just accepted.
    pub fn accepted(id: CallId, funko: &str, request: &Request, body_bytes: u64) -> Record {
        Record {
            call_id: id,
            funko: funko.to_string(),
            method: request.method.clone(),
            target: request.target.clone(),
            source: request.source.clone(),
            state: State::Queued,
            attempts: 0,
            last_status: None,
            last_error: None,
            body_bytes,
            accepted_at_ms: id.accepted_ms(),
            started_at_ms: None,
            finished_at_ms: None,
            next_attempt_at_ms: None,
            callback_url: request.callback.clone(),
            callback: None,
            callback_attempts: 0,
            callback_status: None,
        }
    }
}

/// What the funko answered (kept until its callback is delivered).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    #[serde(skip)]
    pub body: bytes::Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time_and_read_back() {
        let a = CallId::new();
        std::thread::sleep(Duration::from_millis(2));
        let b = CallId::new();
        assert!(a < b);
        assert_eq!(CallId::parse(&a.to_string()), Some(a));
        assert!(a.accepted_ms() <= now_ms());
        assert_eq!(CallId::parse("xyz"), None);
        assert_eq!(CallId::parse(&"g".repeat(32)), None);
    }

    #[test]
    fn a_ticks_id_is_the_same_everywhere_and_differs_by_tick() {
        let one = CallId::for_tick("report", "t1", 1_700_000_000_000);
        assert_eq!(one, CallId::for_tick("report", "t1", 1_700_000_000_000));
        assert_ne!(one, CallId::for_tick("report", "t1", 1_700_000_002_000));
        assert_ne!(one, CallId::for_tick("report", "t2", 1_700_000_000_000));
        assert_ne!(one, CallId::for_tick("other", "t1", 1_700_000_000_000));
        assert_eq!(one.accepted_ms(), 1_700_000_000_000);
    }
}
