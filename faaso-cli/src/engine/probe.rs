//! `GET /ping` over a fresh TCP connection: the health probe shared by the gateway's active
//! checks and by `deploy`/`scale` waiting for a new instance. Minimal HTTP/1.1 with
//! `Connection: close`, so it never disturbs a connection pool.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `GET /ping` must answer 2xx within `timeout`; `Err` says why not.
pub async fn ping(addr: SocketAddr, timeout: Duration) -> Result<(), String> {
    match tokio::time::timeout(timeout, ping_once(addr)).await {
        Ok(result) => result,
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

async fn ping_once(addr: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let request = format!(
        "GET /ping HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: faaso\r\nConnection: close\r\n\r\n"
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
    async fn pings_a_real_listener() {
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
        assert_eq!(ping(addr, Duration::from_secs(2)).await, Ok(()));
        assert!(ping(addr, Duration::from_secs(2)).await.is_err());
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closed_addr = closed.local_addr().unwrap();
        drop(closed);
        assert!(ping(closed_addr, Duration::from_secs(2)).await.is_err());
    }
}
