//! Per-client rate limits (`limits.rate`, `limits.burst`) as a generic cell rate algorithm:
//! each client has one number, the time its next request is due if it kept to the rate (its
//! theoretical arrival time). A request is allowed when that time is at most `burst - 1`
//! intervals ahead of now, and moves it one interval on. So a client may send `burst` requests
//! at once and then one per interval; `Retry-After` says when the next one would pass.
//!
//! Clients are spread over [`SHARDS`] maps, each behind a mutex held for one lookup and one
//! update (never across an await). Memory is bounded: a client whose time is past is no
//! different from one never seen, so a full shard first drops those; a shard still full of
//! active clients refuses new ones (429) rather than grow.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use faaso::settings::Rate;

/// Maps a limiter's clients are spread over.
pub const SHARDS: usize = 16;

/// Clients tracked per funko at once (at about 40 bytes each, a few MiB at most).
pub const MAX_CLIENTS: usize = 100_000;

/// Who a request counts under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    /// A private funko's key (the first bytes of its hash).
    Key(u64),
    /// An IPv4 address.
    V4(u32),
    /// An IPv6 /64 (addresses within one cost nothing to change).
    V6(u64),
}

impl Client {
    pub fn of_ip(ip: IpAddr) -> Client {
        match ip {
            IpAddr::V4(v4) => Client::V4(v4.to_bits()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Client::V4(v4.to_bits()),
                None => Client::V6((v6.to_bits() >> 64) as u64),
            },
        }
    }

    pub fn of_key(hash: &faaso::store::keys::KeyHash) -> Client {
        let mut first = [0u8; 8];
        first.copy_from_slice(&hash[..8]);
        Client::Key(u64::from_le_bytes(first))
    }
}

/// One funko's limiter.
#[derive(Debug)]
pub struct RateLimiter {
    /// The setting it was made for (a rebuild with the same one keeps the limiter).
    pub rate: Rate,
    pub burst: u32,
    interval: u64,
    /// How far ahead of now a client's due time may be and still be allowed.
    tolerance: u64,
    epoch: Instant,
    hasher: foldhash::fast::RandomState,
    shards: Box<[Mutex<HashMap<Client, u64>>]>,
    per_shard: usize,
}

/// Over the limit: try again after this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

impl Limited {
    /// `Retry-After` in whole seconds, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let whole = self.retry_after.as_secs();
        (whole + u64::from(self.retry_after.subsec_nanos() > 0)).max(1)
    }
}

impl RateLimiter {
    pub fn new(rate: Rate, burst: u32) -> RateLimiter {
        RateLimiter::with_capacity(rate, burst, MAX_CLIENTS)
    }

    fn with_capacity(rate: Rate, burst: u32, clients: usize) -> RateLimiter {
        let interval = (rate.interval().as_nanos() as u64).max(1);
        RateLimiter {
            rate,
            burst,
            interval,
            tolerance: interval.saturating_mul(u64::from(burst.max(1) - 1)),
            epoch: Instant::now(),
            hasher: foldhash::fast::RandomState::default(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: clients.div_ceil(SHARDS).max(1),
        }
    }

    /// Counts a request of `client` now.
    pub fn check(&self, client: Client) -> Result<(), Limited> {
        self.check_at(client, Instant::now())
    }

    fn check_at(&self, client: Client, now: Instant) -> Result<(), Limited> {
        let now = now.saturating_duration_since(self.epoch).as_nanos() as u64;
        let shard = &self.shards[(self.hasher.hash_one(client) as usize) % SHARDS];
        // A poisoned shard only means a panic elsewhere mid-update of plain numbers.
        let mut clients = shard.lock().unwrap_or_else(|p| p.into_inner());
        let due = match clients.get(&client) {
            Some(due) => (*due).max(now),
            None => {
                if clients.len() >= self.per_shard {
                    clients.retain(|_, due| *due > now);
                    if clients.len() >= self.per_shard {
                        return Err(Limited {
                            retry_after: Duration::from_secs(1),
                        });
                    }
                }
                now
            }
        };
        if due - now > self.tolerance {
            return Err(Limited {
                retry_after: Duration::from_nanos(due - now - self.tolerance),
            });
        }
        clients.insert(client, due + self.interval);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(text: &str, burst: u32) -> RateLimiter {
        RateLimiter::new(Rate::parse(text).unwrap(), burst)
    }

    #[test]
    fn a_burst_then_one_per_interval() {
        let limiter = limiter("10/s", 3);
        let start = Instant::now() + Duration::from_secs(1);
        let a = Client::V4(1);
        for _ in 0..3 {
            assert!(limiter.check_at(a, start).is_ok());
        }
        let limited = limiter.check_at(a, start).unwrap_err();
        assert_eq!(limited.retry_after, Duration::from_millis(100));
        assert_eq!(limited.retry_after_secs(), 1);
        // Another client has its own allowance.
        assert!(limiter.check_at(Client::V4(2), start).is_ok());
        // One interval later one more passes, and only one.
        let later = start + Duration::from_millis(100);
        assert!(limiter.check_at(a, later).is_ok());
        assert!(limiter.check_at(a, later).is_err());
        // Over a long run the rate holds: 10 s at 1 ms steps allows burst + 10/s × 10 s.
        let mut allowed = 0;
        let b = Client::Key(7);
        for ms in 0..10_000 {
            let at = start + Duration::from_millis(ms);
            allowed += u32::from(limiter.check_at(b, at).is_ok());
        }
        assert_eq!(allowed, 3 + 100 - 1);
    }

    #[test]
    fn memory_is_bounded_and_idle_clients_are_forgotten() {
        let limiter = RateLimiter::with_capacity(Rate::parse("1/s").unwrap(), 1, SHARDS);
        let start = Instant::now() + Duration::from_secs(1);
        let mut refused = 0;
        for ip in 0..1000u32 {
            refused += u32::from(limiter.check_at(Client::V4(ip), start).is_err());
        }
        // One client per shard at most: almost all new clients are refused while all are due.
        assert!(refused >= 1000 - SHARDS as u32, "{refused}");
        let tracked: usize = limiter.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(tracked <= SHARDS);
        // A second later every tracked client is idle and makes room.
        let later = start + Duration::from_secs(2);
        assert!(limiter.check_at(Client::V4(5000), later).is_ok());
    }

    #[test]
    fn ipv6_clients_count_per_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(Client::of_ip(a), Client::of_ip(b));
        assert_ne!(Client::of_ip(a), Client::of_ip(c));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(Client::of_ip(mapped), Client::V4(0x0a00_0001));
    }
}
