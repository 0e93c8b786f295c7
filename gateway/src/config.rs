//! The gateway's configuration: built-in defaults, then a YAML file (`--config`), then environment
//! variables, then command-line flags, each overriding the one before.
//!
//! Every source goes through [`Config::set`], which knows each key, so an unknown key or a bad
//! value is refused with the key and the source named, whatever the source. Loading follows
//! three steps: [`Config::load`] reads a file, [`Config::apply_yaml`] parses text, and
//! [`Config::validate`] checks the whole.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The complete gateway configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Public listener for funko traffic, health and admin routes.
    pub listen: SocketAddr,
    /// Listener for Prometheus metrics (`/metrics`).
    pub metrics_listen: SocketAddr,
    /// HTTPS listener (HTTP/2 and HTTP/1.1 by ALPN); `None` serves plain HTTP only.
    pub tls_listen: Option<SocketAddr>,
    /// The admin's own address (API and UI under `/admin/`); `None`: the admin is served on
    /// `listen` (and `tls_listen`) beside the funkos.
    pub admin_listen: Option<SocketAddr>,
    /// Certificate and key files served on `tls_listen`, chosen by SNI; reloaded on `SIGHUP`.
    pub tls_certs: Vec<crate::tls::certs::CertFiles>,
    /// Plain requests (but ACME challenges, `/healthz`, `/readyz`) answered 308 to HTTPS.
    pub redirect_https: bool,
    /// `Strict-Transport-Security` max-age sent on HTTPS answers; `None` sends none.
    pub hsts_max_age: Option<Duration>,
    /// Certificates obtained and renewed over ACME.
    pub acme: crate::tls::acme::AcmeConfig,
    /// Docker network the instances are reached on.
    pub network: String,
    /// Containers on one engine (`docker`) or services on its Swarm (`swarm`).
    pub orchestrator: faaso::engine::Orchestrator,
    /// Swarm mode: the registry (`host:port`) funko images are pushed to and pulled from.
    pub registry: Option<String>,
    /// Docker engine address; `None` means `DOCKER_HOST` or the local socket.
    pub docker_host: Option<String>,
    /// Admin API password; `None` (and no hash) refuses every admin request.
    pub password: Option<String>,
    /// Admin API password as an argon2 hash (`faaso-gateway --hash-password`).
    pub password_hash: Option<String>,
    /// Largest build-context upload (compressed); unpacked it may be 5 times that.
    pub max_upload_bytes: u64,
    /// Image builds the admin API runs at once; more wait for a slot.
    pub max_concurrent_builds: usize,
    /// Releases of a funko kept after a build (`keep_releases`).
    pub keep_releases: usize,
    /// Host directory holding `<funko>/<secret>` files.
    pub secrets_dir: PathBuf,
    /// Host directory holding saved state (desired scale per funko).
    pub state_dir: PathBuf,
    /// Worker threads of the proxy.
    pub threads: usize,
    /// Time to establish a connection to an instance.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes from an instance.
    pub read_timeout: Duration,
    /// Longest wait to write to an instance.
    pub write_timeout: Duration,
    /// How long an idle pooled connection to an instance is kept.
    pub idle_timeout: Duration,
    /// Largest request body accepted.
    pub max_body_bytes: u64,
    /// A client's request head must be whole within this (from the accept, or from its first
    /// byte on a kept-alive connection); then 408 and a close.
    pub header_timeout: Duration,
    /// Longest silence of a client connection between requests; then it is closed.
    pub keepalive_timeout: Duration,
    /// Longest a client may take nothing of an answer; then it is dropped.
    pub send_timeout: Duration,
    /// Most client connections open at once; `None`: from the file descriptor limit.
    pub max_connections: Option<usize>,
    /// Most client connections from one address (IPv6: one /64); 0 for no cap.
    pub max_connections_per_ip: u32,
    /// Interval of active health checks (`GET /ping`).
    pub health_interval: Duration,
    /// Interval of full resyncs with Docker, a safety net under the event stream.
    pub resync_interval: Duration,
    /// How long SIGTERM waits for requests in flight before exiting.
    pub grace_period: Duration,
    /// Longest wait of a request for a funko at zero while its first instance starts (503).
    pub cold_start_timeout: Duration,
    /// Where async calls and cron ticks are queued: the embedded store in `state_dir`, or a
    /// NATS JetStream server that several gateways share.
    pub queue: crate::calls::QueueConfig,
    /// How long a finished async call's record is kept.
    pub calls_retention: Duration,
    /// Most async calls waiting or running at once (more: 429).
    pub async_max_queued: usize,
    /// Longest time a client may take to send an async call's body (then 408).
    pub async_body_timeout: Duration,
    /// Loopback or link-local networks that callbacks may reach all the same.
    pub callback_allow: Vec<ipnet::IpNet>,
    /// How long the load must stay above `target_inflight` before the autoscaler adds instances.
    pub autoscale_up_window: Duration,
    /// How long the load must stay well below it before the autoscaler removes one.
    pub autoscale_down_window: Duration,
    /// Whether metrics are collected and served.
    pub metrics: bool,
    /// One log line per request (target `faaso::access`).
    pub access_log: bool,
    /// Log filter: a level (`info`) or `tracing` directives (`info,faaso::access=off`).
    pub log_level: String,
    /// Reverse proxies in front of the gateway whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// `Upgrade` protocols passed on to funkos (lowercase); any other `Upgrade` is removed.
    pub upgrades: Vec<String>,
    /// PID file, used by `-d` and by `-u` upgrades.
    pub pid_file: PathBuf,
    /// Socket the old process hands its listeners over on during a `-u` upgrade.
    pub upgrade_sock: PathBuf,
}

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    File(PathBuf),
    Env(&'static str),
    Flag,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(path) => write!(f, "{}", path.display()),
            Source::Env(var) => write!(f, "environment variable {var}"),
            Source::Flag => write!(f, "command line"),
        }
    }
}

