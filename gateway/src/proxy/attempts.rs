//! The attempts of one request on its funko's instances: which instance is next (skipping
//! those tried, within the funko's in-flight limit), a connection to it (from this worker's
//! pool or new), and what a failed connect or a lost connection does to the instance.
//!
//! A pooled connection found closed is the one stale-connection case: [`Gateway::reopen`]
//! sends the request again on a new connection to the same instance. Pingora's own loop
//! (requests with a body) keeps its own pool and policy.

use std::net::SocketAddr;

use pingora::prelude::*;
use pingora::protocols::Stream;

use super::{ATTEMPTS, Gateway, RequestCtx, exchange, pool};
use crate::routing::balancer;
use crate::routing::gate::Admitted;
use crate::routing::table::{Instance, PeerTimeouts};

/// A connection to the chosen instance.
pub(super) struct Opened {
    pub(super) addr: SocketAddr,
    pub(super) timeouts: PeerTimeouts,
    pub(super) stream: Stream,
    /// Whether it came from the worker's pool.
    pub(super) reused: bool,
    /// For a new connection: its place among the instance's new connections, to be freed
    /// once its first answer is in ([`pool::holding`]).
    pub(super) slot: Option<pool::ConnectSlot>,
}

impl Gateway {
    /// Picks the instance for the next attempt (skipping those tried) and counts the request on
    /// it; on a retry, counts the retry.
    pub(super) fn next_instance<'c>(&self, ctx: &'c mut RequestCtx) -> Result<&'c Instance> {
        let Some(funko) = ctx.funko.as_ref() else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no funko in context",
            ));
        };
        let attempt = &mut ctx.attempt;
        if let Some(gate) = &funko.gate {
            // The first attempt uses the slot it was admitted with; a retry takes a slot on
            // another instance, or fails.
            let index = match (&attempt.admitted, attempt.current) {
                (Some(admitted), None) => admitted.index,
                _ => {
                    let Some((index, in_flight)) =
                        balancer::pick_below(&funko.instances, attempt.tried, gate.cap)
                    else {
                        return Err(Error::explain(
                            ErrorType::HTTPStatus(502),
                            "no instance left to try",
                        ));
                    };
                    if self.settings.metrics {
                        funko.stats.retry();
                    }
                    let gate = std::sync::Arc::clone(gate);
                    attempt.admitted = Some(Admitted::new(index, in_flight, gate));
                    index
                }
            };
            attempt.tried.insert(index);
            attempt.current = Some(index);
            return Ok(&funko.instances[index]);
        }
        let Some(index) = balancer::pick(&funko.instances, attempt.tried) else {
            let status = if attempt.current.is_some() { 502 } else { 503 };
            return Err(Error::explain(
                ErrorType::HTTPStatus(status),
                "no instance left to try",
            ));
        };
        let instance = &funko.instances[index];
        if attempt.current.is_some() && self.settings.metrics {
            funko.stats.retry();
        }
        attempt.tried.insert(index);
        attempt.current = Some(index);
        // Replacing the guard ends the count on the instance tried before.
        attempt.in_flight = Some(instance.state.start_request());
        Ok(instance)
    }

    /// [`Gateway::next_instance`], except that an attempt that finds nothing to try in the
    /// request's snapshot takes the newest one (after the rebuild under way, if any) and picks
    /// again, once per request: the snapshot it was admitted with may predate the instances
    /// that serve now (a rollout's new instance, listed a moment after the old one went).
    pub(super) async fn pick<'c>(&self, ctx: &'c mut RequestCtx) -> Result<&'c Instance> {
        if let Err(err) = self.next_instance(ctx).map(drop) {
            if ctx.attempt.refreshed || !Box::pin(self.take_newer_snapshot(ctx)).await {
                return Err(err);
            }
            self.next_instance(ctx).map(drop)?;
        }
        match (&ctx.funko, ctx.attempt.current) {
            (Some(funko), Some(index)) => Ok(&funko.instances[index]),
            _ => Err(Error::explain(
                ErrorType::InternalError,
                "no instance picked",
            )),
        }
    }

    /// Replaces the request's funko entry with the newest snapshot's, once per request, and
    /// carries what was tried over to its list; `true` when that is a newer entry.
    async fn take_newer_snapshot(&self, ctx: &mut RequestCtx) -> bool {
        ctx.attempt.refreshed = true;
        let Some(old) = ctx.funko.clone() else {
            return false;
        };
        self.rebuild
            .settled(crate::routing::rebuild::REBUILD_WAIT)
            .await;
        let Some(newer) = self.table.load().get(&old.name).cloned() else {
            return false;
        };
        if std::sync::Arc::ptr_eq(&old, &newer) {
            return false;
        }
        let attempt = &mut ctx.attempt;
        let mut tried = balancer::carry_tried(attempt.tried, &old.instances, &newer.instances);
        // A canary's request stays with its release.
        if let (Some(release), Some(split)) = (attempt.release, newer.canary) {
            tried = tried.union(split.others(release, newer.instances.len()));
        }
        attempt.tried = tried;
        attempt.current = attempt
            .current
            .and_then(|index| old.instances.get(index))
            .and_then(|current| newer.instances.iter().position(|i| i.id == current.id));
        if attempt.current.is_none() {
            // A held slot names a place in the old list: the next pick takes a new one.
            attempt.admitted = None;
        }
        tracing::debug!(funko = %old.name, instances = newer.instances.len(), "no instance left in the request's snapshot; took the newest one");
        ctx.funko = Some(newer);
        true
    }

    /// Picks an instance and gives a connection to it: a pooled one when `pooled` and the
    /// worker has one, else a new one. A failed connect takes the instance out and another is
    /// tried; after [`ATTEMPTS`] failed connects the last error is returned.
    pub(super) async fn open(
        &self,
        ctx: &mut RequestCtx,
        pooled: bool,
        connects_failed: &mut usize,
    ) -> Result<Opened> {
        loop {
            let instance = self.pick(ctx).await?;
            let (addr, timeouts) = (instance.addr, instance.timeouts);
            let free = if pooled {
                pool::take_or_slot(addr, timeouts.idle).await
            } else {
                pool::Connection::Slot(pool::slot(addr).await)
            };
            let slot = match free {
                pool::Connection::Pooled(stream) => {
                    return Ok(Opened {
                        addr,
                        timeouts,
                        stream,
                        reused: true,
                        slot: None,
                    });
                }
                pool::Connection::Slot(slot) => slot,
            };
            match exchange::connect(addr, timeouts.connect).await {
                Ok(stream) => {
                    return Ok(Opened {
                        addr,
                        timeouts,
                        stream,
                        reused: false,
                        slot: Some(slot),
                    });
                }
                Err(err) => {
                    *connects_failed += 1;
                    self.connect_failed(ctx, &err);
                    if *connects_failed >= ATTEMPTS {
                        return Err(err);
                    }
                }
            }
        }
    }

    /// A pooled connection was found closed: a new connection to the same instance, or, when
    /// that connect fails, one to another instance (as [`Gateway::open`]).
    pub(super) async fn reopen(
        &self,
        ctx: &mut RequestCtx,
        addr: SocketAddr,
        timeouts: PeerTimeouts,
        connects_failed: &mut usize,
    ) -> Result<Opened> {
        let slot = pool::slot(addr).await;
        match exchange::connect(addr, timeouts.connect).await {
            Ok(stream) => Ok(Opened {
                addr,
                timeouts,
                stream,
                reused: false,
                slot: Some(slot),
            }),
            Err(err) => {
                *connects_failed += 1;
                self.connect_failed(ctx, &err);
                self.open(ctx, true, connects_failed).await
            }
        }
    }

    /// A new connection to an instance ended before its answer: it is out until it passes a
    /// check, and the request goes to another.
    pub(super) fn instance_lost(&self, ctx: &RequestCtx, error: &dyn std::fmt::Display) {
        if let (Some(funko), Some(index)) = (&ctx.funko, ctx.attempt.current) {
            let instance = &funko.instances[index];
            instance.state.connect_failed();
            tracing::warn!(instance = %instance.name, addr = %instance.addr, %error, "instance closed the connection before answering; trying another, instance out until it passes a check");
        }
    }

    /// A connection to an instance failed: it is out until it passes a check.
    pub(super) fn connect_failed(&self, ctx: &RequestCtx, error: &dyn std::fmt::Display) {
        if let (Some(funko), Some(index)) = (&ctx.funko, ctx.attempt.current) {
            let instance = &funko.instances[index];
            instance.state.connect_failed();
            if self.settings.metrics {
                funko.stats.connect_error();
            }
            tracing::warn!(instance = %instance.name, addr = %instance.addr, %error, "connect failed; instance out until it passes a check");
        }
    }
}
