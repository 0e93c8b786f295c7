//! HTTP pieces that every part of the gateway shares, as pure functions where they can be:
//!
//! - [`headers`]: the header rewrites between client and instance, and request ids.
//! - [`responses`]: JSON errors and the answers the gateway writes itself.
//! - [`errors`]: proxy failures → HTTP status and message, in one place.
//! - [`client_ip`]: the client's address, from `X-Forwarded-For` behind trusted proxies only.
//! - [`access_log`]: one line per funko request, formatted without `tracing`'s formatter.

pub mod access_log;
pub mod client_ip;
pub mod errors;
pub mod headers;
pub mod responses;