/// A configuration that cannot be used, naming the source and the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: invalid YAML: {message}")]
    Yaml { origin: Source, message: String },
    #[error("{origin}: unknown key `{key}` (known keys: {known})", known = KEYS.iter().map(|k| k.name).collect::<Vec<_>>().join(", "))]
    UnknownKey { origin: Source, key: String },
    #[error("key `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("{origin}: key `{key}`: {message}")]
    BadValue {
        origin: Source,
        key: String,
        message: String,
    },
}

/// One configuration key: its name and the environment variable that sets it, if any.
#[derive(Debug)]
pub struct Key {
    pub name: &'static str,
    pub env: Option<&'static str>,
}

/// Every key, in the order of the documentation.
pub const KEYS: &[Key] = &[
    key("listen", Some("FAASO_LISTEN")),
    key("metrics_listen", Some("FAASO_METRICS_LISTEN")),
    key("tls_listen", Some("FAASO_TLS_LISTEN")),
    key("admin_listen", Some("FAASO_ADMIN_LISTEN")),
    key("tls_certs", None),
    key("redirect_https", None),
    key("hsts_max_age", None),
    key("acme.domains", None),
    key("acme.directory", None),
    key("acme.email", None),
    key("acme.ca_cert", None),
    key("acme.renew_before", None),
    key("acme.funko_domains", None),
    key("network", Some("FAASO_NETWORK")),
    key("orchestrator", Some("FAASO_ORCHESTRATOR")),
    key("registry", Some("FAASO_REGISTRY")),
    key("docker_host", Some("DOCKER_HOST")),
    key("password", Some("FAASO_PASSWORD")),
    key("password_hash", Some("FAASO_PASSWORD_HASH")),
    key("secrets_dir", Some("FAASO_SECRETS_DIR")),
    key("state_dir", Some("FAASO_STATE_DIR")),
    key("threads", Some("FAASO_THREADS")),
    key("connect_timeout", None),
    key("read_timeout", None),
    key("write_timeout", None),
    key("idle_timeout", None),
    key("max_body_bytes", None),
    key("header_timeout", Some("FAASO_HEADER_TIMEOUT")),
    key("keepalive_timeout", Some("FAASO_KEEPALIVE_TIMEOUT")),
    key("send_timeout", Some("FAASO_SEND_TIMEOUT")),
    key("max_connections", Some("FAASO_MAX_CONNECTIONS")),
    key(
        "max_connections_per_ip",
        Some("FAASO_MAX_CONNECTIONS_PER_IP"),
    ),
    key("max_upload_bytes", None),
    key("max_concurrent_builds", None),
    key("keep_releases", Some("FAASO_KEEP_RELEASES")),
    key("health_interval", None),
    key("resync_interval", None),
    key("grace_period", None),
    key("cold_start_timeout", None),
    key("queue", Some("FAASO_QUEUE")),
    key("calls_retention", Some("FAASO_CALLS_RETENTION")),
    key("async_max_queued", Some("FAASO_ASYNC_MAX_QUEUED")),
    key("async_body_timeout", Some("FAASO_ASYNC_BODY_TIMEOUT")),
    key("callback_allow", Some("FAASO_CALLBACK_ALLOW")),
    key("autoscale_up_window", None),
    key("autoscale_down_window", None),
    key("metrics", Some("FAASO_METRICS")),
    key("access_log", Some("FAASO_ACCESS_LOG")),
    key("log_level", Some("FAASO_LOG")),
    key("trusted_proxies", Some("FAASO_TRUSTED_PROXIES")),
    key("upgrades", Some("FAASO_UPGRADES")),
    key("pid_file", None),
    key("upgrade_sock", None),
];

/// Keys that take a list: a YAML sequence, or comma-separated text (environment, flags).
const LIST_KEYS: &[&str] = &[
    "trusted_proxies",
    "acme.domains",
    "upgrades",
    "callback_allow",
];

/// Keys that group others: `acme: {domains: [...]}` is `acme.domains: [...]`.
const GROUP_KEYS: &[&str] = &["acme"];

const fn key(name: &'static str, env: Option<&'static str>) -> Key {
    Key { name, env }
}

