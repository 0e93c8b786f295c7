//! The keys of private funkos as the request path sees them: one immutable map of funko →
//! set of key hashes ([`faaso::store::keys`]), swapped atomically when the key files change
//! (the admin API reloads at once after a change; [`KeyRing::watch`] polls the folder twice a
//! second for changes made by the CLI's local mode). A request's key is found in
//! `X-Api-Key` or `Authorization: Bearer`, hashed (BLAKE2b-256), and looked up.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use faaso::store::keys::{KeyHash, KeyStore, hash};
use http::HeaderMap;

/// How often the key folder is looked at for changes made outside the gateway.
pub const POLL: Duration = Duration::from_millis(500);

type Sets = HashMap<Box<str>, HashSet<KeyHash>, foldhash::fast::RandomState>;

/// Every private funko's key hashes.
pub struct KeyRing {
    store: KeyStore,
    sets: ArcSwap<Sets>,
}

/// Why a request to a private funko was refused (401).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No key in either header.
    Missing,
    /// A key that is not one of the funko's (wrong, or removed).
    Wrong,
    /// The header that carries the key came more than once: which one counts would be a guess
    /// (and a second copy could slip through to the funko), so neither does.
    Repeated,
}

impl Denied {
    pub fn message(self) -> &'static str {
        match self {
            Denied::Missing => {
                "this funko is private: send a key as Authorization: Bearer <key> or X-Api-Key"
            }
            Denied::Wrong => "this key is not one of the funko's keys",
            Denied::Repeated => "send one key: its header (X-Api-Key or Authorization) came twice",
        }
    }
}

/// A key that was accepted: which header carried it (removed before the request goes on), and
/// its hash (what rate limits count under).
#[derive(Debug, Clone)]
pub struct Accepted {
    pub header: http::HeaderName,
    pub hash: KeyHash,
}

/// The key in `X-Api-Key`, else in `Authorization: Bearer`, with the header it came in; a
/// header that carries the key must come once.
fn presented(headers: &HeaderMap) -> Result<(http::HeaderName, &[u8]), Denied> {
    let once = |name: &http::HeaderName| {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (None, _) => Ok(None),
            (Some(value), None) => Ok(Some(value.as_bytes())),
            (Some(_), Some(_)) => Err(Denied::Repeated),
        }
    };
    if let Some(key) = once(&X_API_KEY)? {
        return Ok((X_API_KEY, key.trim_ascii()));
    }
    let value = once(&http::header::AUTHORIZATION)?.ok_or(Denied::Missing)?;
    match value.split_at_checked(7) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case(b"bearer ") => {
            Ok((http::header::AUTHORIZATION, token.trim_ascii()))
        }
        _ => Err(Denied::Missing),
    }
}

const X_API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");

impl KeyRing {
    /// A ring over `store`, loaded now (a file that cannot be read is logged; its funko has no
    /// keys, so its requests are refused).
    pub fn load(store: KeyStore) -> KeyRing {
        let ring = KeyRing {
            store,
            sets: ArcSwap::from_pointee(Sets::default()),
        };
        ring.reload();
        ring
    }

    /// Reads every key file again and swaps the new sets in.
    pub fn reload(&self) {
        let (all, errors) = self.store.load_all();
        for error in errors {
            tracing::error!(%error, "key file not read: its funko's requests are refused");
        }
        let sets: Sets = all
            .into_iter()
            .map(|(funko, hashes)| (funko.into_boxed_str(), hashes.into_iter().collect()))
            .collect();
        self.sets.store(Arc::new(sets));
    }

    /// Checks a request to the private funko `funko`.
    pub fn check(&self, funko: &str, headers: &HeaderMap) -> Result<Accepted, Denied> {
        let (header, key) = presented(headers)?;
        if key.is_empty() {
            return Err(Denied::Missing);
        }
        let hash = hash(key);
        let known = self
            .sets
            .load()
            .get(funko)
            .is_some_and(|set| set.contains(&hash));
        if known {
            Ok(Accepted { header, hash })
        } else {
            Err(Denied::Wrong)
        }
    }

