//! Scale from zero, on the request side: a request for a funko at zero asks the scaler for an
//! instance and waits for it.
//!
//! One start per funko at a time: the first request registers the start and sends it to the
//! scaler ([`crate::services::scaler`]); every request that arrives meanwhile waits on the same outcome,
//! so twenty requests at zero start one instance. The wait is bounded by
//! `cold_start_timeout`. A start that failed is remembered for [`FAILURE_HOLD`]: requests in
//! that time get the same answer at once instead of starting (and failing) again each.
//!
//! None of this is on the path of a funko that has an instance: the request path only gets
//! here when it found no instance to send the request to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

/// How long a failed start answers requests before another start is tried.
pub const FAILURE_HOLD: Duration = Duration::from_secs(FAILURE_HOLD_SECONDS);

/// [`FAILURE_HOLD`] in whole seconds, as the `Retry-After` of a request a start failed for.
pub const FAILURE_HOLD_RETRY_AFTER: &str = "5";
const FAILURE_HOLD_SECONDS: u64 = 5;

/// The outcome of a start: `None` while it runs, then `Ok` (an instance is in the routing
/// table) or the reason it failed.
type Outcome = Option<Result<(), Arc<str>>>;

/// A start the scaler is asked to make; it reports back with [`Wakes::finish`].
#[derive(Debug)]
pub struct WakeStart {
    pub funko: Arc<str>,
    done: watch::Sender<Outcome>,
}

/// Why a request for a funko at zero got no instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WakeError {
    /// The start failed (the reason names the instance and what it did).
    Failed(Arc<str>),
    /// No outcome within `cold_start_timeout`.
    Timeout(Duration),
    /// The gateway cannot start instances (its scaler is not running).
    Unavailable,
}

impl std::fmt::Display for WakeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WakeError::Failed(reason) => write!(f, "starting an instance failed: {reason}"),
            WakeError::Timeout(after) => write!(
                f,
                "no instance was ready within cold_start_timeout ({})",
                faaso::units::format_duration(*after)
            ),
            WakeError::Unavailable => write!(f, "the gateway cannot start instances"),
        }
    }
}

/// The starts in progress, shared by every worker and the scaler.
#[derive(Debug)]
pub struct Wakes {
    /// Longest wait of a request.
    pub timeout: Duration,
    starts: Mutex<Starts>,
    requests: mpsc::UnboundedSender<WakeStart>,
}

#[derive(Debug, Default)]
struct Starts {
    running: HashMap<Arc<str>, watch::Receiver<Outcome>>,
    failed: HashMap<Arc<str>, (Instant, Arc<str>)>,
}

impl Wakes {
    /// The shared state, and the receiving end for the scaler.
    pub fn new(timeout: Duration) -> (Wakes, mpsc::UnboundedReceiver<WakeStart>) {
        let (requests, receiver) = mpsc::unbounded_channel();
        let wakes = Wakes {
            timeout,
            starts: Mutex::new(Starts::default()),
            requests,
        };
        (wakes, receiver)
    }

    fn starts(&self) -> std::sync::MutexGuard<'_, Starts> {
        self.starts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until `funko` has an instance, starting one unless a start is under way.
    pub async fn wake(&self, funko: &Arc<str>) -> Result<(), WakeError> {
        let mut outcome = {
            let mut starts = self.starts();
            let now = Instant::now();
            starts.failed.retain(|_, (until, _)| *until > now);
            if let Some((_, reason)) = starts.failed.get(funko) {
                return Err(WakeError::Failed(Arc::clone(reason)));
            }
            match starts.running.get(funko) {
                Some(outcome) => outcome.clone(),
                None => {
                    let (done, outcome) = watch::channel(None);
                    let start = WakeStart {
                        funko: Arc::clone(funko),
                        done,
                    };
                    if self.requests.send(start).is_err() {
                        return Err(WakeError::Unavailable);
                    }
                    starts.running.insert(Arc::clone(funko), outcome.clone());
                    outcome
                }
            }
        };
        let ended = tokio::time::timeout(self.timeout, outcome.wait_for(Option::is_some)).await;
        match ended {
            Err(_) => Err(WakeError::Timeout(self.timeout)),
            Ok(Err(_)) => Err(WakeError::Unavailable),
            Ok(Ok(outcome)) => match &*outcome {
                Some(Ok(())) => Ok(()),
                Some(Err(reason)) => Err(WakeError::Failed(Arc::clone(reason))),
                None => Err(WakeError::Unavailable),
            },
        }
    }

    /// The scaler's report on a start: the waiting requests go on (or get the reason).
    pub fn finish(&self, start: WakeStart, outcome: Result<(), String>) {
        let outcome = outcome.map_err(Arc::<str>::from);
        {
            let mut starts = self.starts();
            starts.running.remove(&start.funko);
            if let Err(reason) = &outcome {
                let until = Instant::now() + FAILURE_HOLD;
                starts
                    .failed
                    .insert(Arc::clone(&start.funko), (until, Arc::clone(reason)));
            }
        }
        // Nobody waiting any more (they timed out) is not a failure.
        let _ = start.done.send(Some(outcome));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_says_the_failure_hold() {
        let seconds: u64 = FAILURE_HOLD_RETRY_AFTER.parse().unwrap();
        assert_eq!(Duration::from_secs(seconds), FAILURE_HOLD);
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_start() {
        let (wakes, mut starts) = Wakes::new(Duration::from_secs(5));
        let wakes = Arc::new(wakes);
        let funko: Arc<str> = Arc::from("hello");
        let waiters: Vec<_> = (0..20)
            .map(|_| {
                let wakes = Arc::clone(&wakes);
                let funko = Arc::clone(&funko);
                tokio::spawn(async move { wakes.wake(&funko).await })
            })
            .collect();
        let start = starts.recv().await.unwrap();
        assert_eq!(&*start.funko, "hello");
        tokio::task::yield_now().await;
        wakes.finish(start, Ok(()));
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), Ok(()));
        }
        assert!(starts.try_recv().is_err(), "one start for twenty requests");
    }

    #[tokio::test]
    async fn a_failed_start_answers_for_a_while() {
        let (wakes, mut starts) = Wakes::new(Duration::from_secs(5));
        let funko: Arc<str> = Arc::from("broken");
        let (first, ()) = tokio::join!(wakes.wake(&funko), async {
            let start = starts.recv().await.unwrap();
            wakes.finish(start, Err("it exited with code 1".to_string()));
        });
        assert_eq!(
            first,
            Err(WakeError::Failed(Arc::from("it exited with code 1")))
        );
        // Within the hold: the same answer, and no new start.
        let again = wakes.wake(&funko).await;
        assert_eq!(
            again,
            Err(WakeError::Failed(Arc::from("it exited with code 1")))
        );
        assert!(starts.try_recv().is_err());
    }

    #[tokio::test]
    async fn the_wait_is_bounded() {
        let timeout = Duration::from_millis(100);
        let (wakes, _starts) = Wakes::new(timeout);
        let funko: Arc<str> = Arc::from("slow");
        let began = Instant::now();
        let waited = wakes.wake(&funko).await;
        assert_eq!(waited, Err(WakeError::Timeout(timeout)));
        assert!(began.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn without_a_scaler_requests_are_told_at_once() {
        let (wakes, starts) = Wakes::new(Duration::from_secs(30));
        drop(starts);
        let funko: Arc<str> = Arc::from("hello");
        assert_eq!(wakes.wake(&funko).await, Err(WakeError::Unavailable));
    }
}
