//! Cron triggers: each tick of a funko's trigger becomes an async call of that funko, so its
//! retries, limits and record apply. The schedules follow the routing snapshot: a funko that
//! appears (or gets new labels) has its triggers from the next second, one that is removed
//! stops. Ticks are in UTC. A tick's call id is derived from the funko, the trigger and the
//! tick time ([`CallId::for_tick`]), the same on every gateway.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use faaso::triggers::{Schedule, Trigger};

use super::Calls;
use super::record::{CallId, Request};
use crate::SharedRoutes;

/// How often the snapshot is looked at for new and removed triggers.
const REFRESH: Duration = Duration::from_secs(1);

/// One scheduled trigger.
struct Scheduled {
    trigger: Trigger,
    schedule: Schedule,
    next: Option<DateTime<Utc>>,
}

/// Runs the schedules of every funko until `shutdown`.
pub async fn run(table: SharedRoutes, calls: Calls, mut shutdown: pingora::server::ShutdownWatch) {
    let mut scheduled: HashMap<(Arc<str>, String), Scheduled> = HashMap::new();
    loop {
        let now = Utc::now();
        refresh(&table, &mut scheduled, now);
        for ((funko, _), entry) in scheduled.iter_mut() {
            let Some(due) = entry.next.filter(|due| *due <= now) else {
                continue;
            };
            tick(&calls, funko, &entry.trigger, due).await;
            // A tick that was missed (the gateway was busy or stopped) is not made up for.
            entry.next = entry.schedule.next_after(due.max(now));
        }
        let next = scheduled.values().filter_map(|entry| entry.next).min();
        let wait = wait_for(next, Utc::now());
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// How long to sleep before looking again: until the next tick (none if it is due), at most
/// [`REFRESH`], and [`REFRESH`] when nothing is scheduled (not zero: the loop would spin).
fn wait_for(next: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Duration {
    match next {
        None => REFRESH,
        Some(next) => (next - now).to_std().unwrap_or(Duration::ZERO).min(REFRESH),
    }
}

/// Brings the schedules in line with the snapshot's funkos and their triggers.
fn refresh(
    table: &SharedRoutes,
    scheduled: &mut HashMap<(Arc<str>, String), Scheduled>,
    now: DateTime<Utc>,
) {
    let table = table.load();
    scheduled.retain(|(funko, id), entry| {
        table
            .get(funko)
            .and_then(|f| f.triggers.iter().find(|t| &t.id == id))
            .is_some_and(|current| *current == entry.trigger)
    });
    for funko in table.funkos() {
        for trigger in &funko.triggers {
            let key = (Arc::clone(&funko.name), trigger.id.clone());
            if scheduled.contains_key(&key) {
                continue;
            }
            // Labels were checked when the snapshot was built.
            let Ok(schedule) = Schedule::parse(&trigger.schedule) else {
                continue;
            };
            tracing::info!(funko = %funko.name, trigger = %trigger.id, schedule = %trigger.schedule, "cron trigger scheduled");
            let next = schedule.next_after(now);
            scheduled.insert(
                key,
                Scheduled {
                    trigger: trigger.clone(),
                    schedule,
                    next,
                },
            );
        }
    }
}

/// Makes the call of one tick.
async fn tick(calls: &Calls, funko: &str, trigger: &Trigger, due: DateTime<Utc>) {
    let tick_ms = due.timestamp_millis().max(0) as u64;
    let id = CallId::for_tick(funko, &trigger.id, tick_ms);
    let body = trigger.body.clone().map(Bytes::from).unwrap_or_default();
    let mut headers = vec![("x-faaso-trigger".to_string(), trigger.id.clone())];
    if !body.is_empty() {
        let json = serde_json::from_slice::<serde_json::Value>(&body).is_ok();
        let content_type = if json {
            "application/json"
        } else {
            "text/plain"
        };
        headers.push(("content-type".to_string(), content_type.to_string()));
    }
    let request = Request {
        method: trigger.method.clone(),
        target: trigger.path.clone(),
        headers,
        callback: None,
        source: format!("cron:{}", trigger.id),
    };
    match calls.accept(id, funko, request, body).await {
        Ok(()) => crate::metrics::calls::cron_tick(funko),
        // Another gateway made this tick.
        Err(super::AcceptError::Duplicate) => {}
        Err(err) => {
            tracing::warn!(funko, trigger = %trigger.id, error = %err, "a cron tick was not queued")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loop_sleeps_until_the_next_tick_and_a_refresh_at_most() {
        let now = Utc::now();
        assert_eq!(
            wait_for(None, now),
            REFRESH,
            "nothing scheduled: no spinning"
        );
        let soon = now + chrono::Duration::milliseconds(250);
        assert_eq!(wait_for(Some(soon), now), Duration::from_millis(250));
        let later = now + chrono::Duration::seconds(30);
        assert_eq!(wait_for(Some(later), now), REFRESH);
        let missed = now - chrono::Duration::seconds(1);
        assert_eq!(wait_for(Some(missed), now), Duration::ZERO);
    }
}
