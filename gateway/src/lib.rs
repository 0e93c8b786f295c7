//! `faaso_gateway`: the FaaSO gateway, a Pingora proxy that routes `/funko/<name>/<rest>` to
//! `/<rest>` on one of the funko's Docker containers.
//!
//! # Layout
//! Folders by role; dependencies between them point one way (checked by the import-cycle test
//! in `faaso-tests`):
//! - [`access`]: who may call a funko and how often: keys of private funkos, rate limits.
//! - [`edge`]: client connections: listeners, connection limits, client timeouts, memory per
//!   idle connection; hands whole request heads to the proxy.
//! - [`proxy`]: the request path: admission, the carrier that takes a request to an instance,
//!   the attempts on instances, the answer back to the client.
//! - [`routing`]: where a request goes: the router, the routing snapshot and its instances,
//!   the balancer, the in-flight gate, wakes from zero.
//! - [`services`]: the background services: discovery, health checks, the scaler and
//!   autoscaler, restore, drain.
//! - [`http`]: HTTP pieces shared by all: header rewrites, own responses, error statuses,
//!   client addresses, the access log.
//! - [`calls`]: async calls (stored, retried, called back) and cron triggers.
//! - [`admin`]: everything under `/admin/`: the admin API and the web UI.
//! - [`tls`]: HTTPS (certificates by SNI, reloads, ACME).
//! - [`metrics`]: Prometheus metrics and `/metrics`.
//! - [`config`]: defaults, YAML file, environment and flags, validated with the key named.
//! - [`server`]: assembles the Pingora server from a [`config::Config`].

pub mod access;
pub mod admin;
pub mod calls;
pub mod config;
pub(crate) mod edge;
pub mod http;
pub(crate) mod metrics;
pub(crate) mod proxy;
pub mod routing;
pub mod server;
pub(crate) mod services;
pub mod tls;

/// The routing snapshot the gateway runs on: each funko carries its metric handles.
pub type Routes = routing::table::RouteTable<metrics::FunkoMetrics>;
/// The current [`Routes`], swapped by discovery and read lock-free by requests.
pub type SharedRoutes = routing::table::SharedTable<metrics::FunkoMetrics>;
