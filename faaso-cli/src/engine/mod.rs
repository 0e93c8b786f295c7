//! Running funkos: containers on one Docker engine or services on a Swarm.
//!
//! - [`docker`]: the Docker engine's containers and images (bollard), as FaaSO uses them.
//! - [`lifecycle`]: scale, up, down, purge and restore, under a per-funko lock.
//! - [`deploy`]: zero-downtime rollout of the newest image, and rollback.
//! - [`logs`]: the merged logs of a funko's instances.
//! - [`status`]: funkos, instances and images as data (table or JSON).
//! - [`releases`]: a funko's release tags, and pruning the old ones.
//! - [`handover`]: secrets handed to the funko's user through Docker (FaaSO not root).
//! - [`probe`]: the `GET /ping` health probe.
//! - [`swarm`]: Swarm mode: funkos as services, Swarm secrets, rolling service updates.

pub mod deploy;
pub mod docker;
pub mod handover;
pub mod lifecycle;
pub mod logs;
pub mod probe;
pub mod releases;
pub mod status;
pub mod swarm;
