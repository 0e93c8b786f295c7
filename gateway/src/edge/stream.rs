//! A client's TCP connection as Pingora's transport (its `IO` trait): the socket, the client's
//! address, and a write buffer only while an answer is being written.
//!
//! Pingora's own transport stream (`l4::Stream`) carries read and write buffers, timing and
//! tracing fields and a control-message buffer: 384 bytes plus two allocations per
//! connection, held for as long as the connection is open, idle or not. This one holds the
//! Tokio socket and the shared address record Pingora reads the client's address from.
//!
//! Pingora writes an answer's head and its body with separate writes and then flushes; small
//! writes are gathered here into one buffer, so that a small answer leaves in one system call
//! as it did through Pingora's stream. The buffer comes from a per-thread spare list when the
//! first small write comes and goes back at the flush: an idle connection holds none, and no
//! request allocates one.

use std::os::fd::AsRawFd;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use async_trait::async_trait;
use pingora::protocols::raw_connect::ProxyDigest;
use pingora::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl,
    TimingDigest, UniqueID, UniqueIDType,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Writes smaller than this are gathered: one TCP segment's worth, as Pingora's stream does.
const GATHER: usize = 1460;

/// Spare write buffers a thread keeps.
const SPARES: usize = 64;

thread_local! {
    static SPARE: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn take_buffer() -> Vec<u8> {
    SPARE
        .with_borrow_mut(Vec::pop)
        .unwrap_or_else(|| Vec::with_capacity(GATHER))
}

fn give_back(mut buffer: Vec<u8>) {
    buffer.clear();
    SPARE.with_borrow_mut(|spare| {
        if spare.len() < SPARES {
            spare.push(buffer);
        }
    });
}

/// One accepted client connection.
#[derive(Debug)]
pub struct ClientStream {
    tcp: TcpStream,
    digest: Arc<SocketDigest>,
    /// Small writes not sent yet; `None` (no buffer) between answers.
    gathered: Option<Vec<u8>>,
}

impl ClientStream {
    /// The connection from `peer` on `tcp`.
    pub fn new(tcp: TcpStream, peer: std::net::SocketAddr) -> ClientStream {
        let digest = SocketDigest::from_raw_fd(tcp.as_raw_fd());
        // A new cell: setting it cannot fail.
        let _ = digest.peer_addr.set(Some(peer.into()));
        ClientStream {
            tcp,
            digest: Arc::new(digest),
            gathered: None,
        }
    }

    /// Sends what was gathered; the buffer goes back to the spares once it is all out.
    fn poll_send_gathered(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let Some(gathered) = self.gathered.as_mut() else {
            return Poll::Ready(Ok(()));
        };
        while !gathered.is_empty() {
            match Pin::new(&mut self.tcp).poll_write(cx, gathered) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => {
                    gathered.drain(..n);
                }
                Poll::Ready(Err(err)) => return Poll::Ready(Err(err)),
                Poll::Pending => return Poll::Pending,
            }
        }
        if let Some(buffer) = self.gathered.take() {
            give_back(buffer);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for ClientStream {
    fn drop(&mut self) {
        // An answer that was not flushed: what the socket takes now, as Pingora's stream does.
        if let Some(buffer) = self.gathered.take() {
            let _ = self.tcp.try_write(&buffer);
            give_back(buffer);
        }
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let room = this.gathered.as_ref().map_or(GATHER, |g| GATHER - g.len());
        if buf.len() <= room {
            this.gathered
                .get_or_insert_with(take_buffer)
                .extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        // Too big to gather: what was gathered goes first, then this, straight.
        std::task::ready!(this.poll_send_gathered(cx))?;
        if buf.len() < GATHER {
            this.gathered
                .get_or_insert_with(take_buffer)
                .extend_from_slice(buf);
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut this.tcp).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::task::ready!(self.poll_send_gathered(cx))?;
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        std::task::ready!(self.poll_send_gathered(cx))?;
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        std::task::ready!(self.poll_send_gathered(cx))?;
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

#[async_trait]
impl Shutdown for ClientStream {
    async fn shutdown(&mut self) {
        // The client may be gone already; nothing to do about it.
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut self.tcp).await;
    }
}

impl UniqueID for ClientStream {
    fn id(&self) -> UniqueIDType {
        self.tcp.as_raw_fd()
    }
}

impl Ssl for ClientStream {}

impl GetTimingDigest for ClientStream {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        Vec::new()
    }
}

impl GetProxyDigest for ClientStream {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for ClientStream {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        Some(Arc::clone(&self.digest))
    }
}

#[async_trait]
impl Peek for ClientStream {}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn carries_bytes_both_ways_and_tells_the_peer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let local = stream.local_addr().unwrap();
            stream.write_all(b"ping").await.unwrap();
            let mut answer = [0u8; 4];
            stream.read_exact(&mut answer).await.unwrap();
            assert_eq!(&answer, b"pong");
            local
        });
        let (tcp, peer) = listener.accept().await.unwrap();
        let mut stream: pingora::protocols::Stream = Box::new(ClientStream::new(tcp, peer));
        let mut got = [0u8; 4];
        stream.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
        stream.write_all(b"pong").await.unwrap();
        stream.flush().await.unwrap();
        let local = client.await.unwrap();
        let digest = stream.get_socket_digest().unwrap();
        assert_eq!(
            digest.peer_addr().and_then(|a| a.as_inet()).copied(),
            Some(local)
        );
        assert!(stream.get_ssl_digest().is_none());
        assert!(std::mem::size_of::<ClientStream>() <= 80);
    }

    #[tokio::test]
    async fn small_writes_leave_together_at_the_flush_and_big_ones_in_order() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let reader = tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let mut all = Vec::new();
            stream.read_to_end(&mut all).await.unwrap();
            all
        });
        let (tcp, peer) = listener.accept().await.unwrap();
        let mut stream = ClientStream::new(tcp, peer);
        stream.write_all(b"head;").await.unwrap();
        stream.write_all(b"body;").await.unwrap();
        assert_eq!(
            stream.gathered.as_deref(),
            Some(&b"head;body;"[..]),
            "held until the flush"
        );
        let big = vec![b'x'; 100_000];
        stream.write_all(&big).await.unwrap();
        assert!(stream.gathered.is_none(), "sent before the big write");
        stream.write_all(b";tail").await.unwrap();
        stream.flush().await.unwrap();
        assert!(
            stream.gathered.is_none(),
            "the buffer went back at the flush"
        );
        stream.write_all(b";after").await.unwrap();
        drop(stream);
        let all = reader.await.unwrap();
        let mut expected = b"head;body;".to_vec();
        expected.extend_from_slice(&big);
        expected.extend_from_slice(b";tail;after");
        assert_eq!(all.len(), expected.len());
        assert!(all == expected, "bytes out of order");
    }
}
