//! End-to-end tests against a real Docker engine, the test funko and the built binaries.
//! One test binary for the workspace's cross-crate scenarios; one module per area.

mod access;
mod admin;
mod calls;
mod canary;
mod cli;
mod container;
mod domains;
mod edge;
mod exchange;
mod funkos;
mod lifecycle;
mod limits;
mod metrics;
mod network;
mod protocol;
mod routing;
mod runtimes;
mod scaling;
mod smoke;
mod swarm;
mod tls;
mod ui;
