//! The admin API under `/admin/api/`: authentication, routing to the operations, the audit
//! line of every request.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use faaso::engine::deploy::Rollout;
use pingora::prelude::*;
use serde_json::json;

use super::Admin;
use super::auth::Verdict;
use super::request::{
    Reject, key_reject, lifecycle_reject, query_param, read_small_body, reject, require_funko,
    respond, valid,
};
use super::stream::{Line, WhenClientLeaves, stream_operation};
use super::upload::{Unpacker, UploadError};
use crate::http::responses::{error_body, write_json};

/// Log lines per instance `logs` shows unless asked for more.
const DEFAULT_TAIL: u32 = 100;

/// Async calls a funko's `calls` lists unless asked for more.
const DEFAULT_CALLS: usize = 20;

/// Answers one admin API request (`rest` is the path after `/admin/api/`) and writes its
/// audit line.
#[allow(clippy::too_many_arguments)]
pub(super) async fn handle(
    admin: &Admin,
    session: &mut Session,
    method: &http::Method,
    path: &str,
    rest: &str,
    query: &str,
    client: Option<IpAddr>,
    started: Instant,
) -> Result<()> {
    let header = session.req_header();
    if let Some(site) = cross_site(method, &header.headers) {
        let body = error_body(
            &format!("refused: a state-changing admin request from another site ({site})"),
            None,
        );
        let written = write_json(session, 403, body, &[]).await;
        audit(
            method,
            path,
            client,
            Verdict::Denied,
            403,
            started.elapsed(),
        );
        return written;
    }
    let authorization = header
        .headers
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes().to_vec());
    let verdict = admin.auth.check(authorization.as_deref(), client).await;
    // Every request gets its audit line, also when its client is gone before the answer.
    let (status, written) = match verdict {
        Verdict::Allowed => {
            let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
            match admin.route(session, method, &segments, query).await {
                Ok(()) => (200, Ok(())),
                Err(rejected) => {
                    // The body may be partly unread: close the connection after the answer.
                    session.set_keepalive(None);
                    // A streamed answer already began (the error is in its last line).
                    let written = match session.response_written() {
                        Some(_) => Ok(()),
                        None => {
                            let body = error_body(&rejected.message, None);
                            write_json(session, rejected.status, body, &[]).await
                        }
                    };
                    (rejected.status, written)
                }
            }
        }
        Verdict::NotConfigured => {
            let body = error_body(
                "the admin API is disabled: set FAASO_PASSWORD (or password_hash in the config)",
                None,
            );
            (503, write_json(session, 503, body, &[]).await)
        }
        Verdict::Denied => {
            let body = error_body("authentication required (user admin)", None);
            // No `WWW-Authenticate` challenge: a browser would keep the password and send it
            // with any request to the admin, also one another site makes it send.
            (401, write_json(session, 401, body, &[]).await)
        }
        Verdict::Limited(seconds) => {
            let body = error_body(
                "too many failed logins from this address; wait a minute",
                None,
            );
            let retry = seconds.to_string();
            (
                429,
                write_json(session, 429, body, &[("Retry-After", &retry)]).await,
            )
        }
    };
    audit(method, path, client, verdict, status, started.elapsed());
    written
}

