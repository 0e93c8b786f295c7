//! The request path: from a client's request to an instance's answer.
//!
//! 1. [`admission`]: the gateway's own answers, the funko's entry, its access rules
//!    ([`guard`]: keys, rate limits), the checks that need no instance, the wake of a funko at
//!    zero, a slot under its in-flight limit. An async call is stored and answered 202 there
//!    ([`enqueue`]).
//! 2. [`carriers`]: the one place that picks how the request travels: the [`tunnel`] for
//!    upgrades, the direct [`exchange`] for HTTP/1.x requests without a body (on this worker's
//!    [`pool`]), Pingora's proxy loop for the rest.
//! 3. [`attempts`]: which instance, a connection to it, and what a failure does to it (the
//!    same for every carrier; Pingora's loop reaches it through `upstream_peer` and
//!    `fail_to_connect`).
//! 4. [`answer`]: the final answer read, shaped for the client (`X-Request-Id`, HSTS, no
//!    hop-by-hop headers) and its body relayed, for every carrier.
//! 5. `logging` counts and logs the request once it is over; `fail_to_proxy` turns a failure
//!    into a JSON error with the right status ([`crate::http::errors`]).
//!
//! [`RequestCtx`] ([`context`]) carries the request's state through these steps. The
//! `ProxyHttp` implementation below is the thin layer Pingora calls.

mod admission;
mod answer;
mod attempts;
mod carriers;
mod context;
mod enqueue;
mod exchange;
mod guard;
pub(crate) mod pool;
#[cfg(test)]
mod scripted;
mod tunnel;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::FailToProxy;

use crate::SharedRoutes;
use crate::http::errors;
use crate::http::headers;
use crate::http::responses::{error_body, write_json};
use crate::metrics::FunkoMetrics as Stats;
use admission::Admission;
pub use context::RequestCtx;

type Funko = crate::routing::table::Funko<Stats>;

