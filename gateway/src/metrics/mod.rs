//! Prometheus metrics, in the process's default registry (one registry with anything Pingora
//! or a library registers), served as text at `metrics_listen` under `/metrics`.
//!
//! The request path never formats label strings: each funko's metric handles are resolved once
//! into a [`FunkoMetrics`] kept with the routing snapshot (and carried over on rebuilds), and
//! per-status counters are resolved on first use and cached. Requests to unknown funkos count
//! under `funko="_unknown"`, so a scan of random names cannot blow up label cardinality.
//!
//! - [`tally`]: client connections by state, for `faaso_client_connections`.
//! - [`calls`]: async calls, callbacks and cron ticks.

pub mod calls;
pub mod tally;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use async_trait::async_trait;
use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::protocols::http::ServerSession;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, TextEncoder,
};

use crate::Routes;
use crate::routing::table::RouteTable;

/// The label value for requests to funkos that do not exist.
pub const UNKNOWN_FUNKO: &str = "_unknown";

/// Latency buckets (seconds): from sub-millisecond proxying to minute-long requests.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Cold start buckets (seconds): from a static executable's tens of milliseconds to a slow
/// runtime's half minute.
const COLD_START_BUCKETS: &[f64] = &[0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0];

/// Every metric family the gateway exports.
pub struct Metrics {
    pub requests: IntCounterVec,
    /// The requests of funkos in a canary, with their release; shown at `/metrics` as
    /// `faaso_http_requests_total` series with a `release` label ([`merge_releases`]).
    pub requests_release: IntCounterVec,
    pub duration: HistogramVec,
    pub in_flight: IntGaugeVec,
    pub connect_errors: IntCounterVec,
    pub upstream_requests: IntCounterVec,
    pub retries: IntCounterVec,
    pub instances: IntGaugeVec,
    pub discovery_events: IntCounterVec,
    pub resyncs: IntCounter,
    pub build_info: IntGaugeVec,
    pub queue_depth: IntGaugeVec,
    pub queue_rejections: IntCounterVec,
    pub rate_limited: IntCounterVec,
    pub cold_starts: IntCounterVec,
    pub cold_start_duration: HistogramVec,
    pub autoscale_events: IntCounterVec,
    pub tls_expiry: IntGaugeVec,
    pub client_connections: IntGaugeVec,
    pub connections_refused: IntCounterVec,
    pub async_calls: IntCounterVec,
    pub async_queue_depth: IntGaugeVec,
    pub async_attempts: IntCounterVec,
    pub callbacks: IntCounterVec,
    pub cron_ticks: IntCounterVec,
    /// Funkos that have `faaso_funko_instances` series, to remove those that disappear.
    instance_series: Mutex<HashSet<String>>,
}

/// Whether metrics are collected (`metrics: true`); set once at start.
static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns metric collection on (the gateway does when `metrics` is true) and registers them.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
    metrics();
}

/// The metrics when they are collected; `None` with `metrics: false` (then nothing is done).
pub fn if_enabled() -> Option<&'static Metrics> {
    ENABLED.load(Ordering::Relaxed).then(metrics)
}

/// The metrics, registered in the default registry on first use.
pub fn metrics() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(|| {
        let registry = prometheus::default_registry();
        let metrics = Metrics::new();
        for collector in metrics.collectors() {
            // Registering can only fail for a duplicate name, which would be a bug here.
            if let Err(err) = registry.register(collector) {
                tracing::error!(error = %err, "cannot register a metric");
            }
        }
        metrics
            .build_info
            .with_label_values(&[faaso::VERSION])
            .set(1);
        metrics
    })
}

