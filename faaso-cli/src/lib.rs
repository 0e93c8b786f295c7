//! `faaso`: the library behind the `faaso` command and the gateway's admin API.
//!
//! # Layout
//! - [`conventions`]: funko, image, instance and network names (the "protocol" with Docker).
//! - [`funko`]: a funko folder's `funko.yml`, validated with file, line and column in errors.
//! - [`settings`]: per-funko scaling, limits and async calls, as `funko.yml` sections and
//!   Docker labels.
//! - [`triggers`]: cron triggers, as `funko.yml`'s `triggers:` and Docker labels.
//! - [`base_image`]: the base images a runtime's stages start from (`base_image`,
//!   `FAASO_BASE_IMAGE_<RUNTIME>`).
//! - [`units`]: durations and sizes as people write them.
//! - [`build`]: from a funko folder to an image: runtimes, options, templates, build contexts,
//!   `faaso new`, `faaso build`.
//! - [`engine`]: running funkos on Docker or on a Swarm behind one seam: scale, up, down,
//!   purge, restore, deploy, logs, secrets, status, releases.
//! - [`store`]: what lives on the host: saved state and locks, secret files, private writes.
//! - [`client`]: the admin API client and the saved login for remote mode (feature `cli`).
//!
//! The CLI binary (`src/main.rs`, `src/commands/`, `src/ui.rs`) is a thin layer of clap
//! commands over these.

pub mod base_image;
pub mod build;
#[cfg(feature = "cli")]
pub mod client;
pub mod conventions;
pub mod engine;
pub mod funko;
pub mod settings;
pub mod store;
pub mod triggers;
pub mod units;

/// The version of this crate, shown by `faaso version` and the gateway's admin API.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
