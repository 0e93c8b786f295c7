//! The one place that decides how an admitted request reaches its instance:
//!
//! | request | carrier |
//! |---|---|
//! | `Upgrade` (WebSocket, ...) | [`tunnel`](super::tunnel): the gateway relays the handshake, then bytes both ways |
//! | HTTP/1.x, no body | [`exchange`](super::exchange): the gateway writes the request and relays the answer, on this worker's pooled connections |
//! | with a body, or HTTP/2 | Pingora's proxy loop (the `ProxyHttp` hooks in [`super`]) |
//!
//! The gateway's own carriers choose instances and count attempts as Pingora's loop does
//! ([`super::attempts`], [`RequestCtx::sending`]).

use pingora::prelude::*;

use super::exchange::{self, Failure};
use super::{ATTEMPTS, Gateway, RequestCtx, pool, tunnel};
use crate::http::headers::{self, Hops};

/// How a request goes to its instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Carrier {
    Tunnel,
    Exchange,
    PingoraLoop,
}

fn carrier_for(session: &mut Session) -> Carrier {
    if session.is_upgrade_req() {
        Carrier::Tunnel
    } else if !session.downstream_session.is_http2() && session.is_body_empty() {
        // HTTP/1.x clients only: an HTTP/2 request has no `Host` to pass on as it is.
        Carrier::Exchange
    } else {
        Carrier::PingoraLoop
    }
}

impl Gateway {
    /// Carries an admitted request: `true` when the gateway's own carrier answered it, `false`
    /// when Pingora's proxy loop goes on with it.
    pub(super) async fn carry(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        match carrier_for(session) {
            Carrier::Tunnel => self.carry_upgrade(session, ctx).await.map(|()| true),
            Carrier::Exchange => self.carry_bodyless(session, ctx).await.map(|()| true),
            Carrier::PingoraLoop => Ok(false),
        }
    }

    /// A request with no body, through [`exchange`], on a pooled connection when the worker
    /// has one.
    async fn carry_bodyless(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let mut connects_failed = 0;
        let idempotent = exchange::is_idempotent(&session.req_header().method);
        let mut opened = self.open(ctx, true, &mut connects_failed).await?;
        loop {
            ctx.sending(opened.reused);
            let request = headers::upstream_request(
                session.req_header(),
                &ctx.forwarding(session),
                Hops::Strip,
            )?;
            let outcome = {
                let exchange = std::pin::pin!(exchange::round_trip(
                    session,
                    opened.stream,
                    opened.reused,
                    idempotent,
                    request,
                    &opened.timeouts,
                    &ctx.answer,
                ));
                pool::holding(opened.slot.take(), exchange).await
            };
            match outcome {
                Ok(done) => {
                    if let Some(stream) = done.reusable {
                        pool::put(opened.addr, stream, opened.timeouts.idle);
                    }
                    return Ok(());
                }
                Err(Failure::Failed(err) | Failure::Cut(err)) => return Err(err),
                Err(Failure::Lost(err)) => {
                    connects_failed += 1;
                    self.instance_lost(ctx, &err);
                    if connects_failed >= ATTEMPTS {
                        return Err(err.into_up());
                    }
                    opened = self.open(ctx, true, &mut connects_failed).await?;
                }
                Err(Failure::Stale(err)) => {
                    tracing::debug!(error = %err, "pooled connection was closed; sending on a new one");
                    opened = self
                        .reopen(ctx, opened.addr, opened.timeouts, &mut connects_failed)
                        .await?;
                }
            }
        }
    }

    /// An `Upgrade` request, through [`tunnel`], on a new connection; the tunnel runs until
    /// either side closes it.
    async fn carry_upgrade(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let mut connects_failed = 0;
        let mut opened = self.open(ctx, false, &mut connects_failed).await?;
        ctx.sending(false);
        let request =
            headers::upstream_request(session.req_header(), &ctx.forwarding(session), Hops::Keep)?;
        let relay = std::pin::pin!(tunnel::relay(
            session,
            opened.stream,
            request,
            opened.timeouts,
            &ctx.answer,
        ));
        // A tunnel lives long: its slot is freed after the hold, not when it ends.
        pool::holding(opened.slot.take(), relay).await?;
        Ok(())
    }
}
