//! Admin authentication: HTTP basic auth as user `admin`, checked against a password or an
//! argon2 hash (`password_hash`) in constant time, with failed attempts limited per client
//! address (10 a minute, then 429 until the minute is over).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine;

/// Failed logins allowed per client address and window.
pub const MAX_FAILURES: u32 = 10;
/// The window failures are counted in.
pub const WINDOW: Duration = Duration::from_secs(60);

/// The configured secret.
#[derive(Debug, Clone)]
pub enum Secret {
    /// No password set: every admin request is refused with 503.
    None,
    Plain(String),
    /// An argon2 PHC string (`$argon2id$v=19$...`).
    Hash(String),
}

/// The outcome of checking a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// No or wrong credentials (401).
    Denied,
    /// Too many failures from this address (429); retry after this many seconds.
    Limited(u64),
    /// No password configured (503).
    NotConfigured,
}

/// Checks credentials and counts failures.
#[derive(Debug)]
pub struct Auth {
    secret: Secret,
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl Auth {
    pub fn new(secret: Secret) -> Auth {
        Auth {
            secret,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Checks the `Authorization` header of a request from `client`.
    pub fn check(&self, authorization: Option<&[u8]>, client: Option<IpAddr>) -> Verdict {
        if matches!(self.secret, Secret::None) {
            return Verdict::NotConfigured;
        }
        let now = Instant::now();
        if let Some(ip) = client
            && let Some(wait) = self.limited(ip, now)
        {
            return Verdict::Limited(wait);
        }
        let valid = authorization
            .and_then(basic_password)
            .is_some_and(|password| self.matches(&password));
        if valid {
            if let Some(ip) = client {
                self.lock().remove(&ip);
            }
            Verdict::Allowed
        } else {
            if let Some(ip) = client {
                self.record_failure(ip, now);
            }
            Verdict::Denied
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, (u32, Instant)>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn limited(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let failures = self.lock();
        let (count, since) = failures.get(&ip)?;
        let elapsed = now.duration_since(*since);
        (*count >= MAX_FAILURES && elapsed < WINDOW).then(|| (WINDOW - elapsed).as_secs().max(1))
    }

    fn record_failure(&self, ip: IpAddr, now: Instant) {
        let mut failures = self.lock();
        // Forget old windows now and then, so the map cannot grow without bound.
        if failures.len() > 10_000 {
            failures.retain(|_, (_, since)| now.duration_since(*since) < WINDOW);
        }
        let entry = failures.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= WINDOW {
            *entry = (0, now);
        }
        entry.0 += 1;
    }

    fn matches(&self, password: &str) -> bool {
        match &self.secret {
            Secret::None => false,
            Secret::Plain(expected) => constant_time_eq(password.as_bytes(), expected.as_bytes()),
            Secret::Hash(hash) => PasswordHash::new(hash)
                .map(|parsed| {
                    Argon2::default()
                        .verify_password(password.as_bytes(), &parsed)
                        .is_ok()
                })
                .unwrap_or(false),
        }
    }
}

/// The password of a `Basic` authorization for user `admin`.
fn basic_password(header: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(header).ok()?;
    let (scheme, encoded) = text.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    (user == "admin").then(|| password.to_string())
}

/// Equal in time that depends only on the lengths, not on where the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        difference |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    difference == 0
}

/// An argon2id PHC hash of `password` with a random salt, for `password_hash` in the config.
pub fn hash_password(password: &str) -> Result<String, String> {
    use argon2::password_hash::{PasswordHasher, SaltString, rand_core::OsRng};
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|err| err.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Vec<u8> {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}").into_bytes()
    }

    const CLIENT: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));

    #[test]
    fn plain_and_hashed_passwords() {
        let auth = Auth::new(Secret::Plain("s3cret".into()));
        assert_eq!(
            auth.check(Some(&basic("admin", "s3cret")), CLIENT),
            Verdict::Allowed
        );
        assert_eq!(
            auth.check(Some(&basic("admin", "wrong")), CLIENT),
            Verdict::Denied
        );
        assert_eq!(
            auth.check(Some(&basic("root", "s3cret")), CLIENT),
            Verdict::Denied
        );
        assert_eq!(auth.check(None, CLIENT), Verdict::Denied);
        assert_eq!(auth.check(Some(b"Bearer x"), CLIENT), Verdict::Denied);
        let hashed = Auth::new(Secret::Hash(hash_password("s3cret").unwrap()));
        assert_eq!(
            hashed.check(Some(&basic("admin", "s3cret")), CLIENT),
            Verdict::Allowed
        );
        assert_eq!(
            hashed.check(Some(&basic("admin", "s3cre")), CLIENT),
            Verdict::Denied
        );
        assert_eq!(
            Auth::new(Secret::None).check(Some(&basic("admin", "x")), CLIENT),
            Verdict::NotConfigured
        );
    }

    #[test]
    fn failures_are_rate_limited_per_address() {
        let auth = Auth::new(Secret::Plain("s3cret".into()));
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                auth.check(Some(&basic("admin", "guess")), CLIENT),
                Verdict::Denied
            );
        }
        assert!(matches!(
            auth.check(Some(&basic("admin", "s3cret")), CLIENT),
            Verdict::Limited(_)
        ));
        let other = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(
            auth.check(Some(&basic("admin", "s3cret")), other),
            Verdict::Allowed
        );
    }

    #[test]
    fn constant_time_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"", b"a"));
        assert!(constant_time_eq(b"", b""));
    }
}