fn counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric definition")
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric definition")
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            requests: counter_vec(
                "faaso_http_requests_total",
                "Requests to funkos, by funko and status code.",
                &["funko", "code"],
            ),
            requests_release: counter_vec(
                RELEASE_FAMILY,
                "Requests to funkos in a canary, by funko, status code and release.",
                &["funko", "code", "release"],
            ),
            duration: HistogramVec::new(
                HistogramOpts::new(
                    "faaso_http_request_duration_seconds",
                    "Time from request to the end of the response, by funko.",
                )
                .buckets(BUCKETS.to_vec()),
                &["funko"],
            )
            .expect("valid metric definition"),
            in_flight: gauge_vec(
                "faaso_http_requests_in_flight",
                "Requests being answered, by funko.",
                &["funko"],
            ),
            connect_errors: counter_vec(
                "faaso_upstream_connect_errors_total",
                "Failed connection attempts to instances, by funko.",
                &["funko"],
            ),
            upstream_requests: counter_vec(
                "faaso_upstream_requests_total",
                "Requests sent to instances, by funko and whether a pooled connection was reused.",
                &["funko", "reused"],
            ),
            retries: counter_vec(
                "faaso_upstream_retries_total",
                "Requests retried on another attempt, by funko.",
                &["funko"],
            ),
            instances: gauge_vec(
                "faaso_funko_instances",
                "Instances per funko by state (healthy, unhealthy, starting).",
                &["funko", "state"],
            ),
            discovery_events: counter_vec(
                "faaso_discovery_events_total",
                "Docker events handled by discovery, by kind.",
                &["kind"],
            ),
            resyncs: IntCounter::new(
                "faaso_discovery_resyncs_total",
                "Full lists of Docker's containers (start, reconnects, periodic, after events).",
            )
            .expect("valid metric definition"),
            build_info: gauge_vec(
                "faaso_build_info",
                "Always 1; the version label tells the gateway's version.",
                &["version"],
            ),
            queue_depth: gauge_vec(
                "faaso_queue_depth",
                "Requests waiting for a slot of a funko with limits.max_inflight, by funko.",
                &["funko"],
            ),
            queue_rejections: counter_vec(
                "faaso_queue_rejections_total",
                "Requests answered 429 after waiting limits.queue_timeout, by funko.",
                &["funko"],
            ),
            rate_limited: counter_vec(
                "faaso_rate_limited_total",
                "Requests answered 429 over the funko's limits.rate, by funko.",
                &["funko"],
            ),
            cold_starts: counter_vec(
                "faaso_cold_starts_total",
                "Instances woken for a request to a funko at zero, by funko and kind (start: a \
                 container started; unpause: a paused one thawed).",
                &["funko", "kind"],
            ),
            cold_start_duration: HistogramVec::new(
                HistogramOpts::new(
                    "faaso_cold_start_duration_seconds",
                    "Time from the first request to a funko at zero until an instance was \
                     ready, by funko.",
                )
                .buckets(COLD_START_BUCKETS.to_vec()),
                &["funko"],
            )
            .expect("valid metric definition"),
            autoscale_events: counter_vec(
                "faaso_autoscale_events_total",
                "Instance count changes made by the autoscaler, by funko and direction (up, down).",
                &["funko", "direction"],
            ),
            tls_expiry: gauge_vec(
                "faaso_tls_certificate_expiry_timestamp_seconds",
                "When each certificate the HTTPS listener serves expires (Unix time), by name \
                 and source (file, acme).",
                &["name", "source"],
            ),
            client_connections: gauge_vec(
                "faaso_client_connections",
                "Open client connections by state: active (a request is read or answered, or a \
                 TLS handshake runs; HTTP/2 connections count here) and idle (waiting for a \
                 request).",
                &["state"],
            ),
            connections_refused: counter_vec(
                "faaso_connections_refused_total",
                "Client connections closed at accept, by reason (max_connections, \
                 max_connections_per_ip).",
                &["reason"],
            ),
            async_calls: counter_vec(
                "faaso_async_calls_total",
                "Async calls by funko and outcome: accepted (stored, 202), done (the funko \
                 answered with a status that is not retried), failed (attempts ran out, or the \
                 funko is gone), refused (not stored: the queue is full or the store failed).",
                &["funko", "outcome"],
            ),
            async_queue_depth: gauge_vec(
                "faaso_async_queue_depth",
                "Async calls waiting to run (queued, or waiting for a retry), by funko.",
                &["funko"],
            ),
            async_attempts: counter_vec(
                "faaso_async_attempts_total",
                "Attempts of async calls (first runs and retries), by funko.",
                &["funko"],
            ),
            callbacks: counter_vec(
                "faaso_callbacks_total",
                "Callback deliveries by outcome: delivered (2xx), retried (another attempt \
                 follows), failed (attempts ran out).",
                &["outcome"],
            ),
            cron_ticks: counter_vec(
                "faaso_cron_ticks_total",
                "Cron ticks made into async calls, by funko.",
                &["funko"],
            ),
            instance_series: Mutex::new(HashSet::new()),
        }
    }

    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        vec![
            Box::new(self.requests.clone()),
            Box::new(self.requests_release.clone()),
            Box::new(self.duration.clone()),
            Box::new(self.in_flight.clone()),
            Box::new(self.connect_errors.clone()),
            Box::new(self.upstream_requests.clone()),
            Box::new(self.retries.clone()),
            Box::new(self.instances.clone()),
            Box::new(self.discovery_events.clone()),
            Box::new(self.resyncs.clone()),
            Box::new(self.build_info.clone()),
            Box::new(self.queue_depth.clone()),
            Box::new(self.queue_rejections.clone()),
            Box::new(self.rate_limited.clone()),
            Box::new(self.cold_starts.clone()),
            Box::new(self.cold_start_duration.clone()),
            Box::new(self.autoscale_events.clone()),
            Box::new(self.tls_expiry.clone()),
            Box::new(self.client_connections.clone()),
            Box::new(self.connections_refused.clone()),
            Box::new(self.async_calls.clone()),
            Box::new(self.async_queue_depth.clone()),
            Box::new(self.async_attempts.clone()),
            Box::new(self.callbacks.clone()),
            Box::new(self.cron_ticks.clone()),
        ]
    }

    /// The names of every metric family the gateway defines (whether or not it has series yet).
    #[cfg(test)]
    pub fn family_names(&self) -> Vec<String> {
        self.collectors()
            .iter()
            .flat_map(|c| c.desc().into_iter().map(|d| d.fq_name.clone()))
            .collect()
    }

    /// Sets `faaso_funko_instances` from a snapshot (after each rebuild and health round), and
    /// removes the series of funkos that are gone.
    pub fn publish_instances<S>(&self, table: &RouteTable<S>) {
        let mut series = self
            .instance_series
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut present = HashSet::with_capacity(table.len());
        for funko in table.funkos() {
            let (mut healthy, mut unhealthy, mut starting, mut paused) = (0, 0, 0, 0);
            for instance in &funko.instances {
                match crate::routing::balancer::state_of(instance) {
                    crate::routing::balancer::InstanceHealth::Healthy => healthy += 1,
                    crate::routing::balancer::InstanceHealth::Unhealthy => unhealthy += 1,
                    crate::routing::balancer::InstanceHealth::Starting => starting += 1,
                    crate::routing::balancer::InstanceHealth::Paused => paused += 1,
                }
            }
            for (state, count) in [
                ("healthy", healthy),
                ("unhealthy", unhealthy),
                ("starting", starting),
                ("paused", paused),
            ] {
                self.instances
                    .with_label_values(&[&*funko.name, state])
                    .set(count);
            }
            present.insert(funko.name.to_string());
        }
        for gone in series.difference(&present) {
            for state in ["healthy", "unhealthy", "starting", "paused"] {
                let _ = self.instances.remove_label_values(&[gone, state]);
            }
        }
        *series = present;
    }
}

