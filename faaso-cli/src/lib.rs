//! `faaso`: the library behind the `faaso` command and the gateway's admin API.
//!
//! # Layout
//! - [`conventions`]: funko, image, instance and network names (the "protocol" with Docker).
//! - [`dirs`]: where secrets and saved state live on the host.
//! - [`funko`]: a funko folder's `funko.yml`, validated with file, line and column in errors.
//! - [`runtime`]: built-in runtimes (embedded from `runtimes/`) and runtime folders.
//! - [`options`]: runtime options checked against the runtime's `options.yml`, with defaults.
//! - [`render`]: Handlebars rendering of `.hbs` files in strict mode.
//! - [`dockerignore`]: `.dockerignore` rules.
//! - [`elf`]: whether an executable runs in an image with nothing else in it.
//! - [`context`]: build contexts (runtime + funko) as a tar or an exported folder.
//! - [`scaffold`]: `faaso new`.
//! - [`builder`]: `faaso build`: context → image with both tags, progress events.
//! - [`lifecycle`]: scale, up, down, purge and restore, under a per-funko lock.
//! - [`deploy`]: zero-downtime rollout of the newest image, and rollback.
//! - [`releases`]: a funko's release tags, and pruning the old ones.
//! - [`status`]: funkos, instances and images as data (table or JSON).
//! - [`settings`]: per-funko scaling and limits, as `funko.yml` sections and Docker labels.
//! - [`units`]: durations and sizes as people write them.
//! - [`logs`]: the merged logs of a funko's instances.
//! - [`files`]: whole-or-nothing private writes, modes, private folders, `is_root`.
//! - [`secrets`]: secret files per funko, mounted at `/secrets`.
//! - [`handover`]: secrets handed to the funko's user through Docker (FaaSO not root).
//! - [`state`]: saved scale per funko, and the per-funko lock.
//! - [`probe`]: the `GET /ping` health probe.
//! - [`remote`]: the admin API client for remote mode (feature `cli`).
//! - [`login`]: the saved login (gateway URL, password, CA; mode 0600) (feature `cli`).
//! - [`docker`]: the one module that calls the Docker engine for containers and images.
//! - [`swarm`]: Swarm mode: funkos as services, Swarm secrets, rolling service updates.
//!
//! The CLI binary (`src/main.rs`, `src/commands/`) is a thin layer of clap commands over these.

pub mod builder;
pub mod context;
pub mod conventions;
pub mod deploy;
pub mod dirs;
pub mod docker;
pub mod dockerignore;
pub mod elf;
pub mod files;
pub mod funko;
pub mod handover;
pub mod lifecycle;
#[cfg(feature = "cli")]
pub mod login;
pub mod logs;
pub mod options;
pub mod probe;
pub mod releases;
#[cfg(feature = "cli")]
pub mod remote;
pub mod render;
pub mod runtime;
pub mod scaffold;
pub mod secrets;
pub mod settings;
pub mod state;
pub mod status;
pub mod swarm;
pub mod units;

/// The version of this crate, shown by `faaso version` and the gateway's admin API.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
