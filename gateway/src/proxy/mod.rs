//! The `ProxyHttp` implementation, kept thin: each hook reads the session, asks a pure module
//! what to do ([`router`](crate::routing::router), [`balancer`](crate::routing::balancer),
//! [`headers`](crate::http::headers), [`errors`](crate::http::errors)), and applies the answer.
//!
//! Per request: `request_filter` routes and answers what the gateway answers itself (health,
//! unknown funko, no instance, body too large), and carries requests without a body
//! ([`forward`]) and upgrades ([`tunnel`]) itself. For a request with a body Pingora's proxy
//! loop runs: `upstream_peer` picks an instance (again on a retry, skipping those tried);
//! `upstream_request_filter` rewrites the path and adds the forwarding headers;
//! `fail_to_connect` takes a failing instance out and allows a retry. `fail_to_proxy` turns any
//! failure into a JSON error with the right status.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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
use crate::routing::balancer::{self, Tried};
use crate::routing::router::{PrefixForm, Route, route};
use crate::routing::table::{InFlight, Instance};

type Funko = crate::routing::table::Funko<Stats>;

mod carry;
mod exchange;
pub(crate) mod pool;
mod tunnel;

/// Settings the proxy needs on every request, taken from the config once (the upstream
/// timeouts live in each instance's peer, see [`crate::routing::table::PeerTimeouts`]).
#[derive(Debug, Clone)]
pub struct ProxySettings {
    pub max_body_bytes: u64,
    /// Whether each request is logged (target `faaso::access`).
    pub access_log: bool,
    /// Whether requests are counted in the metrics.
    pub metrics: bool,
    /// What changes once HTTPS is on; `None` when it is off.
    pub https: Option<HttpsSettings>,
    /// `send_timeout` for HTTP/2 streams (an HTTP/1.x session gets it from the edge).
    pub send_timeout: std::time::Duration,
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
    pub settings: Arc<ProxySettings>,
}

/// Longest a funko request waits for the first Docker sync before it is answered from what is
/// known (404 for a funko not seen).
const FIRST_SYNC_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The request id header, looked up without parsing a name.
const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

/// Per-request state.
#[derive(Debug)]
pub struct RequestCtx {
    /// When the request arrived.
    started: Instant,
    /// Whether this request is counted in the metrics (under its funko, or `_unknown`); it is
    /// in `faaso_http_requests_in_flight` until the context is dropped.
    counted: bool,
    /// Whether this is a funko request (counted and logged), not one of the gateway's own.
    funko_request: bool,
    /// Whether the last upstream connection was a pooled one.
    reused: Option<bool>,
    /// The funko's entry from the snapshot taken when the request arrived (stable on retries).
    funko: Option<Arc<Funko>>,
    /// The instance picked last (position in `funko.instances`).
    current: Option<usize>,
    /// Instances tried so far.
    tried: Tried,
    /// Counts this request on the current instance until the request ends.
    in_flight: Option<InFlight>,
    /// For a funko with an in-flight limit: the slot this request holds (instead of
    /// `in_flight`), which wakes the next waiter when it ends.
    admitted: Option<crate::routing::gate::Admitted>,
    /// Where the instance's target starts in the request target (after the prefix).
    upstream_at: usize,
    /// The prefix's form, for `X-Forwarded-Prefix`.
    form: PrefixForm,
    /// The request id sent upstream and returned to the client.
    request_id: Option<HeaderValue>,
    /// Request body bytes seen so far.
    body_bytes: u64,
    /// `Strict-Transport-Security` for the answer (HTTPS with `hsts_max_age` only).
    hsts: Option<HeaderValue>,
    /// Whether the client came in over TLS.
    tls: bool,
    /// Counts the request for draining on shutdown.
    _drain: crate::services::drain::RequestGuard,
}