/// Removes the series of funkos that were in `previous` and are gone from `current` (purged:
/// no container, no image), so a purged funko does not stay in `/metrics` forever.
pub fn forget_gone(previous: &Routes, current: &Routes) {
    for funko in previous.funkos() {
        if current.get(&funko.name).is_none() {
            funko.stats.remove_series();
        }
    }
}

/// Counts a cold start of `funko` that took `seconds` (when metrics are on).
/// Counts a wake of a funko at zero: `kind` is `start` (a container started) or `unpause`.
pub fn cold_start(funko: &str, kind: &str, seconds: f64) {
    if let Some(m) = if_enabled() {
        m.cold_starts.with_label_values(&[funko, kind]).inc();
        m.cold_start_duration
            .with_label_values(&[funko])
            .observe(seconds);
    }
}

/// Publishes when each served certificate expires (Unix seconds), by name and `source`
/// (`file` or `acme`), replacing what was published before.
pub fn tls_certificates<'a>(served: impl Iterator<Item = (&'a str, &'a str, i64)>) {
    if let Some(m) = if_enabled() {
        m.tls_expiry.reset();
        for (name, source, not_after) in served {
            m.tls_expiry
                .with_label_values(&[name, source])
                .set(not_after);
        }
    }
}

/// Counts a client connection closed at accept (`reason`: the limit it was over).
pub fn connection_refused(reason: &str) {
    if let Some(m) = if_enabled() {
        m.connections_refused.with_label_values(&[reason]).inc();
    }
}

/// Sets `faaso_client_connections` from the connection counts, before a scrape.
fn publish_client_connections(m: &Metrics) {
    let (active, idle) = tally::totals();
    m.client_connections
        .with_label_values(&["active"])
        .set(active);
    m.client_connections.with_label_values(&["idle"]).set(idle);
}

