//! The instance's answer on its way to the client, the same for every carrier: the final
//! (non-1xx) answer read ([`final_answer`]), its header shaped for the client ([`shape`]:
//! hop-by-hop headers out, `X-Request-Id` and `Strict-Transport-Security` in), and its body
//! relayed piece by piece ([`relay_body`]).

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::protocols::http::v1::client::HttpSession as InstanceSession;

use super::context::Shaping;
use crate::http::headers;

/// Reads the instance's answer, skipping 1xx ones (100 Continue, 103 Early Hints) that precede
/// it. A `101` is the final answer when `upgrade` asked for one, else a protocol error.
pub(super) async fn final_answer(instance: &mut InstanceSession, upgrade: bool) -> Result<()> {
    loop {
        instance.read_response().await?;
        let status = instance.get_status().map_or(0, |s| s.as_u16());
        match status {
            101 if upgrade => return Ok(()),
            101 => {
                return Error::e_explain(
                    ErrorType::InvalidHTTPHeader,
                    "101 to a request that asked for no upgrade",
                );
            }
            100..=199 => continue,
            _ => return Ok(()),
        }
    }
}

/// The client's header of the instance's answer. A `101` keeps its `Connection` and `Upgrade`
/// (the tunnel needs them); any other answer loses the headers about the instance's connection
/// ([`headers::client_response`]). Both get `X-Request-Id` and, over HTTPS with
/// `hsts_max_age`, `Strict-Transport-Security`. An HTTP/1.0 client's answer loses
/// `Transfer-Encoding` (its body is then delimited by the end of the connection).
pub(super) fn shape(instance: &ResponseHeader, added: &Shaping) -> Result<ResponseHeader> {
    let mut response = if instance.status == http::StatusCode::SWITCHING_PROTOCOLS {
        let mut response = instance.clone();
        if let Some(id) = &added.request_id {
            response.insert_header("X-Request-Id", id.clone())?;
        }
        response
    } else {
        headers::client_response(instance, added.request_id.as_ref())?
    };
    if let Some(hsts) = &added.hsts {
        response.insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone())?;
    }
    if added.http10 {
        // HTTP/1.0 has no chunked coding: the body goes as it is, ended by the close.
        response.remove_header(&http::header::TRANSFER_ENCODING);
    }
    Ok(response)
}

/// How a body relay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Relayed {
    /// The whole body went to the client.
    Whole,
    /// The client could not take more.
    ClientGone,
}

/// Relays the rest of the instance's answer body to the client (`end` says the body already
/// ended). An `Err` is an answer the instance cut short: the caller fails the request, so that
/// the client's connection ends without a clean end of the body (no last chunk, or an HTTP/2
/// reset) and it cannot take the cut answer for a whole one; the error is an upstream one,
/// counted and logged as such.
pub(super) async fn relay_body(
    session: &mut Session,
    instance: &mut InstanceSession,
    mut end: bool,
) -> Result<Relayed> {
    while !end {
        let piece: Option<Bytes> = match instance.read_body_bytes().await {
            Ok(piece) => piece,
            Err(err) => {
                session.set_keepalive(None);
                return Err(err
                    .more_context("the instance cut its answer short")
                    .into_up());
            }
        };
        end = piece.is_none() || instance.is_body_done();
        if session.write_response_body(piece, end).await.is_err() {
            return Ok(Relayed::ClientGone);
        }
    }
    Ok(Relayed::Whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut header = ResponseHeader::build(status, None).unwrap();
        for (name, value) in headers {
            header.append_header(name.to_string(), *value).unwrap();
        }
        header
    }

    fn added() -> Shaping {
        Shaping {
            request_id: Some(http::HeaderValue::from_static("id-1")),
            hsts: Some(http::HeaderValue::from_static("max-age=60")),
            http10: false,
        }
    }

    #[test]
    fn every_answer_gets_the_request_id_and_hsts() {
        for status in [101, 200, 404, 502] {
            let shaped =
                shape(&answer(status, &[("Content-Type", "text/plain")]), &added()).unwrap();
            assert_eq!(shaped.headers["x-request-id"], "id-1", "{status}");
            assert_eq!(shaped.headers["strict-transport-security"], "max-age=60");
        }
        let plain = shape(&answer(200, &[]), &Shaping::default()).unwrap();
        assert!(plain.headers.get("strict-transport-security").is_none());
        assert!(plain.headers.get("x-request-id").is_none());
    }

    #[test]
    fn only_a_101_keeps_its_connection_headers() {
        let hops = [
            ("Connection", "Upgrade, X-Secret"),
            ("Upgrade", "websocket"),
            ("X-Secret", "1"),
            ("Keep-Alive", "timeout=5"),
        ];
        let switched = shape(&answer(101, &hops), &added()).unwrap();
        assert_eq!(switched.headers["upgrade"], "websocket");
        assert!(switched.headers.get("connection").is_some());
        let refused = shape(&answer(400, &hops), &added()).unwrap();
        for gone in ["connection", "x-secret", "keep-alive"] {
            assert!(refused.headers.get(gone).is_none(), "{gone}");
        }
    }

    #[test]
    fn an_http10_client_never_gets_a_chunked_answer() {
        let chunked = answer(200, &[("Transfer-Encoding", "chunked")]);
        let old = Shaping {
            http10: true,
            ..Shaping::default()
        };
        assert!(
            shape(&chunked, &old)
                .unwrap()
                .headers
                .get("transfer-encoding")
                .is_none()
        );
        let new = shape(&chunked, &Shaping::default()).unwrap();
        assert_eq!(new.headers["transfer-encoding"], "chunked");
    }
}
