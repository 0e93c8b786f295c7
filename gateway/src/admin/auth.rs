//! Admin authentication: HTTP basic auth as user `admin`, checked against a password or an
//! argon2 hash (`password_hash`), with failed attempts limited per client ([`limiter`]).
//!
//! Checking an argon2 hash takes tens of milliseconds of CPU: it runs on the blocking pool, at
//! most [`MAX_CONCURRENT_VERIFICATIONS`] at a time and at a lower scheduling priority (nice 10),
//! so a stream of guesses can neither stall the worker thread that carries funko traffic nor
//! crowd it out of the cores. A plain password is compared
//! through BLAKE2b digests in constant time (no length or position leaks).
//!
//! [`limiter`]: super::limiter

use std::net::IpAddr;
use std::time::Instant;

use argon2::{Argon2, PasswordHash, PasswordVerifier};
use base64::Engine;
use blake2::{Blake2b512, Digest};
use subtle::ConstantTimeEq;

use super::limiter::Limiter;

/// Argon2 checks running at once, at most; more wait their turn.
pub const MAX_CONCURRENT_VERIFICATIONS: usize = 2;

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
    /// Too many failures from this client (429); retry after this many seconds.
    Limited(u64),
    /// No password configured (503).
    NotConfigured,
}

impl Verdict {
    /// The word the audit log uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Allowed => "allowed",
            Verdict::Denied => "denied",
            Verdict::Limited(_) => "limited",
            Verdict::NotConfigured => "no-password",
        }
    }
}

/// Checks credentials and limits failures.
#[derive(Debug)]
pub struct Auth {
    secret: Secret,
    limiter: Limiter,
    verifying: tokio::sync::Semaphore,
}

impl Auth {
    pub fn new(secret: Secret) -> Auth {
        Auth {
            secret,
            limiter: Limiter::default(),
            verifying: tokio::sync::Semaphore::new(MAX_CONCURRENT_VERIFICATIONS),
        }
    }

    /// Checks the `Authorization` header of a request from `client`.
    pub async fn check(&self, authorization: Option<&[u8]>, client: Option<IpAddr>) -> Verdict {
        if matches!(self.secret, Secret::None) {
            return Verdict::NotConfigured;
        }
        // Only a request that presents credentials is a login attempt: one without them is
        // refused and not counted, so nobody locks the admin out by knocking.
        let Some(password) = authorization.and_then(basic_password) else {
            return Verdict::Denied;
        };
        // Counted before it is judged: concurrent guesses all count.
        if let Some(ip) = client
            && let Err(wait) = self.limiter.begin(ip, Instant::now())
        {
            return Verdict::Limited(wait);
        }
        self.judge(password, client).await
    }

    /// Checks a password typed into the web UI's login form, under the same limit as the API's
    /// basic auth (one count per client for both).
    pub async fn check_password(&self, password: &str, client: Option<IpAddr>) -> Verdict {
        if matches!(self.secret, Secret::None) {
            return Verdict::NotConfigured;
        }
        if let Some(ip) = client
            && let Err(wait) = self.limiter.begin(ip, Instant::now())
        {
            return Verdict::Limited(wait);
        }
        self.judge(password.to_string(), client).await
    }

    /// Whether a password is configured at all.
    pub fn is_configured(&self) -> bool {
        !matches!(self.secret, Secret::None)
    }

    async fn judge(&self, password: String, client: Option<IpAddr>) -> Verdict {
        if self.verify(password).await {
            if let Some(ip) = client {
                self.limiter.succeeded(ip);
            }
            Verdict::Allowed
        } else {
            Verdict::Denied
        }
    }

