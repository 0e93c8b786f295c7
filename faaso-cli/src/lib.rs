//! `faaso`: the library behind the `faaso` command and the gateway's admin API.
//!
//! # Layout
//! - [`conventions`]: funko, image, instance and network names (the "protocol" with Docker).
//! - [`dirs`]: where secrets and saved state live on the host.
//! - [`docker`]: the one module that calls the Docker engine.
//!
//! The CLI binary (`src/main.rs`) is a thin layer of clap commands over these modules.

pub mod conventions;
pub mod dirs;
pub mod docker;

/// The version of this crate, shown by `faaso version` and the gateway's admin API.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
