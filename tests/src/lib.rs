//! `faaso_tests`: support for FaaSO's end-to-end tests and benchmarks.
//!
//! # Layout
//! - [`docker`]: the rule for tests that need Docker ([`require_docker!`]), unique names, and
//!   [`docker::Cleanup`], which removes what a test created even when it panics.
//! - [`testfunko`]: builds the test funko as a static executable and packages it `FROM scratch`
//!   into an image (no registry is reachable, so every image a test needs is made here).
//! - [`browser`]: a headless Chromium driven over WebDriver, for the web UI's tests.
//! - [`bins`]: finds the workspace's built binaries (`faaso-gateway`, `faaso`).
//! - [`cli`]: runs `faaso` with private state and secrets folders.
//! - [`gateway`]: starts a `faaso-gateway` process on free ports with a private config.
//! - [`http`]: a small HTTP client helper that retries until a server answers.
//! - [`layout`]: the import-cycle check of the gateway's and faaso-cli's modules.
//! - [`prom`]: reading `/metrics` text, and a real Prometheus server for tests.
//! - [`raw`]: a raw HTTP/1.1 connection, to see framing and connection reuse on the wire.
//! - [`receiver`]: a callback receiver that records what it gets (async calls' callbacks).
//! - [`relay`]: a Docker socket relay a test can cut, to break the gateway's event stream.
//! - [`skip`]: recording skipped tests, which `.ci/run` counts and prints.
//! - [`swarm`]: a single-node Docker Swarm for a test, and the gateway as an image.
//! - [`tls`]: a private CA, certificates, and an HTTPS client that reports the certificate.
//! - [`nats`]: a real NATS server with JetStream, for the shared async queue.
//! - [`pebble`]: a real ACME server (`pebble`) with its mock DNS, for the ACME test.

pub mod bins;
pub mod browser;
pub mod cli;
pub mod docker;
pub mod gateway;
pub mod http;
pub mod layout;
pub mod nats;
pub mod pebble;
pub mod prom;
pub mod raw;
pub mod receiver;
pub mod relay;
pub mod skip;
pub mod swarm;
pub mod testfunko;
pub mod tls;

/// The workspace root (the folder holding the top-level `Cargo.toml`).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| std::path::PathBuf::from("."))
}

/// A name that no other test (or earlier run) uses: `<prefix>_<6 random chars>`, valid as a
/// funko name.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", faaso::conventions::random_suffix())
}