/// Settings the proxy needs on every request, taken from the config once (the upstream
/// timeouts live in each instance's peer, see [`crate::routing::table::PeerTimeouts`]).
#[derive(Debug, Clone)]
pub struct ProxySettings {
    pub max_body_bytes: u64,
    /// `Upgrade` protocols passed on (`upgrades`, lowercase); others are removed.
    pub upgrades: Vec<String>,
    /// Whether each request is logged (target `faaso::access`).
    pub access_log: bool,
    /// Whether requests are counted in the metrics.
    pub metrics: bool,
    /// What changes once HTTPS is on; `None` when it is off.
    pub https: Option<HttpsSettings>,
    /// `send_timeout` for HTTP/2 streams (an HTTP/1.x session gets it from the edge).
    pub send_timeout: std::time::Duration,
    /// `async_body_timeout`: longest time an async call's body may take to arrive.
    pub async_body_timeout: std::time::Duration,
    /// Proxies whose `X-Forwarded-For` names the client (`trusted_proxies`): rate limits
    /// count under the client they name.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// The plain listener's and the HTTPS answers' part in TLS.
#[derive(Debug, Clone)]
pub struct HttpsSettings {
    /// `redirect_https`: plain requests get a 308 to this port.
    pub redirect_to: Option<u16>,
    /// `Strict-Transport-Security` on HTTPS answers.
    pub hsts: Option<HeaderValue>,
    /// ACME's HTTP-01 challenges being validated.
    pub challenges: Option<Arc<crate::tls::acme::Challenges>>,
}

/// Attempts per request: the first and up to 2 retries.
pub const ATTEMPTS: usize = 3;

/// The gateway's proxy logic; each worker has a clone (the state behind it is shared).
#[derive(Clone)]
pub struct Gateway {
    pub table: SharedRoutes,
    /// Starts for funkos at zero that requests wait on.
    pub wakes: Arc<crate::routing::wake::Wakes>,
    pub admin: Arc<crate::admin::Admin>,
    pub ready: Arc<AtomicBool>,
    /// Discovery's rebuild under way, waited for by a request the snapshot cannot serve.
    pub rebuild: Arc<crate::routing::rebuild::Rebuild>,
    pub settings: Arc<ProxySettings>,
    /// What this listener serves.
    pub serves: Serves,
    /// Async calls: where `/async/funko/...` stores them.
    pub calls: crate::calls::Calls,
    /// The keys of private funkos.
    pub keys: Arc<crate::access::keys::KeyRing>,
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serves {
    /// Funkos and the admin (no `admin_listen`).
    Everything,
    /// Funkos only: the admin has an address of its own.
    Funkos,
    /// The admin only, on `admin_listen` (and `/healthz`, `/readyz`).
    Admin,
}

/// Longest a funko request waits for the first Docker sync before it is answered from what is
/// known (404 for a funko not seen).
const FIRST_SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The request id header, looked up without parsing a name.
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    /// Admission, then the carrier ([`carriers`]): `true` when the gateway answered the request
    /// (itself, or through its own carrier), `false` when Pingora's loop carries it.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        match self.admit(session, ctx).await? {
            Admission::Answered => Ok(true),
            Admission::Carry => self.carry(session, ctx).await,
        }
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let instance = self.pick(ctx).await?;
        Ok(Box::new(instance.peer.clone()))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        headers::rewrite_request(upstream, &ctx.forwarding(session))
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(chunk) = body {
            ctx.body_bytes += chunk.len() as u64;
            if ctx.body_bytes > ctx.max_body(self.settings.max_body_bytes) {
                return Err(Error::explain(ErrorType::HTTPStatus(413), "body too large"));
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        *upstream_response = answer::shape(upstream_response, &ctx.answer)?;
        if ctx.answer.http10
            && !upstream_response
                .headers
                .contains_key(http::header::CONTENT_LENGTH)
        {
            // An HTTP/1.0 client reads to the end of the connection.
            session.set_keepalive(None);
        }
        Ok(())
    }

    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, error: &Error) -> bool {
        // Statuses the gateway decided on (404, 413, 503, ...) are answers, not faults.
        if matches!(error.etype(), ErrorType::HTTPStatus(_)) {
            return true;
        }
        // A client that hangs up or stalls is nothing an operator can act on: debug, not error.
        if client_went_away(error) {
            tracing::debug!(request_id = ?ctx.answer.request_id, %error, "client went away");
            return true;
        }
        false
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.connect_failed(ctx, &e);
        // Pingora bounds the attempts (3: the first and up to 2 retries).
        e.set_retry(true);
        e
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.sending(reused);
        Ok(())
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        if !ctx.funko_request {
            // The gateway's own routes (/healthz, /readyz, ...) are neither counted nor logged.
            return;
        }
        // 499: the client went away before a response (as nginx reports it); an answer the
        // instance cut short counts as the upstream error it is, whatever its status line said.
        let code = match session.response_written() {
            Some(_) if ctx.attempt.cut => 502,
            Some(response) => response.status.as_u16(),
            None => 499,
        };
        let elapsed = ctx.started.elapsed();
        if let Some(metrics) = ctx.metrics() {
            match ctx.attempt.release {
                Some(release) => {
                    metrics.request_done_in(release.label(), code, elapsed.as_secs_f64())
                }
                None => metrics.request_done(code, elapsed.as_secs_f64()),
            }
        }
        if self.settings.access_log && crate::http::access_log::enabled() {
            let request = session.req_header();
            let path = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
            let request_id = ctx.request_id();
            crate::http::access_log::write(&crate::http::access_log::Entry {
                method: request.method.as_str(),
                path,
                funko: ctx.funko_name().unwrap_or(crate::metrics::UNKNOWN_FUNKO),
                instance: ctx.instance_name(),
                status: code,
                duration: elapsed,
                bytes: session.body_bytes_sent(),
                request_id: request_id.unwrap_or(""),
                reused: ctx.attempt.reused.unwrap_or(false),
            });
        }
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy
    where
        RequestCtx: Send + Sync,
    {
        let code = errors::status_for(e);
        if session.response_written().is_some() {
            // An answer already began (an instance cut it short): no second one; the
            // connection ends without a clean end of the body.
            session.set_keepalive(None);
            ctx.attempt.cut = matches!(e.esource(), pingora::ErrorSource::Upstream);
            return FailToProxy {
                error_code: code,
                can_reuse_downstream: false,
            };
        }
        if code > 0 {
            // The connection is closed after an error (part of a body may be unread): say so,
            // so that clients do not send their next request on it.
            session.set_keepalive(None);
            let message = errors::message_for(e, code, ctx.max_body(self.settings.max_body_bytes));
            let body = error_body(&message, ctx.funko_name());
            let mut extra: Vec<(&'static str, &str)> = Vec::with_capacity(2);
            let retry_after = match (code, ctx.funko.as_ref().and_then(|f| f.gate.as_ref())) {
                (503, _) => Some("1".to_string()),
                (429, Some(gate)) => Some(gate.retry_after().to_string()),
                _ => None,
            };
            if let Some(retry) = retry_after.as_deref() {
                extra.push(("Retry-After", retry));
            }
            if let Some(id) = ctx.request_id() {
                extra.push(("X-Request-Id", id));
            }
            if let Err(err) = write_json(session, code, body, &extra).await {
                tracing::debug!(error = %err, "could not send the error response");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }
}

/// Whether an error is the client's connection ending or stalling (not a fault of the gateway
/// or of an instance).
fn client_went_away(error: &Error) -> bool {
    matches!(error.esource(), pingora::ErrorSource::Downstream)
        && matches!(
            error.etype(),
            ErrorType::ConnectionClosed
                | ErrorType::ReadError
                | ErrorType::WriteError
                | ErrorType::ReadTimedout
                | ErrorType::WriteTimedout
                | ErrorType::H2Error
        )
}

#[cfg(test)]
mod went_away_tests {
    use super::*;

    #[test]
    fn only_the_clients_own_hangups_are_quiet() {
        let downstream = |etype| Error::explain(etype, "x").into_down();
        assert!(client_went_away(&downstream(ErrorType::ConnectionClosed)));
        assert!(client_went_away(&downstream(ErrorType::ReadTimedout)));
        assert!(!client_went_away(&downstream(ErrorType::InvalidHTTPHeader)));
        let upstream = Error::explain(ErrorType::ConnectionClosed, "x").into_up();
        assert!(!client_went_away(&upstream));
    }
}

#[cfg(test)]
mod future_size_tests {
    use super::*;

    /// The size of the future `make` returns, without making one.
    fn future_size<A, B, F: std::future::Future>(_make: impl FnOnce(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every request's `request_filter` future is boxed, and so copied whole, once per request:
    /// a rare path awaited inline (the admin API, an async call) made it 15.8 KB (copied on every
    /// request, 1.5 KB of it used). Rare paths are boxed where they are awaited.
    #[test]
    fn the_request_path_futures_stay_small() {
        type Args = (&'static mut Session, &'static mut RequestCtx);
        let admit = future_size(|gateway: &'static Gateway, (session, ctx): Args| {
            gateway.admit(session, ctx)
        });
        let carry = future_size(|gateway: &'static Gateway, (session, ctx): Args| {
            gateway.carry(session, ctx)
        });
        assert!(admit < 4096, "admit's future is {admit} bytes");
        assert!(carry < 4096, "carry's future is {carry} bytes");
    }
}
