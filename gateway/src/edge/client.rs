//! One client connection on a public listener, from accept to close.
//!
//! Admitted at accept ([`super::limits`]), a connection holds only its socket (and its TLS
//! state) while it waits for a request: no HTTP session, no buffer, no boxed proxy future. The
//! wait reads into a buffer on the stack that lives for one poll; bytes that arrive are copied
//! into a buffer sized for them, and the rest of the head is read within `header_timeout`.
//! Only then does Pingora's HTTP/1.1 session take over, with the head handed to its parser as
//! bytes already read, and it gives the connection back after the answer; the bytes of
//! pipelined requests behind a bodiless one wait for its answer
//! ([`super::head::split_pipelined`]). HTTP/2 (by ALPN) goes to Pingora's HTTP/2 server as
//! it is, with `keepalive_timeout` as its idle timeout.
//!
//! The timeouts: the first request's head must be whole within `header_timeout` of the accept
//! (TLS handshake included), a later one's within `header_timeout` of its first byte; between
//! requests a connection may be silent for `keepalive_timeout`; and every write of an answer
//! must make progress within `send_timeout` (Pingora's write timeout), else the request ends
//! and everything it held (the instance connection, a `max_inflight` slot) is given back.

use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use pingora::apps::{HttpServerApp, ReusedHttpStream, ServerApp};
use pingora::listeners::tls::Acceptor;
use pingora::protocols::http::ServerSession;
use pingora::protocols::{ALPN, Stream};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

use super::EdgeSettings;
use super::head::{MAX_HEAD, head_end, split_pipelined};
use super::limits::Connections;
use super::listen::Handler;
use super::stream::ClientStream;
use crate::metrics::tally::{Phase, Tally};

/// The proxy the public listeners serve.
pub type Proxy = pingora::proxy::HttpProxy<crate::proxy::Gateway>;

/// The public listeners' handler: limits, timeouts, and the hand-over to the proxy.
pub struct Edge {
    proxy: Arc<Proxy>,
    settings: EdgeSettings,
    connections: Arc<Connections>,
}

impl Edge {
    pub fn new(proxy: Arc<Proxy>, settings: EdgeSettings, connections: Arc<Connections>) -> Edge {
        Edge {
            proxy,
            settings,
            connections,
        }
    }
}

impl Handler for Edge {
    fn accepted(
        self: &Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<&Arc<Acceptor>>,
        shutdown: &ShutdownWatch,
    ) {
        let admitted = match self.connections.admit(peer.ip()) {
            Ok(admitted) => admitted,
            Err(refusal) => {
                // Dropping the socket closes it: nothing was read, nothing is owed.
                crate::metrics::connection_refused(refusal.reason());
                refused(peer, refusal, &self.connections);
                return;
            }
        };
        // Small frames both ways: no Nagle delay.
        let _ = stream.set_nodelay(true);
        let deadline = Instant::now() + self.settings.header_timeout;
        let stream = ClientStream::new(stream, peer);
        let edge = Arc::clone(self);
        let shutdown = shutdown.clone();
        // Everything the task needs is made here, so that it holds only what it keeps: the
        // task of an idle plain connection is most of what that connection costs.
        match tls {
            None => {
                let stream: Stream = Box::new(stream);
                tokio::spawn(async move {
                    let _admitted = admitted;
                    let tally = Tally::new(Phase::Idle);
                    edge.serve_http1(stream, deadline, tally, shutdown).await;
                });
            }
            Some(acceptor) => {
                let acceptor = Arc::clone(acceptor);
                tokio::spawn(async move {
                    let _admitted = admitted;
                    edge.serve_tls(stream, peer, acceptor, deadline, shutdown)
                        .await;
                });
            }
        }
    }

    async fn cleanup(&self) {
        ServerApp::cleanup(&*self.proxy).await;
    }
}

/// Logs a refusal, at most once per 10 s per thread: a flood must not flood the log too.
fn refused(peer: SocketAddr, refusal: super::limits::Refusal, connections: &Connections) {
    thread_local! {
        static LAST: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    }
    let now = Instant::now();
    if LAST
        .get()
        .is_some_and(|at| now.duration_since(at) < Duration::from_secs(10))
    {
        return;
    }
    LAST.set(Some(now));
    let limits = connections.limits();
    tracing::warn!(
        client = %peer.ip(),
        reason = refusal.reason(),
        max_connections = limits.max_connections,
        max_connections_per_ip = limits.max_per_client,
        open = connections.open(),
        "refusing connections (logged once per 10 s)"
    );
}