impl Default for RequestCtx {
    fn default() -> Self {
        RequestCtx {
            started: Instant::now(),
            counted: false,
            funko_request: false,
            reused: None,
            funko: None,
            current: None,
            tried: Tried::default(),
            in_flight: None,
            admitted: None,
            upstream_at: 0,
            hsts: None,
            tls: false,
            form: PrefixForm::Funko,
            request_id: None,
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
    fn count(&mut self) {
        self.counted = true;
        if let Some(metrics) = self.metrics() {
            metrics.request_started();
        }
    }

    /// The metric handles this request counts in; `None` when it is not counted. They come
    /// from the funko's snapshot entry, so no reference count is touched per request.
    fn metrics(&self) -> Option<&Stats> {
        if !self.counted {
            return None;
        }
        Some(match &self.funko {
            Some(funko) => &funko.stats,
            None => Stats::unknown(),
        })
    }

    fn funko_name(&self) -> Option<&str> {
        self.funko.as_deref().map(|f| &*f.name)
    }

    /// The largest request body this request may have: its funko's limit, else the gateway's.
    fn max_body(&self, gateway_limit: u64) -> u64 {
        self.funko
            .as_deref()
            .and_then(|f| f.max_body)
            .unwrap_or(gateway_limit)
    }

    /// What the instance is told about this request (request_filter routed it).
    fn forwarding(&self, session: &Session) -> headers::Forwarding<'_> {
        headers::Forwarding {
            upstream_at: self.upstream_at,
            client: session
                .client_addr()
                .and_then(|addr| addr.as_inet())
                .map(|addr| addr.ip()),
            prefix: self
                .funko
                .as_deref()
                .map(|funko| &funko.forwarded_prefix[self.form as usize]),
            request_id: self.request_id.as_ref(),
            tls: self.tls,
        }
    }

    fn instance_name(&self) -> &str {
        match (&self.funko, self.current) {
            (Some(funko), Some(index)) => &funko.instances[index].name,
            _ => "",
        }
    }
}

impl Gateway {
    /// The plain listener's own answers once HTTPS is on: ACME challenges, and the 308 of
    /// `redirect_https`. `true` when the request was answered.
    async fn plain_answer(&self, session: &mut Session, https: &HttpsSettings) -> Result<bool> {
        let header = session.req_header();
        let path = header.uri.path();
        if let Some(challenges) = &https.challenges
            && let Some(token) = crate::tls::plain::challenge_token(path)
        {
            let answer = challenges.answer(token);
            let (status, body) = match answer {
                Some(key_authorization) => (200, Bytes::from(key_authorization)),
                None => (404, Bytes::from_static(b"no such challenge\n")),
            };
            let mut response = pingora::http::ResponseHeader::build(status, Some(3))?;
            response.insert_header("Content-Type", "text/plain")?;
            response.insert_header("Content-Length", body.len().to_string())?;
            response.insert_header("Cache-Control", "no-store")?;
            session
                .write_response_header(Box::new(response), false)
                .await?;
            session.write_response_body(Some(body), true).await?;
            return Ok(true);
        }
        let Some(port) = https.redirect_to else {
            return Ok(false);
        };
        if !crate::tls::plain::redirects(path) {
            return Ok(false);
        }
        let host = header
            .headers
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .or_else(|| header.uri.authority().map(|a| a.as_str()));
        let target = header.uri.path_and_query().map_or("/", |pq| pq.as_str());
        match crate::tls::plain::https_location(host, target, port) {
            Some(location) => {
                let body = error_body("this gateway answers over HTTPS", None);
                write_json(session, 308, body, &[("Location", &location)]).await?;
            }
            None => {
                let body = error_body("a Host header is needed to redirect to HTTPS", None);
                write_json(session, 400, body, &[]).await?;
            }
        }
        Ok(true)
    }

    /// `name`'s entry once the first Docker sync is published, waiting for it at most
    /// [`FIRST_SYNC_WAIT`].
    async fn after_first_sync(&self, name: &str) -> Option<Arc<Funko>> {
        let deadline = Instant::now() + FIRST_SYNC_WAIT;
        while !self.ready.load(Ordering::Acquire) && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.table.load().get(name).cloned()
    }

