//! A Docker socket relay that a test can cut: the gateway talks to Docker through it, and
//! [`DockerRelay::cut`] drops every open connection (the event stream with them), as an engine
//! restart or a network hiccup would. New connections keep working, unless the relay is
//! [`DockerRelay::down`] (an engine that is gone) until [`DockerRelay::up`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

/// A running relay; stops when dropped.
pub struct DockerRelay {
    /// `unix://...` address to give the gateway as `docker_host`.
    pub host: String,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
    refusing: Arc<AtomicBool>,
    acceptor: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

/// The engine's Unix socket: from `DOCKER_HOST` when it is a `unix://` address.
fn engine_socket() -> PathBuf {
    match std::env::var("DOCKER_HOST") {
        Ok(host) if host.starts_with("unix://") => PathBuf::from(&host["unix://".len()..]),
        _ => PathBuf::from("/var/run/docker.sock"),
    }
}

impl DockerRelay {
    pub fn start() -> DockerRelay {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("docker.sock");
        let listener = UnixListener::bind(&path).expect("relay socket can be bound");
        let connections: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let tracked = Arc::clone(&connections);
        let refusing = Arc::new(AtomicBool::new(false));
        let refuse = Arc::clone(&refusing);
        let acceptor = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if refuse.load(Ordering::SeqCst) {
                    // Closed at once: as close to "connection refused" as a socket file gets.
                    drop(client);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut engine) = UnixStream::connect(engine_socket()).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                    }
                });
                tracked.lock().unwrap_or_else(|p| p.into_inner()).push(task);
            }
        });
        DockerRelay {
            host: format!("unix://{}", path.display()),
            connections,
            refusing,
            acceptor,
            _dir: dir,
        }
    }

    /// Drops every open connection; returns how many were cut.
    pub fn cut(&self) -> usize {
        let mut connections = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        let open = connections.iter().filter(|t| !t.is_finished()).count();
        for task in connections.drain(..) {
            task.abort();
        }
        open
    }
}

impl DockerRelay {
    /// Cuts every connection and refuses new ones until [`DockerRelay::up`].
    pub fn down(&self) -> usize {
        self.refusing.store(true, Ordering::SeqCst);
        self.cut()
    }

    /// Lets connections through again.
    pub fn up(&self) {
        self.refusing.store(false, Ordering::SeqCst);
    }
}

impl Drop for DockerRelay {
    fn drop(&mut self) {
        self.cut();
        self.acceptor.abort();
    }
}