/// Counts a change the autoscaler made (`direction`: `up` or `down`).
pub fn autoscale_event(funko: &str, direction: &str) {
    if let Some(m) = if_enabled() {
        m.autoscale_events
            .with_label_values(&[funko, direction])
            .inc();
    }
}

/// Status codes whose counters each funko caches; others are looked up by label.
const CACHED_CODES: [u16; 18] = [
    200, 201, 204, 301, 302, 304, 400, 401, 403, 404, 405, 409, 413, 429, 500, 502, 503, 504,
];

/// One funko's metric handles, each resolved on first use and then kept: a funko that gets no
/// traffic adds no series, and one that does never formats a label again.
pub struct FunkoMetrics {
    name: Arc<str>,
    duration: OnceLock<Histogram>,
    in_flight: OnceLock<IntGauge>,
    connect_errors: OnceLock<IntCounter>,
    retries: OnceLock<IntCounter>,
    upstream_reused: OnceLock<IntCounter>,
    upstream_new: OnceLock<IntCounter>,
    codes: [OnceLock<IntCounter>; CACHED_CODES.len()],
    /// Codes outside [`CACHED_CODES`] this funko has counted (to remove their series).
    other_codes: Mutex<HashSet<u16>>,
    /// Codes and releases counted during a canary (to remove their series after it).
    release_codes: Mutex<HashSet<(u16, &'static str)>>,
}

impl FunkoMetrics {
    pub fn new(name: &str) -> FunkoMetrics {
        FunkoMetrics {
            name: Arc::from(name),
            duration: OnceLock::new(),
            in_flight: OnceLock::new(),
            connect_errors: OnceLock::new(),
            retries: OnceLock::new(),
            upstream_reused: OnceLock::new(),
            upstream_new: OnceLock::new(),
            codes: Default::default(),
            other_codes: Mutex::new(HashSet::new()),
            release_codes: Mutex::new(HashSet::new()),
        }
    }

    /// Removes every series this funko has in the registry.
    pub fn remove_series(&self) {
        let m = metrics();
        let name = &*self.name;
        let _ = m.duration.remove_label_values(&[name]);
        let _ = m.in_flight.remove_label_values(&[name]);
        let _ = m.connect_errors.remove_label_values(&[name]);
        let _ = m.retries.remove_label_values(&[name]);
        let _ = m.queue_depth.remove_label_values(&[name]);
        let _ = m.queue_rejections.remove_label_values(&[name]);
        let _ = m.rate_limited.remove_label_values(&[name]);
        for kind in ["start", "unpause"] {
            let _ = m.cold_starts.remove_label_values(&[name, kind]);
        }
        let _ = m.cold_start_duration.remove_label_values(&[name]);
        for direction in ["up", "down"] {
            let _ = m.autoscale_events.remove_label_values(&[name, direction]);
        }
        for reused in ["true", "false"] {
            let _ = m.upstream_requests.remove_label_values(&[name, reused]);
        }
        let others = self
            .other_codes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for code in CACHED_CODES.iter().copied().chain(others) {
            let _ = m.requests.remove_label_values(&[name, &code.to_string()]);
        }
        self.remove_release_series();
    }

    /// Removes the funko's series with a `release` label (its canary ended).
    pub fn remove_release_series(&self) {
        let counted =
            std::mem::take(&mut *self.release_codes.lock().unwrap_or_else(|p| p.into_inner()));
        for (code, release) in counted {
            let _ = metrics().requests_release.remove_label_values(&[
                &*self.name,
                &code.to_string(),
                release,
            ]);
        }
    }

    /// Counts a finished request of a funko in a canary, under the release it went to.
    pub fn request_done_in(&self, release: &'static str, code: u16, seconds: f64) {
        self.duration
            .get_or_init(|| metrics().duration.with_label_values(&[&*self.name]))
            .observe(seconds);
        self.release_codes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert((code, release));
        metrics()
            .requests_release
            .with_label_values(&[&*self.name, &code.to_string(), release])
            .inc();
    }

    /// The handles for requests to funkos that do not exist.
    pub fn unknown() -> &'static FunkoMetrics {
        static UNKNOWN: OnceLock<FunkoMetrics> = OnceLock::new();
        UNKNOWN.get_or_init(|| FunkoMetrics::new(UNKNOWN_FUNKO))
    }

    /// A request began: `faaso_http_requests_in_flight` goes up until [`Self::request_ended`].
    pub fn request_started(&self) {
        self.in_flight().inc();
    }