impl Admin {
    pub(super) async fn route(
        &self,
        session: &mut Session,
        method: &http::Method,
        segments: &[&str],
        query: &str,
    ) -> std::result::Result<(), Reject> {
        use http::Method;
        match (method, segments) {
            (&Method::GET, ["version"]) => {
                respond(session, 200, json!({ "version": faaso::VERSION })).await
            }
            (&Method::GET, ["funkos"]) => {
                let status = self
                    .lifecycle()
                    .await?
                    .status(&[])
                    .await
                    .map_err(|e| reject(500, e.to_string()))?;
                respond(session, 200, json!(status)).await
            }
            (&Method::GET, ["funkos", name]) => {
                let name = valid(name)?;
                let status = self
                    .lifecycle()
                    .await?
                    .status(std::slice::from_ref(&name))
                    .await
                    .map_err(lifecycle_reject)?;
                respond(session, 200, json!(status.first())).await
            }
            (&Method::GET, ["calls", id]) => {
                let id = crate::calls::record::CallId::parse(id).ok_or_else(|| {
                    reject(400, format!("{id:?} is not a call id (32 hex digits)"))
                })?;
                match self.calls.record(id).await.map_err(|e| reject(503, e))? {
                    Some(record) => respond(session, 200, json!(record)).await,
                    None => Err(reject(
                        404,
                        format!("no call {id} (never accepted, or past calls_retention)"),
                    )),
                }
            }
            (&Method::GET, ["funkos", name, "calls"]) => {
                let name = valid(name)?;
                let limit = match query_param(query, "limit") {
                    None => DEFAULT_CALLS,
                    Some(limit) => limit
                        .parse::<usize>()
                        .ok()
                        .filter(|n| (1..=crate::calls::MAX_LIST).contains(n))
                        .ok_or_else(|| {
                            reject(
                                400,
                                format!(
                                    "limit: expected 1 to {}, got {limit:?}",
                                    crate::calls::MAX_LIST
                                ),
                            )
                        })?,
                };
                let calls = self
                    .calls
                    .list(&name, limit)
                    .await
                    .map_err(|e| reject(503, e))?;
                respond(session, 200, json!(calls)).await
            }
            (&Method::GET, ["funkos", name, "keys"]) => {
                let name = valid(name)?;
                let keys = self.key_store().list(&name).map_err(key_reject)?;
                respond(session, 200, json!({ "funko": name, "keys": keys })).await
            }
            (&Method::POST, ["funkos", name, "keys"]) => {
                let name = valid(name)?;
                let body = read_small_body(session).await?;
                let key_name = if body.iter().all(u8::is_ascii_whitespace) {
                    None
                } else {
                    let value =
                        serde_json::from_slice::<serde_json::Value>(&body).map_err(|_| {
                            reject(400, "expected a JSON body {\"name\": \"...\"} or none")
                        })?;
                    match value.get("name") {
                        None | Some(serde_json::Value::Null) => None,
                        Some(serde_json::Value::String(n)) => Some(n.clone()),
                        Some(_) => return Err(reject(400, "name: expected a text")),
                    }
                };
                require_funko(&self.lifecycle().await?, &name).await?;
                let made = self
                    .key_store()
                    .add(&name, key_name.as_deref())
                    .map_err(key_reject)?;
                self.keys.reload();
                respond(session, 201, json!(made)).await
            }
            (&Method::DELETE, ["funkos", name, "keys", key]) => {
                let name = valid(name)?;
                self.key_store().remove(&name, key).map_err(key_reject)?;
                self.keys.reload();
                respond(session, 200, json!({ "ok": true })).await
            }
            (&Method::POST, ["funkos", name, "build"]) => {
                self.build(session, &valid(name)?, query).await
            }
            (&Method::PUT, ["funkos", name, "scale"]) => {
                let name = valid(name)?;
                let body = read_small_body(session).await?;
                let scale = serde_json::from_slice::<serde_json::Value>(&body)
                    .ok()
                    .and_then(|v| v.get("scale").and_then(|s| s.as_u64()))
                    .and_then(|s| u32::try_from(s).ok())
                    .ok_or_else(|| {
                        reject(400, "expected a JSON body {\"scale\": N} with N from 0 up")
                    })?;
                let lifecycle = self.lifecycle_timed(query).await?;
                if scale == 0 {
                    require_funko(&lifecycle, &name).await?;
                }
                stream_operation(
                    session,
                    WhenClientLeaves::Finish,
                    move |mut out| async move {
                        lifecycle
                            .scale(&name, scale, &mut |line| out.log(line))
                            .await
                            .map_err(|e| e.to_string())
                    },
                )
                .await
                .map_err(|e| reject(500, e.to_string()))
            }
            (&Method::POST, ["funkos", name, "deploy"])
                if query_param(query, "canary").is_some() =>
            {
                let canary = query_param(query, "canary").unwrap_or_default();
                let percent = canary
                    .parse::<u32>()
                    .ok()
                    .filter(|p| (1..=99).contains(p))
                    .ok_or_else(|| {
                        reject(
                            400,
                            format!("canary: expected 1 to 99 (percent), got {canary:?}"),
                        )
                    })?;
                let sticky = matches!(query_param(query, "sticky").as_deref(), Some("1" | "true"));
                let rollout = Rollout::Canary { percent, sticky };
                self.roll_out(session, query, name, rollout).await
            }
            (&Method::POST, ["funkos", name, "promote"]) => {
                self.roll_out(session, query, name, Rollout::Promote).await
            }
            (&Method::POST, ["funkos", name, "deploy"]) => {
                self.roll_out(session, query, name, Rollout::Deploy).await
            }
            (&Method::POST, ["funkos", name, "prune"]) => {
                let name = valid(name)?;
                let keep = match query_param(query, "keep") {
                    None => self.settings.keep_releases,
                    Some(keep) => {
                        keep.parse::<usize>()
                            .ok()
                            .filter(|n| *n >= 1)
                            .ok_or_else(|| {
                                reject(400, format!("keep: expected 1 or more, got {keep:?}"))
                            })?
                    }
                };
                let lifecycle = self.lifecycle().await?;
                require_funko(&lifecycle, &name).await?;
                stream_operation(
                    session,
                    WhenClientLeaves::Finish,
                    move |mut out| async move {
                        let removed =
                            faaso::engine::releases::prune(&lifecycle.docker, &name, keep)
                                .await
                                .map_err(|e| e.to_string())?;
                        for tag in removed {
                            out.log(format!("removed {tag}"));
                        }
                        Ok(())
                    },
                )
                .await
                .map_err(|e| reject(500, e.to_string()))
            }
            (&Method::POST, ["funkos", name, "rollback"]) => {
                self.roll_out(session, query, name, Rollout::Rollback).await
            }
            (&Method::DELETE, ["funkos", name]) => {
                let name = valid(name)?;
                let lifecycle = self.lifecycle().await?;
                stream_operation(
                    session,
                    WhenClientLeaves::Finish,
                    move |mut out| async move {
                        lifecycle
                            .purge(&name, &mut |line| out.log(line))
                            .await
                            .map_err(|e| e.to_string())
                    },
                )
                .await
                .map_err(|e| reject(500, e.to_string()))
            }
            (&Method::GET, ["funkos", name, "logs"]) => {
                let name = valid(name)?;
                let follow = matches!(query_param(query, "follow").as_deref(), Some("1" | "true"));
                // Like `faaso logs`: the last 100 lines unless asked, `all` for every line.
                let tail = match query_param(query, "tail").as_deref() {
                    None | Some("") => Some(DEFAULT_TAIL),
                    Some("all") => None,
                    Some(n) => Some(n.parse::<u32>().map_err(|_| {
                        reject(400, format!("tail: expected a number or all, got {n:?}"))
                    })?),
                };
                let lifecycle = self.lifecycle().await?;
                require_funko(&lifecycle, &name).await?;
                stream_operation(session, WhenClientLeaves::Stop, move |mut out| async move {
                    lifecycle
                        .logs(&name, follow, tail, &mut |line| {
                            out.send(Line::Log {
                                instance: line.instance,
                                line: line.line,
                            })
                        })
                        .await
                        .map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| reject(500, e.to_string()))
            }
            (&Method::GET, ["secrets"]) => {
                let listed = self
                    .lifecycle()
                    .await?
                    .secret_names()
                    .await
                    .map_err(|e| reject(500, e.to_string()))?;
                let map: serde_json::Map<String, serde_json::Value> = listed
                    .into_iter()
                    .map(|(f, names)| (f, json!(names)))
                    .collect();
                respond(session, 200, json!({ "secrets": map })).await
            }
            (&Method::PUT, ["secrets", funko, secret]) => {
                let funko = valid(funko)?;
                faaso::store::secrets::validate_secret_name(secret)
                    .map_err(|e| reject(400, e.to_string()))?;
                let value = read_small_body(session).await?;
                self.lifecycle()
                    .await?
                    .add_secret(&funko, secret, &value)
                    .await
                    .map_err(|e| reject(500, e.to_string()))?;
                respond(
                    session,
                    200,
                    json!({ "ok": true, "funko": funko, "secret": secret, "bytes": value.len() }),
                )
                .await
            }
            (&Method::DELETE, ["secrets", funko, secret]) => {
                let funko = valid(funko)?;
                faaso::store::secrets::validate_secret_name(secret)
                    .map_err(|e| reject(400, e.to_string()))?;
                match self.lifecycle().await?.remove_secret(&funko, secret).await {
                    Ok(()) => respond(session, 200, json!({ "ok": true })).await,
                    Err(
                        err @ faaso::engine::LifecycleError::Secret(
                            faaso::store::secrets::SecretError::NotFound { .. },
                        ),
                    ) => Err(reject(404, err.to_string())),
                    Err(err) => Err(reject(500, err.to_string())),
                }
            }
            (_, ["version" | "funkos" | "secrets", ..]) => {
                Err(reject(405, format!("{method} is not allowed here")))
            }
            _ => Err(reject(404, "no such admin API route")),
        }
    }

    /// `POST funkos/<name>/build`: unpack the uploaded context, then build it, streaming.
    async fn build(
        &self,
        session: &mut Session,
        name: &str,
        query: &str,
    ) -> std::result::Result<(), Reject> {
        let limits = self.settings.upload;
        if let Some(length) = session
            .req_header()
            .headers
            .get(http::header::CONTENT_LENGTH)
            && length
                .to_str()
                .ok()
                .and_then(|l| l.parse::<u64>().ok())
                .is_some_and(|l| l > limits.max_body)
        {
            return Err(reject(
                413,
                UploadError::TooLarge(limits.max_body).to_string(),
            ));
        }
        let mut unpacker =
            Unpacker::start(limits).map_err(|e| reject(e.status(), e.to_string()))?;
        loop {
            let chunk = match session.read_request_body().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    // Wait until the unpacker has stopped and removed its folder.
                    unpacker.abandon().await;
                    return Err(reject(400, format!("reading the upload failed: {e}")));
                }
            };
            if let Err(e) = unpacker.feed(chunk).await {
                unpacker.abandon().await;
                return Err(reject(e.status(), e.to_string()));
            }
        }
        let upload = unpacker
            .finish()
            .await
            .map_err(|e| reject(e.status(), e.to_string()))?;
        // The folder is read on a blocking thread, off the worker that carries funko traffic.
        let (context, upload) = tokio::task::spawn_blocking(move || {
            faaso::build::context::BuildContext::from_folder(&upload.context).map(|c| (c, upload))
        })
        .await
        .map_err(|e| reject(500, e.to_string()))?
        .map_err(|e| reject(400, e.to_string()))?;
        let no_cache = matches!(
            query_param(query, "no_cache").as_deref(),
            Some("1" | "true")
        );
        let docker = self.docker().await?;
        let name = name.to_string();
        let builds = std::sync::Arc::clone(&self.builds);
        let max_builds = self.settings.max_concurrent_builds;
        let keep = self.settings.keep_releases;
        stream_operation(
            session,
            WhenClientLeaves::Finish,
            move |mut out| async move {
                let slot = match std::sync::Arc::clone(&builds).try_acquire_owned() {
                    Ok(slot) => slot,
                    Err(_) => {
                        out.log(format!(
                            "waiting: {max_builds} builds are running (max_concurrent_builds)"
                        ));
                        builds.acquire_owned().await.map_err(|e| e.to_string())?
                    }
                };
                // The tar is written from the folder as Docker reads it; the folder goes after.
                let body = faaso::engine::docker::ContextBody::Stream(Box::pin(
                    context.tar_stream(upload),
                ));
                let built = faaso::build::builder::build_context(
                    &docker,
                    &name,
                    body,
                    no_cache,
                    keep,
                    |event| {
                        if let faaso::build::builder::BuildEvent::Output(line) = event {
                            out.log(line);
                        }
                    },
                )
                .await
                .map_err(|e| e.to_string())?;
                drop(slot);
                out.log(format!("built {}", built.tags.join(", ")));
                Ok(())
            },
        )
        .await
        .map_err(|e| reject(500, e.to_string()))
    }

    /// Runs a [`Rollout`] on the funko `name`, streaming its progress lines and then its
    /// one-line summary.
    async fn roll_out(
        &self,
        session: &mut Session,
        query: &str,
        name: &str,
        rollout: Rollout,
    ) -> std::result::Result<(), Reject> {
        let name = valid(name)?;
        let lifecycle = self.lifecycle_timed(query).await?;
        stream_operation(
            session,
            WhenClientLeaves::Finish,
            move |mut out| async move {
                let summary = lifecycle
                    .roll_out(&name, rollout, &mut |line| out.log(line))
                    .await
                    .map_err(|e| e.to_string())?;
                out.log(summary);
                Ok(())
            },
        )
        .await
        .map_err(|e| reject(500, e.to_string()))
    }
}

