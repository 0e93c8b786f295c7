//! Idle connections to instances, kept by each worker thread for its own requests.
//!
//! Every worker is a single-thread runtime (see [`crate::server`]), so a connection taken from
//! this thread's pool is used, and given back, on this thread: no lock, no atomic, no
//! cross-thread wake-up. The most recently used connection is taken first (it is the one most
//! likely still open on the instance's side); one that was idle longer than the idle timeout,
//! or that the instance closed meanwhile, is dropped instead of used.
//!
//! New connections are opened at most [`MAX_CONNECTING`] at a time per instance and worker,
//! each counted until its first answer (at most [`SLOT_HOLD`]): until then the instance may not
//! have accepted it yet. A burst of requests on a cold pool (a gateway start, a new instance,
//! a spike after the pool went idle) would otherwise open one connection per request in the
//! same instant. The instance's listen backlog (128 for many servers) overflows, its kernel
//! drops the extra handshakes, and each of those requests waits a second for the SYN to be sent
//! again: 53-64 requests of the first 256, seen in the benchmark at 256 connections. A request
//! over the limit waits for a connection given back to the pool or for a slot to free up.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use pingora::protocols::Stream;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::Notify;

/// Most idle connections one worker keeps to one instance.
pub const MAX_PER_INSTANCE: usize = 256;

/// Most new connections to one instance that one worker has not yet had an answer on (see the
/// module header): with two workers, half of a 128-connection listen backlog.
pub const MAX_CONNECTING: usize = 32;

/// Longest a new connection is counted against [`MAX_CONNECTING`] after its connect: a slow
/// first answer (a long request) must not hold up the connects behind it.
pub const SLOT_HOLD: Duration = Duration::from_millis(10);

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
    /// New connections without an answer yet, per instance.
    static CONNECTING: RefCell<HashMap<SocketAddr, usize>> = RefCell::new(HashMap::new());
    /// Requests waiting for a slot; nothing is notified while there are none.
    static WAITING: Cell<usize> = const { Cell::new(0) };
    /// Woken when a connection comes back or a slot frees up.
    static FREED: Arc<Notify> = Arc::new(Notify::new());
}

/// What a request gets to send on.
pub enum Connection {
    /// An idle connection from the pool.
    Pooled(Stream),
    /// Leave to open a new one; held until its first answer (at most [`SLOT_HOLD`]).
    Slot(ConnectSlot),
}

/// One of an instance's [`MAX_CONNECTING`] new connections on this worker; freed on drop.
pub struct ConnectSlot(SocketAddr);

impl ConnectSlot {
    fn try_take(addr: SocketAddr) -> Option<ConnectSlot> {
        CONNECTING.with_borrow_mut(|connecting| {
            let count = connecting.entry(addr).or_default();
            (*count < MAX_CONNECTING).then(|| {
                *count += 1;
                ConnectSlot(addr)
            })
        })
    }
}

impl Drop for ConnectSlot {
    fn drop(&mut self) {
        CONNECTING.with_borrow_mut(|connecting| {
            if let Some(count) = connecting.get_mut(&self.0) {
                *count -= 1;
                if *count == 0 {
                    connecting.remove(&self.0);
                }
            }
        });
        wake_waiters();
    }
}

/// Counts a waiting request while it waits (also when the request is dropped meanwhile).
struct Waiting;

impl Waiting {
    fn start() -> Waiting {
        WAITING.with(|waiting| waiting.set(waiting.get() + 1));
        Waiting
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        WAITING.with(|waiting| waiting.set(waiting.get().saturating_sub(1)));
    }
}

fn wake_waiters() {
    if WAITING.with(Cell::get) > 0 {
        FREED.with(|freed| freed.notify_waiters());
    }
}

/// A pooled connection to `addr`, else a slot to open one, waiting while [`MAX_CONNECTING`]
/// new connections to it have no answer yet on this worker.
pub async fn take_or_slot(addr: SocketAddr, max_idle: Duration) -> Connection {
    first_free(|| {
        take(addr, max_idle)
            .map(Connection::Pooled)
            .or_else(|| ConnectSlot::try_take(addr).map(Connection::Slot))
    })
    .await
}