impl Config {
    /// The built-in defaults. Directory defaults depend on `XDG_DATA_HOME`/`HOME`, read through
    /// `env` (see [`faaso::store::dirs`]).
    pub fn defaults(env: impl Fn(&str) -> Option<String>) -> Config {
        let data_dir = faaso::store::dirs::data_dir(env);
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8888)),
            metrics_listen: SocketAddr::from(([127, 0, 0, 1], 9091)),
            tls_listen: None,
            admin_listen: None,
            tls_certs: Vec::new(),
            redirect_https: false,
            hsts_max_age: None,
            acme: crate::tls::acme::AcmeConfig::default(),
            network: faaso::conventions::NETWORK.to_string(),
            orchestrator: faaso::engine::Orchestrator::Docker,
            registry: None,
            docker_host: None,
            password: None,
            password_hash: None,
            max_upload_bytes: 200 * 1024 * 1024,
            max_concurrent_builds: 2,
            keep_releases: faaso::engine::releases::DEFAULT_KEEP,
            secrets_dir: data_dir.join("secrets"),
            state_dir: data_dir.join("state"),
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            connect_timeout: Duration::from_secs(2),
            read_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(30),
            max_body_bytes: 10 * 1024 * 1024,
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_connections: None,
            max_connections_per_ip: 512,
            health_interval: Duration::from_secs(5),
            resync_interval: Duration::from_secs(10),
            grace_period: Duration::from_secs(10),
            cold_start_timeout: Duration::from_secs(30),
            queue: crate::calls::QueueConfig::Embedded,
            calls_retention: Duration::from_secs(24 * 3600),
            async_max_queued: 100_000,
            async_body_timeout: Duration::from_secs(60),
            callback_allow: Vec::new(),
            autoscale_up_window: Duration::from_secs(10),
            autoscale_down_window: Duration::from_secs(60),
            metrics: true,
            access_log: true,
            log_level: "info".to_string(),
            trusted_proxies: Vec::new(),
            upgrades: vec!["websocket".to_string()],
            pid_file: PathBuf::from("/tmp/faaso-gateway.pid"),
            upgrade_sock: PathBuf::from("/tmp/faaso-gateway-upgrade.sock"),
        }
    }

    /// Reads and applies a YAML config file.
    pub fn load(&mut self, path: &Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        self.apply_yaml(&text, Source::File(path.to_path_buf()))
    }

    /// Applies YAML text: a mapping of keys to scalar values (an empty document changes nothing).
    pub fn apply_yaml(&mut self, text: &str, source: Source) -> Result<(), ConfigError> {
        let value: serde_yaml::Value =
            serde_yaml::from_str(text).map_err(|err| ConfigError::Yaml {
                origin: source.clone(),
                message: err.to_string(),
            })?;
        let mapping = match value {
            serde_yaml::Value::Null => return Ok(()),
            serde_yaml::Value::Mapping(mapping) => mapping,
            _ => {
                return Err(ConfigError::Yaml {
                    origin: source,
                    message: "the top level must be a mapping of keys to values".to_string(),
                });
            }
        };
        let mut entries: Vec<(String, serde_yaml::Value)> = Vec::with_capacity(mapping.len());
        for (key, value) in mapping {
            let Some(key) = key.as_str() else {
                return Err(ConfigError::Yaml {
                    origin: source,
                    message: format!("key {key:?} is not a string"),
                });
            };
            match value {
                serde_yaml::Value::Mapping(group) if GROUP_KEYS.contains(&key) => {
                    for (sub, value) in group {
                        let Some(sub) = sub.as_str() else {
                            return Err(ConfigError::Yaml {
                                origin: source,
                                message: format!("key {key}.{sub:?} is not a string"),
                            });
                        };
                        entries.push((format!("{key}.{sub}"), value));
                    }
                }
                value => entries.push((key.to_string(), value)),
            }
        }
        for (key, value) in entries {
            let key = key.as_str();
            if key == "tls_certs" {
                self.tls_certs =
                    yaml_cert_files(value).map_err(|message| ConfigError::BadValue {
                        origin: source.clone(),
                        key: key.to_string(),
                        message,
                    })?;
                continue;
            }
            let text = match value {
                serde_yaml::Value::String(s) => s,
                serde_yaml::Value::Number(n) => n.to_string(),
                serde_yaml::Value::Bool(b) => b.to_string(),
                serde_yaml::Value::Null => continue,
                serde_yaml::Value::Sequence(items) if LIST_KEYS.contains(&key) => {
                    let mut parts = Vec::with_capacity(items.len());
                    for item in items {
                        match item {
                            serde_yaml::Value::String(s) => parts.push(s),
                            serde_yaml::Value::Number(n) => parts.push(n.to_string()),
                            _ => {
                                return Err(ConfigError::BadValue {
                                    origin: source,
                                    key: key.to_string(),
                                    message: "expected a list of values".to_string(),
                                });
                            }
                        }
                    }
                    parts.join(",")
                }
                _ => {
                    return Err(ConfigError::BadValue {
                        origin: source,
                        key: key.to_string(),
                        message: "expected a single value, not a list or mapping".to_string(),
                    });
                }
            };
            self.set(key, &text, &source)?;
        }
        Ok(())
    }

    /// Applies every environment variable of [`KEYS`] that `env` finds (empty ones are ignored).
    pub fn apply_env(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        for key in KEYS {
            let Some(var) = key.env else { continue };
            if let Some(value) = env(var).filter(|v| !v.is_empty()) {
                self.set(key.name, &value, &Source::Env(var))?;
            }
        }
        Ok(())
    }

    /// Every key with its value as text, for the web UI's system page. The password and its
    /// hash show only whether they are set.
    pub fn shown(&self) -> Vec<(&'static str, String)> {
        let path = |p: &Path| p.display().to_string();
        let secret = |set: bool| if set { "(set)" } else { "(not set)" }.to_string();
        KEYS.iter()
            .map(|key| {
                let value = match key.name {
                    "listen" => self.listen.to_string(),
                    "metrics_listen" => self.metrics_listen.to_string(),
                    "tls_listen" => self
                        .tls_listen
                        .map_or_else(|| "(off)".to_string(), |a| a.to_string()),
                    "admin_listen" => self
                        .admin_listen
                        .map_or_else(|| "(on listen)".to_string(), |a| a.to_string()),
                    "tls_certs" => self
                        .tls_certs
                        .iter()
                        .map(|f| format!("{} + {}", f.cert.display(), f.key.display()))
                        .collect::<Vec<_>>()
                        .join(", "),
                    "redirect_https" => self.redirect_https.to_string(),
                    "hsts_max_age" => self
                        .hsts_max_age
                        .map_or_else(|| "(off)".to_string(), |d| format!("{d:?}")),
                    "acme.domains" => self.acme.domains.join(", "),
                    "acme.directory" => self.acme.directory.clone(),
                    "acme.email" => self.acme.email.clone().unwrap_or_default(),
                    "acme.ca_cert" => self
                        .acme
                        .ca_cert
                        .as_deref()
                        .map_or_else(|| "(the system's roots)".to_string(), path),
                    "acme.renew_before" => format!("{:?}", self.acme.renew_before),
                    "acme.funko_domains" => self.acme.funko_domains.to_string(),
                    "network" => self.network.clone(),
                    "orchestrator" => self.orchestrator.as_str().to_string(),
                    "registry" => self
                        .registry
                        .clone()
                        .unwrap_or_else(|| "(none: images stay on this node)".to_string()),
                    "docker_host" => self
                        .docker_host
                        .clone()
                        .unwrap_or_else(|| "(DOCKER_HOST or the local socket)".to_string()),
                    "password" => secret(self.password.is_some()),
                    "password_hash" => secret(self.password_hash.is_some()),
                    "secrets_dir" => path(&self.secrets_dir),
                    "state_dir" => path(&self.state_dir),
                    "threads" => self.threads.to_string(),
                    "connect_timeout" => format!("{:?}", self.connect_timeout),
                    "read_timeout" => format!("{:?}", self.read_timeout),
                    "write_timeout" => format!("{:?}", self.write_timeout),
                    "idle_timeout" => format!("{:?}", self.idle_timeout),
                    "max_body_bytes" => self.max_body_bytes.to_string(),
                    "header_timeout" => format!("{:?}", self.header_timeout),
                    "keepalive_timeout" => format!("{:?}", self.keepalive_timeout),
                    "send_timeout" => format!("{:?}", self.send_timeout),
                    "max_connections" => self.max_connections.map_or_else(
                        || "(from the file descriptor limit)".to_string(),
                        |n| n.to_string(),
                    ),
                    "max_connections_per_ip" => match self.max_connections_per_ip {
                        0 => "(no cap)".to_string(),
                        n => n.to_string(),
                    },
                    "max_upload_bytes" => self.max_upload_bytes.to_string(),
                    "max_concurrent_builds" => self.max_concurrent_builds.to_string(),
                    "keep_releases" => self.keep_releases.to_string(),
                    "health_interval" => format!("{:?}", self.health_interval),
                    "resync_interval" => format!("{:?}", self.resync_interval),
                    "grace_period" => format!("{:?}", self.grace_period),
                    "cold_start_timeout" => format!("{:?}", self.cold_start_timeout),
                    "queue" => self.queue.to_string(),
                    "calls_retention" => format!("{:?}", self.calls_retention),
                    "async_max_queued" => self.async_max_queued.to_string(),
                    "async_body_timeout" => format!("{:?}", self.async_body_timeout),
                    "callback_allow" => self
                        .callback_allow
                        .iter()
                        .map(|net| net.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    "autoscale_up_window" => format!("{:?}", self.autoscale_up_window),
                    "autoscale_down_window" => format!("{:?}", self.autoscale_down_window),
                    "metrics" => self.metrics.to_string(),
                    "access_log" => self.access_log.to_string(),
                    "log_level" => self.log_level.clone(),
                    "trusted_proxies" => self
                        .trusted_proxies
                        .iter()
                        .map(|net| net.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    "upgrades" => self.upgrades.join(", "),
                    "pid_file" => path(&self.pid_file),
                    "upgrade_sock" => path(&self.upgrade_sock),
                    _ => String::new(),
                };
                (key.name, value)
            })
            .collect()
    }

    /// Sets one key from its text form.
    pub fn set(&mut self, key: &str, value: &str, source: &Source) -> Result<(), ConfigError> {
        let bad = |message: String| ConfigError::BadValue {
            origin: source.clone(),
            key: key.to_string(),
            message,
        };
        match key {
            "listen" => self.listen = parse_addr(value).map_err(bad)?,
            "metrics_listen" => self.metrics_listen = parse_addr(value).map_err(bad)?,
            "tls_listen" => self.tls_listen = Some(parse_addr(value).map_err(bad)?),
            "admin_listen" => self.admin_listen = Some(parse_addr(value).map_err(bad)?),
            "tls_certs" => self.tls_certs = text_cert_files(value).map_err(bad)?,
            "redirect_https" => self.redirect_https = parse_bool(value).map_err(bad)?,
            "hsts_max_age" => {
                let age = parse_duration(value).map_err(bad)?;
                self.hsts_max_age = (!age.is_zero()).then_some(age);
            }
            "acme.domains" => {
                self.acme.domains = value
                    .split(',')
                    .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
                    .filter(|d| !d.is_empty())
                    .map(|d| check_domain(&d).map(|()| d))
                    .collect::<Result<_, _>>()
                    .map_err(bad)?;
            }
            "acme.directory" => {
                let url = value.trim();
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(bad(format!(
                        "expected an http(s):// directory URL, got {value:?}"
                    )));
                }
                self.acme.directory = url.to_string();
            }
            "acme.email" => {
                let email = value.trim();
                if !email.contains('@') || email.contains(char::is_whitespace) {
                    return Err(bad(format!("expected an email address, got {value:?}")));
                }
                self.acme.email = Some(email.to_string());
            }
            "acme.ca_cert" => self.acme.ca_cert = Some(parse_dir(value).map_err(bad)?),
            "acme.renew_before" => self.acme.renew_before = parse_duration(value).map_err(bad)?,
            "acme.funko_domains" => self.acme.funko_domains = parse_bool(value).map_err(bad)?,
            "orchestrator" => self.orchestrator = value.parse().map_err(bad)?,
            "registry" => {
                let registry = value.trim().trim_end_matches('/');
                if registry.is_empty()
                    || registry.contains(char::is_whitespace)
                    || registry.contains("://")
                {
                    return Err(bad(format!(
                        "invalid registry {value:?}: give host[:port][/path], without a scheme"
                    )));
                }
                self.registry = Some(registry.to_string());
            }
            "network" => {
                if value.is_empty() || value.contains(char::is_whitespace) {
                    return Err(bad(format!("invalid network name {value:?}")));
                }
                self.network = value.to_string();
            }
            "docker_host" => self.docker_host = Some(value.to_string()),
            "password" => self.password = Some(value.to_string()),
            "password_hash" => {
                if argon2::PasswordHash::new(value).is_err() {
                    return Err(bad(
                        "expected an argon2 hash like $argon2id$v=19$...; make one with `faaso-gateway --hash-password`".to_string(),
                    ));
                }
                self.password_hash = Some(value.to_string());
            }
            "max_upload_bytes" => self.max_upload_bytes = parse_bytes(value).map_err(bad)?,
            "keep_releases" => {
                self.keep_releases = match value.parse::<usize>() {
                    Ok(n) if n >= 1 => n,
                    _ => return Err(bad(format!("expected 1 or more releases, got {value:?}"))),
                }
            }
            "max_concurrent_builds" => {
                self.max_concurrent_builds = match value.parse::<usize>() {
                    Ok(n) if (1..=64).contains(&n) => n,
                    _ => return Err(bad(format!("expected 1 to 64 builds, got {value:?}"))),
                }
            }
            "secrets_dir" => self.secrets_dir = parse_dir(value).map_err(bad)?,
            "state_dir" => self.state_dir = parse_dir(value).map_err(bad)?,
            "pid_file" => self.pid_file = parse_dir(value).map_err(bad)?,
            "upgrade_sock" => self.upgrade_sock = parse_dir(value).map_err(bad)?,
            "threads" => {
                self.threads = match value.parse::<usize>() {
                    Ok(n) if (1..=1024).contains(&n) => n,
                    _ => return Err(bad(format!("expected 1 to 1024 threads, got {value:?}"))),
                }
            }
            "connect_timeout" => self.connect_timeout = parse_duration(value).map_err(bad)?,
            "read_timeout" => self.read_timeout = parse_duration(value).map_err(bad)?,
            "write_timeout" => self.write_timeout = parse_duration(value).map_err(bad)?,
            "idle_timeout" => self.idle_timeout = parse_duration(value).map_err(bad)?,
            "health_interval" => self.health_interval = parse_duration(value).map_err(bad)?,
            "resync_interval" => self.resync_interval = parse_duration(value).map_err(bad)?,
            "grace_period" => self.grace_period = parse_duration(value).map_err(bad)?,
            "cold_start_timeout" => self.cold_start_timeout = parse_duration(value).map_err(bad)?,
            "queue" => self.queue = value.parse().map_err(bad)?,
            "calls_retention" => self.calls_retention = parse_duration(value).map_err(bad)?,
            "async_body_timeout" => self.async_body_timeout = parse_duration(value).map_err(bad)?,
            "async_max_queued" => {
                self.async_max_queued = match value.parse::<usize>() {
                    Ok(n) if n >= 1 => n,
                    _ => {
                        return Err(bad(format!(
                            "expected a whole number from 1, got {value:?}"
                        )));
                    }
                }
            }
            "autoscale_up_window" => {
                self.autoscale_up_window = parse_duration(value).map_err(bad)?
            }
            "autoscale_down_window" => {
                self.autoscale_down_window = parse_duration(value).map_err(bad)?
            }
            "max_body_bytes" => self.max_body_bytes = parse_bytes(value).map_err(bad)?,
            "header_timeout" => self.header_timeout = parse_duration(value).map_err(bad)?,
            "keepalive_timeout" => self.keepalive_timeout = parse_duration(value).map_err(bad)?,
            "send_timeout" => self.send_timeout = parse_duration(value).map_err(bad)?,
            "max_connections" => {
                self.max_connections = match value.trim() {
                    "auto" => None,
                    text => match text.parse::<usize>() {
                        Ok(n) if n >= 1 => Some(n),
                        _ => {
                            return Err(bad(format!(
                                "expected a number of connections (1 or more) or auto, got {value:?}"
                            )));
                        }
                    },
                }
            }
            "max_connections_per_ip" => {
                self.max_connections_per_ip = value.trim().parse::<u32>().map_err(|_| {
                    bad(format!(
                        "expected a number of connections (0 for no cap), got {value:?}"
                    ))
                })?
            }
            "access_log" => self.access_log = parse_bool(value).map_err(bad)?,
            "callback_allow" => {
                self.callback_allow = value
                    .split(',')
                    .filter(|part| !part.trim().is_empty())
                    .map(crate::http::client_ip::parse_trusted)
                    .collect::<Result<_, _>>()
                    .map_err(bad)?;
            }
            "trusted_proxies" => {
                self.trusted_proxies = value
                    .split(',')
                    .filter(|part| !part.trim().is_empty())
                    .map(crate::http::client_ip::parse_trusted)
                    .collect::<Result<_, _>>()
                    .map_err(bad)?;
            }
            "upgrades" => {
                let mut upgrades = Vec::new();
                for protocol in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let valid = protocol
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
                    if !valid {
                        return Err(bad(format!(
                            "expected protocol names such as websocket, got {protocol:?}"
                        )));
                    }
                    upgrades.push(protocol.to_ascii_lowercase());
                }
                self.upgrades = upgrades;
            }
            "metrics" => self.metrics = parse_bool(value).map_err(bad)?,
            "log_level" => {
                let value = value.trim();
                if value.is_empty() || tracing_subscriber::EnvFilter::try_new(value).is_err() {
                    return Err(bad(format!(
                        "expected a level (error, warn, info, debug, trace) or tracing \
                         directives, got {value:?}"
                    )));
                }
                self.log_level = value.to_string();
            }
            _ => {
                return Err(ConfigError::UnknownKey {
                    origin: source.clone(),
                    key: key.to_string(),
                });
            }
        }
        if key.starts_with("acme.") {
            // Any acme.* key given (and accepted) turns ACME on.
            self.acme.enabled = true;
        }
        Ok(())
    }

    /// Checks rules that involve the whole configuration.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let zero = |key: &str| ConfigError::Invalid {
            key: key.to_string(),
            message: "must be greater than zero".to_string(),
        };
        for (key, value) in [
            ("connect_timeout", self.connect_timeout),
            ("read_timeout", self.read_timeout),
            ("write_timeout", self.write_timeout),
            ("health_interval", self.health_interval),
            ("resync_interval", self.resync_interval),
            ("cold_start_timeout", self.cold_start_timeout),
            ("calls_retention", self.calls_retention),
            ("async_body_timeout", self.async_body_timeout),
            ("header_timeout", self.header_timeout),
            ("keepalive_timeout", self.keepalive_timeout),
            ("send_timeout", self.send_timeout),
            ("autoscale_up_window", self.autoscale_up_window),
            ("autoscale_down_window", self.autoscale_down_window),
        ] {
            if value.is_zero() {
                return Err(zero(key));
            }
        }
        if self.listen.port() == 0 {
            // Every worker binds the address: port 0 would give each a different port.
            return Err(ConfigError::Invalid {
                key: "listen".to_string(),
                message: "needs a port (0 would give every worker a different one)".to_string(),
            });
        }
        if let Some(admin) = self.admin_listen {
            let invalid = |message: String| ConfigError::Invalid {
                key: "admin_listen".to_string(),
                message,
            };
            if admin.port() == 0 {
                return Err(invalid("needs a port".to_string()));
            }
            let clash = |other: SocketAddr| {
                admin.port() == other.port()
                    && (admin.ip() == other.ip()
                        || admin.ip().is_unspecified()
                        || other.ip().is_unspecified())
            };
            let taken = clash(self.listen)
                || self.tls_listen.is_some_and(clash)
                || (self.metrics && clash(self.metrics_listen));
            if taken {
                return Err(invalid(
                    "must differ from listen, tls_listen and metrics_listen".to_string(),
                ));
            }
        }
        if let Some(tls) = self.tls_listen {
            let invalid = |message: String| ConfigError::Invalid {
                key: "tls_listen".to_string(),
                message,
            };
            if tls.port() == 0 {
                return Err(invalid(
                    "needs a port (0 would give every worker a different one)".to_string(),
                ));
            }
            // Same port on the same address, or on every address (0.0.0.0, ::): one socket.
            let clash = |other: SocketAddr| {
                tls.port() == other.port()
                    && (tls.ip() == other.ip()
                        || tls.ip().is_unspecified()
                        || other.ip().is_unspecified())
            };
            if clash(self.listen) || (self.metrics && clash(self.metrics_listen)) {
                return Err(invalid(format!(
                    "must differ from listen ({}) and metrics_listen ({})",
                    self.listen, self.metrics_listen
                )));
            }
            if self.tls_certs.is_empty() && !self.acme.enabled {
                return Err(invalid(
                    "needs certificates: list them in tls_certs, or set acme (acme.domains, \
                     or acme.funko_domains for the funkos' domains)"
                        .to_string(),
                ));
            }
        } else {
            for (key, set) in [
                ("tls_certs", !self.tls_certs.is_empty()),
                ("acme.domains", !self.acme.domains.is_empty()),
                ("acme", self.acme.enabled),
                ("redirect_https", self.redirect_https),
                ("hsts_max_age", self.hsts_max_age.is_some()),
            ] {
                if set {
                    return Err(ConfigError::Invalid {
                        key: key.to_string(),
                        message: "needs tls_listen (the HTTPS listener)".to_string(),
                    });
                }
            }
        }
        if self.acme.renew_before.is_zero() {
            return Err(zero("acme.renew_before"));
        }
        if self.metrics && self.listen == self.metrics_listen {
            return Err(ConfigError::Invalid {
                key: "metrics_listen".to_string(),
                message: format!("must differ from listen ({})", self.listen),
            });
        }
        Ok(self)
    }
}

