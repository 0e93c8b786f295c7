//! Scripted instances and clients on loopback, for the carriers' tests without Docker: an
//! instance answers with chosen bytes (cut, close-delimited, 1xx, huge heads, both framings,
//! silence), and a client's session is a real Pingora session over a real socket.

use std::net::SocketAddr;
use std::time::Duration;

use pingora::prelude::*;
use pingora::protocols::Stream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An instance that reads one request head, writes `answer`, waits `linger`, then closes.
pub(super) async fn instance(answer: Vec<u8>, linger: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let _ = stream.write_all(&answer).await;
        tokio::time::sleep(linger).await;
    });
    addr
}

/// A client connection, and the gateway's session of it with `request` read.
pub(super) async fn client(request: &str) -> (Session, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mut client = TcpStream::connect(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    client.write_all(request.as_bytes()).await.unwrap();
    let stream: Stream = Box::new(pingora::protocols::l4::stream::Stream::from(server));
    let mut session = Session::new_h1(stream);
    assert!(session.downstream_session.read_request().await.unwrap());
    (session, client)
}

/// What the client got, until its connection closed (or a second passed).
pub(super) async fn received(mut client: TcpStream) -> String {
    let mut got = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(1), client.read_to_end(&mut got)).await;
    String::from_utf8_lossy(&got).into_owned()
}
