//! Failed logins limited per client: [`MAX_FAILURES`] attempts that were not allowed per
//! [`WINDOW`], then 429 until the window is over.
//!
//! An attempt is counted when it starts, before the password is checked, so concurrent guesses
//! cannot slip past the limit while a slow hash is being verified; a success clears the
//! client's count. IPv6 clients are counted per /64 (one host usually holds a whole /64, and
//! would otherwise get 2^64 fresh windows). The table holds at most [`MAX_CLIENTS`] clients:
//! when full, expired windows go first, then the oldest.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Attempts allowed per client and window without a success.
pub const MAX_FAILURES: u32 = 10;
/// The window attempts are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Clients the table remembers at most.
pub const MAX_CLIENTS: usize = 10_000;

/// The unit a limit applies to: an IPv4 address, or an IPv6 /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientKey(IpAddr);

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(_) => ClientKey(ip),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey(IpAddr::V4(v4)),
                None => {
                    let s = v6.segments();
                    ClientKey(IpAddr::V6(Ipv6Addr::new(
                        s[0], s[1], s[2], s[3], 0, 0, 0, 0,
                    )))
                }
            },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Window {
    attempts: u32,
    since: Instant,
}

/// The failed-login table.
#[derive(Debug, Default)]
pub struct Limiter {
    clients: Mutex<HashMap<ClientKey, Window>>,
}

impl Limiter {
    /// Counts an attempt by `ip`; `Err(seconds)` when the client must wait that long first.
    pub fn begin(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        let key = ClientKey::of(ip);
        let mut clients = self.lock();
        if !clients.contains_key(&key) && clients.len() >= MAX_CLIENTS {
            clients.retain(|_, window| now.duration_since(window.since) < WINDOW);
            if clients.len() >= MAX_CLIENTS
                && let Some(oldest) = clients
                    .iter()
                    .min_by_key(|(_, window)| window.since)
                    .map(|(key, _)| *key)
            {
                clients.remove(&oldest);
            }
        }
        let window = clients.entry(key).or_insert(Window {
            attempts: 0,
            since: now,
        });
        let elapsed = now.duration_since(window.since);
        if elapsed >= WINDOW {
            *window = Window {
                attempts: 0,
                since: now,
            };
        } else if window.attempts >= MAX_FAILURES {
            return Err((WINDOW - elapsed).as_secs().max(1));
        }
        window.attempts += 1;
        Ok(())
    }

    /// The client logged in: its count starts over.
    pub fn succeeded(&self, ip: IpAddr) {
        self.lock().remove(&ClientKey::of(ip));
    }

    /// Clients in the table.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, Window>> {
        self.clients.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn attempts_count_before_they_are_checked() {
        let limiter = Limiter::default();
        let now = Instant::now();
        for _ in 0..MAX_FAILURES {
            limiter.begin(ip("10.0.0.1"), now).unwrap();
        }
        // The eleventh is refused even though none of the ten has been judged yet.
        assert_eq!(limiter.begin(ip("10.0.0.1"), now), Err(60));
        assert!(limiter.begin(ip("10.0.0.2"), now).is_ok());
        // The window ends.
        assert!(limiter.begin(ip("10.0.0.1"), now + WINDOW).is_ok());
        limiter.succeeded(ip("10.0.0.1"));
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let limiter = Limiter::default();
        let now = Instant::now();
        for n in 0..MAX_FAILURES {
            limiter
                .begin(ip(&format!("2001:db8:1:2::{n:x}")), now)
                .unwrap();
        }
        assert!(limiter.begin(ip("2001:db8:1:2:ffff::1"), now).is_err());
        assert!(limiter.begin(ip("2001:db8:1:3::1"), now).is_ok());
        assert_eq!(
            ClientKey::of(ip("::ffff:10.1.2.3")),
            ClientKey::of(ip("10.1.2.3"))
        );
    }

    #[test]
    fn the_table_stays_bounded() {
        let limiter = Limiter::default();
        let start = Instant::now();
        for n in 0..(MAX_CLIENTS as u32 + 500) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + n));
            limiter
                .begin(ip, start + Duration::from_millis(u64::from(n)))
                .unwrap();
        }
        assert_eq!(limiter.len(), MAX_CLIENTS);
        // The oldest went first.
        assert!(
            !limiter
                .lock()
                .contains_key(&ClientKey::of(IpAddr::V4(0x0a00_0000.into())))
        );
    }
}