    pub fn request_ended(&self) {
        self.in_flight().dec();
    }

    fn in_flight(&self) -> &IntGauge {
        self.in_flight
            .get_or_init(|| metrics().in_flight.with_label_values(&[&*self.name]))
    }

    /// Counts a failed connection attempt.
    pub fn connect_error(&self) {
        self.connect_errors
            .get_or_init(|| metrics().connect_errors.with_label_values(&[&*self.name]))
            .inc();
    }

    /// A request started (`+1`) or stopped (`-1`) waiting in the funko's queue.
    pub fn queue_changed(&self, delta: i64) {
        metrics()
            .queue_depth
            .with_label_values(&[&*self.name])
            .add(delta);
    }

    /// Counts a request refused after waiting in the queue.
    pub fn queue_rejected(&self) {
        metrics()
            .queue_rejections
            .with_label_values(&[&*self.name])
            .inc();
    }

    /// Counts a request refused over the funko's rate limit.
    pub fn rate_limited(&self) {
        metrics()
            .rate_limited
            .with_label_values(&[&*self.name])
            .inc();
    }

    /// Counts a retry.
    pub fn retry(&self) {
        self.retries
            .get_or_init(|| metrics().retries.with_label_values(&[&*self.name]))
            .inc();
    }

    /// Counts a request sent upstream on a pooled (`reused`) or new connection.
    pub fn upstream_request(&self, reused: bool) {
        let (slot, label) = if reused {
            (&self.upstream_reused, "true")
        } else {
            (&self.upstream_new, "false")
        };
        slot.get_or_init(|| {
            metrics()
                .upstream_requests
                .with_label_values(&[&*self.name, label])
        })
        .inc();
    }

    /// Counts a finished request with its status and duration.
    pub fn request_done(&self, code: u16, seconds: f64) {
        self.duration
            .get_or_init(|| metrics().duration.with_label_values(&[&*self.name]))
            .observe(seconds);
        match CACHED_CODES.iter().position(|c| *c == code) {
            Some(slot) => self.codes[slot]
                .get_or_init(|| {
                    metrics()
                        .requests
                        .with_label_values(&[&*self.name, &code.to_string()])
                })
                .inc(),
            None => {
                self.other_codes
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(code);
                metrics()
                    .requests
                    .with_label_values(&[&*self.name, &code.to_string()])
                    .inc()
            }
        }
    }
}

impl std::fmt::Debug for FunkoMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunkoMetrics")
            .field("name", &self.name)
            .finish()
    }
}

/// Serves the default registry as Prometheus text at `/metrics`.
pub struct MetricsApp;

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let path = session.req_header().uri.path();
        if path != "/metrics" {
            return plain(
                404,
                b"not found; metrics are at /metrics\n".to_vec(),
                "text/plain",
            );
        }
        if let Some(m) = if_enabled() {
            publish_client_connections(m);
        }
        let encoder = TextEncoder::new();
        let mut buffer = Vec::with_capacity(16 * 1024);
        let mut families = prometheus::gather();
        merge_releases(&mut families);
        match encoder.encode(&families, &mut buffer) {
            Ok(()) => plain(200, buffer, encoder.format_type()),
            Err(err) => plain(
                500,
                format!("cannot encode metrics: {err}\n").into_bytes(),
                "text/plain",
            ),
        }
    }
}

/// The family that holds canary requests until [`merge_releases`] shows them.
const RELEASE_FAMILY: &str = "faaso_http_requests_by_release_total";

/// Shows the requests of funkos in a canary as `faaso_http_requests_total` series with a
/// `release` label (one family cannot have two label sets in the registry, but may in the text
/// format).
pub fn merge_releases(families: &mut Vec<prometheus::proto::MetricFamily>) {
    let Some(at) = families.iter().position(|f| f.name() == RELEASE_FAMILY) else {
        return;
    };
    let mut released = families.remove(at);
    match families
        .iter_mut()
        .find(|f| f.name() == "faaso_http_requests_total")
    {
        Some(requests) => requests.mut_metric().extend(released.take_metric()),
        None => {
            released.set_name("faaso_http_requests_total".to_string());
            released.set_help("Requests to funkos, by funko and status code.".to_string());
            families.push(released);
        }
    }
}

fn plain(status: u16, body: Vec<u8>, content_type: &str) -> http::Response<Vec<u8>> {
    let mut response = http::Response::new(body);
    *response.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    response
}

