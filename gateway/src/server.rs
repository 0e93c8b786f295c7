//! Assembles the Pingora server from the configuration: the proxy service on `listen`, the
//! metrics service on `metrics_listen`, and the discovery, health-check and drain background
//! services, sharing one routing snapshot. Pingora's own
//! process options (threads, grace period, PID file, upgrade socket, retries) come from
//! [`Config`] rather than from a second config file.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use pingora::server::Server;
use pingora::server::configuration::{Opt, ServerConf};
use pingora::services::background::background_service;
use pingora::services::listening::Service;

use crate::admin::auth::{Auth, Secret};
use crate::admin::upload::Limits;
use crate::admin::{Admin, AdminSettings};
use crate::config::Config;
use crate::discovery::Discovery;
use crate::drain::Drain;
use crate::health::HealthChecker;
use crate::proxy::{Gateway, ProxySettings};
use crate::restore::Restore;
use crate::table::{RouteTable, SharedTable};

/// Pingora's process flags that FaaSO keeps: `-u` upgrade, `-d` daemon, `-t` test config.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessFlags {
    pub upgrade: bool,
    pub daemon: bool,
    pub test: bool,
}

/// Attempts per request: the first and up to 2 retries.
const ATTEMPTS: usize = 3;

/// Pingora's server settings derived from ours.
pub fn server_conf(config: &Config) -> ServerConf {
    ServerConf {
        threads: config.threads,
        pid_file: config.pid_file.display().to_string(),
        upgrade_sock: config.upgrade_sock.display().to_string(),
        // Pingora keeps serving accepted connections for the grace period; the drain service
        // (crate::drain) exits sooner once nothing is in flight.
        grace_period_seconds: Some(config.grace_period.as_secs()),
        graceful_shutdown_timeout_seconds: Some(1),
        max_retries: ATTEMPTS,
        work_stealing: false,
        ..ServerConf::default()
    }
}

/// Builds the server with all services added; the caller runs it.
pub fn build(config: &Config, flags: ProcessFlags) -> Server {
    let opt = Opt {
        upgrade: flags.upgrade,
        daemon: flags.daemon,
        test: flags.test,
        ..Opt::default()
    };
    let mut server = Server::new_with_opt_and_conf(opt, server_conf(config));
    server.bootstrap();

    let table: SharedTable = Arc::new(ArcSwap::from_pointee(RouteTable::default()));
    let ready = Arc::new(AtomicBool::new(false));

    let discovery = Discovery {
        docker_host: config.docker_host.clone(),
        network: config.network.clone(),
        resync_interval: config.resync_interval,
        table: Arc::clone(&table),
        ready: Arc::clone(&ready),
    };
    server.add_service(background_service("discovery", discovery));

    server.add_service(background_service(
        "restore saved scales",
        Restore {
            docker_host: config.docker_host.clone(),
            network: config.network.clone(),
            state_dir: config.state_dir.clone(),
            secrets_dir: config.secrets_dir.clone(),
        },
    ));

    let health = HealthChecker {
        table: Arc::clone(&table),
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

    let secret = match (&config.password_hash, &config.password) {
        (Some(hash), _) => Secret::Hash(hash.clone()),
        (None, Some(password)) => Secret::Plain(password.clone()),
        (None, None) => Secret::None,
    };
    let admin = Admin {
        auth: Auth::new(secret),
        settings: AdminSettings {
            docker_host: config.docker_host.clone(),
            network: config.network.clone(),
            state_dir: config.state_dir.clone(),
            secrets_dir: config.secrets_dir.clone(),
            upload: Limits {
                max_body: config.max_upload_bytes,
                max_unpacked: config.max_upload_bytes.saturating_mul(5),
                max_entries: 100_000,
            },
        },
    };
    let gateway = Gateway {
        table,
        admin,
        ready,
        settings: ProxySettings {
            max_body_bytes: config.max_body_bytes,
            connect_timeout: config.connect_timeout,
            read_timeout: config.read_timeout,
            write_timeout: config.write_timeout,
            idle_timeout: config.idle_timeout,
            access_log: config.access_log,
            metrics: config.metrics,
        },
    };
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, gateway);
    proxy.add_tcp(&config.listen.to_string());
    server.add_service(proxy);

    if config.metrics {
        crate::metrics::metrics();
        let mut metrics = Service::new("metrics".to_string(), crate::metrics::server());
        metrics.add_tcp(&config.metrics_listen.to_string());
        server.add_service(metrics);
    }
    server
}
