//! Idle connections to instances, kept by each worker thread for its own requests.
//!
//! Every worker is a single-thread runtime (see [`crate::server`]), so a connection taken from
//! this thread's pool is used, and given back, on this thread: no lock, no atomic, no
//! cross-thread wake-up. The most recently used connection is taken first (it is the one most
//! likely still open on the instance's side); one that was idle longer than the idle timeout,
//! or that the instance closed meanwhile, is dropped instead of used.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pingora::protocols::Stream;
use tokio::io::{AsyncRead, ReadBuf};

/// Most idle connections one worker keeps to one instance.
pub const MAX_PER_INSTANCE: usize = 256;

/// How often a worker looks through its whole pool for connections idle too long (also those
/// to instances that are gone).
const SWEEP_EVERY: Duration = Duration::from_secs(5);

struct Idle {
    stream: Stream,
    since: Instant,
}

#[derive(Default)]
struct Pool {
    idle: HashMap<SocketAddr, VecDeque<Idle>>,
    next_sweep: Option<Instant>,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::new(Pool::default());
}

/// An open connection to `addr` that was idle for less than `max_idle`, if this worker has one.
pub fn take(addr: SocketAddr, max_idle: Duration) -> Option<Stream> {
    POOL.with_borrow_mut(|pool| {
        let idle = pool.idle.get_mut(&addr)?;
        while let Some(mut connection) = idle.pop_back() {
            if connection.since.elapsed() < max_idle && still_open(&mut connection.stream) {
                return Some(connection.stream);
            }
        }
        None
    })
}

/// Keeps `stream` (just done with a request to `addr`) for a later request.
pub fn put(addr: SocketAddr, stream: Stream, max_idle: Duration) {
    let now = Instant::now();
    POOL.with_borrow_mut(|pool| {
        let idle = pool.idle.entry(addr).or_default();
        if idle.len() >= MAX_PER_INSTANCE {
            idle.pop_front();
        }
        idle.push_back(Idle { stream, since: now });
        if pool.next_sweep.is_none_or(|at| at <= now) {
            pool.next_sweep = Some(now + SWEEP_EVERY);
            pool.idle.retain(|_, idle| {
                idle.retain(|connection| now.duration_since(connection.since) < max_idle);
                !idle.is_empty()
            });
        }
    });
}

/// Idle connections this worker holds (for tests).
pub fn len() -> usize {
    POOL.with_borrow(|pool| pool.idle.values().map(VecDeque::len).sum())
}

/// Whether an idle connection is still usable: nothing to read (no close, no stray bytes).
/// One poll, without waiting: readiness is known to the runtime, so this is usually no
/// system call at all.
fn still_open(stream: &mut Stream) -> bool {
    let mut byte = [0u8; 1];
    let mut buf = ReadBuf::new(&mut byte);
    let mut cx = Context::from_waker(Waker::noop());
    matches!(Pin::new(stream).poll_read(&mut cx, &mut buf), Poll::Pending)
}
