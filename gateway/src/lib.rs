//! `faaso_gateway`: the FaaSO gateway, a Pingora proxy that routes `/funko/<name>/<rest>` to
//! `/<rest>` on one of the funko's Docker containers.
//!
//! # Layout
//! - [`admin`]: the admin API (auth, streamed NDJSON results, safe uploads) for remote `faaso`.
//! - [`ui`]: the web admin UI under `/admin/` (sessions, pages, recent traffic).
//! - [`client_ip`]: the client's address, from `X-Forwarded-For` behind trusted proxies only.
//! - [`config`]: defaults, YAML file, environment and flags, validated with the key named.
//! - [`router`]: path → funko and upstream path (pure).
//! - [`table`]: the immutable routing snapshot and per-instance health and load.
//! - [`backoff`]: doubling retry delays (waiting for Docker).
//! - [`balancer`]: picks an instance (power of two choices on requests in flight).
//! - [`gate`]: a funko's in-flight limit per instance, with its FIFO queue.
//! - [`headers`]: forwarding headers and request ids (pure).
//! - [`errors`]: proxy failures → HTTP status and message, in one place.
//! - [`access_log`]: one line per funko request, formatted without `tracing`'s formatter.
//! - [`metrics`]: Prometheus metrics (per-funko handles kept with the snapshot) and `/metrics`.
//! - [`restore`]: brings funkos back to their saved scale at start.
//! - [`autoscale`]: the autoscaler's decisions from what it observed (pure).
//! - [`scaler`]: the background service that starts and stops instances (cold starts, idle
//!   scale-down, autoscaling).
//! - [`wake`]: a request for a funko at zero waits for one shared start.
//! - [`responses`]: JSON error bodies and responses the gateway writes itself.
//! - [`discovery`]: the background service that follows Docker and publishes snapshots.
//! - [`health`]: the background service that checks `GET /ping` on every instance.
//! - [`forward`]: requests without a body, carried to the instance by the gateway itself.
//! - [`idle`]: each worker's own pool of idle connections to instances.
//! - [`tls`]: HTTPS (certificates by SNI, reloads, ACME).
//! - [`tunnel`]: WebSocket and other `Upgrade` requests, relayed by the gateway itself.
//! - [`edge`]: client connections: listeners, connection limits, client timeouts.
//! - [`drain`]: counts requests in flight and exits once they are done on shutdown.
//! - [`proxy`]: the thin `ProxyHttp` implementation that ties them together.
//! - [`server`]: assembles the Pingora server from a [`config::Config`].

pub mod admin;
pub mod config;
pub mod edge;
pub mod http;
pub mod metrics;
pub mod proxy;
pub mod routing;
pub mod server;
pub mod services;
pub mod tls;

/// The routing snapshot the gateway runs on: each funko carries its metric handles.
pub type Routes = routing::table::RouteTable<metrics::FunkoMetrics>;
/// The current [`Routes`], swapped by discovery and read lock-free by requests.
pub type SharedRoutes = routing::table::SharedTable<metrics::FunkoMetrics>;
