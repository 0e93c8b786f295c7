//! Admission: everything a request goes through before it is carried to an instance, as one
//! step ([`Gateway::admit`]). The plain listener's own answers once HTTPS is on (ACME
//! challenges, the redirect), the gateway's own routes (`/healthz`, `/readyz`, `/admin/`), the
//! funko's entry in the routing snapshot (waiting for the first Docker sync after a start),
//! the checks that need no instance (no such funko, no healthy instance, body too large), the
//! wake of a funko at zero, and a slot under the funko's in-flight limit.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use pingora::prelude::*;

use super::{FIRST_SYNC_WAIT, Funko, Gateway, HttpsSettings, RequestCtx, Serves, X_REQUEST_ID};
use crate::http::headers;
use crate::http::responses::{error_body, write_json};
use crate::routing::balancer;
use crate::routing::domains::{MAX_HOST, host_name};
use crate::routing::router::{PrefixForm, Route, route};

/// What admission decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Admission {
    /// The gateway answered the request itself.
    Answered,
    /// The request goes on to an instance of `ctx.funko`.
    Carry,
}

impl Gateway {
    /// Admits a request: answers it when the gateway answers it itself, else readies `ctx` for
    /// carrying it (the funko, the request id, a woken instance, a slot). An `Err` with an
    /// HTTP status is answered by `fail_to_proxy`.
    pub(super) async fn admit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Admission> {
        if session.downstream_session.is_http2() {
            // A stream whose client takes nothing for send_timeout ends, as on HTTP/1.x.
            session
                .downstream_session
                .set_write_timeout(Some(self.settings.send_timeout));
        } else if session.req_header().version == http::Version::HTTP_11
            && !session
                .req_header()
                .headers
                .contains_key(http::header::HOST)
        {
            // RFC 9112 §3.2: a server must answer 400 to an HTTP/1.1 request without Host.
            return Err(Error::explain(
                ErrorType::HTTPStatus(400),
                "an HTTP/1.1 request needs a Host header",
            ));
        }
        if let Some(https) = self
            .settings
            .https
            .as_ref()
            .filter(|_| self.serves != Serves::Admin)
        {
            ctx.target.tls = crate::tls::is_tls(session);
            if ctx.target.tls {
                ctx.answer.hsts = https.hsts.clone();
            } else if self.plain_answer(session, https).await? {
                return Ok(Admission::Answered);
            }
        }
        let Some(entry) = self.find_funko(session, ctx).await? else {
            return Ok(Admission::Answered);
        };
        ctx.funko = Some(entry);
        if self.settings.metrics {
            ctx.count();
        }
        self.check_protocol(session)?;
        if self.guard(session, ctx).await? == super::guard::Guarded::Answered {
            return Ok(Admission::Answered);
        }
        // No instance could take it in this snapshot: the rebuild under way, if any, may have
        // one (a container started a moment ago, or the new instances of a rollout).
        let instances = ctx.funko.as_ref().map_or(&[][..], |f| &f.instances[..]);
        let mut available = balancer::any_available(instances);
        if !available
            && let Some(funko) = ctx.funko.as_deref()
            && let Some(newer) = Box::pin(self.after_rebuild(&funko.name)).await
        {
            available = balancer::any_available(&newer.instances);
            ctx.funko = Some(newer);
        }
        if let Some(funko) = ctx.funko.as_deref()
            && let Some(split) = funko.canary
        {
            let draw = match (split.sticky, self.client(session)) {
                (true, Some(ip)) => crate::routing::table::sticky_draw(ip),
                _ => fastrand::u8(..100),
            };
            if let Some((release, others)) = funko.split(draw) {
                ctx.attempt.release = Some(release);
                ctx.attempt.tried = others;
            }
        }
        ctx.answer.http10 = session.req_header().version == http::Version::HTTP_10;
        if let Some(activity) = ctx.funko.as_ref().and_then(|f| f.activity.as_deref()) {
            activity.request();
        }
        let instances = ctx.funko.as_ref().map_or(&[][..], |f| &f.instances[..]);
        if !available && !ctx.funko.as_ref().is_some_and(|f| f.wakes_on_request()) {
            if instances.is_empty() {
                // Not a passing fault: nothing runs and nothing will start on its own, so no
                // Retry-After, and the answer says what starts it.
                let name = ctx.funko_name().unwrap_or_default();
                let message = format!("funko {name} is stopped; `faaso up {name}` starts it");
                let body = error_body(&message, ctx.funko_name());
                let id = ctx.request_id();
                let extra: Vec<(&str, &str)> =
                    id.map(|id| ("X-Request-Id", id)).into_iter().collect();
                write_json(session, 503, body, &extra).await?;
                return Ok(Admission::Answered);
            }
            return Err(Error::explain(
                ErrorType::HTTPStatus(503),
                "no healthy instance",
            ));
        }
        if let Some(length) = session
            .req_header()
            .headers
            .get(http::header::CONTENT_LENGTH)
        {
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
            let id = ctx.request_id();
            let mut extra = vec![(
                "Retry-After",
                crate::routing::wake::FAILURE_HOLD_RETRY_AFTER,
            )];
            extra.extend(id.map(|id| ("X-Request-Id", id)));
            write_json(session, 503, body, &extra).await?;
            return Ok(Admission::Answered);
        }
        if let Some(gate) = ctx.funko.as_ref().and_then(|f| f.gate.clone()) {
            self.wait_for_slot(&gate, ctx).await?;
        }
        Ok(Admission::Carry)
    }

