//! Where a request goes: pure decisions over an immutable snapshot, read without a lock on the
//! request path.
//!
//! - [`router`]: path → which part of the gateway answers it, and for a funko, which funko and
//!   what path its instance sees (pure).
//! - [`table`]: the routing snapshot (funkos, their instances and settings), built from
//!   Docker's state by discovery and swapped in whole.
//! - [`instance`]: one instance: its address, peer, health and load (atomics carried across
//!   snapshots).
//! - [`balancer`]: which instance gets a request (two random choices, fewer in flight wins).
//! - [`gate`]: a funko's in-flight limit per instance, with its FIFO queue.
//! - [`wake`]: a request for a funko at zero waits for one shared start.
//! - [`rebuild`]: a request the snapshot cannot serve waits for a rebuild under way.
//! - [`domains`]: custom domains: who owns a claimed domain, and a request's host name (pure).
//!
//! Dependencies point one way: `table` → `gate` → `balancer` → `instance`, and `table` →
//! `domains`.

pub mod balancer;
pub mod domains;
pub mod gate;
pub mod instance;
pub mod rebuild;
pub mod router;
pub mod table;
pub mod wake;
