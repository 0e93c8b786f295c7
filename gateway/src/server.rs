//! Assembles the Pingora server from the configuration: the proxy service on `listen`, with
//! Pingora's own process options (threads, grace period, PID file, upgrade socket) taken from
//! [`Config`] rather than from a second config file.

use pingora::server::Server;
use pingora::server::configuration::{Opt, ServerConf};

use crate::config::Config;
use crate::proxy::Gateway;

/// Pingora's process flags that FaaSO keeps: `-u` upgrade, `-d` daemon, `-t` test config.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessFlags {
    pub upgrade: bool,
    pub daemon: bool,
    pub test: bool,
}

/// Pingora's server settings derived from ours.
pub fn server_conf(config: &Config) -> ServerConf {
    ServerConf {
        threads: config.threads,
        pid_file: config.pid_file.display().to_string(),
        upgrade_sock: config.upgrade_sock.display().to_string(),
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(config.grace_period.as_secs().max(1)),
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
    let mut proxy = pingora::proxy::http_proxy_service(&server.configuration, Gateway::new());
    proxy.add_tcp(&config.listen.to_string());
    server.add_service(proxy);
    server
}
