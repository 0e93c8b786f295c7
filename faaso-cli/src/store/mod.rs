//! What FaaSO keeps on the host.
//!
//! - [`dirs`]: where secrets and saved state live.
//! - [`files`]: whole-or-nothing private writes, modes, private folders, `is_root`.
//! - [`state`]: saved scale per funko, and the per-funko lock.
//! - [`secrets`]: secret files per funko, mounted at `/secrets`.
//! - [`keys`]: API keys of private funkos, stored hashed.

pub mod dirs;
pub mod files;
pub mod keys;
pub mod secrets;
pub mod state;