    /// Reloads whenever the key folder changes.
    async fn watch(self: Arc<Self>) {
        let mut seen = Arc::new(self.store.fingerprint());
        loop {
            tokio::time::sleep(POLL).await;
            let ring = Arc::clone(&self);
            let before = Arc::clone(&seen);
            let changed = tokio::task::spawn_blocking(move || {
                let now = ring.store.fingerprint();
                (now != *before).then(|| {
                    ring.reload();
                    now
                })
            })
            .await;
            match changed {
                Ok(Some(now)) => seen = Arc::new(now),
                Ok(None) => {}
                Err(err) => tracing::error!(%err, "key reload failed"),
            }
        }
    }
}

/// The background service that keeps the ring in step with the key folder.
pub struct KeyWatch {
    pub ring: Arc<KeyRing>,
}

#[async_trait::async_trait]
impl pingora::services::background::BackgroundService for KeyWatch {
    async fn start(&self, mut shutdown: pingora::server::ShutdownWatch) {
        tokio::select! {
            _ = Arc::clone(&self.ring).watch() => {}
            _ = shutdown.changed() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn keys_in_either_header_are_checked_against_the_funkos_own() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        let key = store.add("private", None).unwrap().key;
        let other = store.add("other", None).unwrap().key;
        let ring = KeyRing::load(store.clone());
        let bearer = format!("Bearer {key}");
        let accepted = ring
            .check("private", &headers(&[("authorization", &bearer)]))
            .unwrap();
        assert_eq!(accepted.header, http::header::AUTHORIZATION);
        let lower = format!("bearer  {key} ");
        assert!(
            ring.check("private", &headers(&[("authorization", &lower)]))
                .is_ok()
        );
        let accepted = ring
            .check("private", &headers(&[("x-api-key", &key)]))
            .unwrap();
        assert_eq!(accepted.header, X_API_KEY);
        assert_eq!(accepted.hash, hash(key.as_bytes()));

        assert_eq!(
            ring.check("private", &headers(&[])).unwrap_err(),
            Denied::Missing
        );
        let basic = [("authorization", "Basic YTpi")];
        assert_eq!(
            ring.check("private", &headers(&basic)).unwrap_err(),
            Denied::Missing
        );
        let empty = [("x-api-key", "")];
        assert_eq!(
            ring.check("private", &headers(&empty)).unwrap_err(),
            Denied::Missing
        );
        // Another funko's key, and a key of a funko with no key file.
        let wrong = [("x-api-key", other.as_str())];
        assert_eq!(
            ring.check("private", &headers(&wrong)).unwrap_err(),
            Denied::Wrong
        );
        assert_eq!(
            ring.check("nokeys", &headers(&wrong)).unwrap_err(),
            Denied::Wrong
        );

        store.remove("private", "key-1").unwrap();
        ring.reload();
        let gone = [("x-api-key", key.as_str())];
        assert_eq!(
            ring.check("private", &headers(&gone)).unwrap_err(),
            Denied::Wrong
        );
    }

    #[test]
    fn a_key_header_given_twice_is_refused_whatever_the_copies_hold() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::new(dir.path());
        let key = store.add("private", None).unwrap().key;
        let ring = KeyRing::load(store);
        let bearer = format!("Bearer {key}");
        for pairs in [
            [("x-api-key", key.as_str()), ("x-api-key", key.as_str())],
            [("x-api-key", key.as_str()), ("x-api-key", "fk_other")],
            [("x-api-key", "fk_other"), ("x-api-key", key.as_str())],
            [
                ("authorization", bearer.as_str()),
                ("authorization", "Basic YTpi"),
            ],
            [
                ("authorization", "Basic YTpi"),
                ("authorization", bearer.as_str()),
            ],
        ] {
            assert_eq!(
                ring.check("private", &headers(&pairs)).unwrap_err(),
                Denied::Repeated,
                "{pairs:?}"
            );
        }
        // A key in X-Api-Key leaves the client's own Authorization headers alone.
        let with_basic = [
            ("x-api-key", key.as_str()),
            ("authorization", "Basic YTpi"),
            ("authorization", "Basic Yzpk"),
        ];
        assert!(ring.check("private", &headers(&with_basic)).is_ok());
    }
}
