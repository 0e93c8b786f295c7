//! One request's state ([`RequestCtx`]), grouped by what uses it: the funko and the attempts
//! on its instances, what the instance is told, and what the client's answer gets.

use std::sync::Arc;
use std::time::Instant;

use http::HeaderValue;
use pingora::prelude::*;

use super::Funko;
use crate::http::headers;
use crate::metrics::FunkoMetrics as Stats;
use crate::routing::balancer::Tried;
use crate::routing::gate::Admitted;
use crate::routing::router::PrefixForm;
use crate::routing::table::InFlight;

/// Per-request state.
#[derive(Debug)]
pub struct RequestCtx {
    /// When the request arrived.
    pub(super) started: Instant,
    /// Whether this is a funko request (counted and logged), not one of the gateway's own.
    pub(super) funko_request: bool,
    /// Whether this request is counted in the metrics (under its funko, or `_unknown`); it is
    /// in `faaso_http_requests_in_flight` until the context is dropped.
    counted: bool,
    /// The funko's entry from the snapshot taken when the request arrived (stable on retries).
    pub(super) funko: Option<Arc<Funko>>,
    /// The instances tried and the one in use.
    pub(super) attempt: Attempt,
    /// What the instance is told about the request.
    pub(super) target: Target,
    /// What the client's answer gets from the gateway.
    pub(super) answer: Shaping,
    /// Request body bytes seen so far.
    pub(super) body_bytes: u64,
    /// Counts the request for draining on shutdown.
    _drain: crate::services::drain::RequestGuard,
}

/// The attempts of one request on its funko's instances.
#[derive(Debug, Default)]
pub(super) struct Attempt {
    /// The instance picked last (position in `funko.instances`).
    pub(super) current: Option<usize>,
    /// Instances tried so far.
    pub(super) tried: Tried,
    /// Counts this request on the current instance until the request ends.
    pub(super) in_flight: Option<InFlight>,
    /// For a funko with an in-flight limit: the slot this request holds (instead of
    /// `in_flight`), which wakes the next waiter when it ends.
    pub(super) admitted: Option<Admitted>,
    /// Whether the last upstream connection was a pooled one.
    pub(super) reused: Option<bool>,
    /// The instance cut its answer short after the client got its header.
    pub(super) cut: bool,
    /// For a funko in a canary: the release this request went to.
    pub(super) release: Option<crate::routing::table::Release>,
    /// Whether the request has taken a newer snapshot than the one it was admitted with
    /// ([`Gateway::pick`](super::Gateway::pick)): once at most.
    pub(super) refreshed: bool,
}

/// What the instance is told about the request, besides the request itself.
#[derive(Debug)]
pub(super) struct Target {
    /// Where the instance's target starts in the request target (after the prefix).
    pub(super) upstream_at: usize,
    /// The prefix's form, for `X-Forwarded-Prefix`.
    pub(super) form: PrefixForm,
    /// Whether the client came in over TLS.
    pub(super) tls: bool,
}

/// What the gateway adds to the client's answer.
#[derive(Debug, Default)]
pub(super) struct Shaping {
    /// The request id sent upstream and returned to the client.
    pub(super) request_id: Option<HeaderValue>,
    /// `Strict-Transport-Security` (HTTPS with `hsts_max_age` only).
    pub(super) hsts: Option<HeaderValue>,
    /// The client speaks HTTP/1.0: no chunked answers, a body without a length ends with the
    /// connection.
    pub(super) http10: bool,
}

impl Default for RequestCtx {
    fn default() -> Self {
        RequestCtx {
            started: Instant::now(),
            funko_request: false,
            counted: false,
            funko: None,
            attempt: Attempt::default(),
            target: Target {
                upstream_at: 0,
                form: PrefixForm::Funko,
                tls: false,
            },
            answer: Shaping::default(),
            body_bytes: 0,
            _drain: crate::services::drain::RequestGuard::new(),
        }
    }
}

impl Drop for RequestCtx {
    fn drop(&mut self) {
        if let Some(metrics) = self.metrics() {
            metrics.request_ended();
        }
    }
}

impl RequestCtx {
    /// Starts counting this request in the metrics of its funko (or `_unknown`).
    pub(super) fn count(&mut self) {
        self.counted = true;
        if let Some(metrics) = self.metrics() {
            metrics.request_started();
        }
    }

    /// The metric handles this request counts in; `None` when it is not counted. They come
    /// from the funko's snapshot entry, so no reference count is touched per request.
    pub(super) fn metrics(&self) -> Option<&Stats> {
        if !self.counted {
            return None;
        }
        Some(match &self.funko {
            Some(funko) => &funko.stats,
            None => Stats::unknown(),
        })
    }

    /// Counts a request going to the instance, on a pooled (`reused`) or new connection: the
    /// one place every carrier (and Pingora's loop) counts an upstream request.
    pub(super) fn sending(&mut self, reused: bool) {
        self.attempt.reused = Some(reused);
        if let Some(metrics) = self.metrics() {
            metrics.upstream_request(reused);
        }
    }

    pub(super) fn funko_name(&self) -> Option<&str> {
        self.funko.as_deref().map(|f| &*f.name)
    }

    /// The largest request body this request may have: its funko's limit, else the gateway's.
    pub(super) fn max_body(&self, gateway_limit: u64) -> u64 {
        self.funko
            .as_deref()
            .and_then(|f| f.max_body)
            .unwrap_or(gateway_limit)
    }

    /// What the instance is told about this request (admission routed it).
    pub(super) fn forwarding(&self, session: &Session) -> headers::Forwarding<'_> {
        headers::Forwarding {
            upstream_at: self.target.upstream_at,
            client: session
                .client_addr()
                .and_then(|addr| addr.as_inet())
                .map(|addr| addr.ip()),
            prefix: match self.target.form {
                PrefixForm::Domain => None,
                form => self
                    .funko
                    .as_deref()
                    .map(|funko| &funko.forwarded_prefix[form as usize]),
            },
            request_id: self.answer.request_id.as_ref(),
            tls: self.target.tls,
        }
    }

    pub(super) fn instance_name(&self) -> &str {
        match (&self.funko, self.attempt.current) {
            (Some(funko), Some(index)) => &funko.instances[index].name,
            _ => "",
        }
    }

    /// The request id as text, for the answers the gateway writes itself.
    pub(super) fn request_id(&self) -> Option<&str> {
        self.answer
            .request_id
            .as_ref()
            .and_then(|id| id.to_str().ok())
    }
}