    async fn verify(&self, password: String) -> bool {
        match &self.secret {
            Secret::None => false,
            Secret::Plain(expected) => digest(&password).ct_eq(&digest(expected)).into(),
            Secret::Hash(hash) => {
                let Ok(_permit) = self.verifying.acquire().await else {
                    return false;
                };
                let hash = hash.clone();
                tokio::task::spawn_blocking(move || {
                    lower_priority();
                    PasswordHash::new(&hash).is_ok_and(|parsed| {
                        Argon2::default()
                            .verify_password(password.as_bytes(), &parsed)
                            .is_ok()
                    })
                })
                .await
                .unwrap_or(false)
            }
        }
    }
}

/// Lowers the calling thread's scheduling priority (Linux: `nice` is per thread). Threads of
/// the blocking pool only do background work (hashes, unpacking), so they keep it.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority has no memory effects; `who = 0` is the calling thread on Linux.
    unsafe {
        let _ = libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

fn digest(text: &str) -> [u8; 64] {
    Blake2b512::digest(text.as_bytes()).into()
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
    use crate::admin::limiter::MAX_FAILURES;

    fn basic(user: &str, password: &str) -> Vec<u8> {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}").into_bytes()
    }

    const CLIENT: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1)));

    #[tokio::test]
    async fn plain_and_hashed_passwords() {
        let auth = Auth::new(Secret::Plain("s3cret".into()));
        let check = |header: Option<Vec<u8>>| {
            let auth = &auth;
            async move { auth.check(header.as_deref(), CLIENT).await }
        };
        assert_eq!(
            check(Some(basic("admin", "s3cret"))).await,
            Verdict::Allowed
        );
        assert_eq!(check(Some(basic("admin", "wrong"))).await, Verdict::Denied);
        assert_eq!(check(Some(basic("admin", "s3cre"))).await, Verdict::Denied);
        assert_eq!(check(Some(basic("root", "s3cret"))).await, Verdict::Denied);
        assert_eq!(check(None).await, Verdict::Denied);
        assert_eq!(check(Some(b"Bearer x".to_vec())).await, Verdict::Denied);
        let hashed = Auth::new(Secret::Hash(hash_password("s3cret").unwrap()));
        assert_eq!(
            hashed.check(Some(&basic("admin", "s3cret")), CLIENT).await,
            Verdict::Allowed
        );
        assert_eq!(
            hashed.check(Some(&basic("admin", "s3cre")), CLIENT).await,
            Verdict::Denied
        );
        assert_eq!(
            Auth::new(Secret::None)
                .check(Some(&basic("admin", "x")), CLIENT)
                .await,
            Verdict::NotConfigured
        );
    }

    #[tokio::test]
    async fn failures_are_limited_per_client() {
        let auth = Auth::new(Secret::Plain("s3cret".into()));
        for _ in 0..MAX_FAILURES {
            assert_eq!(
                auth.check(Some(&basic("admin", "guess")), CLIENT).await,
                Verdict::Denied
            );
        }
        assert!(matches!(
            auth.check(Some(&basic("admin", "s3cret")), CLIENT).await,
            Verdict::Limited(_)
        ));
        let other = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(
            auth.check(Some(&basic("admin", "s3cret")), other).await,
            Verdict::Allowed
        );
    }

    /// Argon2 runs off the calling thread: a current-thread runtime keeps running other tasks
    /// while hashes are checked.
    #[tokio::test(flavor = "current_thread")]
    async fn hashes_are_checked_off_the_worker_thread() {
        let auth = std::sync::Arc::new(Auth::new(Secret::Hash(hash_password("s3cret").unwrap())));
        let ticks = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let ticker = {
            let ticks = std::sync::Arc::clone(&ticks);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            })
        };
        let started = std::time::Instant::now();
        for n in 0..8u8 {
            let client = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 0, n)));
            auth.check(Some(&basic("admin", "guess")), client).await;
        }
        let elapsed = started.elapsed();
        ticker.abort();
        let ticks = ticks.load(std::sync::atomic::Ordering::Relaxed);
        // A blocked thread would not have ticked at all while eight hashes were checked.
        assert!(
            ticks as u128 >= elapsed.as_millis() / 16,
            "{ticks} ticks in {elapsed:?}"
        );
    }
}