    /// Waits for a slot of a funko with an in-flight limit ([`crate::routing::gate`]); 429 after its
    /// queue timeout. The request then runs on the snapshot it was admitted in.
    async fn admit(
        &self,
        gate: &Arc<crate::routing::gate::Gate>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(funko) = ctx.funko.as_ref().map(Arc::clone) else {
            return Ok(());
        };
        let metrics = self.settings.metrics.then(|| Arc::clone(&funko.stats));
        let admitted = gate
            .admit(
                || self.table.load().get(&funko.name).cloned(),
                |delta| {
                    if let Some(stats) = &metrics {
                        stats.queue_changed(delta);
                    }
                },
            )
            .await;
        match admitted {
            Ok((current, admitted)) => {
                ctx.funko = Some(current);
                ctx.admitted = Some(admitted);
                Ok(())
            }
            Err(crate::routing::gate::Refused::QueueTimeout) => {
                if let Some(stats) = &metrics {
                    stats.queue_rejected();
                }
                Err(Error::explain(
                    ErrorType::HTTPStatus(429),
                    "every instance is at max_inflight and the queue timed out",
                ))
            }
            Err(crate::routing::gate::Refused::NoInstance) => Err(Error::explain(
                ErrorType::HTTPStatus(503),
                "no healthy instance",
            )),
        }
    }

    /// Waits for the instance a funko at zero is given ([`crate::routing::wake`]), then runs the request
    /// on the snapshot that has it.
    async fn wake(
        &self,
        ctx: &mut RequestCtx,
    ) -> std::result::Result<(), crate::routing::wake::WakeError> {
        let Some(name) = ctx.funko.as_ref().map(|f| Arc::clone(&f.name)) else {
            return Ok(());
        };
        self.wakes.wake(&name).await?;
        ctx.funko = self.table.load().get(&name).cloned();
        Ok(())
    }

