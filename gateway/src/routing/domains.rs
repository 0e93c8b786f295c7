//! Custom domains (`domains:` in `funko.yml`, label `faaso.domains`): a request whose `Host`
//! is a funko's domain goes to that funko with its whole path.
//!
//! Two funkos may claim one domain; the one that held it keeps it and the other's claim is
//! refused (logged, and shown by `faaso status`). "Held" is what the last routing snapshot
//! routed, else what the gateway recorded before it restarted; a domain nobody held goes to
//! the first claimer by name, so the choice never depends on list order. Both are pure
//! functions here.

use std::collections::BTreeMap;

use faaso::store::state::{DomainClaims, RefusedDomain};

/// Longest host name.
pub const MAX_HOST: usize = 253;

/// Decides the owner of every claimed domain. `claims` are (funko, its domains); `held` names
/// the funko that held a domain before.
pub fn decide<'a>(
    claims: impl IntoIterator<Item = (&'a str, &'a [String])>,
    held: impl Fn(&str) -> Option<&'a str>,
) -> DomainClaims {
    let mut claimers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (funko, domains) in claims {
        for domain in domains {
            claimers.entry(domain.as_str()).or_default().push(funko);
        }
    }
    let mut decided = DomainClaims::default();
    for (domain, mut funkos) in claimers {
        funkos.sort_unstable();
        funkos.dedup();
        let owner = held(domain)
            .filter(|h| funkos.contains(h))
            .unwrap_or(funkos[0]);
        for funko in funkos.iter().filter(|f| **f != owner) {
            decided.refused.push(RefusedDomain {
                domain: domain.to_string(),
                funko: funko.to_string(),
                owner: owner.to_string(),
            });
        }
        decided.owners.insert(domain.to_string(), owner.to_string());
    }
    decided
}

/// The host name of a `Host` header (or an HTTP/2 authority), lowercased into `buf`: without
/// its port and trailing dot. `None` for an IPv6 literal, an empty or too long name, or bytes
/// a host name cannot have (no allocation: this runs on every request once a domain exists).
pub fn host_name<'b>(value: &[u8], buf: &'b mut [u8; MAX_HOST]) -> Option<&'b str> {
    if value.first() == Some(&b'[') {
        return None;
    }
    let host = match memchr::memrchr(b':', value) {
        Some(colon) if value[colon + 1..].iter().all(u8::is_ascii_digit) => &value[..colon],
        Some(_) => return None,
        None => value,
    };
    let host = host.strip_suffix(b".").unwrap_or(host);
    if host.is_empty() || host.len() > MAX_HOST {
        return None;
    }
    for (out, byte) in buf.iter_mut().zip(host) {
        if !(byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.')) {
            return None;
        }
        *out = byte.to_ascii_lowercase();
    }
    std::str::from_utf8(&buf[..host.len()]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_holder_keeps_a_domain_and_the_second_claim_is_refused() {
        let a = names(&["api.example.com", "a.example.com"]);
        let b = names(&["api.example.com"]);
        // Nobody held it: the first by name.
        let fresh = decide([("zeta", &b[..]), ("alpha", &a[..])], |_| None);
        assert_eq!(fresh.owners["api.example.com"], "alpha");
        assert_eq!(fresh.owners["a.example.com"], "alpha");
        assert_eq!(fresh.refused.len(), 1);
        assert_eq!(fresh.refused[0].funko, "zeta");
        assert_eq!(fresh.refused[0].owner, "alpha");
        // zeta held it: a new claim by alpha, first by name, is the one refused.
        let held = decide([("alpha", &a[..]), ("zeta", &b[..])], |d| {
            (d == "api.example.com").then_some("zeta")
        });
        assert_eq!(held.owners["api.example.com"], "zeta");
        assert_eq!(held.refused[0].funko, "alpha");
        // A holder that no longer claims it does not keep it.
        let gone = decide([("alpha", &a[..])], |_| Some("zeta"));
        assert_eq!(gone.owners["api.example.com"], "alpha");
        assert!(gone.refused.is_empty());
    }

    #[test]
    fn host_names_are_normalized_without_allocating() {
        let mut buf = [0u8; MAX_HOST];
        assert_eq!(
            host_name(b"API.Example.com", &mut buf),
            Some("api.example.com")
        );
        assert_eq!(
            host_name(b"api.example.com:8443", &mut buf),
            Some("api.example.com")
        );
        assert_eq!(
            host_name(b"api.example.com.", &mut buf),
            Some("api.example.com")
        );
        assert_eq!(host_name(b"[::1]:80", &mut buf), None);
        assert_eq!(host_name(b"a:b:c", &mut buf), None);
        assert_eq!(host_name(b"", &mut buf), None);
        assert_eq!(host_name(b"evil.com/x", &mut buf), None);
        assert_eq!(host_name(&[b'a'; 300], &mut buf), None);
    }
}
