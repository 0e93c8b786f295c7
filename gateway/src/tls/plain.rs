//! What the plain listener does differently once HTTPS is on: answers ACME's HTTP-01
//! challenges, and (with `redirect_https`) sends every other request but `/healthz` and
//! `/readyz` to the same place over HTTPS with a 308, which keeps the method and body.

use super::acme::CHALLENGE_PREFIX;

/// The token of an HTTP-01 challenge request, if `path` is one.
pub fn challenge_token(path: &str) -> Option<&str> {
    let token = path.strip_prefix(CHALLENGE_PREFIX)?;
    // Tokens are base64url: anything else is not a token of ours.
    (!token.is_empty()
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
    .then_some(token)
}

/// Whether a plain request for `path` is redirected (with `redirect_https` on).
pub fn redirects(path: &str) -> bool {
    !(path == "/healthz" || path == "/readyz" || path.starts_with(CHALLENGE_PREFIX))
}

/// The HTTPS URL for a plain request to `host` (the `Host` header) and `target`; `None` when
/// the host is missing or malformed.
pub fn https_location(host: Option<&str>, target: &str, https_port: u16) -> Option<String> {
    let host = host?.trim();
    // The host without its port: `name`, `name:80`, `[v6]`, `[v6]:80`.
    let name = if let Some(rest) = host.strip_prefix('[') {
        let end = rest.find(']')?;
        &host[..end + 2]
    } else {
        host.split(':').next()?
    };
    let valid = !name.is_empty()
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':')
        });
    if !valid {
        return None;
    }
    let target = if target.starts_with('/') { target } else { "/" };
    Some(if https_port == 443 {
        format!("https://{name}{target}")
    } else {
        format!("https://{name}:{https_port}{target}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_keep_the_host_and_target_and_name_the_https_port() {
        let at = |host, target, port| https_location(host, target, port);
        assert_eq!(
            at(Some("example.com"), "/funko/a/b?c=1", 443).as_deref(),
            Some("https://example.com/funko/a/b?c=1")
        );
        assert_eq!(
            at(Some("example.com:8888"), "/admin/", 8443).as_deref(),
            Some("https://example.com:8443/admin/")
        );
        assert_eq!(
            at(Some("[::1]:8888"), "/", 8443).as_deref(),
            Some("https://[::1]:8443/")
        );
        assert_eq!(at(None, "/", 443), None);
        assert_eq!(at(Some(""), "/", 443), None);
        assert_eq!(at(Some("evil.com/x"), "/", 443), None);
        assert_eq!(at(Some("a b"), "/", 443), None);
        // An absolute-form target is not carried over as it is.
        assert_eq!(
            at(Some("h"), "http://other/", 443).as_deref(),
            Some("https://h/")
        );
    }

    #[test]
    fn health_and_challenges_stay_plain() {
        assert!(!redirects("/healthz"));
        assert!(!redirects("/readyz"));
        assert!(!redirects("/.well-known/acme-challenge/abc"));
        assert!(redirects("/funko/a/"));
        assert!(redirects("/admin/login"));
        assert!(redirects("/healthz/x"));
    }

    #[test]
    fn challenge_tokens_are_base64url() {
        assert_eq!(
            challenge_token("/.well-known/acme-challenge/aB-_9"),
            Some("aB-_9")
        );
        assert_eq!(challenge_token("/.well-known/acme-challenge/"), None);
        assert_eq!(challenge_token("/.well-known/acme-challenge/../x"), None);
        assert_eq!(challenge_token("/other"), None);
    }
}