fn parse_addr(value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| format!("expected an address like 0.0.0.0:8888, got {value:?}"))
}

/// `tls_certs` in YAML: a list of `{cert: path, key: path}`.
fn yaml_cert_files(value: serde_yaml::Value) -> Result<Vec<crate::tls::certs::CertFiles>, String> {
    let expected = "expected a list of {cert: path, key: path}";
    let items = match value {
        serde_yaml::Value::Null => return Ok(Vec::new()),
        serde_yaml::Value::Sequence(items) => items,
        _ => return Err(expected.to_string()),
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            let field = |name: &str| match item.get(name) {
                Some(serde_yaml::Value::String(path)) if !path.is_empty() => {
                    Ok(PathBuf::from(path))
                }
                _ => Err(format!("entry {}: {expected} (no `{name}`)", i + 1)),
            };
            if let Some(map) = item.as_mapping()
                && let Some(other) = map
                    .keys()
                    .filter_map(|k| k.as_str())
                    .find(|k| !["cert", "key"].contains(k))
            {
                return Err(format!(
                    "entry {}: unknown field `{other}` ({expected})",
                    i + 1
                ));
            }
            Ok(crate::tls::certs::CertFiles {
                cert: field("cert")?,
                key: field("key")?,
            })
        })
        .collect()
}