impl Edge {
    /// A TLS connection: the handshake (within the first request's `header_timeout`), then
    /// HTTP/2 or HTTP/1.x as ALPN chose.
    async fn serve_tls(
        self: Arc<Self>,
        stream: ClientStream,
        peer: SocketAddr,
        acceptor: Arc<Acceptor>,
        deadline: Instant,
        shutdown: ShutdownWatch,
    ) {
        let tally = Tally::new(Phase::Active);
        // Boxed: the handshake's state is large and needed only while it runs.
        let handshake = Box::pin(acceptor.tls_handshake(stream));
        let stream: Stream = match tokio::time::timeout_at(deadline.into(), handshake).await {
            Ok(Ok(stream)) => Box::new(stream),
            Ok(Err(err)) => {
                tracing::debug!(client = %peer, error = %err, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(client = %peer, "TLS handshake not done within header_timeout");
                return;
            }
        };
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            // Pingora's HTTP/2 server: streams are requests of their own; the connection closes
            // after keepalive_timeout without any (its h2_idle_timeout).
            let _tally = tally;
            ServerApp::process_new(&self.proxy, stream, &shutdown).await;
            return;
        }
        self.serve_http1(stream, deadline, tally, shutdown).await;
    }

    /// HTTP/1.x requests on one connection until it closes or times out.
    async fn serve_http1(
        &self,
        mut stream: Stream,
        first_deadline: Instant,
        mut tally: Tally,
        shutdown: ShutdownWatch,
    ) {
        let keepalive_seconds = self.settings.keepalive_timeout.as_secs().max(1);
        let mut wait_until = first_deadline;
        let mut first = true;
        // Pipelined requests: the bytes that came after the last request, its next ones.
        let mut pipelined: Option<BytesMut> = None;
        loop {
            tally.set(Phase::Idle);
            let start = match pipelined.take() {
                Some(next) => next,
                None => match wait_for_request(&mut stream, wait_until).await {
                    Ok(Some(start)) => start,
                    // Closed, or silent for keepalive_timeout (header_timeout on a new
                    // connection): nothing was said, nothing is answered.
                    Ok(None) | Err(_) => return,
                },
            };
            tally.set(Phase::Active);
            // Counted from the first byte, so a shutdown waits for this request too.
            let _in_flight = crate::services::drain::RequestGuard::new();
            let deadline = if first {
                first_deadline
            } else {
                Instant::now() + self.settings.header_timeout
            };
            // A head that came whole needs no timer; one in pieces is read in a future of its
            // own, so that an idle connection's task stays small.
            let head = match head_end(&start, 0) {
                Some(_) => Ok(start),
                None => Box::pin(read_head(&mut stream, start, deadline)).await,
            };
            let mut head = match head {
                Ok(head) => head,
                Err(HeadError::TimedOut) => {
                    let message = format!(
                        "the request header did not arrive within {:?} (header_timeout)",
                        self.settings.header_timeout
                    );
                    Box::pin(answer_and_close(
                        &mut stream,
                        "408 Request Timeout",
                        &message,
                    ))
                    .await;
                    return;
                }
                Err(HeadError::TooLarge) => {
                    let message = format!("the request header is larger than {MAX_HEAD} bytes");
                    let status = "431 Request Header Fields Too Large";
                    Box::pin(answer_and_close(&mut stream, status, &message)).await;
                    return;
                }
                Err(HeadError::Closed) => return,
            };
            pipelined = split_pipelined(&mut head);
            match self
                .hand_over(stream, head, keepalive_seconds, &shutdown)
                .await
            {
                Some(reused) => stream = reused.consume().0,
                None => return,
            }
            first = false;
            wait_until = Instant::now() + self.settings.keepalive_timeout;
        }
    }
}

