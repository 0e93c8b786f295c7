//! Async calls on the request side: `/async/funko/<name>/<rest>` (and
//! `/async-function/<name>/<rest>`). The request is checked as a proxied one would be (the
//! funko exists, the protocol, a private funko's key, its rate limit, the body limit), read whole within `async_body_timeout`, stored
//! durably with the headers its instance would get ([`crate::calls`]), and only then answered
//! 202 with `{"call_id": ...}` and `X-Call-Id`.

use bytes::{Bytes, BytesMut};
use pingora::prelude::*;

use super::{Gateway, RequestCtx, X_REQUEST_ID};
use crate::calls::AcceptError;
use crate::calls::record::{CallId, Request};
use crate::http::headers;
use crate::http::responses::{error_body, write_json};
use crate::routing::router::PrefixForm;

/// Headers of the client's request that are not stored with a call: its body's framing (the
/// body is stored whole) and the callback address (for the gateway, not the funko).
const NOT_STORED: [&str; 4] = [
    "content-length",
    "transfer-encoding",
    "expect",
    "x-callback-url",
];

impl Gateway {
    /// Accepts an async call: 202 once it is stored. Errors with a status are answered by
    /// `fail_to_proxy`.
    pub(super) async fn enqueue(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        name: &str,
        prefix_len: usize,
    ) -> Result<()> {
        ctx.funko_request = true;
        ctx.target.upstream_at = prefix_len;
        ctx.target.form = PrefixForm::Funko;
        let header = session.req_header();
        ctx.answer.request_id = Some(
            headers::client_request_id(header.headers.get(X_REQUEST_ID))
                .unwrap_or_else(headers::new_request_id),
        );
        let found = match self.table.load().get(name).cloned() {
            Some(entry) => Some(entry),
            None if !self.ready.load(std::sync::atomic::Ordering::Acquire) => {
                self.after_first_sync(name).await
            }
            None => None,
        };
        let Some(funko) = found else {
            if self.settings.metrics {
                ctx.count();
            }
            return Err(Error::explain(ErrorType::HTTPStatus(404), "no such funko"));
        };
        ctx.funko = Some(funko);
        if self.settings.metrics {
            ctx.count();
        }
        self.check_protocol(session)?;
        // A private funko's call needs a key (not stored with the call), and counts in its
        // rate limit.
        if self.guard(session, ctx).await? == super::guard::Guarded::Answered {
            return Ok(());
        }
        let header = session.req_header();
        if header.headers.contains_key(http::header::UPGRADE)
            || header.method == http::Method::CONNECT
        {
            return self
                .refuse(session, ctx, 400, "an async call cannot upgrade or tunnel")
                .await;
        }
        let callback = match header.headers.get("x-callback-url") {
            None => None,
            Some(value) => {
                let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
                match self.calls.reach().check_url(&text) {
                    Ok(url) => Some(url.to_string()),
                    Err(message) => return self.refuse(session, ctx, 400, &message).await,
                }
            }
        };
        let limit = ctx.max_body(self.settings.max_body_bytes);
        if let Some(length) = header.headers.get(http::header::CONTENT_LENGTH) {
            let length = length
                .to_str()
                .ok()
                .and_then(|l| l.trim().parse::<u64>().ok())
                .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(400), "bad Content-Length"))?;
            if length > limit {
                return Err(Error::explain(ErrorType::HTTPStatus(413), "body too large"));
            }
        }
        let upstream = headers::upstream_request(
            session.req_header(),
            &ctx.forwarding(session),
            headers::Hops::Strip,
        )?;
        let request = Request {
            method: upstream.method.as_str().to_string(),
            target: upstream
                .uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .to_string(),
            headers: upstream
                .headers
                .iter()
                .filter(|(name, _)| !NOT_STORED.contains(&name.as_str()))
                .map(|(name, value)| {
                    (
                        name.as_str().to_string(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            callback,
            source: "http".to_string(),
        };
        let timeout = self.settings.async_body_timeout;
        let body = match tokio::time::timeout(timeout, read_body(session, limit)).await {
            Ok(body) => body?,
            Err(_) => {
                return Err(Error::explain(
                    ErrorType::HTTPStatus(408),
                    "the body did not arrive in time",
                ));
            }
        };
        ctx.body_bytes = body.len() as u64;
        let id = CallId::new();
        let name = ctx.funko_name().unwrap_or_default().to_string();
        match self.calls.accept(id, &name, request, body).await {
            Ok(()) => {
                let id = id.to_string();
                let body = Bytes::from(serde_json::json!({ "call_id": id }).to_string());
                let mut extra = vec![("X-Call-Id", id.as_str())];
                extra.extend(ctx.request_id().map(|r| ("X-Request-Id", r)));
                write_json(session, 202, body, &extra).await
            }
            Err(err @ AcceptError::Full(_)) => {
                self.refuse(session, ctx, 429, &err.to_string()).await
            }
            Err(err @ AcceptError::TooLarge(_)) => {
                self.refuse(session, ctx, 413, &err.to_string()).await
            }
            Err(err @ (AcceptError::Store(_) | AcceptError::Duplicate)) => {
                tracing::error!(funko = %name, error = %err, "an async call was refused");
                self.refuse(session, ctx, 503, &err.to_string()).await
            }
        }
    }

    /// Answers `status` with `message`, naming the funko, and closes the connection (its body
    /// may be unread).
    async fn refuse(
        &self,
        session: &mut Session,
        ctx: &RequestCtx,
        status: u16,
        message: &str,
    ) -> Result<()> {
        session.set_keepalive(None);
        let body = error_body(message, ctx.funko_name());
        let mut extra = Vec::new();
        extra.extend(ctx.request_id().map(|r| ("X-Request-Id", r)));
        if status == 429 {
            extra.push(("Retry-After", "1"));
        }
        write_json(session, status, body, &extra).await
    }
}

/// The request's whole body, refused (413) beyond `limit` bytes.
async fn read_body(session: &mut Session, limit: u64) -> Result<Bytes> {
    let mut body = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(Error::explain(ErrorType::HTTPStatus(413), "body too large"));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