    /// Picks the instance for the next attempt (skipping those tried) and counts the request on
    /// it; on a retry, counts the retry.
    fn next_instance<'c>(&self, ctx: &'c mut RequestCtx) -> Result<&'c Instance> {
        let Some(funko) = ctx.funko.as_ref() else {
            return Err(Error::explain(
                ErrorType::InternalError,
                "no funko in context",
            ));
        };
        if let Some(gate) = &funko.gate {
            // The first attempt uses the slot it was admitted with; a retry takes a slot on
            // another instance, or fails.
            let (index, slot) = match (&ctx.admitted, ctx.current) {
                (Some(admitted), None) => (admitted.index, None),
                _ => {
                    let Some((index, in_flight)) =
                        balancer::pick_below(&funko.instances, ctx.tried, gate.cap)
                    else {
                        return Err(Error::explain(
                            ErrorType::HTTPStatus(502),
                            "no instance left to try",
                        ));
                    };
                    if self.settings.metrics {
                        funko.stats.retry();
                    }
                    let gate = Arc::clone(gate);
                    (
                        index,
                        Some(crate::routing::gate::Admitted::new(index, in_flight, gate)),
                    )
                }
            };
            if let Some(slot) = slot {
                ctx.admitted = Some(slot);
            }
            ctx.tried.insert(index);
            ctx.current = Some(index);
            let funko = ctx
                .funko
                .as_ref()
                .ok_or_else(|| Error::explain(ErrorType::InternalError, "no funko in context"))?;
            return Ok(&funko.instances[index]);
        }
        let Some(index) = balancer::pick(&funko.instances, ctx.tried) else {
            let status = if ctx.current.is_some() { 502 } else { 503 };
            return Err(Error::explain(
                ErrorType::HTTPStatus(status),
                "no instance left to try",
            ));
        };
        let instance = &funko.instances[index];
        if ctx.current.is_some() && self.settings.metrics {
            funko.stats.retry();
        }
        ctx.tried.insert(index);
        ctx.current = Some(index);
        // Replacing the guard ends the count on the instance tried before.
        ctx.in_flight = Some(instance.state.start_request());
        Ok(instance)
    }

    /// A new connection to an instance ended before its answer: it is out until it passes a
    /// check, and the request goes to another.
    fn instance_lost(&self, ctx: &RequestCtx, error: &dyn std::fmt::Display) {
        if let (Some(funko), Some(index)) = (&ctx.funko, ctx.current) {
            let instance = &funko.instances[index];
            instance.state.connect_failed();
            tracing::warn!(instance = %instance.name, addr = %instance.addr, %error, "instance closed the connection before answering; trying another, instance out until it passes a check");
        }
    }

    /// A connection to an instance failed: it is out until it passes a check.
    fn connect_failed(&self, ctx: &RequestCtx, error: &dyn std::fmt::Display) {
        if let (Some(funko), Some(index)) = (&ctx.funko, ctx.current) {
            let instance = &funko.instances[index];
            instance.state.connect_failed();
            if self.settings.metrics {
                funko.stats.connect_error();
            }
            tracing::warn!(instance = %instance.name, addr = %instance.addr, %error, "connect failed; instance out until it passes a check");
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        if session.downstream_session.is_http2() {
            // A stream whose client takes nothing for send_timeout ends, as on HTTP/1.x.
            session
                .downstream_session
                .set_write_timeout(Some(self.settings.send_timeout));
        }
        if let Some(https) = &self.settings.https {
            ctx.tls = crate::tls::is_tls(session);
            if ctx.tls {
                ctx.hsts = https.hsts.clone();
            } else if self.plain_answer(session, https).await? {
                return Ok(true);
            }
        }
        let header = session.req_header();
        let target = header.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let funko = match route(target) {
            Route::Funko(funko) => funko,
            Route::Healthz => {
                write_json(session, 200, Bytes::from_static(br#"{"status":"ok"}"#), &[]).await?;
                return Ok(true);
            }
            Route::Readyz => {
                let (status, body) = if self.ready.load(Ordering::Acquire) {
                    (200, &br#"{"status":"ready"}"#[..])
                } else {
                    (
                        503,
                        &br#"{"status":"waiting for the first Docker sync"}"#[..],
                    )
                };
                write_json(session, status, Bytes::from_static(body), &[]).await?;
                return Ok(true);
            }
            Route::Admin => {
                self.admin.handle(session).await?;
                return Ok(true);
            }
            Route::NotFound => {
                write_json(session, 404, error_body("not found", None), &[]).await?;
                return Ok(true);
            }
        };
        ctx.funko_request = true;
        ctx.upstream_at = funko.prefix.len();
        ctx.form = funko.form;
        let request_id = headers::client_request_id(header.headers.get(X_REQUEST_ID))
            .unwrap_or_else(headers::new_request_id);
        let found = match self.table.load().get(funko.name).cloned() {
            Some(entry) => Some(entry),
            // Before the first Docker sync every funko looks unknown (a fresh start, or the
            // new process of a `-u` upgrade): wait for the sync instead of answering 404.
            None if !self.ready.load(Ordering::Acquire) => self.after_first_sync(funko.name).await,
            None => None,
        };
        let Some(entry) = found else {
            if self.settings.metrics {
                ctx.count();
            }
            let body = error_body("no such funko", Some(funko.name));
            let id = request_id.to_str().unwrap_or_default();
            write_json(session, 404, body, &[("X-Request-Id", id)]).await?;
            ctx.request_id = Some(request_id);
            return Ok(true);
        };
        ctx.request_id = Some(request_id);
        ctx.funko = Some(entry);
        if self.settings.metrics {
            ctx.count();
        }
        if let Some(activity) = ctx.funko.as_ref().and_then(|f| f.activity.as_deref()) {
            activity.request();
        }
        let instances = ctx.funko.as_ref().map_or(&[][..], |f| &f.instances[..]);
        let available = balancer::any_available(instances);
        if !available && !ctx.funko.as_ref().is_some_and(|f| f.wakes_on_request()) {
            return Err(Error::explain(
                ErrorType::HTTPStatus(503),
                "no healthy instance",
            ));
        }
        if let Some(length) = header.headers.get(http::header::CONTENT_LENGTH) {
            let length = length
                .to_str()
                .ok()
                .and_then(|l| l.trim().parse::<u64>().ok())
                .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(400), "bad Content-Length"))?;
            if length > ctx.max_body(self.settings.max_body_bytes) {
                return Err(Error::explain(ErrorType::HTTPStatus(413), "body too large"));
            }
        }
        // A funko at zero that wakes on demand: wait for its first instance.
        if !available && let Err(err) = self.wake(ctx).await {
            let body = error_body(&err.to_string(), ctx.funko_name());
            let id = ctx.request_id.as_ref().and_then(|id| id.to_str().ok());
            let mut extra = vec![(
                "Retry-After",
                crate::routing::wake::FAILURE_HOLD_RETRY_AFTER,
            )];
            extra.extend(id.map(|id| ("X-Request-Id", id)));
            write_json(session, 503, body, &extra).await?;
            return Ok(true);
        }
        if let Some(gate) = ctx.funko.as_ref().and_then(|f| f.gate.clone()) {
            self.admit(&gate, ctx).await?;
        }
        if session.is_upgrade_req() {
            self.tunnel(session, ctx).await?;
            return Ok(true);
        }
        // HTTP/1.x clients only: an HTTP/2 request has no `Host` to pass on as it is.
        if !session.downstream_session.is_http2() && session.is_body_empty() {
            self.forward(session, ctx).await?;
            return Ok(true);
        }
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let instance = self.next_instance(ctx)?;
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
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        *upstream_response = headers::client_response(upstream_response, ctx.request_id.as_ref())?;
        if let Some(hsts) = &ctx.hsts {
            upstream_response
                .insert_header(http::header::STRICT_TRANSPORT_SECURITY, hsts.clone())?;
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
            tracing::debug!(request_id = ?ctx.request_id, %error, "client went away");
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
        ctx.reused = Some(reused);
        if let Some(metrics) = ctx.metrics() {
            metrics.upstream_request(reused);
        }
        Ok(())
    }

    async fn logging(&self, session: &mut Session, _e: Option<&Error>, ctx: &mut RequestCtx) {
        if !ctx.funko_request {
            // The gateway's own routes (/healthz, /readyz, ...) are neither counted nor logged.
            return;
        }
        // 499: the client went away before a response (as nginx reports it).
        let code = session
            .response_written()
            .map_or(499, |response| response.status.as_u16());
        let elapsed = ctx.started.elapsed();
        if let Some(metrics) = ctx.metrics() {
            metrics.request_done(code, elapsed.as_secs_f64());
        }
        if self.settings.access_log && crate::http::access_log::enabled() {
            let request = session.req_header();
            let path = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
            let request_id = ctx.request_id.as_ref().and_then(|id| id.to_str().ok());
            crate::http::access_log::write(&crate::http::access_log::Entry {
                method: request.method.as_str(),
                path,
                funko: ctx.funko_name().unwrap_or(crate::metrics::UNKNOWN_FUNKO),
                instance: ctx.instance_name(),
                status: code,
                duration: elapsed,
                bytes: session.body_bytes_sent(),
                request_id: request_id.unwrap_or(""),
                reused: ctx.reused.unwrap_or(false),
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
        if code > 0 {
            // The connection is closed after an error (part of a body may be unread): say so,
            // so that clients do not send their next request on it.
            session.set_keepalive(None);
            let message = errors::message(code, ctx.max_body(self.settings.max_body_bytes));
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
            if let Some(id) = ctx.request_id.as_ref().and_then(|id| id.to_str().ok()) {
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
