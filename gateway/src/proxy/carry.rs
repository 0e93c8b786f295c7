//! The requests the gateway carries to an instance itself, outside Pingora's proxy loop:
//! requests without a body ([`crate::proxy::exchange`]) and upgrades ([`crate::proxy::tunnel`]). This is the
//! glue between the request's context and those two: the instance is chosen as for any
//! request, a failed connect takes it out and moves on to another (up to
//! [`ATTEMPTS`](super::ATTEMPTS) connects), and each attempt is counted.

use std::net::SocketAddr;

use pingora::prelude::*;
use pingora::protocols::Stream;

use super::exchange::{self, Failure};
use super::{Gateway, RequestCtx};
use super::{pool, tunnel};
use crate::http::headers::{self, Hops};
use crate::routing::table::PeerTimeouts;

/// A connection to the chosen instance.
struct Opened {
    addr: SocketAddr,
    timeouts: PeerTimeouts,
    stream: Stream,
    /// Whether it came from the worker's pool.
    reused: bool,
}

impl Gateway {
    /// Serves a request with no body through [`forward`], on a pooled connection when the
    /// worker has one. A pooled connection found closed is replaced by a new one to the same
    /// instance.
    pub(super) async fn forward(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let mut connects_failed = 0;
        let idempotent = exchange::is_idempotent(&session.req_header().method);
        let mut opened = self.open(ctx, true, &mut connects_failed).await?;
        loop {
            self.sending(ctx, opened.reused);
            let request = headers::upstream_request(
                session.req_header(),
                &ctx.forwarding(session),
                Hops::Strip,
            )?;
            let outcome = exchange::exchange(
                session,
                opened.stream,
                opened.reused,
                idempotent,
                request,
                &opened.timeouts,
                exchange::Added {
                    request_id: ctx.request_id.as_ref(),
                    hsts: ctx.hsts.as_ref(),
                },
            )
            .await;
            match outcome {
                Ok(done) => {
                    if let Some(stream) = done.reusable {
                        pool::put(opened.addr, stream, opened.timeouts.idle);
                    }
                    return Ok(());
                }
                Err(Failure::Failed(err)) => return Err(err),
                Err(Failure::Lost(err)) => {
                    connects_failed += 1;
                    self.instance_lost(ctx, &err);
                    if connects_failed >= super::ATTEMPTS {
                        return Err(err.into_up());
                    }
                    opened = self.open(ctx, true, &mut connects_failed).await?;
                }
                Err(Failure::Stale(err)) => {
                    tracing::debug!(error = %err, "pooled connection was closed; sending on a new one");
                    let (addr, timeouts) = (opened.addr, opened.timeouts);
                    opened = match exchange::connect(addr, timeouts.connect).await {
                        Ok(stream) => Opened {
                            addr,
                            timeouts,
                            stream,
                            reused: false,
                        },
                        Err(err) => {
                            connects_failed += 1;
                            self.connect_failed(ctx, &err);
                            self.open(ctx, true, &mut connects_failed).await?
                        }
                    };
                }
            }
        }
    }

    /// Serves an `Upgrade` request through [`tunnel`], on a new connection; the tunnel runs
    /// until either side closes it.
    pub(super) async fn tunnel(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        let mut connects_failed = 0;
        let opened = self.open(ctx, false, &mut connects_failed).await?;
        self.sending(ctx, false);
        let request =
            headers::upstream_request(session.req_header(), &ctx.forwarding(session), Hops::Keep)?;
        tunnel::relay(
            session,
            opened.stream,
            request,
            opened.timeouts,
            ctx.request_id.as_ref(),
        )
        .await?;
        Ok(())
    }

    /// Picks an instance and gives a connection to it: a pooled one when `pooled` and the
    /// worker has one, else a new one. A failed connect takes the instance out and another is
    /// tried; after [`ATTEMPTS`](super::ATTEMPTS) failed connects the last error is
    /// returned.
    async fn open(
        &self,
        ctx: &mut RequestCtx,
        pooled: bool,
        connects_failed: &mut usize,
    ) -> Result<Opened> {
        loop {
            let instance = self.next_instance(ctx)?;
            let (addr, timeouts) = (instance.addr, instance.timeouts);
            if let Some(stream) = pooled.then(|| pool::take(addr, timeouts.idle)).flatten() {
                return Ok(Opened {
                    addr,
                    timeouts,
                    stream,
                    reused: true,
                });
            }
            match exchange::connect(addr, timeouts.connect).await {
                Ok(stream) => {
                    return Ok(Opened {
                        addr,
                        timeouts,
                        stream,
                        reused: false,
                    });
                }
                Err(err) => {
                    *connects_failed += 1;
                    self.connect_failed(ctx, &err);
                    if *connects_failed >= super::ATTEMPTS {
                        return Err(err);
                    }
                }
            }
        }
    }

    /// Counts a request going to the instance, on a pooled (`reused`) or new connection.
    fn sending(&self, ctx: &mut RequestCtx, reused: bool) {
        ctx.reused = Some(reused);
        if let Some(metrics) = ctx.metrics() {
            metrics.upstream_request(reused);
        }
    }
}
