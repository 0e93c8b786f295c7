//! The gateway's edge: the client side of every public listener. It binds the listen addresses
//! at start (one owner per port and per `state_dir`), accepts connections within
//! `max_connections` and `max_connections_per_ip`, holds idle connections at the cost of their
//! socket, bounds each request head by `header_timeout`, silence by `keepalive_timeout` and a
//! stalled reader by `send_timeout`, and hands each whole request head to Pingora's HTTP
//! session and the proxy ([`crate::proxy`]).
//!
//! - [`bind`]: binding at start, naming the process that holds a taken address.
//! - [`owner`]: the `state_dir` lock and the file descriptor limit.
//! - [`listen`]: the accept loops (a Pingora service per worker over pre-bound sockets).
//! - [`limits`]: connection counts, in all and per client address.
//! - [`client`]: one connection from accept to close.
//! - [`stream`]: a client's TCP connection as Pingora's transport, socket and address only.
//! - [`head`]: where a request head ends (pure).

pub mod bind;
pub mod client;
pub mod head;
pub mod limits;
pub mod listen;
pub mod owner;
pub mod stream;

use std::time::Duration;

/// The client timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeSettings {
    /// A request head must be whole within this, from the accept (a new connection) or from
    /// its first byte (a later request on the connection).
    pub header_timeout: Duration,
    /// Longest silence between two requests of one connection.
    pub keepalive_timeout: Duration,
    /// Longest a client may take nothing of an answer before it is dropped.
    pub send_timeout: Duration,
}
