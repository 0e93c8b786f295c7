//! Funko requests without a request body (GET, HEAD, DELETE, ... with no body: nearly all of
//! them), carried to the instance by the gateway itself rather than by Pingora's proxy loop.
//!
//! Pingora's loop is general: two tasks joined by channels for the two directions, a shared
//! connection pool behind locks, filters and cache hooks for every phase. For a request with no
//! body there is one direction at a time, so the exchange here is a straight line: write the
//! request, read the answer, pass it on, pool the connection. Both connections are still
//! Pingora's HTTP/1.1 sessions, which do the framing (chunked or sized bodies, keep-alive,
//! `HEAD`, `204`/`304`); the connection pool is this worker's own ([`crate::proxy::pool`]).
//!
//! What the client sees is what Pingora's loop would send: the same response header (plus
//! `X-Request-Id`), `Transfer-Encoding: chunked` for a body that only the end of the instance's
//! connection would delimit, and the connection closed after an answer cut short.

use std::net::SocketAddr;
use std::time::Duration;

use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::protocols::Stream;
use pingora::protocols::http::HttpTask;
use pingora::protocols::http::v1::client::HttpSession as InstanceSession;
use tokio::net::TcpStream;

use super::answer::{self, Relayed};
use super::context::Shaping;
use crate::routing::table::PeerTimeouts;

/// Opens a new connection to an instance within `timeout`.
pub(super) async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Stream> {
    match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(stream)) => {
            // Small frames both ways: no Nagle delay.
            let _ = stream.set_nodelay(true);
            Ok(Box::new(pingora::protocols::l4::stream::Stream::from(
                stream,
            )))
        }
        Ok(Err(err)) => Error::e_because(
            ErrorType::ConnectError,
            format!("connecting to {addr}"),
            err,
        ),
        Err(_) => Error::e_explain(
            ErrorType::ConnectTimedout,
            format!("connecting to {addr}: no answer within {timeout:?}"),
        ),
    }
}

/// Pingora's HTTP/1.1 session on a connection to an instance, with the instance's timeouts
/// on every read and write.
pub(super) fn instance_session(stream: Stream, timeouts: &PeerTimeouts) -> InstanceSession {
    let mut instance = InstanceSession::new(stream);
    instance.read_timeout = Some(timeouts.read);
    instance.write_timeout = Some(timeouts.write);
    instance
}

/// Whether sending a request twice has the effect of sending it once (RFC 9110, 9.2.2).
pub(super) fn is_idempotent(method: &http::Method) -> bool {
    use http::Method;
    [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ]
    .contains(method)
}

/// Why an exchange failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// A pooled connection was found closed before the instance answered: try a new one.
    Stale(Box<Error>),
    /// A new connection was lost before the instance answered a request that may be sent
    /// again (the instance died, or was killed): try another instance, as nginx's
    /// `proxy_next_upstream error` does for idempotent requests.
    Lost(Box<Error>),
    /// Nothing was sent to the client yet: answer with the error's status.
    Failed(Box<Error>),
    /// The instance cut its answer short after its header went to the client: the client's
    /// connection ends.
    Cut(Box<Error>),
}

/// How an exchange ended.
#[derive(Debug)]
pub(super) struct Done {
    /// The connection, when it can carry another request.
    pub(super) reusable: Option<Stream>,
}

