//! The admin API under `/admin/api/`: what `faaso` uses in remote mode (the rest of `/admin/`
//! is the web UI, [`crate::admin::ui`]). Every request is
//! authenticated ([`auth`], failures limited by [`limiter`]) and logged (target
//! `faaso::admin`); operations run through the same `faaso` library code as the CLI's
//! local mode; long ones stream NDJSON ([`stream`]); build contexts arrive as `.tar.gz`
//! uploads, unpacked safely ([`upload`]).
//!
//! | method and path | does |
//! |---|---|
//! | `GET version` | `{"version": ...}` |
//! | `GET funkos`, `GET funkos/<name>` | status (as `faaso status --json`) |
//! | `POST funkos/<name>/build[?no_cache=1]` | body: build context `.tar.gz`; streamed |
//! | `PUT funkos/<name>/scale` `{"scale": N}` | streamed |
//! | `POST funkos/<name>/deploy[?timeout=S]` | streamed |
//! | `DELETE funkos/<name>` | purge; streamed |
//! | `GET funkos/<name>/logs?follow=1&tail=N` | streamed log lines |
//! | `GET secrets`, `PUT`/`DELETE secrets/<funko>/<secret>` | names only, never values |

pub mod auth;
pub mod limiter;
pub mod stream;
pub mod ui;
pub mod upload;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use faaso::engine::Lifecycle;
use faaso::store::secrets::SecretsDir;
use faaso::store::state::StateDir;
use pingora::prelude::*;
use serde_json::json;

use crate::http::client_ip::client_ip;
use crate::http::responses::{error_body, write_json};
use auth::{Auth, Verdict};
use stream::{Line, WhenClientLeaves, stream_operation};
use upload::{Limits, Unpacker, UploadError};

/// Log lines per instance `logs` shows unless asked for more.
const DEFAULT_TAIL: u32 = 100;

/// Largest JSON body (scale) and secret value accepted.
const MAX_SMALL_BODY: usize = 64 * 1024;

/// Settings of the admin API.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    pub docker_host: Option<String>,
    pub network: String,
    pub orchestrator: faaso::engine::Orchestrator,
    pub registry: Option<String>,
    pub state_dir: PathBuf,
    pub secrets_dir: PathBuf,
    pub upload: Limits,
    /// Proxies whose `X-Forwarded-For` names the client (`trusted_proxies`).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Image builds at once; more wait for a slot.
    pub max_concurrent_builds: usize,
    /// Releases of a funko kept after a build (`keep_releases`).
    pub keep_releases: usize,
}

/// The admin API and the web UI.
pub struct Admin {
    pub auth: Auth,
    pub settings: AdminSettings,
    pub ui: crate::admin::ui::Ui,
    /// Build slots (`max_concurrent_builds`).
    builds: std::sync::Arc<tokio::sync::Semaphore>,
}

impl Admin {
    pub fn new(auth: Auth, settings: AdminSettings, ui: crate::admin::ui::Ui) -> Admin {
        let builds = tokio::sync::Semaphore::new(settings.max_concurrent_builds.max(1));
        Admin {
            auth,
            settings,
            ui,
            builds: std::sync::Arc::new(builds),
        }
    }
}

/// A request answered with an error before any streaming.
pub(crate) struct Reject {
    pub(crate) status: u16,
    pub(crate) message: String,
}

fn reject(status: u16, message: impl Into<String>) -> Reject {
    Reject {
        status,
        message: message.into(),
    }
}

