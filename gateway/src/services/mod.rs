//! The gateway's background services (Pingora background services), each with its own loop,
//! none on the request path: the request path only reads what they publish.
//!
//! - [`discovery`]: follows Docker (events and resyncs) and publishes routing snapshots.
//! - [`health`]: checks `GET /ping` on every instance.
//! - [`restore`]: brings funkos back to their saved scale, and keeps them there.
//! - [`scaler`]: starts and stops instances (scale from zero, idle scale-down, autoscaling).
//! - [`autoscale`]: the autoscaler's decisions from what it observed (pure).
//! - [`drain`]: counts requests in flight and exits once they are done on shutdown.
//! - [`backoff`]: doubling retry delays (waiting for Docker).

pub mod autoscale;
pub mod backoff;
pub mod discovery;
pub mod drain;
pub mod health;
pub mod restore;
pub mod scaler;
