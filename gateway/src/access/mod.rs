//! Who may call a funko, and how often: checked in admission, after the funko is found and
//! before anything else is spent on the request.
//!
//! - [`keys`]: the keys of private funkos (`access: private`), hashed, swapped in whole when
//!   the key files change; checked with one hash and a set lookup, no lock, no file read.
//! - [`rate`]: per-client rate limits (`limits.rate`, `limits.burst`) as a GCRA over one
//!   timestamp per client, counted per key for private funkos and per client address otherwise.

pub mod keys;
pub mod rate;