/// Sends `request` on `stream` and relays the instance's answer to the client.
///
/// A pooled (`reused`) connection that fails while the request is sent, or before any answer
/// comes when the request is `idempotent`, was most likely closed by the instance while idle:
/// that is [`Failure::Stale`], and the caller sends the request again on a new connection. The
/// same on a new connection is [`Failure::Lost`]: the instance went away, and the caller tries
/// another. A request that is not idempotent is not sent twice once it may have arrived.
pub(super) async fn round_trip(
    session: &mut Session,
    stream: Stream,
    reused: bool,
    idempotent: bool,
    request: RequestHeader,
    timeouts: &PeerTimeouts,
    shaping: &Shaping,
) -> std::result::Result<Done, Failure> {
    let lost = |e: &Error| {
        matches!(
            e.etype(),
            ErrorType::ConnectionClosed | ErrorType::ReadError | ErrorType::WriteError
        )
    };
    let failed = |e: Box<Error>, retry_safe: bool| match (retry_safe && lost(&e), reused) {
        (true, true) => Failure::Stale(e),
        (true, false) => Failure::Lost(e),
        (false, _) => Failure::Failed(e.into_up()),
    };
    let mut instance = instance_session(stream, timeouts);
    instance
        .write_request_header(Box::new(request))
        .await
        .map_err(|e| failed(e, true))?;
    answer::final_answer(&mut instance, false)
        .await
        .map_err(|e| match e.etype() {
            ErrorType::InvalidHTTPHeader => Failure::Failed(e.into_up()),
            _ => failed(e, idempotent),
        })?;
    let Some(header) = instance.resp_header() else {
        return Err(Failure::Failed(Error::explain(
            ErrorType::InvalidHTTPHeader,
            "no response header",
        )));
    };
    let mut response = Box::new(answer::shape(header, shaping).map_err(Failure::Failed)?);
    // Asked first: it also sets up how the body is read (HEAD, 204 and 304 have none).
    let body_done = instance.is_body_done();
    let no_body = body_done
        || session.req_header().method == http::Method::HEAD
        || matches!(response.status.as_u16(), 204 | 304);
    if no_body {
        if session
            .write_response_tasks(vec![HttpTask::Header(response, true)])
            .await
            .is_err()
        {
            return Ok(Done { reusable: None });
        }
        instance.respect_keepalive();
        return Ok(Done {
            reusable: instance.reuse().await,
        });
    }
    if shaping.http10 && !response.headers.contains_key(http::header::CONTENT_LENGTH) {
        // An HTTP/1.0 client reads to the end of the connection.
        session.set_keepalive(None);
    } else if !response.headers.contains_key(http::header::CONTENT_LENGTH)
        && !response
            .headers
            .contains_key(http::header::TRANSFER_ENCODING)
    {
        // Delimited by the end of the instance's connection: chunk it, so that the client's
        // connection can stay open.
        response.set_version(http::Version::HTTP_11);
        response
            .insert_header(http::header::TRANSFER_ENCODING, "chunked")
            .map_err(Failure::Failed)?;
    }
    // The first piece of the body goes out with the header, in one write.
    // The instance has answered: from here on a failure is never a reason to send again.
    let first = instance
        .read_body_bytes()
        .await
        .map_err(|e| Failure::Failed(e.into_up()))?;
    let end = first.is_none() || instance.is_body_done();
    let tasks = vec![
        HttpTask::Header(response, false),
        HttpTask::Body(first, end),
    ];
    if session.write_response_tasks(tasks).await.is_err() {
        return Ok(Done { reusable: None });
    }
    match answer::relay_body(session, &mut instance, end).await {
        Ok(Relayed::Whole) => {}
        Ok(Relayed::ClientGone) => return Ok(Done { reusable: None }),
        Err(cut) => return Err(Failure::Cut(cut)),
    }
    instance.respect_keepalive();
    Ok(Done {
        reusable: instance.reuse().await,
    })
}

