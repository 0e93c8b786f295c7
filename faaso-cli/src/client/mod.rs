//! Remote mode: the `faaso` command talking to a gateway's admin API.
//!
//! - [`remote`]: the admin API client.
//! - [`login`]: the saved login (gateway URL, password, CA; mode 0600).

pub mod login;
pub mod remote;
