//! A raw HTTP/1.1 connection, for tests that need to see the wire: several requests on one
//! connection, how each answer is framed (sized or chunked), and whether the server closed the
//! connection after it.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long one read may take before the test gives up.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// One client connection.
pub struct RawConnection {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// An answer as it came over the wire.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Names as sent (case kept).
    pub headers: Vec<(String, String)>,
    /// The body, chunks joined.
    pub body: Vec<u8>,
    /// Whether the body came chunked.
    pub chunked: bool,
}

impl RawResponse {
    /// The first value of a header, its name matched case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl RawConnection {
    /// Connects to `addr` (`host:port`).
    pub async fn open(addr: &str) -> RawConnection {
        let stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|err| panic!("connecting to {addr}: {err}"));
        RawConnection {
            stream,
            buf: Vec::new(),
        }
    }

    /// Connects to `addr` from the local address `from` (for example `127.0.0.2`: another
    /// client address on loopback). `Err` when the connection cannot be made.
    pub async fn open_from(from: &str, addr: &str) -> std::io::Result<RawConnection> {
        let target: std::net::SocketAddr = addr.parse().map_err(std::io::Error::other)?;
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(format!("{from}:0").parse().map_err(std::io::Error::other)?)?;
        let stream = socket.connect(target).await?;
        Ok(RawConnection {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends `bytes` as they are (part of a request, say).
    pub async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Waits up to `limit` for the server to close the connection; returns what it sent
    /// before closing, or `None` if the connection is still open after `limit`.
    pub async fn closed_within(&mut self, limit: std::time::Duration) -> Option<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + limit;
        let mut chunk = [0u8; 4096];
        loop {
            match tokio::time::timeout_at(deadline, self.stream.read(&mut chunk)).await {
                Err(_) => return None,
                Ok(Ok(0)) | Ok(Err(_)) => return Some(std::mem::take(&mut self.buf)),
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Sends a `method` request for `target` with `Host` and the `extra` header lines.
    pub async fn send(&mut self, method: &str, target: &str, extra: &[&str]) {
        let mut request = format!("{method} {target} HTTP/1.1\r\nHost: test\r\n");
        for line in extra {
            request.push_str(line);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        self.stream
            .write_all(request.as_bytes())
            .await
            .expect("the request can be sent");
    }

    /// Reads one answer; `head_only` for the answer to a `HEAD`. `Err` when the connection
    /// ends before the answer is complete (what came so far is in the message).
    pub async fn response(&mut self, head_only: bool) -> Result<RawResponse, String> {
        let head_end = loop {
            if let Some(at) = find(&self.buf, b"\r\n\r\n") {
                break at;
            }
            self.fill("the head").await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_string();
        self.buf.drain(..head_end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.to_string(), v.trim().to_string()))
            .collect();
        let mut response = RawResponse {
            status,
            headers,
            body: Vec::new(),
            chunked: false,
        };
        if head_only || matches!(status, 100..=199 | 204 | 304) {
            return Ok(response);
        }
        if response
            .header("transfer-encoding")
            .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
        {
            response.chunked = true;
            response.body = self.chunks().await?;
        } else if let Some(length) = response.header("content-length") {
            let length: usize = length.parse().map_err(|_| "bad content-length")?;
            while self.buf.len() < length {
                self.fill(&format!("{} of {length} body bytes", self.buf.len()))
                    .await?;
            }
            response.body = self.buf.drain(..length).collect();
        } else {
            while self.fill("").await.is_ok() {}
            response.body = std::mem::take(&mut self.buf);
        }
        Ok(response)
    }

    /// Whether the server closes the connection (within the read timeout) without sending
    /// anything more.
    pub async fn closed(&mut self) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        let mut byte = [0u8; 1];
        matches!(
            tokio::time::timeout(READ_TIMEOUT, self.stream.read(&mut byte)).await,
            Ok(Ok(0) | Err(_))
        )
    }

    async fn chunks(&mut self) -> Result<Vec<u8>, String> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(at) = find(&self.buf, b"\r\n") {
                    break at;
                }
                self.fill("a chunk size").await?;
            };
            let line = String::from_utf8_lossy(&self.buf[..line_end]).to_string();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| format!("bad chunk size line {line:?}"))?;
            self.buf.drain(..line_end + 2);
            while self.buf.len() < size + 2 {
                self.fill("a chunk").await?;
            }
            body.extend(self.buf.drain(..size));
            self.buf.drain(..2);
            if size == 0 {
                return Ok(body);
            }
        }
    }

    /// Reads more; `Err` at the end of the connection or after the read timeout.
    async fn fill(&mut self, waiting_for: &str) -> Result<(), String> {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(READ_TIMEOUT, self.stream.read(&mut chunk)).await {
            Ok(Ok(0)) => Err(format!(
                "connection closed while waiting for {waiting_for} (had {} bytes)",
                self.buf.len()
            )),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Ok(())
            }
            Ok(Err(err)) => Err(format!("reading {waiting_for}: {err}")),
            Err(_) => Err(format!("nothing within {READ_TIMEOUT:?} ({waiting_for})")),
        }
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
