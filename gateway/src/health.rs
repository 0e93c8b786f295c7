//! Active health checks: a background service that sends `GET /ping` to every instance of the
//! current snapshot every `health_interval`. Two failures in a row take an instance out, one
//! success brings it back. Instances that are out (also those a failed connect took out) are
//! checked every second, so they come back quickly once they answer.
//!
//! The check speaks minimal HTTP/1.1 over a fresh TCP connection (`Connection: close`), so it
//! never disturbs the proxy's connection pool.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::table::{Instance, SharedTable};

/// Checks run at once at most.
const CONCURRENCY: usize = 64;
/// How often instances that are out are checked again.
const DOWN_INTERVAL: Duration = Duration::from_secs(1);

/// The health checker.
pub struct HealthChecker {
    pub table: SharedTable,
    pub interval: Duration,
    /// Limit for one check (connect, send, first line).
    pub timeout: Duration,
}

#[async_trait]
impl BackgroundService for HealthChecker {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let tick = self.interval.min(DOWN_INTERVAL);
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last_checked: HashMap<String, Instant> = HashMap::new();
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => return,
            }
            let now = Instant::now();
            let table = self.table.load_full();
            let due: Vec<Arc<Instance>> = table
                .instances()
                .filter(|i| {
                    let interval = if i.state.is_up() {
                        self.interval
                    } else {
                        DOWN_INTERVAL
                    };
                    last_checked
                        .get(&i.id)
                        .is_none_or(|last| now.duration_since(*last) >= interval)
                })
                .cloned()
                .collect();
            // Forget instances that are gone.
            last_checked.retain(|id, _| table.instances().any(|i| &i.id == id));
            for instance in &due {
                last_checked.insert(instance.id.clone(), now);
            }
            let timeout = self.timeout;
            futures_util::stream::iter(due)
                .map(|instance| async move {
                    let passed = check(instance.addr, timeout).await;
                    record(&instance, passed);
                })
                .buffer_unordered(CONCURRENCY)
                .collect::<()>()
                .await;
            crate::metrics::metrics().publish_instances(&table);
        }
    }
}

fn record(instance: &Instance, passed: Result<(), String>) {
    match passed {
        Ok(()) => {
            if !instance.state.is_up() {
                tracing::info!(instance = %instance.name, "health: instance is back");
            }
            instance.state.check_passed();
        }
        Err(reason) => {
            if instance.state.check_failed() {
                tracing::warn!(instance = %instance.name, %reason, "health: instance is out");
            }
        }
    }
}

/// One check: `GET /ping` must answer 2xx within `timeout`.
pub async fn check(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, ping(addr)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

async fn ping(addr: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let request = format!(
        "GET /ping HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: faaso-gateway\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("send: {e}"))?;
    let mut head = [0u8; 32];
    let mut read = 0;
    // "HTTP/1.1 200" is 12 bytes.
    while read < 12 {
        let n = stream
            .read(&mut head[read..])
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("connection closed before a status line".to_string());
        }
        read += n;
    }
    parse_status(&head[..read])
}

/// Accepts `HTTP/1.x 2xx`.
fn parse_status(head: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(head);
    let mut parts = text.split(' ');
    let version = parts.next().unwrap_or("");
    let status = parts.next().unwrap_or("");
    if !version.starts_with("HTTP/1.") {
        return Err(format!("not an HTTP answer: {text:?}"));
    }
    match status.parse::<u16>() {
        Ok(code) if (200..300).contains(&code) => Ok(()),
        Ok(code) => Err(format!("/ping answered {code}")),
        Err(_) => Err(format!("bad status line: {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines() {
        assert!(parse_status(b"HTTP/1.1 200 OK\r\n").is_ok());
        assert!(parse_status(b"HTTP/1.0 204 ").is_ok());
        assert_eq!(
            parse_status(b"HTTP/1.1 500 Oops"),
            Err("/ping answered 500".into())
        );
        assert!(parse_status(b"SSH-2.0-OpenSSH").is_err());
    }

    #[tokio::test]
    async fn checks_a_real_listener() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            for status in ["200 OK", "503 Busy"] {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 256];
                let _ = socket.read(&mut buf).await.unwrap();
                let response = format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n");
                socket.write_all(response.as_bytes()).await.unwrap();
            }
        });
        assert_eq!(check(addr, Duration::from_secs(2)).await, Ok(()));
        assert!(check(addr, Duration::from_secs(2)).await.is_err());
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        assert!(check(closed_addr, Duration::from_secs(2)).await.is_err());
    }
}
