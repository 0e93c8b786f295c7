//! Header rewrites between client and instance, as pure functions: [`rewrite_request`] turns
//! the client's request into the instance's (prefix stripped, `X-Forwarded-For` appended to,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Prefix` and `X-Request-Id` set); the
//! request id is kept when the client sent a sane one, else made.
//!
//! Values are [`HeaderValue`]s, which share their bytes when cloned: a request id is made (or
//! taken from the client) once and then sent upstream and back without another copy.

use std::io::Write;
use std::net::IpAddr;

use http::{HeaderValue, Uri};
use pingora::http::RequestHeader;
use pingora::prelude::{Error, ErrorType, Result};

use crate::router::upstream_target;

/// Longest client-supplied request id that is kept.
const MAX_REQUEST_ID: usize = 128;

/// `X-Forwarded-Proto` of the plain listener.
pub const PROTO_HTTP: HeaderValue = HeaderValue::from_static("http");

/// What the gateway tells an instance about the request, besides the request itself.
#[derive(Debug)]
pub struct Forwarding<'a> {
    /// Where the instance's target starts in the request target (after `/funko/<name>`).
    pub upstream_at: usize,
    /// The client's address.
    pub client: Option<IpAddr>,
    /// `X-Forwarded-Prefix`: `/funko/<name>` or `/faaso/<name>`.
    pub prefix: Option<&'a HeaderValue>,
    /// `X-Request-Id`.
    pub request_id: Option<&'a HeaderValue>,
}

/// Rewrites `request` (a copy of the client's) into what the instance gets.
pub fn rewrite_request(request: &mut RequestHeader, forwarding: &Forwarding<'_>) -> Result<()> {
    let target = request.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri = target
        .get(forwarding.upstream_at..)
        .map(upstream_target)
        .and_then(|rest| Uri::try_from(&*rest).ok())
        .ok_or_else(|| Error::explain(ErrorType::HTTPStatus(400), "malformed request target"))?;
    request.set_uri(uri);
    let chain = forwarded_for(
        request.headers.get("x-forwarded-for").map(|v| v.as_bytes()),
        forwarding.client,
    );
    if let Some(value) = chain {
        request.insert_header("X-Forwarded-For", value)?;
    }
    request.insert_header("X-Forwarded-Proto", PROTO_HTTP)?;
    if let Some(host) = request.headers.get(http::header::HOST).cloned() {
        request.insert_header("X-Forwarded-Host", host)?;
    }
    if let Some(prefix) = forwarding.prefix {
        request.insert_header("X-Forwarded-Prefix", prefix.clone())?;
    }
    if let Some(id) = forwarding.request_id {
        request.insert_header("X-Request-Id", id.clone())?;
    }
    Ok(())
}

/// Removes the hop-by-hop headers (RFC 9110, section 7.6.1): they are about the client's
/// connection, not the instance's. The names listed in `Connection` go as well.
pub fn strip_hop_by_hop(request: &mut RequestHeader) {
    use http::header::{CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
    let hop = |name: &http::HeaderName| {
        name == CONNECTION
            || name == TE
            || name == TRAILER
            || name == TRANSFER_ENCODING
            || name == UPGRADE
            || name.as_str() == "keep-alive"
            || name.as_str() == "proxy-connection"
    };
    if !request.headers.keys().any(hop) {
        return;
    }
    let mut names: Vec<http::HeaderName> = request.headers.keys().filter(|n| hop(n)).cloned().collect();
    for value in request.headers.get_all(CONNECTION) {
        let listed = value.to_str().unwrap_or_default().split(',');
        names.extend(listed.filter_map(|n| http::HeaderName::try_from(n.trim()).ok()));
    }
    for name in names {
        request.remove_header(&name);
    }
}

/// The `X-Forwarded-For` value: the client's chain with the client's address appended.
pub fn forwarded_for(existing: Option<&[u8]>, client: Option<IpAddr>) -> Option<HeaderValue> {
    let existing = existing
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::trim)
        .filter(|v| !v.is_empty());
    match (existing, client) {
        (Some(chain), Some(ip)) => HeaderValue::try_from(format!("{chain}, {ip}")).ok(),
        (None, Some(IpAddr::V4(ip))) => {
            // The common case, without a formatter or a string on the way.
            let mut text = [0u8; 15];
            let mut len = 0;
            for (n, octet) in ip.octets().into_iter().enumerate() {
                if n > 0 {
                    text[len] = b'.';
                    len += 1;
                }
                if octet >= 100 {
                    text[len] = b'0' + octet / 100;
                    len += 1;
                }
                if octet >= 10 {
                    text[len] = b'0' + octet / 10 % 10;
                    len += 1;
                }
                text[len] = b'0' + octet % 10;
                len += 1;
            }
            HeaderValue::from_bytes(&text[..len]).ok()
        }
        (None, Some(ip)) => {
            let mut text = [0u8; 48];
            let len = {
                let mut cursor = &mut text[..];
                write!(cursor, "{ip}").ok()?;
                48 - cursor.len()
            };
            HeaderValue::from_bytes(&text[..len]).ok()
        }
        (Some(chain), None) => HeaderValue::try_from(chain).ok(),
        (None, None) => None,
    }
}

/// The client's request id when it is printable ASCII of sane length; `None` means make one.
pub fn client_request_id(value: Option<&HeaderValue>) -> Option<HeaderValue> {
    let value = value?;
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID
        && bytes.iter().all(|b| b.is_ascii_graphic());
    ok.then(|| value.clone())
}

