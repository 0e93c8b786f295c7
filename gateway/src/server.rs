//! Assembles the Pingora server from the configuration: one proxy service per worker on
//! `listen` (and `tls_listen`), the metrics service on `metrics_listen`, and the discovery,
//! health-check, restore, scaler and drain background services, sharing one routing snapshot.
//! Pingora's own process options (grace period, PID file, upgrade socket, retries) come from
//! [`Config`] rather than from a second config file.
//!
//! Before any service runs, [`build`] takes `state_dir`'s lock and binds every listen address
//! ([`crate::edge`]), so that a taken address or folder ends the start with one line.
//!
//! # One data path per core
//! Each of the `threads` workers is a service of its own on a single-thread runtime, with its
//! own listening socket (`SO_REUSEPORT`: the kernel spreads new connections over the sockets),
//! its own accept loop ([`crate::edge::listen`]), its own proxy and its own upstream
//! connection pool. A request therefore stays on one thread from accept to instance and back,
//! and a pooled connection is always reused by the thread that pooled it: no cross-thread
//! wake-ups on the request path.
//!
//! Pingora keys listening sockets by their address text (that is how `-u` hands them to the
//! next process), so each worker's socket is entered under its own spelling of the same
//! address ([`worker_listen_keys`]: the port with leading zeros), which resolves to the same
//! address but names a socket of its own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use pingora::server::Server;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::services::background::background_service;

use crate::SharedRoutes;
use crate::admin::auth::{Auth, Secret};
use crate::admin::upload::Limits;
use crate::admin::{Admin, AdminSettings};
use crate::config::Config;
use crate::edge::listen::{Endpoint, Listening};
use crate::proxy::{Gateway, ProxySettings, Serves};
use crate::routing::table::{PeerTimeouts, RouteTable};
use crate::services::discovery::Discovery;
use crate::services::drain::Drain;
use crate::services::health::HealthChecker;
use crate::services::restore::Restore;

/// Pingora's process flags that FaaSO keeps: `-u` upgrade, `-d` daemon, `-t` test config.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessFlags {
    pub upgrade: bool,
    pub daemon: bool,
    pub test: bool,
}

/// Most listening sockets per address. Pingora hands listeners to the next process with their
/// address texts in a 2 KiB message, so the spellings must stay short; workers beyond this
/// share sockets (each socket then has several accept loops).
pub const MAX_SOCKETS_PER_ADDRESS: usize = 16;

