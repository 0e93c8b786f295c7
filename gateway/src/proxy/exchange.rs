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