/// A new request id: 32 hex digits (128 random bits), unique enough to find one request in
/// the logs.
pub fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut bits = fastrand::u128(..);
    let mut text = [0u8; 32];
    for digit in text.iter_mut().rev() {
        *digit = HEX[(bits & 0xf) as usize];
        bits >>= 4;
    }
    // Hex digits are always a valid header value.
    HeaderValue::from_bytes(&text).unwrap_or(HeaderValue::from_static("0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_appends() {
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(forwarded_for(None, Some(ip)).unwrap(), "10.1.2.3");
        for text in ["0.0.0.0", "255.255.255.255", "100.10.1.0", "192.168.99.250"] {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(forwarded_for(None, Some(ip)).unwrap(), text);
        }
        let v6: IpAddr = "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
            .parse()
            .unwrap();
        assert_eq!(
            forwarded_for(None, Some(v6)).unwrap(),
            v6.to_string().as_str()
        );
        assert_eq!(
            forwarded_for(Some(b"1.1.1.1"), Some(ip)).unwrap(),
            "1.1.1.1, 10.1.2.3"
        );
        assert_eq!(forwarded_for(Some(b" "), None), None);
        assert_eq!(forwarded_for(Some(b"1.1.1.1"), None).unwrap(), "1.1.1.1");
    }

    #[test]
    fn requests_are_rewritten_for_the_instance() {
        let mut request = RequestHeader::build("GET", b"/funko/hello/a/b?x=1", None).unwrap();
        request.insert_header("Host", "gw.example").unwrap();
        request.insert_header("X-Forwarded-For", "1.1.1.1").unwrap();
        let prefix = HeaderValue::from_static("/funko/hello");
        let id = HeaderValue::from_static("abc");
        let forwarding = Forwarding {
            upstream_at: "/funko/hello".len(),
            client: Some("10.0.0.7".parse().unwrap()),
            prefix: Some(&prefix),
            request_id: Some(&id),
        };
        rewrite_request(&mut request, &forwarding).unwrap();
        assert_eq!(request.uri, "/a/b?x=1");
        let header = |name: &str| request.headers.get(name).unwrap().to_str().unwrap();
        assert_eq!(header("x-forwarded-for"), "1.1.1.1, 10.0.0.7");
        assert_eq!(header("x-forwarded-proto"), "http");
        assert_eq!(header("x-forwarded-host"), "gw.example");
        assert_eq!(header("x-forwarded-prefix"), "/funko/hello");
        assert_eq!(header("x-request-id"), "abc");

        let mut bare = RequestHeader::build("GET", b"/faaso/hello?q", None).unwrap();
        rewrite_request(
            &mut bare,
            &Forwarding {
                upstream_at: "/faaso/hello".len(),
                client: None,
                prefix: None,
                request_id: None,
            },
        )
        .unwrap();
        assert_eq!(bare.uri, "/?q");
        assert!(bare.headers.get("x-forwarded-for").is_none());
    }

    #[test]
    fn request_ids() {
        let value = |text: &[u8]| HeaderValue::from_bytes(text).unwrap();
        assert_eq!(
            client_request_id(Some(&value(b"abc-123"))).unwrap(),
            "abc-123"
        );
        assert_eq!(client_request_id(Some(&value(b"has space"))), None);
        assert_eq!(client_request_id(Some(&value(&[b'a'; 129]))), None);
        assert_eq!(client_request_id(None), None);
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.len(), 32);
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(a, b);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the client sent, the instance gets the rewritten target, exactly one of
        /// each forwarding header, and a `X-Forwarded-For` chain ending in the client.
        #[test]
        fn rewrites(
            name in "[a-z0-9][a-z0-9_]{0,20}",
            rest in "(/[A-Za-z0-9._~-]{0,8}){0,3}",
            chain in proptest::option::of("[0-9.]{1,15}(, [0-9.]{1,15}){0,3}"),
            client in any::<[u8; 4]>(),
            id in "[A-Za-z0-9-]{1,40}",
        ) {
            let target = format!("/funko/{name}{rest}");
            let mut request = RequestHeader::build("GET", target.as_bytes(), None).unwrap();
            request.insert_header("Host", "gw.example").unwrap();
            if let Some(chain) = &chain {
                request.insert_header("X-Forwarded-For", chain.as_str()).unwrap();
            }
            let prefix = HeaderValue::try_from(format!("/funko/{name}")).unwrap();
            let id = HeaderValue::try_from(id).unwrap();
            let client = IpAddr::from(client);
            rewrite_request(&mut request, &Forwarding {
                upstream_at: format!("/funko/{name}").len(),
                client: Some(client),
                prefix: Some(&prefix),
                request_id: Some(&id),
            }).unwrap();
            let expected = if rest.is_empty() { "/".to_string() } else { rest.clone() };
            prop_assert_eq!(request.uri.path(), expected.as_str());
            for header in ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host",
                           "x-forwarded-prefix", "x-request-id"] {
                prop_assert_eq!(request.headers.get_all(header).iter().count(), 1, "{}", header);
            }
            let forwarded = request.headers["x-forwarded-for"].to_str().unwrap().to_string();
            let client_text = client.to_string();
            prop_assert!(forwarded.ends_with(&client_text));
            if let Some(chain) = chain.as_ref().filter(|c| !c.trim().is_empty()) {
                prop_assert!(forwarded.starts_with(chain.trim()));
            }
        }
    }
}