    /// The funko a request goes to, by one of its custom domains (the whole path) or by its
    /// route; `None` when the gateway answered the request itself (its own routes, an async
    /// call, no such funko).
    async fn find_funko(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Option<Arc<Funko>>> {
        let mut by_domain = self.by_domain(session);
        let header = session.req_header();
        let target = header.uri.path_and_query().map_or("/", |pq| pq.as_str());
        if by_domain.is_none()
            && !self.ready.load(Ordering::Acquire)
            && route(target) == Route::NotFound
        {
            // Domains are known from the first Docker sync on.
            self.after_first_sync("").await;
            by_domain = self.by_domain(session);
        }
        let header = session.req_header();
        if let Some(entry) = by_domain {
            let request_id = headers::client_request_id(header.headers.get(X_REQUEST_ID))
                .unwrap_or_else(headers::new_request_id);
            ctx.funko_request = true;
            ctx.target.upstream_at = 0;
            ctx.target.form = PrefixForm::Domain;
            ctx.answer.request_id = Some(request_id);
            return Ok(Some(entry));
        }
        let target = header.uri.path_and_query().map_or("/", |pq| pq.as_str());
        let funko = match route(target) {
            Route::Funko(funko) if self.serves != Serves::Admin => funko,
            Route::Async(call) if self.serves != Serves::Admin => {
                let (name, prefix_len) = (call.name.to_string(), call.prefix.len());
                // Boxed, as the admin's below: a rare path's state would otherwise sit in every
                // request's future, which is copied whole when it is boxed.
                Box::pin(self.enqueue(session, ctx, &name, prefix_len)).await?;
                return Ok(None);
            }
            Route::Admin if self.serves != Serves::Funkos => {
                Box::pin(self.admin.handle(session)).await?;
                return Ok(None);
            }
            Route::Healthz => {
                write_json(session, 200, Bytes::from_static(br#"{"status":"ok"}"#), &[]).await?;
                return Ok(None);
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
                return Ok(None);
            }
            // The admin on its own address, or a funko asked for there.
            Route::NotFound | Route::Admin | Route::Funko(_) | Route::Async(_) => {
                write_json(session, 404, error_body("not found", None), &[]).await?;
                return Ok(None);
            }
        };
        ctx.funko_request = true;
        ctx.target.upstream_at = funko.prefix.len();
        ctx.target.form = funko.form;
        let request_id = headers::client_request_id(header.headers.get(X_REQUEST_ID))
            .unwrap_or_else(headers::new_request_id);
        let found = match self.table.load().get(funko.name).cloned() {
            Some(entry) => Some(entry),
            // Before the first Docker sync every funko looks unknown (a fresh start, or the
            // new process of a `-u` upgrade): wait for the sync instead of answering 404.
            None if !self.ready.load(Ordering::Acquire) => self.after_first_sync(funko.name).await,
            // Unknown: the rebuild under way, if any, may add it (a container started a moment
            // ago). Boxed: a rare path.
            None => Box::pin(self.after_rebuild(funko.name)).await,
        };
        let Some(entry) = found else {
            if self.settings.metrics {
                ctx.count();
            }
            let body = error_body("no such funko", Some(funko.name));
            let id = request_id.to_str().unwrap_or_default();
            write_json(session, 404, body, &[("X-Request-Id", id)]).await?;
            ctx.answer.request_id = Some(request_id);
            return Ok(None);
        };
        ctx.answer.request_id = Some(request_id);
        Ok(Some(entry))
    }

    /// The funko whose custom domain the request's host is, if any (the admin's own listener
    /// has none).
    fn by_domain(&self, session: &Session) -> Option<Arc<Funko>> {
        if self.serves == Serves::Admin {
            return None;
        }
        let table = self.table.load();
        if !table.has_domains() {
            return None;
        }
        let header = session.req_header();
        let host = match header.headers.get(http::header::HOST) {
            Some(host) => host.as_bytes(),
            None => header.uri.authority()?.as_str().as_bytes(),
        };
        let mut buf = [0u8; MAX_HOST];
        let host = host_name(host, &mut buf)?;
        table.by_domain(host).cloned()
    }

    /// The request's protocol, checked the same whatever carries it: `TRACE` is refused (405),
    /// the hop-by-hop policy ([`headers::check_hops`]) gives 400, an `Upgrade` the gateway does
    /// not pass on (`upgrades`) is removed so that the request goes on as a plain one, and an
    /// upgrade request with a body is refused (400) rather than left waiting for it.
    pub(super) fn check_protocol(&self, session: &mut Session) -> Result<()> {
        let header = session.req_header();
        if header.method == http::Method::TRACE {
            return Err(Error::explain(
                ErrorType::HTTPStatus(405),
                "TRACE is not allowed",
            ));
        }
        if let Err(reason) = headers::check_hops(&header.headers) {
            return Err(Error::explain(ErrorType::HTTPStatus(400), reason));
        }
        let Some(upgrade) = header.headers.get(http::header::UPGRADE) else {
            return Ok(());
        };
        if !headers::upgrade_allowed(upgrade, &self.settings.upgrades) {
            headers::drop_upgrade(session.req_header_mut());
            return Ok(());
        }
        let has_body = header.headers.contains_key(http::header::TRANSFER_ENCODING)
            || header
                .headers
                .get(http::header::CONTENT_LENGTH)
                .is_some_and(|length| length.as_bytes().trim_ascii() != b"0");
        if has_body {
            return Err(Error::explain(
                ErrorType::HTTPStatus(400),
                "an upgrade request cannot carry a body",
            ));
        }
        Ok(())
    }

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
    pub(super) async fn after_first_sync(&self, name: &str) -> Option<Arc<Funko>> {
        let deadline = Instant::now() + FIRST_SYNC_WAIT;
        while !self.ready.load(Ordering::Acquire) && Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.table.load().get(name).cloned()
    }

    /// The funko named `name` once the snapshot's rebuild under way, if any, is published
    /// ([`crate::routing::rebuild`]).
    async fn after_rebuild(&self, name: &str) -> Option<Arc<Funko>> {
        self.rebuild
            .settled(crate::routing::rebuild::REBUILD_WAIT)
            .await;
        self.table.load().get(name).cloned()
    }

    /// Waits for a slot of a funko with an in-flight limit ([`crate::routing::gate`]); 429 after its
    /// queue timeout. The request then runs on the snapshot it was admitted in.
    async fn wait_for_slot(
        &self,
        gate: &Arc<crate::routing::gate::Gate>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(funko) = ctx.funko.as_ref().map(Arc::clone) else {
            return Ok(());
        };
        let metrics = self.settings.metrics.then(|| Arc::clone(&funko.stats));
        let release = ctx.attempt.release;
        let skip = |funko: &Funko| match (release, funko.canary) {
            (Some(release), Some(split)) => split.others(release, funko.instances.len()),
            _ => crate::routing::balancer::Tried::default(),
        };
        let admitted = gate
            .admit(
                || self.table.load().get(&funko.name).cloned(),
                skip,
                |delta| {
                    if let Some(stats) = &metrics {
                        stats.queue_changed(delta);
                    }
                },
            )
            .await;
        match admitted {
            Ok((current, admitted)) => {
                // Retries skip the other release's instances in the snapshot admitted in.
                ctx.attempt.tried = skip(&current);
                ctx.funko = Some(current);
                ctx.attempt.admitted = Some(admitted);
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
}