/// A slot to open a new connection to `addr` (for when a pooled one will not do), waiting as
/// [`take_or_slot`] does.
pub async fn slot(addr: SocketAddr) -> ConnectSlot {
    first_free(|| ConnectSlot::try_take(addr)).await
}

/// The first `Some` of `check`, asked again each time a connection comes back or a slot frees
/// up on this worker.
async fn first_free<T>(mut check: impl FnMut() -> Option<T>) -> T {
    let freed = FREED.with(Arc::clone);
    loop {
        let notified = freed.notified();
        tokio::pin!(notified);
        // Registered before looking, so a connection given back meanwhile is not missed.
        notified.as_mut().enable();
        if let Some(found) = check() {
            return found;
        }
        let _waiting = Waiting::start();
        notified.await;
    }
}

/// Runs `exchange` (the first on a new connection) and frees `slot` when it is done or after
/// [`SLOT_HOLD`], whichever comes first. The exchange is pinned by the caller and only borrowed
/// here: an exchange's future is kilobytes, and taking it by value would copy it on every
/// request (twice: into this future, then into its pinned place).
pub async fn holding<F: std::future::Future>(
    slot: Option<ConnectSlot>,
    mut exchange: std::pin::Pin<&mut F>,
) -> F::Output {
    let Some(slot) = slot else {
        return exchange.await;
    };
    tokio::select! {
        done = &mut exchange => done,
        () = tokio::time::sleep(SLOT_HOLD) => {
            drop(slot);
            exchange.await
        }
    }
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
    wake_waiters();
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
    async fn new_connections_beyond_the_limit_wait_for_a_slot_or_a_returned_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let max_idle = Duration::from_secs(30);
        let mut slots = Vec::new();
        for _ in 0..MAX_CONNECTING {
            match take_or_slot(addr, max_idle).await {
                Connection::Slot(slot) => slots.push(slot),
                Connection::Pooled(_) => panic!("the pool is empty"),
            }
        }
        // Over the limit: it waits ...
        let waiter = take_or_slot(addr, max_idle);
        tokio::pin!(waiter);
        let short = Duration::from_millis(20);
        assert!(tokio::time::timeout(short, &mut waiter).await.is_err());
        assert_eq!(WAITING.with(Cell::get), 1);
        // ... until a new connection has its answer and frees its slot.
        slots.pop();
        let got = tokio::time::timeout(Duration::from_secs(1), &mut waiter).await;
        assert!(matches!(got, Ok(Connection::Slot(_))));
        assert_eq!(WAITING.with(Cell::get), 0);

        // A connection given back is taken by a waiting request.
        let waiter = take_or_slot(addr, max_idle);
        tokio::pin!(waiter);
        assert!(tokio::time::timeout(short, &mut waiter).await.is_err());
        let (stream, _theirs) = pair(&listener).await;
        put(addr, stream, max_idle);
        let got = tokio::time::timeout(Duration::from_secs(1), &mut waiter).await;
        assert!(matches!(got, Ok(Connection::Pooled(_))));
        // Other instances are not held up.
        let other: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(matches!(
            take_or_slot(other, max_idle).await,
            Connection::Slot(_)
        ));
    }

    #[tokio::test]
    async fn a_slow_first_answer_frees_its_slot_after_the_hold() {
        let addr: SocketAddr = "127.0.0.1:7".parse().unwrap();
        let mut slots: Vec<ConnectSlot> = Vec::new();
        for _ in 0..MAX_CONNECTING {
            slots.push(slot(addr).await);
        }
        let held = slots.pop();
        // A first exchange that takes 200 ms frees its slot after SLOT_HOLD ...
        let sleep = std::pin::pin!(tokio::time::sleep(Duration::from_millis(200)));
        let slow = holding(held, sleep);
        let waiter = slot(addr);
        let started = std::time::Instant::now();
        let (_, got) = tokio::join!(slow, async {
            let got = waiter.await;
            (got, started.elapsed())
        });
        assert!(got.1 < Duration::from_millis(150), "{:?}", got.1);
        // ... and a fast one when it is done.
        drop(got.0);
        let seven = std::pin::pin!(async { 7 });
        let quick = holding(Some(slot(addr).await), seven).await;
        assert_eq!(quick, 7);
        assert_eq!(
            CONNECTING.with_borrow(|c| c.get(&addr).copied()),
            Some(MAX_CONNECTING - 1)
        );
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