impl Edge {
    /// Pingora's HTTP/1.1 session on `stream`, with the request `head` already read, run by
    /// the proxy. Not `async`: the session (about a kilobyte) is built here and moved into the
    /// proxy's boxed future, so that it never takes room in the connection's own task, which
    /// is what an idle connection costs.
    fn hand_over<'a>(
        &'a self,
        stream: Stream,
        head: BytesMut,
        keepalive_seconds: u64,
        shutdown: &'a ShutdownWatch,
    ) -> Pin<Box<dyn Future<Output = Option<ReusedHttpStream>> + Send + 'a>> {
        let mut session = ServerSession::new_http1(stream);
        session.set_keepalive(Some(keepalive_seconds));
        session.set_write_timeout(Some(self.settings.send_timeout));
        session.set_pipelined_prefix(head);
        HttpServerApp::process_new_http(&self.proxy, session, shutdown)
    }
}

/// Bytes read in one go while a connection waits for a request; on the stack, only for the
/// duration of one poll.
const LANDING: usize = 4096;

/// The first buffer of a head that arrived in pieces; it doubles as needed, up to
/// [`MAX_HEAD`].
const PARTIAL: usize = 1024;

/// Waits until the next request's first bytes arrive, or `deadline`, holding no buffer: each
/// poll reads into a buffer on the stack, and what arrives is copied into one of its size.
/// `None` when the client closed the connection or the deadline passed.
async fn wait_for_request(
    stream: &mut Stream,
    deadline: Instant,
) -> std::io::Result<Option<BytesMut>> {
    // Once without a timer: a new connection's request has often arrived already.
    if let Poll::Ready(start) = poll_start(stream, &mut Context::from_waker(Waker::noop())) {
        return start;
    }
    let wait = std::future::poll_fn(|cx| poll_start(stream, cx));
    match tokio::time::timeout_at(deadline.into(), wait).await {
        Ok(start) => start,
        Err(_) => Ok(None),
    }
}

fn poll_start(
    stream: &mut Stream,
    cx: &mut Context<'_>,
) -> Poll<std::io::Result<Option<BytesMut>>> {
    let mut landing = [MaybeUninit::<u8>::uninit(); LANDING];
    let mut read = ReadBuf::uninit(&mut landing);
    match Pin::new(stream).poll_read(cx, &mut read) {
        Poll::Pending => Poll::Pending,
        Poll::Ready(Err(err)) => Poll::Ready(Err(err)),
        Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(Ok(None)),
        Poll::Ready(Ok(())) => {
            let bytes = read.filled();
            // A complete head gets a buffer of its size; a partial one room to grow.
            let capacity = if head_end(bytes, 0).is_some() {
                bytes.len()
            } else {
                (2 * bytes.len()).max(PARTIAL)
            };
            let mut buf = BytesMut::with_capacity(capacity);
            buf.extend_from_slice(bytes);
            Poll::Ready(Ok(Some(buf)))
        }
    }
}

/// Why a request head could not be read.
#[derive(Debug, PartialEq, Eq)]
enum HeadError {
    TimedOut,
    TooLarge,
    Closed,
}

/// Reads until `buf` holds a whole request head (and whatever followed it in the same reads),
/// by `deadline`, at most [`MAX_HEAD`] bytes.
async fn read_head(
    stream: &mut Stream,
    mut buf: BytesMut,
    deadline: Instant,
) -> Result<BytesMut, HeadError> {
    let mut scanned = 0;
    loop {
        if head_end(&buf, scanned).is_some() {
            return Ok(buf);
        }
        if buf.len() >= MAX_HEAD {
            return Err(HeadError::TooLarge);
        }
        scanned = buf.len();
        if buf.len() == buf.capacity() {
            let room = MAX_HEAD - buf.len();
            buf.reserve(buf.len().max(PARTIAL).min(room));
        }
        match tokio::time::timeout_at(deadline.into(), stream.read_buf(&mut buf)).await {
            Err(_) => return Err(HeadError::TimedOut),
            Ok(Ok(0)) | Ok(Err(_)) => return Err(HeadError::Closed),
            Ok(Ok(_)) => {}
        }
    }
}

/// Sends a short JSON error and closes; a client that does not take it within a second is
/// not waited for.
async fn answer_and_close(stream: &mut Stream, status: &str, message: &str) {
    let body = crate::http::responses::error_body(message, None);
    let mut answer = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    let send = async {
        stream.write_all(&answer).await?;
        stream.flush().await?;
        AsyncWriteExt::shutdown(stream).await
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), send).await;
}
