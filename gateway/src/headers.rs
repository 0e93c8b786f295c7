//! Header rewrites between client and instance, as pure functions:
//! `X-Forwarded-For` (appended to), `X-Forwarded-Proto`, `X-Forwarded-Host`,
//! `X-Forwarded-Prefix` and `X-Request-Id` (kept when the client sent a sane one, else made).

use std::net::IpAddr;

/// Longest client-supplied request id that is kept.
const MAX_REQUEST_ID: usize = 128;

/// The `X-Forwarded-For` value: the client's chain with the client's address appended.
pub fn forwarded_for(existing: Option<&[u8]>, client: Option<IpAddr>) -> Option<String> {
    let existing = existing
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    match (existing, client) {
        (Some(chain), Some(ip)) => Some(format!("{chain}, {ip}")),
        (None, Some(ip)) => Some(ip.to_string()),
        (Some(chain), None) => Some(chain.to_string()),
        (None, None) => None,
    }
}

/// The client's request id when it is printable ASCII of sane length; `None` means make one.
pub fn client_request_id(value: Option<&[u8]>) -> Option<&str> {
    let value = value?;
    let ok = !value.is_empty()
        && value.len() <= MAX_REQUEST_ID
        && value.iter().all(|b| b.is_ascii_graphic());
    if ok {
        std::str::from_utf8(value).ok()
    } else {
        None
    }
}

/// A new request id: 32 hex digits, unique enough to find one request in the logs.
pub fn new_request_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let state = std::collections::hash_map::RandomState::new();
    let mut hasher = state.build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    let high = hasher.finish();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    format!("{high:016x}{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_appends() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(forwarded_for(None, Some(ip)).as_deref(), Some("10.1.2.3"));
        assert_eq!(
            forwarded_for(Some(b"1.1.1.1"), Some(ip)).as_deref(),
            Some("1.1.1.1, 10.1.2.3")
        );
        assert_eq!(forwarded_for(Some(b" "), None), None);
    }

    #[test]
    fn request_ids() {
        assert_eq!(client_request_id(Some(b"abc-123")), Some("abc-123"));
        assert_eq!(client_request_id(Some(b"has space")), None);
        assert_eq!(client_request_id(Some(&[b'a'; 129])), None);
        assert_eq!(client_request_id(None), None);
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
