//! The access checks of a found funko, for proxied requests and async calls alike: a private
//! funko's key (401 without one of its keys; the header that carried it is removed, so the
//! instance never sees it), then its rate limit (429 with `Retry-After`), counted per key for
//! a private funko and per client address otherwise.

use bytes::Bytes;
use pingora::prelude::*;

use super::{Gateway, RequestCtx};
use crate::access::rate::Client;
use crate::http::client_ip::client_ip;
use crate::http::responses::{error_body, write_json};

/// Whether the guard let the request on or answered it itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Guarded {
    Pass,
    Answered,
}

impl Gateway {
    /// Checks `ctx.funko`'s access rules on this request; writes the refusal itself.
    pub(super) async fn guard(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Guarded> {
        let Some(funko) = ctx.funko.as_deref() else {
            return Ok(Guarded::Pass);
        };
        let mut key = None;
        if funko.settings.is_private() {
            match self.keys.check(&funko.name, &session.req_header().headers) {
                Ok(accepted) => {
                    session.req_header_mut().remove_header(&accepted.header);
                    key = Some(accepted.hash);
                }
                Err(denied) => {
                    let body = error_body(denied.message(), Some(&funko.name));
                    refuse(
                        session,
                        ctx,
                        401,
                        body,
                        ("WWW-Authenticate", r#"Bearer realm="faaso""#),
                    )
                    .await?;
                    return Ok(Guarded::Answered);
                }
            }
        }
        let Some(limiter) = funko.rate.as_deref() else {
            return Ok(Guarded::Pass);
        };
        let client = match &key {
            Some(hash) => Client::of_key(hash),
            // A Unix socket client: all such clients share one count.
            None => self.client(session).map_or(Client::V4(0), Client::of_ip),
        };
        let Err(limited) = limiter.check(client) else {
            return Ok(Guarded::Pass);
        };
        if self.settings.metrics {
            funko.stats.rate_limited();
        }
        let message = format!("over this funko's rate limit of {}", limiter.rate);
        let body = error_body(&message, Some(&funko.name));
        let retry = limited.retry_after_secs().to_string();
        refuse(session, ctx, 429, body, ("Retry-After", &retry)).await?;
        Ok(Guarded::Answered)
    }
}

impl Gateway {
    /// The client's address: the peer's, or the one a trusted proxy names.
    pub(super) fn client(&self, session: &Session) -> Option<std::net::IpAddr> {
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let forwarded = session
            .req_header()
            .headers
            .get("x-forwarded-for")
            .map(|v| v.as_bytes());
        client_ip(peer, forwarded, &self.settings.trusted_proxies)
    }
}

/// Writes a refusal with the request id; a request with a body the gateway did not read gets
/// its connection closed after it.
async fn refuse(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    body: Bytes,
    header: (&'static str, &str),
) -> Result<()> {
    let request = &session.req_header().headers;
    let has_body = request.contains_key(http::header::TRANSFER_ENCODING)
        || request
            .get(http::header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes().trim_ascii() != b"0");
    if has_body {
        session.set_keepalive(None);
    }
    let mut extra = vec![header];
    if let Some(id) = ctx.request_id() {
        extra.push(("X-Request-Id", id));
    }
    write_json(session, status, body, &extra).await
}
