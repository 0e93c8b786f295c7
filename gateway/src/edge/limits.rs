//! Counting client connections: how many are open in all (`max_connections`) and per client
//! address (`max_connections_per_ip`, an IPv6 client counted per /64), decided once at accept.
//!
//! A connection is admitted or refused before anything is read from it, so a refused one costs
//! an accept and a close. The counts are shared by every worker (a client's connections land
//! on any of them): one atomic for the total, and a map per shard of addresses behind a short
//! lock that is taken at accept and at close only, never per request and never across an
//! `await`. Addresses listed in `trusted_proxies` are not capped per address: behind such a
//! proxy every client arrives from its address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// What a client's connections are counted under: an IPv4 address, or an IPv6 /64 (one
/// customer's network is usually a /64, and addresses within it cost nothing to change).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(u32),
    V6(u64),
}

impl ClientKey {
    /// The key of `ip`; an IPv4-mapped IPv6 address counts as its IPv4 address.
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4.to_bits()),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4.to_bits()),
                None => ClientKey::V6((v6.to_bits() >> 64) as u64),
            },
        }
    }
}

/// Why a connection was closed at accept; the label of `faaso_connections_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `max_connections` connections are open.
    Total,
    /// The client's address (or /64) has `max_connections_per_ip` open.
    PerClient,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Total => "max_connections",
            Refusal::PerClient => "max_connections_per_ip",
        }
    }
}

/// The limits, from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Most client connections open at once.
    pub max_connections: usize,
    /// Most from one address (or IPv6 /64); 0 for no cap.
    pub max_per_client: u32,
    /// Addresses that are never capped per address (`trusted_proxies`).
    pub exempt: Vec<ipnet::IpNet>,
}

/// Shards of the per-address map: enough that two workers rarely meet on one lock.
const SHARDS: usize = 16;

type ClientMap = HashMap<ClientKey, u32, foldhash::fast::FixedState>;

/// The open connections of the whole gateway.
#[derive(Debug)]
pub struct Connections {
    limits: Limits,
    open: AtomicUsize,
    per_client: [Mutex<ClientMap>; SHARDS],
}

/// One admitted connection; its counts are given back when it is dropped.
#[derive(Debug)]
pub struct Admitted {
    connections: Arc<Connections>,
    client: Option<ClientKey>,
}

