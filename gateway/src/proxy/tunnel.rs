//! WebSocket and other HTTP/1.1 `Upgrade` requests, carried by the gateway itself rather than
//! by Pingora's proxy loop.
//!
//! Pingora 0.9 queues the end of an upgrade request's (empty) body before it reads the
//! instance's answer; when a fast instance's `101` is read first, that queued end is taken for
//! the end of the tunnel and the connection is closed right after the handshake
//! (cloudflare/pingora#946). Here the order is ours: the request goes out, the answer comes
//! back and is relayed, and only after a `101` do bytes flow, both ways, until either side
//! closes. Everything else about the request is as for any funko request: the same instance
//! choice, rewrites, metrics, access log line and drain accounting (the proxy does those).
//!
//! Pingora's own HTTP/1.1 sessions do the framing on both sides: the client's (downstream)
//! session switches to pass-through when the `101` is written to it, the instance's when the
//! `101` is read from it. An established tunnel has no idle timeout (a quiet WebSocket is
//! normal); the handshake has the instance's connect and read timeouts.

use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::protocols::Stream;
use pingora::protocols::http::v1::client::HttpSession as InstanceSession;

use super::answer;
use super::context::Shaping;
use crate::routing::table::PeerTimeouts;

/// How a relayed upgrade request ended, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    /// The instance answered `101`; the tunnel ran until one side closed.
    Tunnel,
    /// The instance refused the upgrade; its answer was relayed as a normal response.
    Refused,
}

/// Sends `request` to the instance on `stream` and relays its answer to the client. When the
/// answer is `101`, bytes are carried both ways until either side closes.
///
/// An `Err` before the answer's header went out is answered with an error; after it, only a
/// refused upgrade's body cut short by the instance is an `Err` (the client's connection then
/// ends); the tunnel's own failures end it quietly.
pub(super) async fn relay(
    session: &mut Session,
    stream: Stream,
    request: RequestHeader,
    timeouts: PeerTimeouts,
    shaping: &Shaping,
) -> Result<Outcome> {
    let mut instance = super::exchange::instance_session(stream, &timeouts);
    instance
        .write_request_header(Box::new(request))
        .await
        .map_err(|e| e.into_up())?;
    answer::final_answer(&mut instance, true)
        .await
        .map_err(|e| e.into_up())?;
    let Some(header) = instance.resp_header() else {
        return Error::e_explain(ErrorType::InvalidHTTPHeader, "no response header");
    };
    let response = Box::new(answer::shape(header, shaping)?);
    session.write_response_header(response, false).await?;

    if session.was_upgraded() && instance.was_upgraded() {
        instance.maybe_upgrade_body_writer();
        instance.read_timeout = None;
        session.set_read_timeout(None);
        if let Err(err) = carry(session, &mut instance).await {
            tracing::debug!(error = %err, "tunnel ended with an error");
        }
        let _ = session.write_response_body(None, true).await;
        instance.shutdown().await;
        Ok(Outcome::Tunnel)
    } else {
        // A refused upgrade is a normal response: its body goes to the client as it comes.
        answer::relay_body(session, &mut instance, false).await?;
        Ok(Outcome::Refused)
    }
}

/// Carries bytes both ways until either side closes or fails.
async fn carry(session: &mut Session, instance: &mut InstanceSession) -> Result<()> {
    loop {
        // Both reads are cancel-safe: a read that loses the race has consumed nothing.
        let step = tokio::select! {
            from_client = session.downstream_session.read_request_body() => {
                Step::FromClient(from_client?)
            }
            from_instance = instance.read_body_bytes() => Step::FromInstance(from_instance?),
        };
        match step {
            Step::FromClient(Some(data)) => {
                instance.write_body(&data).await?;
            }
            Step::FromInstance(Some(data)) => {
                session.write_response_body(Some(data), false).await?;
            }
            Step::FromClient(None) | Step::FromInstance(None) => return Ok(()),
        }
    }
}

enum Step {
    FromClient(Option<Bytes>),
    FromInstance(Option<Bytes>),
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::scripted::{client, instance, received};
    use super::*;

    const UPGRADE: &str =
        "GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";

    async fn relay_to(answer: &[u8]) -> (Result<Outcome>, String) {
        let addr = instance(answer.to_vec(), Duration::from_millis(50)).await;
        let (mut session, client_side) = client(UPGRADE).await;
        let stream = super::super::exchange::connect(addr, Duration::from_secs(1))
            .await
            .unwrap();
        let request = session.req_header().clone();
        let outcome = relay(
            &mut session,
            stream,
            request,
            PeerTimeouts::default(),
            &Shaping::default(),
        )
        .await;
        drop(session);
        (outcome, received(client_side).await)
    }

    #[tokio::test]
    async fn a_101_opens_the_tunnel_and_early_bytes_go_through() {
        let answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                       Connection: Upgrade\r\n\r\nfirst-frame";
        let (outcome, got) = relay_to(answer).await;
        assert_eq!(outcome.unwrap(), Outcome::Tunnel);
        assert!(got.starts_with("HTTP/1.1 101"), "{got:?}");
        assert!(got.ends_with("first-frame"), "{got:?}");
    }

    #[tokio::test]
    async fn a_refused_upgrade_is_relayed_and_a_cut_one_fails() {
        let refused = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 2\r\n\r\nno";
        let (outcome, got) = relay_to(refused).await;
        assert_eq!(outcome.unwrap(), Outcome::Refused);
        assert!(
            got.starts_with("HTTP/1.1 403") && got.ends_with("no"),
            "{got:?}"
        );

        let cut = b"HTTP/1.1 403 Forbidden\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nno\r\n";
        let (outcome, got) = relay_to(cut).await;
        assert!(outcome.is_err(), "{outcome:?}");
        assert!(!got.ends_with("0\r\n\r\n"), "{got:?}");
    }
}
