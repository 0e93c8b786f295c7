//! Everything under `/admin/`: the admin API under `/admin/api/` ([`api`]), what `faaso` uses
//! in remote mode, and the web UI for the rest ([`ui`]). Every API request is authenticated
//! ([`auth`], failures limited by [`limiter`]) and logged (target `faaso::admin`); operations
//! run through the same `faaso` library code as the CLI's local mode; long ones stream NDJSON
//! ([`stream`]); build contexts arrive as `.tar.gz` uploads, unpacked safely ([`upload`]).
//! What the API and the UI share for one request (refusals, names, small bodies) is in
//! [`request`].
//!
//! | method and path | does |
//! |---|---|
//! | `GET version` | `{"version": ...}` |
//! | `GET funkos`, `GET funkos/<name>` | status (as `faaso status --json`) |
//! | `POST funkos/<name>/build[?no_cache=1]` | body: build context `.tar.gz`; streamed |
//! | `PUT funkos/<name>/scale` `{"scale": N}` | streamed |
//! | `POST funkos/<name>/deploy[?timeout=S]` | streamed |
//! | `POST funkos/<name>/deploy?canary=P[&sticky=1]` | a canary with P % of the requests; streamed |
//! | `POST funkos/<name>/promote[?timeout=S]` | the canary's image to every instance; streamed |
//! | `POST funkos/<name>/rollback[?timeout=S]` | the previous release, or the canary ended; streamed |
//! | `DELETE funkos/<name>` | purge; streamed |
//! | `GET funkos/<name>/logs?follow=1&tail=N` | streamed log lines |
//! | `GET secrets`, `PUT`/`DELETE secrets/<funko>/<secret>` | names only, never values |
//! | `GET calls/<id>` | an async call's record |
//! | `GET funkos/<name>/calls?limit=N` | its newest async calls (20 unless asked), newest first |
//! | `GET funkos/<name>/keys` | its keys: names and creation times, never values |
//! | `POST funkos/<name>/keys` `{"name": N}` (name optional) | a new key; its value only in this answer |
//! | `DELETE funkos/<name>/keys/<key name>` | removes the key (effective at once) |

pub mod api;
pub mod auth;
pub mod limiter;
pub mod request;
pub mod stream;
pub mod ui;
pub mod upload;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use faaso::engine::Lifecycle;
use faaso::store::secrets::SecretsDir;
use faaso::store::state::StateDir;
use pingora::prelude::*;

use crate::http::client_ip::client_ip;
use auth::Auth;
use request::{Reject, query_param, reject};
use upload::Limits;

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
    /// Async calls, for their records.
    pub calls: crate::calls::Calls,
    /// The keys of private funkos, reloaded at once after a change here.
    pub keys: std::sync::Arc<crate::access::keys::KeyRing>,
}

impl Admin {
    pub fn new(
        auth: Auth,
        settings: AdminSettings,
        ui: crate::admin::ui::Ui,
        calls: crate::calls::Calls,
        keys: std::sync::Arc<crate::access::keys::KeyRing>,
    ) -> Admin {
        let builds = tokio::sync::Semaphore::new(settings.max_concurrent_builds.max(1));
        Admin {
            auth,
            settings,
            ui,
            builds: std::sync::Arc::new(builds),
            calls,
            keys,
        }
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
        match path.strip_prefix("/admin/api/") {
            Some(rest) => {
                let rest = rest.to_string();
                api::handle(
                    self, session, &method, &path, &rest, &query, client, started,
                )
                .await
            }
            None => ui::handle(self, session, client).await,
        }
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

    /// The key files of private funkos (`<state_dir>/keys`).
    pub(crate) fn key_store(&self) -> faaso::store::keys::KeyStore {
        faaso::store::keys::KeyStore::new(&self.settings.state_dir)
    }

    pub(crate) fn secrets(&self) -> SecretsDir {
        SecretsDir::new(&self.settings.secrets_dir)
    }
}