impl Connections {
    pub fn new(limits: Limits) -> Connections {
        Connections {
            limits,
            open: AtomicUsize::new(0),
            per_client: std::array::from_fn(|_| Mutex::new(ClientMap::default())),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Counts a new connection from `ip`, or says which limit it is over.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        let open = self.open.fetch_add(1, Ordering::AcqRel);
        if open >= self.limits.max_connections {
            self.open.fetch_sub(1, Ordering::AcqRel);
            return Err(Refusal::Total);
        }
        let capped = self.limits.max_per_client > 0
            && !self.limits.exempt.iter().any(|net| net.contains(&ip));
        let client = if capped {
            let key = ClientKey::of(ip);
            let mut map = self.shard(key);
            let count = map.entry(key).or_insert(0);
            if *count >= self.limits.max_per_client {
                drop(map);
                self.open.fetch_sub(1, Ordering::AcqRel);
                return Err(Refusal::PerClient);
            }
            *count += 1;
            Some(key)
        } else {
            None
        };
        Ok(Admitted {
            connections: Arc::clone(self),
            client,
        })
    }

    /// Client connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Connections open from `ip`'s address (or /64), as counted for the cap.
    #[cfg(test)]
    pub fn open_from(&self, ip: IpAddr) -> u32 {
        let key = ClientKey::of(ip);
        self.shard(key).get(&key).copied().unwrap_or(0)
    }

    /// Addresses with connections open (the size of the per-address map).
    #[cfg(test)]
    pub fn clients(&self) -> usize {
        self.per_client
            .iter()
            .map(|shard| shard.lock().map_or(0, |map| map.len()))
            .sum()
    }

    fn shard(&self, key: ClientKey) -> std::sync::MutexGuard<'_, ClientMap> {
        let index = match key {
            ClientKey::V4(bits) => bits as usize,
            ClientKey::V6(bits) => (bits ^ (bits >> 32)) as usize,
        } % SHARDS;
        // A panic while holding a shard cannot leave a count half-changed.
        self.per_client[index]
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some(key) = self.client {
            let mut map = self.connections.shard(key);
            if let Some(count) = map.get_mut(&key) {
                *count -= 1;
                if *count == 0 {
                    map.remove(&key);
                }
            }
        }
        self.connections.open.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connections(max: usize, per_client: u32, exempt: &[&str]) -> Arc<Connections> {
        Arc::new(Connections::new(Limits {
            max_connections: max,
            max_per_client: per_client,
            exempt: exempt.iter().map(|net| net.parse().unwrap()).collect(),
        }))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn one_address_is_capped_and_others_still_get_in() {
        let c = connections(100, 2, &[]);
        let a = [
            c.admit(ip("10.0.0.1")).unwrap(),
            c.admit(ip("10.0.0.1")).unwrap(),
        ];
        assert_eq!(c.admit(ip("10.0.0.1")).unwrap_err(), Refusal::PerClient);
        let other = c.admit(ip("10.0.0.2")).unwrap();
        assert_eq!(c.open(), 3);
        assert_eq!(c.open_from(ip("10.0.0.1")), 2);
        drop(a);
        assert_eq!(c.open_from(ip("10.0.0.1")), 0);
        assert_eq!(c.clients(), 1, "a client with nothing open leaves the map");
        let again = c.admit(ip("10.0.0.1")).unwrap();
        drop((other, again));
        assert_eq!((c.open(), c.clients()), (0, 0));
    }

    #[test]
    fn the_total_is_capped_and_a_refusal_takes_nothing() {
        let c = connections(2, 0, &[]);
        let held = [
            c.admit(ip("10.0.0.1")).unwrap(),
            c.admit(ip("10.0.0.2")).unwrap(),
        ];
        for _ in 0..5 {
            assert_eq!(c.admit(ip("10.0.0.3")).unwrap_err(), Refusal::Total);
        }
        assert_eq!(c.open(), 2);
        drop(held);
        assert!(c.admit(ip("10.0.0.3")).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        let c = connections(100, 2, &[]);
        let _a = c.admit(ip("2001:db8:1:2::1")).unwrap();
        let _b = c.admit(ip("2001:db8:1:2:ffff::9")).unwrap();
        assert_eq!(
            c.admit(ip("2001:db8:1:2:abcd::1")).unwrap_err(),
            Refusal::PerClient,
            "same /64"
        );
        assert!(c.admit(ip("2001:db8:1:3::1")).is_ok(), "another /64");
        let _v4 = c.admit(ip("192.0.2.7")).unwrap();
        let _mapped = c.admit(ip("::ffff:192.0.2.7")).unwrap();
        assert_eq!(c.open_from(ip("192.0.2.7")), 2);
        assert_eq!(c.admit(ip("192.0.2.7")).unwrap_err(), Refusal::PerClient);
    }

    #[test]
    fn trusted_proxies_are_not_capped_per_address() {
        let c = connections(100, 1, &["10.1.0.0/16"]);
        let held: Vec<_> = (0..10).map(|_| c.admit(ip("10.1.2.3")).unwrap()).collect();
        assert_eq!(c.open(), 10);
        assert_eq!(c.clients(), 0);
        drop(held);
        assert_eq!(c.open(), 0);
    }

    #[test]
    fn counts_stay_exact_across_threads() {
        let c = connections(1_000_000, 1_000_000, &[]);
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let c = Arc::clone(&c);
                std::thread::spawn(move || {
                    for i in 0..5_000u32 {
                        let held = c.admit(IpAddr::from([10, 0, t, (i % 7) as u8])).unwrap();
                        drop(held);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        assert_eq!((c.open(), c.clients()), (0, 0));
    }
}