/// `tls_certs` as text (a flag or variable): `cert.pem:key.pem[,cert.pem:key.pem...]`.
fn text_cert_files(value: &str) -> Result<Vec<crate::tls::certs::CertFiles>, String> {
    value
        .split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| match part.trim().split_once(':') {
            Some((cert, key)) if !cert.is_empty() && !key.is_empty() => {
                Ok(crate::tls::certs::CertFiles {
                    cert: PathBuf::from(cert),
                    key: PathBuf::from(key),
                })
            }
            _ => Err(format!("expected cert.pem:key.pem, got {part:?}")),
        })
        .collect()
}

/// An ACME name: a DNS host name (HTTP-01 cannot prove a wildcard).
fn check_domain(domain: &str) -> Result<(), String> {
    if domain.starts_with("*.") {
        return Err(format!(
            "{domain:?}: a wildcard needs a DNS-01 challenge; ACME here uses HTTP-01, so list \
             each name (or put a wildcard certificate in tls_certs)"
        ));
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if domain.len() > 253
        || !domain.split('.').all(label_ok)
        || domain.parse::<std::net::IpAddr>().is_ok()
    {
        return Err(format!("{domain:?} is not a DNS host name"));
    }
    Ok(())
}

fn parse_dir(value: &str) -> Result<PathBuf, String> {
    if value.is_empty() {
        return Err("expected a path, got an empty value".to_string());
    }
    Ok(PathBuf::from(value))
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Ok(true),
        "false" | "no" | "off" | "0" => Ok(false),
        _ => Err(format!("expected true or false, got {value:?}")),
    }
}