/// Pingora's server settings derived from ours.
pub fn server_conf(config: &Config) -> ServerConf {
    ServerConf {
        // Per service: each proxy worker and the metrics service run on one thread.
        threads: 1,
        pid_file: config.pid_file.display().to_string(),
        upgrade_sock: config.upgrade_sock.display().to_string(),
        // Pingora keeps serving accepted connections for the grace period; the drain service
        // (crate::services::drain) exits sooner once nothing is in flight.
        grace_period_seconds: Some(config.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        max_retries: crate::proxy::ATTEMPTS,
        work_stealing: false,
        // Pingora's own pool (requests with a body, and every HTTP/2 request): as many idle
        // connections per worker as the worker's own pool keeps for 4 instances (crate::proxy::pool),
        // not Pingora's default of 128, which a few hundred HTTP/2 streams outgrow.
        upstream_keepalive_pool_size: 4 * crate::proxy::pool::MAX_PER_INSTANCE,
        fast_timeout_to_tokio_threshold_seconds: Some(0),
        ..ServerConf::default()
    }
}

/// The address text each worker listens on: `addr` itself for the first, then the same
/// address with the port spelled with 1, 2, ... leading zeros (same socket address, another
/// key in Pingora's listener table). Workers beyond [`MAX_SOCKETS_PER_ADDRESS`] reuse keys.
pub fn worker_listen_keys(addr: SocketAddr, workers: usize) -> Vec<String> {
    let (ip, port) = match addr {
        SocketAddr::V4(v4) => (v4.ip().to_string(), v4.port()),
        SocketAddr::V6(v6) => (format!("[{}]", v6.ip()), v6.port()),
    };
    (0..workers)
        .map(|worker| {
            let zeros = worker % MAX_SOCKETS_PER_ADDRESS;
            format!("{ip}:{}{port}", "0".repeat(zeros))
        })
        .collect()
}

/// Why the server could not be built.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A certificate file of `tls_certs` cannot be served (a configuration error).
    #[error("tls_certs: {0}")]
    Certs(#[from] crate::tls::certs::CertError),
    /// A listen address cannot be bound, or another process listens there.
    #[error("cannot listen on {0}")]
    Listen(#[from] crate::edge::bind::BindError),
    /// Another gateway holds `state_dir`.
    #[error("{0}")]
    StateDir(#[from] crate::edge::owner::OwnerError),
}

impl StartError {
    /// The exit code: 2 for a bad configuration, 1 for what the host refuses.
    pub fn exit_code(&self) -> u8 {
        match self {
            StartError::Certs(_) => 2,
            StartError::Listen(_) | StartError::StateDir(_) => 1,
        }
    }
}

/// Builds the server with all services added; the caller runs it. Unless `flags.upgrade`,
/// `state_dir` is locked and every listen address bound here, so that a taken one ends the
/// start at once.
pub fn build(config: &Config, flags: ProcessFlags) -> Result<Server, StartError> {
    if flags.upgrade {
        crate::edge::owner::StateLock::take_after_upgrade(
            config.state_dir.clone(),
            config.listen.to_string(),
        );
    } else {
        let lock =
            crate::edge::owner::StateLock::take(&config.state_dir, &config.listen.to_string())?;
        // Held until the process ends; rewritten once the server runs (after a `-d` fork).
        server_state_lock(lock);
    }
    let max_connections = descriptor_budget(config);
    let opt = Opt {
        upgrade: flags.upgrade,
        daemon: flags.daemon,
        test: flags.test,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(config));
    server.bootstrap();
    if !flags.upgrade {
        server.add_service(background_service(
            "state_dir owner",
            RecordOwner {
                listen: config.listen.to_string(),
            },
        ));
    }

    let table: SharedRoutes = Arc::new(ArcSwap::from_pointee(RouteTable::default()));
    let ready = Arc::new(AtomicBool::new(false));
    let snapshot_changed = Arc::new(tokio::sync::Notify::new());
    let rebuild = Arc::new(crate::routing::rebuild::Rebuild::default());
    let discovery_view = Arc::new(crate::services::discovery::DiscoveryView::default());
    let discovery = Discovery {
        docker_host: config.docker_host.clone(),
        network: config.network.clone(),
        resync_interval: config.resync_interval,
        orchestrator: config.orchestrator,
        timeouts: PeerTimeouts {
            connect: config.connect_timeout,
            read: config.read_timeout,
            write: config.write_timeout,
            idle: config.idle_timeout,
        },
        table: Arc::clone(&table),
        ready: Arc::clone(&ready),
        snapshot_changed: Arc::clone(&snapshot_changed),
        rebuild: Arc::clone(&rebuild),
        view: Arc::clone(&discovery_view),
        state: faaso::store::state::StateDir::new(&config.state_dir),
        held_domains: faaso::store::state::StateDir::new(&config.state_dir)
            .domains()
            .owners,
    };
    server.add_service(background_service("discovery", discovery));
    let recent = Arc::new(crate::admin::ui::stats::Recent::default());
    if config.metrics {
        server.add_service(background_service(
            "web UI traffic samples",
            crate::admin::ui::stats::Sampler {
                recent: Arc::clone(&recent),
            },
        ));
    }

    let lifecycle = crate::services::restore::LifecycleConfig {
        docker_host: config.docker_host.clone(),
        network: config.network.clone(),
        state_dir: config.state_dir.clone(),
        secrets_dir: config.secrets_dir.clone(),
        orchestrator: config.orchestrator,
        registry: config.registry.clone(),
    };
    let (wakes, starts) = crate::routing::wake::Wakes::new(config.cold_start_timeout);
    let wakes = Arc::new(wakes);
    // Swarm keeps each service's replicas itself: nothing to restore, and the scaler (which
    // starts and stops containers) stays out of it.
    if config.orchestrator == faaso::engine::Orchestrator::Docker {
        server.add_service(background_service(
            "restore saved scales",
            Restore {
                lifecycle: lifecycle.clone(),
            },
        ));

        server.add_service(background_service(
            "scaler",
            crate::services::scaler::Scaler {
                lifecycle,
                table: Arc::clone(&table),
                wakes: Arc::clone(&wakes),
                starts: std::sync::Mutex::new(Some(starts)),
                up_window: config.autoscale_up_window,
                down_window: config.autoscale_down_window,
            },
        ));
    } else {
        drop(starts);
    }

    let health = HealthChecker {
        table: Arc::clone(&table),
        snapshot_changed,
        interval: config.health_interval,
        timeout: config
            .connect_timeout
            .max(std::time::Duration::from_secs(1)),
    };
    server.add_service(background_service("health checks", health));

    server.add_service(background_service(
        "drain",
        Drain {
            grace_period: config.grace_period,
        },
    ));

    let runner = || {
        crate::calls::attempt::Runner::new(
            Arc::clone(&table),
            Arc::clone(&wakes),
            crate::calls::callback::Reach {
                allow: Arc::from(config.callback_allow.clone()),
            },
        )
    };
    let calls = match &config.queue {
        crate::calls::QueueConfig::Embedded => {
            crate::calls::Calls::Embedded(Arc::new(crate::calls::queue::EmbeddedQueue::new(
                config.state_dir.clone(),
                runner(),
                Arc::clone(&table),
                config.async_max_queued,
                config.calls_retention,
            )))
        }
        crate::calls::QueueConfig::Nats(url) => {
            crate::calls::Calls::Nats(Arc::new(crate::calls::nats::NatsQueue::new(
                url.clone(),
                runner(),
                Arc::clone(&table),
                config.async_max_queued,
                config.calls_retention,
            )))
        }
    };
    server.add_service(background_service(
        "async calls",
        crate::calls::service::CallsService {
            calls: calls.clone(),
            table: Arc::clone(&table),
            ready: Arc::clone(&ready),
        },
    ));

    let secret = match (&config.password_hash, &config.password) {
        (Some(hash), _) => Secret::Hash(hash.clone()),
        (None, Some(password)) => Secret::Plain(password.clone()),
        (None, None) => Secret::None,
    };
    // `Strict-Transport-Security` for answers over HTTPS (the proxy's and the web UI's).
    let hsts = config
        .hsts_max_age
        .and_then(|age| http::HeaderValue::try_from(format!("max-age={}", age.as_secs())).ok());
    // Keys of private funkos: loaded now, followed by a background service.
    let keys = Arc::new(crate::access::keys::KeyRing::load(
        faaso::store::keys::KeyStore::new(&config.state_dir),
    ));
    server.add_service(background_service(
        "key reloads",
        crate::access::keys::KeyWatch {
            ring: Arc::clone(&keys),
        },
    ));
    let admin = Admin::new(
        Auth::new(secret),
        AdminSettings {
            docker_host: config.docker_host.clone(),
            network: config.network.clone(),
            orchestrator: config.orchestrator,
            registry: config.registry.clone(),
            state_dir: config.state_dir.clone(),
            secrets_dir: config.secrets_dir.clone(),
            trusted_proxies: config.trusted_proxies.clone(),
            max_concurrent_builds: config.max_concurrent_builds,
            keep_releases: config.keep_releases,
            upload: Limits {
                max_body: config.max_upload_bytes,
                max_unpacked: config.max_upload_bytes.saturating_mul(5),
                max_entries: 100_000,
            },
        },
        crate::admin::ui::Ui {
            sessions: Default::default(),
            pages: crate::admin::ui::pages::Pages::new().expect("the embedded templates compile"),
            recent,
            discovery: discovery_view,
            table: Arc::clone(&table),
            started: std::time::Instant::now(),
            started_at: std::time::SystemTime::now(),
            config: config.shown(),
            metrics_on: config.metrics,
            hsts: hsts.clone(),
        },
        calls.clone(),
        Arc::clone(&keys),
    );
    // HTTPS: one certificate store for every worker's listener, fed by the files (reloaded on
    // SIGHUP or change) and by ACME.
    let tls = match config.tls_listen {
        Some(addr) => {
            let store = Arc::new(crate::tls::certs::CertStore::default());
            store.set_files(crate::tls::reload::load_all(&config.tls_certs)?);
            if !config.tls_certs.is_empty() {
                server.add_service(background_service(
                    "TLS certificate reloads",
                    crate::tls::reload::Reload {
                        files: config.tls_certs.clone(),
                        store: Arc::clone(&store),
                    },
                ));
            }
            let challenges = config.acme.enabled.then(|| {
                let challenges = Arc::new(crate::tls::acme::Challenges::default());
                server.add_service(background_service(
                    "ACME certificates",
                    crate::tls::acme::AcmeService {
                        config: config.acme.clone(),
                        state_dir: config.state_dir.clone(),
                        store: Arc::clone(&store),
                        challenges: Arc::clone(&challenges),
                        funko_domains: config.acme.funko_domains.then(|| {
                            let table = Arc::clone(&table);
                            let domains: crate::tls::acme::FunkoDomains = Arc::new(move || {
                                table.load().claims.owners.keys().cloned().collect()
                            });
                            domains
                        }),
                    },
                ));
                challenges
            });
            let acceptor = crate::tls::listener_settings(&store)
                .map_err(|err| crate::tls::certs::CertError::Invalid {
                    what: "tls_listen".to_string(),
                    message: err.to_string(),
                })?
                .build();
            Some((addr, Arc::new(acceptor), challenges))
        }
        None => None,
    };
    let https = tls
        .as_ref()
        .map(|(addr, _, challenges)| crate::proxy::HttpsSettings {
            redirect_to: config.redirect_https.then_some(addr.port()),
            hsts: hsts.clone(),
            challenges: challenges.clone(),
        });
    let gateway = Gateway {
        table,
        wakes,
        admin: Arc::new(admin),
        ready,
        rebuild,
        settings: Arc::new(ProxySettings {
            max_body_bytes: config.max_body_bytes,
            upgrades: config.upgrades.clone(),
            access_log: config.access_log,
            metrics: config.metrics,
            https,
            send_timeout: config.send_timeout,
            async_body_timeout: config.async_body_timeout,
            trusted_proxies: config.trusted_proxies.clone(),
        }),
        serves: match config.admin_listen {
            Some(_) => Serves::Funkos,
            None => Serves::Everything,
        },
        calls,
        keys,
    };
    if config.admin_listen.is_none()
        && (config.password.is_some() || config.password_hash.is_some())
    {
        tracing::warn!(
            "the admin (/admin/) shares the funkos' listener and origin: funko answers lose \
             faaso_* cookies and Service-Worker-Allowed, and a funko's page could still reach \
             the admin UI in a browser logged in to it; set admin_listen to give the admin an \
             address of its own"
        );
    }

    // The public listeners: every worker accepts on its own socket of each address.
    let plain = Sockets::bind(flags, "listen", config.listen, config.threads)?;
    let secure = match &tls {
        Some((addr, _, _)) => Some(Sockets::bind(flags, "tls_listen", *addr, config.threads)?),
        None => None,
    };
    let admin_socket = match config.admin_listen {
        Some(addr) => Some(Sockets::bind(flags, "admin_listen", addr, 1)?),
        None => None,
    };
    let metrics_socket = match config.metrics {
        true => Some(Sockets::bind(
            flags,
            "metrics_listen",
            config.metrics_listen,
            1,
        )?),
        false => None,
    };
    let connections = Arc::new(crate::edge::limits::Connections::new(
        crate::edge::limits::Limits {
            max_connections,
            max_per_client: config.max_connections_per_ip,
            exempt: config.trusted_proxies.clone(),
        },
    ));
    let edge = crate::edge::EdgeSettings {
        header_timeout: config.header_timeout,
        keepalive_timeout: config.keepalive_timeout,
        send_timeout: config.send_timeout,
    };
    let mut server_options = pingora::apps::HttpServerOptions::default();
    server_options.h2_idle_timeout = Some(config.keepalive_timeout);
    for worker in 0..config.threads {
        let mut endpoints = vec![plain.endpoint(worker, None)?];
        if let (Some(secure), Some((_, acceptor, _))) = (&secure, &tls) {
            endpoints.push(secure.endpoint(worker, Some(Arc::clone(acceptor)))?);
        }
        let mut proxy = pingora::proxy::http_proxy(&server.configuration, gateway.clone());
        proxy.server_options = Some(server_options.clone());
        let handler =
            crate::edge::client::Edge::new(Arc::new(proxy), edge, Arc::clone(&connections));
        server.add_service(Listening::new(
            format!("proxy worker {worker}"),
            endpoints,
            Arc::new(handler),
        ));
    }

    // The admin on its own address: the same proxy, answering only `/admin/` (and health).
    if let Some(socket) = admin_socket {
        let admin_gateway = Gateway {
            serves: Serves::Admin,
            ..gateway.clone()
        };
        let mut proxy = pingora::proxy::http_proxy(&server.configuration, admin_gateway);
        proxy.server_options = Some(server_options.clone());
        let handler =
            crate::edge::client::Edge::new(Arc::new(proxy), edge, Arc::clone(&connections));
        server.add_service(Listening::new(
            "admin".to_string(),
            vec![socket.endpoint(0, None)?],
            Arc::new(handler),
        ));
    }

    if let Some(socket) = metrics_socket {
        crate::metrics::enable();
        server.add_service(Listening::new(
            "metrics".to_string(),
            vec![socket.endpoint(0, None)?],
            Arc::new(crate::edge::listen::Serve(Arc::new(
                crate::metrics::server(),
            ))),
        ));
    }
    Ok(server)
}

/// The state_dir lock of this process, kept until it ends.
static STATE_LOCK: std::sync::Mutex<Option<crate::edge::owner::StateLock>> =
    std::sync::Mutex::new(None);

fn server_state_lock(lock: crate::edge::owner::StateLock) {
    *STATE_LOCK.lock().unwrap_or_else(|p| p.into_inner()) = Some(lock);
}

/// Writes this process's pid into the state_dir lock once the server runs (after `-d` forked).
struct RecordOwner {
    listen: String,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for RecordOwner {
    async fn start(&self, _shutdown: pingora::server::ShutdownWatch) {
        if let Some(lock) = STATE_LOCK
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_mut()
            && let Err(err) = lock.record(&self.listen)
        {
            tracing::warn!(error = %err, "cannot write the state_dir lock file");
        }
    }
}

/// Raises the soft file descriptor limit to the hard one, logs both, and gives
/// `max_connections` (the configured one, or one from the limit).
fn descriptor_budget(config: &Config) -> usize {
    match crate::edge::owner::raise_descriptor_limit() {
        Ok(limits) => {
            let max = config
                .max_connections
                .unwrap_or_else(|| crate::edge::owner::default_max_connections(limits.now));
            tracing::info!(
                soft_before = limits.before,
                soft = limits.now,
                hard = limits.hard,
                max_connections = max,
                "file descriptor limit"
            );
            if max as u64 > limits.now {
                tracing::warn!(
                    max_connections = max,
                    descriptors = limits.now,
                    "max_connections is above the file descriptor limit: accept will fail first"
                );
            }
            max
        }
        Err(err) => {
            let max = config
                .max_connections
                .unwrap_or(crate::edge::owner::default_max_connections(1024));
            tracing::warn!(error = %err, max_connections = max, "cannot read or raise the file descriptor limit");
            max
        }
    }
}

/// The sockets of one listen address, one per worker key ([`worker_listen_keys`]).
struct Sockets {
    key: &'static str,
    keys: Vec<String>,
    /// Bound here; empty in a `-u` upgrade (the running process hands them over).
    bound: Vec<std::net::TcpListener>,
}

impl Sockets {
    fn bind(
        flags: ProcessFlags,
        key: &'static str,
        addr: SocketAddr,
        workers: usize,
    ) -> Result<Sockets, crate::edge::bind::BindError> {
        let keys = worker_listen_keys(addr, workers);
        let distinct = workers.clamp(1, MAX_SOCKETS_PER_ADDRESS);
        let bound = if flags.upgrade {
            Vec::new()
        } else {
            crate::edge::bind::bind(key, addr, distinct)?
        };
        Ok(Sockets { key, keys, bound })
    }

    /// Worker `worker`'s endpoint: its own socket, or a handle on a shared one when there
    /// are more workers than keys.
    fn endpoint(
        &self,
        worker: usize,
        tls: Option<Arc<pingora::listeners::tls::Acceptor>>,
    ) -> Result<Endpoint, crate::edge::bind::BindError> {
        let key = self.keys[worker % self.keys.len()].clone();
        let socket = match self.bound.get(worker % MAX_SOCKETS_PER_ADDRESS) {
            Some(socket) => Some(socket.try_clone().map_err(|err| {
                crate::edge::bind::BindError {
                    key: self.key,
                    addr: key
                        .parse()
                        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
                    reason: err.to_string(),
                }
            })?),
            None => None,
        };
        Ok(Endpoint {
            key,
            config_key: self.key,
            socket,
            tls,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::ToSocketAddrs;

    #[test]
    fn worker_keys_are_distinct_spellings_of_one_address() {
        for addr in ["0.0.0.0:8888", "127.0.0.1:1", "[::]:8888", "[::1]:65535"] {
            let addr: SocketAddr = addr.parse().unwrap();
            let keys = worker_listen_keys(addr, 40);
            assert_eq!(keys[0], addr.to_string());
            let distinct: std::collections::HashSet<_> = keys.iter().collect();
            assert_eq!(distinct.len(), MAX_SOCKETS_PER_ADDRESS);
            for key in &keys {
                let resolved: Vec<SocketAddr> = key.to_socket_addrs().unwrap().collect();
                assert_eq!(resolved, [addr], "{key}");
                assert!(!key.contains(' '), "keys are sent space-separated: {key}");
            }
        }
    }

    #[test]
    fn keys_fit_pingoras_hand_over_message() {
        // The longest address text, with a TLS listener and the metrics listener beside it.
        let addr: SocketAddr = "[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"
            .parse()
            .unwrap();
        let one: usize = worker_listen_keys(addr, 1024)
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .iter()
            .map(|key| key.len() + 1)
            .sum();
        assert!(2 * one + 64 < 2048, "{one} bytes per address");
    }
}
