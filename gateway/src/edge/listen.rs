//! The gateway's listening sockets as a Pingora service: an accept loop per socket that hands
//! each new connection to a [`Handler`] on the worker's own thread.
//!
//! Pingora's own listening service binds when the server starts (retrying a taken port for 30 s,
//! then panicking in a worker thread), gives every connection a 64 KiB read buffer, and runs
//! its handshake and the HTTP session in one task with no way to refuse a connection or to hold
//! it without a session. Here the sockets are bound before the server starts
//! ([`super::bind`]), so a bad address ends the start with one line, and the handler decides
//! what a connection holds. The sockets go into Pingora's listener table under the same keys
//! its own listeners use, so a `-u` upgrade hands them over as before.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pingora::listeners::tls::Acceptor;
use pingora::server::{ListenFds, ShutdownWatch};
use tokio::net::TcpStream;

/// What happens to the connections a listener accepts.
pub trait Handler: Send + Sync + 'static {
    /// Takes a new connection from `peer`, on the accepting worker's thread: spawns what
    /// serves it, or drops it (which closes it). `tls` is the listener's TLS acceptor.
    fn accepted(
        self: &Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        tls: Option<&Arc<Acceptor>>,
        shutdown: &ShutdownWatch,
    );

    /// Runs once the listeners are closed at shutdown.
    fn cleanup(&self) -> impl std::future::Future<Output = ()> + Send {
        async {}
    }
}

/// Serves every connection with a Pingora app as it is (the metrics listener).
pub struct Serve<A>(pub Arc<A>);

impl<A: pingora::apps::ServerApp + Send + Sync + 'static> Handler for Serve<A> {
    fn accepted(
        self: &Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        _tls: Option<&Arc<Acceptor>>,
        shutdown: &ShutdownWatch,
    ) {
        let app = Arc::clone(&self.0);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut next: Option<pingora::protocols::Stream> =
                Some(Box::new(super::stream::ClientStream::new(stream, peer)));
            while let Some(stream) = next.take() {
                next = app.process_new(stream, &shutdown).await;
            }
        });
    }
}

/// One listening socket of a service.
pub struct Endpoint {
    /// The address text: the socket's key in Pingora's listener table (see
    /// [`crate::server::worker_listen_keys`]).
    pub key: String,
    /// The config key it comes from (`listen`, `tls_listen`, ...), for messages.
    pub config_key: &'static str,
    /// Bound at start; `None` in a `-u` upgrade, where the running process hands it over.
    pub socket: Option<std::net::TcpListener>,
    /// TLS on this socket.
    pub tls: Option<Arc<Acceptor>>,
}

/// A Pingora service accepting on its endpoints, one thread.
pub struct Listening<H> {
    name: String,
    keys: Vec<String>,
    endpoints: Vec<Endpoint>,
    handler: Arc<H>,
}

impl<H: Handler> Listening<H> {
    pub fn new(name: String, endpoints: Vec<Endpoint>, handler: Arc<H>) -> Listening<H> {
        Listening {
            name,
            keys: endpoints.iter().map(|e| e.key.clone()).collect(),
            endpoints,
            handler,
        }
    }
}

/// The socket of `endpoint` as a Tokio listener: the one bound at start (entered in Pingora's
/// listener table, for a later upgrade), else the one the previous process handed over, else
/// a new one (a listener the previous process did not have).
fn take_listener(
    endpoint: &mut Endpoint,
    fds: Option<&ListenFds>,
) -> Result<tokio::net::TcpListener, String> {
    let socket = match (endpoint.socket.take(), fds) {
        (Some(socket), Some(fds)) => {
            fds.lock().add(endpoint.key.clone(), socket.as_raw_fd());
            socket
        }
        (Some(socket), None) => socket,
        (None, fds) => {
            let inherited = fds.and_then(|fds| fds.lock().get(&endpoint.key).copied());
            match inherited {
                // SAFETY: the descriptor was handed over by the previous process for this key
                // and nothing else in this process uses it.
                Some(fd) => unsafe { std::net::TcpListener::from_raw_fd(fd) },
                None => {
                    let addr = endpoint
                        .key
                        .parse::<SocketAddr>()
                        .map_err(|err| format!("{}: {err}", endpoint.key))?;
                    let mut bound = super::bind::bind(endpoint.config_key, addr, 1)
                        .map_err(|err| err.to_string())?;
                    let socket = bound.pop().ok_or("no socket bound")?;
                    if let Some(fds) = fds {
                        fds.lock().add(endpoint.key.clone(), socket.as_raw_fd());
                    }
                    socket
                }
            }
        }
    };
    socket
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(socket))
        .map_err(|err| format!("{} {}: {err}", endpoint.config_key, endpoint.key))
}

/// How long accepting pauses when the process is out of descriptors or memory: accept would
/// fail again at once, and connections that end meanwhile give some back.
const ACCEPT_PAUSE: Duration = Duration::from_millis(50);

async fn accept_loop<H: Handler>(
    listener: tokio::net::TcpListener,
    handler: Arc<H>,
    tls: Option<Arc<Acceptor>>,
    mut shutdown: ShutdownWatch,
) {
    let mut warned: Option<Instant> = None;
    loop {
        let accepted = tokio::select! {
            biased;
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
                continue;
            }
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => handler.accepted(stream, peer, tls.as_ref(), &shutdown),
            Err(err) => {
                let exhausted = matches!(
                    err.raw_os_error(),
                    Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
                );
                if !exhausted {
                    // The client left before it was accepted (ECONNABORTED, ...).
                    tracing::debug!(error = %err, "accept failed");
                    continue;
                }
                if warned.is_none_or(|at| at.elapsed() > Duration::from_secs(10)) {
                    warned = Some(Instant::now());
                    tracing::warn!(error = %err, "cannot accept connections: out of descriptors or memory (see max_connections)");
                }
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}

#[async_trait]
impl<H: Handler> pingora::services::Service for Listening<H> {
    async fn start_service(
        &mut self,
        fds: Option<ListenFds>,
        shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        let mut loops = Vec::with_capacity(self.endpoints.len());
        for mut endpoint in std::mem::take(&mut self.endpoints) {
            let listener = match take_listener(&mut endpoint, fds.as_ref()) {
                Ok(listener) => listener,
                Err(err) => {
                    // Too late to refuse the start: end the process with the reason.
                    eprintln!("faaso-gateway: cannot listen: {err}");
                    tracing::error!(error = %err, "cannot listen");
                    std::process::exit(1);
                }
            };
            loops.push(tokio::spawn(accept_loop(
                listener,
                Arc::clone(&self.handler),
                endpoint.tls,
                shutdown.clone(),
            )));
        }
        for accept in loops {
            let _ = accept.await;
        }
        self.handler.cleanup().await;
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn threads(&self) -> Option<usize> {
        Some(1)
    }

    fn listen_addresses(&self) -> Option<Vec<String>> {
        Some(self.keys.clone())
    }
}
