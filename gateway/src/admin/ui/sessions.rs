//! Web UI sessions: a random id in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` over TLS),
//! kept in memory with its CSRF token.
//!
//! - A session ends after [`IDLE`] without a request, after [`LIFETIME`] in any case, at logout,
//!   and when the gateway restarts. At most [`MAX_SESSIONS`] live at once; the one seen longest
//!   ago goes first.
//! - Every state-changing form carries the session's CSRF token, compared in constant time; a
//!   token of another session, or none, is refused.
//! - The login form has its own token in a short-lived cookie (double submit), so a page
//!   elsewhere cannot log a browser in.
//!
//! Ids and tokens are 32 bytes from the operating system's random source.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::{OsRng, RngCore};
use subtle::ConstantTimeEq;

/// The session cookie.
pub const COOKIE: &str = "faaso_session";
/// The login form's cookie (double-submit token).
pub const LOGIN_COOKIE: &str = "faaso_login";
/// A session ends after this long without a request.
pub const IDLE: Duration = Duration::from_secs(30 * 60);
/// A session ends this long after login whatever happens.
pub const LIFETIME: Duration = Duration::from_secs(12 * 60 * 60);
/// Sessions alive at once, at most.
pub const MAX_SESSIONS: usize = 1000;

/// A fresh random token: 32 bytes, hex.
pub fn token() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a token from a form is the expected one (constant time).
pub fn tokens_match(expected: &str, given: &str) -> bool {
    expected.as_bytes().ct_eq(given.as_bytes()).into()
}

/// A logged-in session as a request sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Active {
    pub id: String,
    pub csrf: String,
}

#[derive(Debug)]
struct Entry {
    csrf: String,
    created: Instant,
    seen: Instant,
}

/// The live sessions.
#[derive(Debug, Default)]
pub struct Sessions {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Sessions {
    /// Starts a session (after a successful login).
    pub fn create(&self, now: Instant) -> Active {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.retain(|_, entry| alive(entry, now));
        while entries.len() >= MAX_SESSIONS {
            let Some(oldest) = entries
                .iter()
                .min_by_key(|(_, entry)| entry.seen)
                .map(|(id, _)| id.clone())
            else {
                break;
            };
            entries.remove(&oldest);
        }
        let active = Active {
            id: token(),
            csrf: token(),
        };
        entries.insert(
            active.id.clone(),
            Entry {
                csrf: active.csrf.clone(),
                created: now,
                seen: now,
            },
        );
        active
    }

    /// The live session with this id, marked as seen now.
    pub fn get(&self, id: &str, now: Instant) -> Option<Active> {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let entry = entries.get_mut(id)?;
        if !alive(entry, now) {
            entries.remove(id);
            return None;
        }
        entry.seen = now;
        Some(Active {
            id: id.to_string(),
            csrf: entry.csrf.clone(),
        })
    }

    /// Ends a session (logout).
    pub fn remove(&self, id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn alive(entry: &Entry, now: Instant) -> bool {
    now.duration_since(entry.seen) < IDLE && now.duration_since(entry.created) < LIFETIME
}

/// The value of the cookie `name` in a `Cookie` header.
pub fn cookie<'h>(header: &'h str, name: &str) -> Option<&'h str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Strict`, on `path`; `Secure` when served over
/// TLS; `max_age` 0 deletes it, `None` makes it last as long as the browser runs.
pub fn set_cookie(
    name: &str,
    value: &str,
    path: &str,
    max_age: Option<u64>,
    secure: bool,
) -> String {
    let mut cookie = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if let Some(seconds) = max_age {
        cookie.push_str(&format!("; Max-Age={seconds}"));
    }
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_end_when_idle_old_or_logged_out() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let active = sessions.create(start);
        assert_eq!(active.id.len(), 64);
        assert_ne!(active.id, active.csrf);
        assert_eq!(sessions.get(&active.id, start), Some(active.clone()));
        assert_eq!(sessions.get("nope", start), None);
        // Seen every 20 minutes, it lives until its lifetime is over.
        let mut now = start;
        while now + Duration::from_secs(20 * 60) < start + LIFETIME {
            now += Duration::from_secs(20 * 60);
            assert!(sessions.get(&active.id, now).is_some(), "{:?}", now - start);
        }
        assert_eq!(sessions.get(&active.id, start + LIFETIME), None);

        let idle = sessions.create(start);
        assert_eq!(sessions.get(&idle.id, start + IDLE), None);
        let out = sessions.create(start);
        sessions.remove(&out.id);
        assert_eq!(sessions.get(&out.id, start), None);
    }

    #[test]
    fn the_session_seen_longest_ago_goes_when_full() {
        let sessions = Sessions::default();
        let start = Instant::now();
        let first = sessions.create(start);
        for i in 1..MAX_SESSIONS {
            sessions.create(start + Duration::from_millis(i as u64));
        }
        assert_eq!(sessions.len(), MAX_SESSIONS);
        let newest = sessions.create(start + Duration::from_secs(5));
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert_eq!(
            sessions.get(&first.id, start + Duration::from_secs(5)),
            None
        );
        assert!(
            sessions
                .get(&newest.id, start + Duration::from_secs(5))
                .is_some()
        );
    }

    #[test]
    fn cookies_and_tokens() {
        let header = "a=1; faaso_session=abc ; faaso_sessionx=no";
        assert_eq!(cookie(header, COOKIE), Some("abc"));
        assert_eq!(cookie(header, "missing"), None);
        assert_eq!(
            set_cookie(COOKIE, "v", "/admin/", None, true),
            "faaso_session=v; Path=/admin/; HttpOnly; SameSite=Strict; Secure"
        );
        assert_eq!(
            set_cookie(COOKIE, "", "/admin/", Some(0), false),
            "faaso_session=; Path=/admin/; HttpOnly; SameSite=Strict; Max-Age=0"
        );
        let t = token();
        assert!(tokens_match(&t, &t.clone()));
        assert!(!tokens_match(&t, &token()));
        assert!(!tokens_match(&t, ""));
    }
}