impl Admin {
    /// Answers one request under `/admin`, and logs it (target `faaso::admin`).
    pub async fn handle(&self, session: &mut Session) -> Result<()> {
        let started = Instant::now();
        let header = session.req_header();
        let path = header.uri.path().to_string();
        let query = header.uri.query().unwrap_or("").to_string();
        let method = header.method.clone();
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let forwarded_for = header
            .headers
            .get("x-forwarded-for")
            .map(|v| v.as_bytes().to_vec());
        let client = client_ip(
            peer,
            forwarded_for.as_deref(),
            &self.settings.trusted_proxies,
        );
        let Some(rest) = path.strip_prefix("/admin/api/") else {
            return crate::admin::ui::handle(self, session, client).await;
        };
        let authorization = header
            .headers
            .get(http::header::AUTHORIZATION)
            .map(|v| v.as_bytes().to_vec());
        let verdict = self.auth.check(authorization.as_deref(), client).await;
        // Every request gets its audit line, also when its client is gone before the answer.
        let (status, written) = match verdict {
            Verdict::Allowed => {
                let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
                match self.route(session, &method, &segments, &query).await {
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
                let challenge = [("WWW-Authenticate", "Basic realm=\"faaso\"")];
                (401, write_json(session, 401, body, &challenge).await)
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
        audit(&method, &path, client, verdict, status, started.elapsed());
        written
    }

    async fn route(
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
            (&Method::POST, ["funkos", name, "deploy"]) => {
                let name = valid(name)?;
                let lifecycle = self.lifecycle_timed(query).await?;
                stream_operation(
                    session,
                    WhenClientLeaves::Finish,
                    move |mut out| async move {
                        let deployed = lifecycle
                            .deploy(&name, &mut |line| out.log(line))
                            .await
                            .map_err(|e| e.to_string())?;
                        out.log(deployed.summary(&name));
                        Ok(())
                    },
                )
                .await
                .map_err(|e| reject(500, e.to_string()))
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
                let name = valid(name)?;
                let lifecycle = self.lifecycle_timed(query).await?;
                stream_operation(
                    session,
                    WhenClientLeaves::Finish,
                    move |mut out| async move {
                        let rolled = lifecycle
                            .rollback(&name, &mut |line| out.log(line))
                            .await
                            .map_err(|e| e.to_string())?;
                        out.log(rolled.summary(&name));
                        Ok(())
                    },
                )
                .await
                .map_err(|e| reject(500, e.to_string()))
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

    pub(crate) async fn docker(&self) -> std::result::Result<bollard::Docker, Reject> {
        faaso::engine::docker::connect_to(self.settings.docker_host.as_deref())
            .await
            .map_err(|e| reject(503, e.to_string()))
    }

    /// [`Admin::lifecycle`], with the readiness timeout from the query's `timeout` (seconds)
    /// when it has one.
    async fn lifecycle_timed(&self, query: &str) -> std::result::Result<Lifecycle, Reject> {
        let mut lifecycle = self.lifecycle().await?;
        if let Some(seconds) = query_param(query, "timeout").and_then(|t| t.parse().ok()) {
            lifecycle.ready_timeout = Duration::from_secs(seconds);
        }
        Ok(lifecycle)
    }

    pub(crate) async fn lifecycle(&self) -> std::result::Result<Lifecycle, Reject> {
        let mut lifecycle = Lifecycle::new(
            self.docker().await?,
            StateDir::new(&self.settings.state_dir),
            self.secrets(),
        );
        lifecycle.network = self.settings.network.clone();
        lifecycle.orchestrator = self.settings.orchestrator;
        lifecycle.registry = self.settings.registry.clone();
        Ok(lifecycle)
    }

    pub(crate) fn secrets(&self) -> SecretsDir {
        SecretsDir::new(&self.settings.secrets_dir)
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

pub(crate) fn valid(name: &str) -> std::result::Result<String, Reject> {
    faaso::conventions::validate_name(name)
        .map(|()| name.to_string())
        .map_err(|e| reject(400, e.to_string()))
}

/// 404 unless the funko has an image or a container.
pub(crate) async fn require_funko(
    lifecycle: &Lifecycle,
    name: &str,
) -> std::result::Result<(), Reject> {
    if lifecycle
        .funko_exists(name)
        .await
        .map_err(lifecycle_reject)?
    {
        return Ok(());
    }
    Err(reject(
        404,
        format!("funko {name} does not exist (no image, no containers)"),
    ))
}

pub(crate) fn lifecycle_reject(err: faaso::engine::LifecycleError) -> Reject {
    match err {
        faaso::engine::LifecycleError::Unknown { .. } => reject(404, err.to_string()),
        faaso::engine::LifecycleError::Name(_) => reject(400, err.to_string()),
        other => reject(500, other.to_string()),
    }
}

async fn respond(
    session: &mut Session,
    status: u16,
    body: serde_json::Value,
) -> std::result::Result<(), Reject> {
    write_json(session, status, Bytes::from(body.to_string()), &[])
        .await
        .map_err(|e| reject(500, e.to_string()))
}

pub(crate) async fn read_small_body(session: &mut Session) -> std::result::Result<Vec<u8>, Reject> {
    let mut body = Vec::new();
    while let Some(chunk) = session
        .read_request_body()
        .await
        .map_err(|e| reject(400, format!("reading the body failed: {e}")))?
    {
        if body.len() + chunk.len() > MAX_SMALL_BODY {
            return Err(reject(
                413,
                format!("body larger than {MAX_SMALL_BODY} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A query parameter's value, percent-decoded (`form_urlencoded`).
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}