/// The exchange against scripted instances on loopback (no Docker): each test's instance
/// answers with chosen bytes, and the test reads what the client got.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::scripted::{client, instance, received};
    use super::*;

    fn timeouts(read: Duration) -> PeerTimeouts {
        PeerTimeouts {
            read,
            ..PeerTimeouts::default()
        }
    }

    /// Runs one exchange of `GET /x` (`reused`: as on a pooled connection) against an
    /// instance that answers `answer`; the outcome and what the client got.
    async fn run(
        method: &str,
        answer: &[u8],
        reused: bool,
        read_timeout: Duration,
    ) -> (std::result::Result<Done, Failure>, String) {
        let addr = instance(answer.to_vec(), Duration::from_millis(50)).await;
        let (mut session, client_side) =
            client(&format!("{method} /x HTTP/1.1\r\nHost: t\r\n\r\n")).await;
        let stream = connect(addr, Duration::from_secs(1)).await.unwrap();
        let request = RequestHeader::build(method, b"/x", None).unwrap();
        let outcome = round_trip(
            &mut session,
            stream,
            reused,
            is_idempotent(&request.method),
            request,
            &timeouts(read_timeout),
            &Shaping::default(),
        )
        .await;
        drop(session);
        (outcome, received(client_side).await)
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test]
    async fn a_close_delimited_answer_reaches_the_client_chunked_and_whole() {
        let (outcome, got) = run("GET", b"HTTP/1.1 200 OK\r\n\r\nhello", false, SECOND).await;
        let done = outcome.unwrap();
        assert!(done.reusable.is_none());
        assert!(
            got.to_ascii_lowercase()
                .contains("transfer-encoding: chunked"),
            "{got}"
        );
        assert!(got.ends_with("5\r\nhello\r\n0\r\n\r\n"), "{got:?}");
    }

    #[tokio::test]
    async fn informational_answers_are_skipped() {
        let answer = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n\
                       HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        let (outcome, got) = run("GET", answer, false, SECOND).await;
        assert!(outcome.is_ok());
        assert!(got.starts_with("HTTP/1.1 200"), "{got:?}");
        assert!(
            !got.contains("100 Continue") && !got.contains("103"),
            "{got:?}"
        );
        assert!(got.ends_with("\r\n\r\nok"), "{got:?}");
    }

    #[tokio::test]
    async fn a_cut_chunked_answer_is_a_cut_not_a_whole_one() {
        let answer = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";
        let (outcome, got) = run("GET", answer, false, SECOND).await;
        assert!(matches!(outcome, Err(Failure::Cut(_))), "{outcome:?}");
        assert!(got.contains("hello"), "{got:?}");
        assert!(
            !got.ends_with("0\r\n\r\n"),
            "a last chunk after a cut: {got:?}"
        );
    }

    #[tokio::test]
    async fn an_instance_that_closes_without_answering() {
        // On a pooled connection: stale, sent again on a new one.
        let (outcome, got) = run("GET", b"", true, SECOND).await;
        assert!(matches!(outcome, Err(Failure::Stale(_))), "{outcome:?}");
        assert!(got.is_empty(), "{got:?}");
        // On a new connection: lost, another instance may take an idempotent request...
        let (outcome, _) = run("GET", b"", false, SECOND).await;
        assert!(matches!(outcome, Err(Failure::Lost(_))), "{outcome:?}");
        // ... but a POST is never sent twice once it may have arrived.
        let (outcome, _) = run("POST", b"", false, SECOND).await;
        assert!(matches!(outcome, Err(Failure::Failed(_))), "{outcome:?}");
    }

    #[tokio::test]
    async fn a_huge_or_malformed_answer_head_fails_before_the_client_sees_anything() {
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        for i in 0..2_000 {
            huge.extend_from_slice(format!("X-Filler-{i}: {}\r\n", "v".repeat(64)).as_bytes());
        }
        huge.extend_from_slice(b"\r\n");
        for answer in [huge, b"NOT HTTP AT ALL\r\n\r\n".to_vec()] {
            let (outcome, got) = run("GET", &answer, false, SECOND).await;
            assert!(matches!(outcome, Err(Failure::Failed(_))), "{outcome:?}");
            assert!(got.is_empty(), "{got:?}");
        }
    }

    #[tokio::test]
    async fn both_length_and_chunked_framing_is_read_as_chunked() {
        // RFC 9112, 6.3: Transfer-Encoding wins; the length is not trusted.
        let answer =
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n\
                       2\r\nok\r\n0\r\n\r\n";
        let (outcome, got) = run("GET", answer, false, SECOND).await;
        assert!(outcome.is_ok(), "{outcome:?}");
        assert!(
            !got.to_ascii_lowercase().contains("content-length: 100"),
            "{got:?}"
        );
        assert!(got.ends_with("2\r\nok\r\n0\r\n\r\n"), "{got:?}");
    }

    #[tokio::test]
    async fn a_slow_instance_times_out() {
        let addr = instance(Vec::new(), Duration::from_secs(5)).await;
        let (mut session, _client) = client("GET /x HTTP/1.1\r\nHost: t\r\n\r\n").await;
        let stream = connect(addr, SECOND).await.unwrap();
        let request = RequestHeader::build("GET", b"/x", None).unwrap();
        let started = std::time::Instant::now();
        let outcome = round_trip(
            &mut session,
            stream,
            false,
            true,
            request,
            &timeouts(Duration::from_millis(200)),
            &Shaping::default(),
        )
        .await;
        let Err(Failure::Failed(err)) = outcome else {
            panic!("{outcome:?}");
        };
        assert_eq!(crate::http::errors::status_for(&err), 504, "{err}");
        assert!(started.elapsed() < SECOND);
    }
}