/// One audit line per admin request; refused logins and rate-limited clients at warn.
fn audit(
    method: &http::Method,
    path: &str,
    client: Option<IpAddr>,
    verdict: Verdict,
    status: u16,
    elapsed: Duration,
) {
    let client = client.map_or_else(|| "-".to_string(), |ip| ip.to_string());
    let duration_ms = elapsed.as_millis() as u64;
    let auth = verdict.as_str();
    if matches!(verdict, Verdict::Denied | Verdict::Limited(_)) {
        tracing::warn!(target: "faaso::admin", %method, route = %path, %client, auth = %auth, status, duration_ms, "admin request refused");
    } else {
        tracing::info!(target: "faaso::admin", %method, route = %path, %client, auth = %auth, status, duration_ms, "admin request");
    }
}

/// Whether a request that changes something comes from another site, as the browser says
/// (`Sec-Fetch-Site: cross-site`, or an `Origin` whose host is not the request's `Host`): the
/// reason, or `None` for reading requests and for clients that are not browsers (the `faaso`
/// command sends neither header).
fn cross_site(method: &http::Method, headers: &http::HeaderMap) -> Option<String> {
    if matches!(
        *method,
        http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
    ) {
        return None;
    }
    if headers
        .get("sec-fetch-site")
        .is_some_and(|site| site.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Some("Sec-Fetch-Site: cross-site".to_string());
    }
    let origin = headers.get(http::header::ORIGIN)?.to_str().unwrap_or("?");
    let origin_host = origin
        .split_once("://")
        .map_or(origin, |(_, rest)| rest)
        .trim_end_matches('/');
    let host = headers
        .get(http::header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or_default();
    (!origin_host.eq_ignore_ascii_case(host)).then(|| format!("Origin: {origin}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> http::HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_static(name),
                    http::HeaderValue::from_static(value),
                )
            })
            .collect()
    }

    #[test]
    fn only_changes_from_another_site_are_refused() {
        let post = http::Method::POST;
        let evil = headers(&[("origin", "https://evil.example"), ("host", "gw:8888")]);
        assert!(cross_site(&post, &evil).is_some());
        assert!(cross_site(&http::Method::DELETE, &evil).is_some());
        assert!(cross_site(&http::Method::GET, &evil).is_none());
        let same = headers(&[("origin", "http://gw:8888"), ("host", "gw:8888")]);
        assert!(cross_site(&post, &same).is_none());
        let fetch = headers(&[("sec-fetch-site", "cross-site"), ("host", "gw:8888")]);
        assert!(cross_site(&http::Method::PUT, &fetch).is_some());
        let same_origin = headers(&[("sec-fetch-site", "same-origin"), ("host", "gw:8888")]);
        assert!(cross_site(&post, &same_origin).is_none());
        // The faaso command sends neither header.
        assert!(cross_site(&post, &headers(&[("host", "gw:8888")])).is_none());
    }
}
