//! The metrics of async calls, callbacks and cron ticks (when metrics are on). None of these is
//! on the request path of a synchronous request.

use super::if_enabled;

/// Counts an async call of `funko` reaching `outcome` (`accepted`, `done`, `failed`,
/// `refused`).
pub fn call(funko: &str, outcome: &str) {
    if let Some(m) = if_enabled() {
        m.async_calls.with_label_values(&[funko, outcome]).inc();
    }
}

/// Counts one attempt of an async call of `funko`.
pub fn attempt(funko: &str) {
    if let Some(m) = if_enabled() {
        m.async_attempts.with_label_values(&[funko]).inc();
    }
}

/// Sets how many async calls of `funko` wait to run.
pub fn queue_depth(funko: &str, depth: usize) {
    if let Some(m) = if_enabled() {
        m.async_queue_depth
            .with_label_values(&[funko])
            .set(depth as i64);
    }
}

/// Removes `funko`'s queue depth series (its queue is empty and it is gone).
pub fn forget_queue(funko: &str) {
    if let Some(m) = if_enabled() {
        let _ = m.async_queue_depth.remove_label_values(&[funko]);
    }
}

/// Counts a callback delivery attempt's `outcome` (`delivered`, `retried`, `failed`).
pub fn callback(outcome: &str) {
    if let Some(m) = if_enabled() {
        m.callbacks.with_label_values(&[outcome]).inc();
    }
}

/// Counts a cron tick of `funko`.
pub fn cron_tick(funko: &str) {
    if let Some(m) = if_enabled() {
        m.cron_ticks.with_label_values(&[funko]).inc();
    }
}
