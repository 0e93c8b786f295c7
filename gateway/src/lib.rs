//! `faaso_gateway`: the FaaSO gateway, a Pingora proxy that routes `/funko/<name>/<rest>` to
//! `/<rest>` on one of the funko's Docker containers.
//!
//! # Layout
//! - [`config`]: defaults, YAML file, environment and flags, validated with the key named.
//! - [`router`]: path → funko and upstream path (pure).
//! - [`responses`]: JSON error bodies and responses the gateway writes itself.
//! - [`proxy`]: the thin `ProxyHttp` implementation that ties them together.
//! - [`server`]: assembles the Pingora server from a [`config::Config`].

pub mod config;
pub mod proxy;
pub mod responses;
pub mod router;
pub mod server;
