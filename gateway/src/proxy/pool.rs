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

/// Idle connections this worker holds.
#[cfg(test)]
fn len() -> usize {
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

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};

    /// A connected pair: our end as Pingora's stream, and the instance's end.
    async fn pair(listener: &TcpListener) -> (Stream, TcpStream) {
        let addr = listener.local_addr().unwrap();
        let (ours, theirs) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let ours: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(ours.unwrap()));
        (ours, theirs.unwrap().0)
    }

    #[tokio::test]
    async fn open_connections_come_back_closed_ones_do_not() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let max_idle = Duration::from_secs(30);
        let (first, _kept) = pair(&listener).await;
        let (second, closed) = pair(&listener).await;
        let (third, mut chatty) = pair(&listener).await;
        put(addr, first, max_idle);
        put(addr, second, max_idle);
        put(addr, third, max_idle);
        assert_eq!(len(), 3);
        drop(closed);
        chatty.write_all(b"unasked").await.unwrap();
        // Let the close and the bytes arrive.
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Last in, first out; the one with stray bytes and the closed one are dropped.
        assert!(take(addr, max_idle).is_some());
        assert_eq!(len(), 0);
        assert!(take(addr, max_idle).is_none());
    }

    #[tokio::test]
    async fn connections_idle_too_long_are_not_used_and_the_pool_is_bounded() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stream, _theirs) = pair(&listener).await;
        put(addr, stream, Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(take(addr, Duration::from_millis(10)).is_none());

        let mut peers = Vec::new();
        for _ in 0..MAX_PER_INSTANCE + 3 {
            let (stream, theirs) = pair(&listener).await;
            peers.push(theirs);
            put(addr, stream, Duration::from_secs(30));
        }
        assert_eq!(len(), MAX_PER_INSTANCE);
    }
}