pub use faaso::units::{parse_bytes, parse_duration};

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// The README's configuration table names every key, with its environment variable, in
    /// the order of [`KEYS`] or not: the same set either way, and nothing more.
    #[test]
    fn the_readme_config_table_lists_every_key_with_its_variable() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
            .expect("read the README");
        let table = readme
            .split("| key | env | flag | default | meaning |")
            .nth(1)
            .expect("the README has the configuration table");
        let mut documented: Vec<(String, Option<String>)> = Vec::new();
        for line in table.lines().skip(2) {
            if !line.starts_with("| `") {
                break;
            }
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            let unquote = |cell: &str| cell.trim_matches('`').to_string();
            let env = Some(unquote(cells[2])).filter(|env| !env.is_empty());
            documented.push((unquote(cells[1]), env));
        }
        let mut known: Vec<(String, Option<String>)> = KEYS
            .iter()
            .map(|k| (k.name.to_string(), k.env.map(str::to_string)))
            .collect();
        documented.sort();
        known.sort();
        assert_eq!(
            documented, known,
            "README table (left) against config::KEYS (right)"
        );
    }

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn file() -> Source {
        Source::File(PathBuf::from("faaso.yml"))
    }

    #[test]
    fn tls_and_acme_keys_from_yaml_and_their_rules() {
        let mut config = Config::defaults(no_env);
        config
            .apply_yaml(
                "tls_listen: 127.0.0.1:8443\ntls_certs:\n  - {cert: /c/a.crt, key: /c/a.key}\n\
                 redirect_https: true\nhsts_max_age: 365d\n\
                 acme:\n  domains: [Example.COM., api.example.com]\n  email: ops@example.com\n  \
                 renew_before: 10d\n",
                file(),
            )
            .unwrap();
        let config = config.validate().unwrap();
        assert_eq!(config.tls_listen.unwrap().to_string(), "127.0.0.1:8443");
        assert_eq!(config.tls_certs[0].cert, PathBuf::from("/c/a.crt"));
        assert_eq!(config.tls_certs[0].key, PathBuf::from("/c/a.key"));
        assert!(config.redirect_https);
        assert_eq!(config.hsts_max_age, Some(Duration::from_secs(365 * 86_400)));
        assert_eq!(config.acme.domains, ["example.com", "api.example.com"]);
        assert_eq!(config.acme.email.as_deref(), Some("ops@example.com"));
        assert_eq!(config.acme.renew_before, Duration::from_secs(10 * 86_400));
        assert_eq!(config.acme.directory, crate::tls::acme::LETS_ENCRYPT);

        let refused = |yaml: &str| {
            let mut config = Config::defaults(no_env);
            match config.apply_yaml(yaml, file()) {
                Err(err) => err.to_string(),
                Ok(()) => config.validate().unwrap_err().to_string(),
            }
        };
        let err = refused("tls_listen: 127.0.0.1:8443\n");
        assert!(
            err.contains("tls_listen") && err.contains("tls_certs"),
            "{err}"
        );
        let err = refused("redirect_https: true\n");
        assert!(
            err.contains("redirect_https") && err.contains("needs tls_listen"),
            "{err}"
        );
        let err = refused("tls_listen: 127.0.0.1:8888\nacme:\n  domains: [a.test]\n");
        assert!(err.contains("must differ from listen"), "{err}");
        let err = refused("admin_listen: 0.0.0.0:8888\n");
        assert!(
            err.contains("admin_listen") && err.contains("must differ from listen"),
            "{err}"
        );
        let err = refused("admin_listen: 127.0.0.1:9091\n");
        assert!(err.contains("admin_listen"), "{err}");
        let err = refused("tls_certs:\n  - {cert: a.crt}\n");
        assert!(
            err.contains("tls_certs") && err.contains("no `key`"),
            "{err}"
        );
        let err = refused("tls_certs:\n  - {cert: a.crt, key: a.key, chain: b}\n");
        assert!(err.contains("unknown field `chain`"), "{err}");
        let err = refused("acme:\n  domains: ['*.example.com']\n");
        assert!(
            err.contains("acme.domains") && err.contains("DNS-01"),
            "{err}"
        );
        let err = refused("acme:\n  domains: [exa mple.com]\n");
        assert!(err.contains("not a DNS host name"), "{err}");
        let err = refused("acme:\n  directory: ftp://x\n");
        assert!(err.contains("acme.directory"), "{err}");
        let err = refused("acme:\n  colour: blue\n");
        assert!(err.contains("unknown key `acme.colour`"), "{err}");
        // The text form of tls_certs, for a flag or variable.
        let mut config = Config::defaults(no_env);
        config
            .set("tls_certs", "/a.crt:/a.key,/b.crt:/b.key", &Source::Flag)
            .unwrap();
        assert_eq!(config.tls_certs.len(), 2);
        assert!(config.set("tls_certs", "/a.crt", &Source::Flag).is_err());
    }

    #[test]
    fn defaults_follow_the_spec() {
        let config = Config::defaults(|k| (k == "HOME").then(|| "/home/u".to_string()));
        assert_eq!(config.listen.to_string(), "0.0.0.0:8888");
        assert_eq!(config.metrics_listen.to_string(), "127.0.0.1:9091");
        assert_eq!(config.network, "faaso-net");
        assert_eq!(config.orchestrator, faaso::engine::Orchestrator::Docker);
        assert_eq!(config.connect_timeout, Duration::from_secs(2));
        assert_eq!(config.idle_timeout, Duration::from_secs(30));
        assert_eq!(config.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(config.health_interval, Duration::from_secs(5));
        assert_eq!(config.password, None);
        assert_eq!(config.max_upload_bytes, 200 << 20);
        assert!(config.access_log);
        assert_eq!(config.log_level, "info");
        assert_eq!(
            config.secrets_dir,
            PathBuf::from("/home/u/.local/share/faaso/secrets")
        );
        config.validate().unwrap();
    }

    #[test]
    fn yaml_then_env_override_in_order() {
        let mut config = Config::defaults(no_env);
        config
            .apply_yaml(
                "listen: 127.0.0.1:9000\nconnect_timeout: 500ms\nmax_body_bytes: 1MiB\nthreads: 3\n",
                file(),
            )
            .unwrap();
        let env: HashMap<&str, &str> = [("FAASO_LISTEN", "127.0.0.1:9001")].into();
        config
            .apply_env(|k| env.get(k).map(|v| v.to_string()))
            .unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9001");
        assert_eq!(config.connect_timeout, Duration::from_millis(500));
        assert_eq!(config.max_body_bytes, 1 << 20);
        assert_eq!(config.threads, 3);
        let err = config
            .apply_yaml("password_hash: plain\n", file())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("key `password_hash`: expected an argon2 hash"),
            "{err}"
        );
        config.apply_yaml("orchestrator: swarm\n", file()).unwrap();
        assert_eq!(config.orchestrator, faaso::engine::Orchestrator::Swarm);
        let err = config
            .apply_yaml("orchestrator: nomad\n", file())
            .unwrap_err();
        assert!(err.to_string().contains("orchestrator"), "{err}");
        config.apply_yaml("access_log: false\n", file()).unwrap();
        assert!(!config.access_log);
        assert!(config.apply_yaml("access_log: maybe\n", file()).is_err());
        config
            .apply_yaml("log_level: info,faaso::access=off\n", file())
            .unwrap();
        assert!(config.apply_yaml("log_level: \"=[\"\n", file()).is_err());
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let mut config = Config::defaults(no_env);
        let err = config.apply_yaml("listn: 1\n", file()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("faaso.yml: unknown key `listn`"),
            "{err}"
        );
        let err = config
            .apply_yaml("read_timeout: soon\n", file())
            .unwrap_err();
        assert!(err.to_string().contains("key `read_timeout`"), "{err}");
        let err = config
            .apply_env(|k| (k == "FAASO_THREADS").then(|| "many".to_string()))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("environment variable FAASO_THREADS: key `threads`"),
            "{err}"
        );
        let err = config.apply_yaml("listen: [1]\n", file()).unwrap_err();
        assert!(err.to_string().contains("key `listen`"), "{err}");
        let err = config.apply_yaml("- a\n", file()).unwrap_err();
        assert!(err.to_string().contains("mapping"), "{err}");
        let err = config.apply_yaml("a: [\n", file()).unwrap_err();
        assert!(err.to_string().contains("invalid YAML"), "{err}");
    }

    #[test]
    fn trusted_proxies_from_a_list_or_text() {
        let mut config = Config::defaults(no_env);
        config
            .apply_yaml("trusted_proxies: [10.0.0.0/8, 192.168.1.1]\n", file())
            .unwrap();
        assert_eq!(config.trusted_proxies.len(), 2);
        config
            .set("trusted_proxies", "::1, 172.16.0.0/12", &Source::Flag)
            .unwrap();
        assert_eq!(config.trusted_proxies.len(), 2);
        let err = config
            .apply_yaml("trusted_proxies: [not-an-address]\n", file())
            .unwrap_err();
        assert!(err.to_string().contains("trusted_proxies"), "{err}");
        let err = config.apply_yaml("listen: [1, 2]\n", file()).unwrap_err();
        assert!(err.to_string().contains("not a list"), "{err}");
    }

    #[test]
    fn validate_refuses_port_zero() {
        let mut config = Config::defaults(no_env);
        config.listen = "127.0.0.1:0".parse().unwrap();
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("listen"), "{err}");
    }

    #[test]
    fn validate_refuses_zero_timeouts_and_shared_listeners() {
        let mut config = Config::defaults(no_env);
        config.connect_timeout = Duration::ZERO;
        let err = config.validate().unwrap_err();
        assert!(err.to_string().contains("connect_timeout"), "{err}");
        let mut config = Config::defaults(no_env);
        config.metrics_listen = config.listen;
        assert!(config.validate().is_err());
    }

    #[test]
    fn durations_and_sizes_parse() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("2 days").is_err());
        assert!(parse_duration("-1s").is_err());
        assert_eq!(parse_bytes("10MiB"), Ok(10 << 20));
        assert_eq!(parse_bytes("512k"), Ok(512 << 10));
        assert_eq!(parse_bytes("42"), Ok(42));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("99999999999999999999G").is_err());
    }

    #[test]
    fn sample_config_parses_and_validates() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../conf/faaso.yml");
        let mut config = Config::defaults(no_env);
        config.load(&path).unwrap();
        config.validate().unwrap();
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    fn scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,20}",
            "[0-9]{1,6}(ms|s|m|h|KiB|MiB)?",
            "(true|false|yes|no|on|off)",
            "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}:[0-9]{1,5}",
        ]
    }

    proptest! {
        /// Any mapping of known keys to scalars is applied or refused with a message that
        /// names the key; nothing panics, and a refused value changes nothing.
        #[test]
        fn any_values_are_applied_or_refused_by_key(
            entries in proptest::collection::vec((0..KEYS.len(), scalar()), 1..6)
        ) {
            for (index, value) in entries {
                let key = KEYS[index].name;
                let mut config = Config::defaults(|_| None);
                let before = config.clone();
                let mut mapping = serde_yaml::Mapping::new();
                mapping.insert(key.into(), value.clone().into());
                let yaml = serde_yaml::to_string(&mapping).unwrap();
                match config.apply_yaml(&yaml, Source::Flag) {
                    Ok(()) => {}
                    Err(err) => {
                        let text = err.to_string();
                        prop_assert!(text.contains(key), "{} does not name {}", text, key);
                        prop_assert_eq!(&config, &before);
                    }
                }
            }
        }

        /// Unknown keys are always refused by name.
        #[test]
        fn unknown_keys_are_refused(key in "[a-z_]{1,20}") {
            prop_assume!(!KEYS.iter().any(|k| k.name == key));
            let mut config = Config::defaults(|_| None);
            let err = config.apply_yaml(&format!("{key}: 1\n"), Source::Flag).unwrap_err();
            prop_assert!(err.to_string().contains(&key));
        }
    }
}