/// The metrics HTTP server, to be added as a Pingora listening service.
pub fn server() -> HttpServer<MetricsApp> {
    HttpServer::new_app(MetricsApp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, line_start: &str) -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Identifiers in a PromQL expression that look like FaaSO metric names, histogram
    /// suffixes removed.
    fn metric_names(expr: &str) -> Vec<&str> {
        expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|word| word.starts_with("faaso_"))
            .map(|word| {
                ["_bucket", "_count", "_sum"]
                    .iter()
                    .find_map(|suffix| word.strip_suffix(suffix))
                    .filter(|base| base.ends_with("_seconds"))
                    .unwrap_or(word)
            })
            .collect()
    }

    fn collect_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("expr", serde_json::Value::String(expr)) => out.push(expr.clone()),
                        _ => collect_exprs(value, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_exprs(v, out)),
            _ => {}
        }
    }

    #[test]
    fn the_dashboard_names_only_defined_metrics() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../conf/grafana/faaso.json");
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let defined = metrics().family_names();
        // 24 families at /metrics, and the one merge_releases shows inside requests.
        assert_eq!(defined.len(), 25, "{defined:?}");
        let mut exprs = Vec::new();
        collect_exprs(&dashboard, &mut exprs);
        assert!(exprs.len() >= 8, "only {} expressions", exprs.len());
        for expr in &exprs {
            let names = metric_names(expr);
            assert!(!names.is_empty(), "no metric in {expr}");
            for name in names {
                assert!(
                    defined.iter().any(|d| d == name),
                    "{name} in {expr} is not defined"
                );
            }
        }
        assert_eq!(dashboard["title"], "FaaSO");
        assert!(metric_names("rate(faaso_nope_total[1m])") == ["faaso_nope_total"]);
    }

    #[test]
    fn a_canarys_requests_show_as_requests_with_a_release() {
        let funko = FunkoMetrics::new("metrics_canary_test");
        funko.request_done_in("canary", 200, 0.01);
        funko.request_done_in("stable", 200, 0.01);
        funko.request_done_in("stable", 200, 0.01);
        let mut families = prometheus::gather();
        merge_releases(&mut families);
        let mut out = Vec::new();
        TextEncoder::new().encode(&families, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let series = |release: &str| {
            format!(
                r#"faaso_http_requests_total{{code="200",funko="metrics_canary_test",release="{release}"}}"#
            )
        };
        assert_eq!(value(&text, &series("canary")), Some(1.0), "{text}");
        assert_eq!(value(&text, &series("stable")), Some(2.0));
        assert!(!text.contains(RELEASE_FAMILY));
        assert_eq!(text.matches("# TYPE faaso_http_requests_total ").count(), 1);
        // The canary ended: the series go.
        funko.remove_release_series();
        let mut families = prometheus::gather();
        merge_releases(&mut families);
        let mut out = Vec::new();
        TextEncoder::new().encode(&families, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(value(&text, &series("canary")), None);
        assert_eq!(value(&text, &series("stable")), None);
    }

    #[test]
    fn funko_handles_count_by_code() {
        let funko = FunkoMetrics::new("metrics_unit_test");
        funko.request_done(200, 0.01);
        funko.request_done(200, 0.02);
        funko.request_done(418, 0.5);
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&prometheus::gather(), &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            value(
                &text,
                r#"faaso_http_requests_total{code="200",funko="metrics_unit_test"}"#
            ),
            Some(2.0)
        );
        assert_eq!(
            value(
                &text,
                r#"faaso_http_requests_total{code="418",funko="metrics_unit_test"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &text,
                r#"faaso_http_request_duration_seconds_count{funko="metrics_unit_test"}"#
            ),
            Some(3.0)
        );
        assert!(text.contains(&format!(
            r#"faaso_build_info{{version="{}"}} 1"#,
            faaso::VERSION
        )));
    }

    #[test]
    fn a_gone_funkos_series_are_removed() {
        let funko = FunkoMetrics::new("metrics_gone_test");
        funko.request_done(200, 0.01);
        funko.request_done(418, 0.01);
        funko.upstream_request(true);
        funko.retry();
        let text = || {
            let mut out = Vec::new();
            TextEncoder::new()
                .encode(&prometheus::gather(), &mut out)
                .unwrap();
            String::from_utf8(out).unwrap()
        };
        assert!(text().contains(r#"funko="metrics_gone_test""#));
        funko.remove_series();
        let after = text();
        assert!(!after.contains(r#"funko="metrics_gone_test""#), "{after}");
    }
}
