//! Header rewrites between client and instance, as pure functions: [`rewrite_request`] turns
//! the client's request into the instance's (prefix stripped, `X-Forwarded-For` appended to,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Prefix` and `X-Request-Id` set); the
//! request id is kept when the client sent a sane one, else made.
//!
//! Values are [`HeaderValue`]s, which share their bytes when cloned: a request id is made (or
//! taken from the client) once and then sent upstream and back without another copy.

use std::io::Write;
use std::net::IpAddr;

use http::HeaderValue;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{Error, ErrorType, Result};

use crate::routing::router::upstream_target;

/// Longest client-supplied request id that is kept.
const MAX_REQUEST_ID: usize = 128;

/// `X-Forwarded-Proto` of the plain listener.
pub const PROTO_HTTP: HeaderValue = HeaderValue::from_static("http");

/// `X-Forwarded-Proto` of the HTTPS listener.
pub const PROTO_HTTPS: HeaderValue = HeaderValue::from_static("https");

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
    /// Whether the client came in over TLS (`X-Forwarded-Proto: https`).
    pub tls: bool,
}

/// Appends `from`'s headers to `into` (a request or response header, Pingora's two types with
/// the same methods), in their order and with their names' case when it is known, except those
/// `left_out` names.
macro_rules! copy_headers {
    ($from:expr, $into:expr, $left_out:expr) => {
        if $from.has_case() {
            // Both maps hold the same names in the same order.
            for ((name, value), (case, _)) in $from.headers.iter().zip($from.case_header_iter()) {
                if !$left_out(name) {
                    $into.append_header(case.clone(), value.clone())?;
                }
            }
        } else {
            for (name, value) in &$from.headers {
                if !$left_out(name) {
                    $into.append_header(name, value.clone())?;
                }
            }
        }
    };
}

/// The headers the gateway sets on every request to an instance, in the order they are
/// added; whatever the client sent under these names is replaced.
const FORWARDING: [http::HeaderName; 5] = [
    http::HeaderName::from_static("x-forwarded-for"),
    http::HeaderName::from_static("x-forwarded-proto"),
    http::HeaderName::from_static("x-forwarded-host"),
    http::HeaderName::from_static("x-forwarded-prefix"),
    http::HeaderName::from_static("x-request-id"),
];

/// The forwarding headers as they are written, in the usual case.
const FORWARDING_CASE: [&str; 5] = [
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Prefix",
    "X-Request-Id",
];

/// How [`upstream_request`] treats the client's hop-by-hop headers (RFC 9110, section 7.6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hops {
    /// Leave them out, with the headers `Connection` names: they are about the client's
    /// connection, not the instance's.
    Strip,
    /// Keep them (an `Upgrade` request, whose `Connection: upgrade` the instance must see).
    Keep,
}

/// The request an instance gets, made from the client's: the target after the funko's prefix,
/// the client's headers in their order and case (less the hop-by-hop ones with
/// [`Hops::Strip`], and less the forwarding headers), then `X-Forwarded-For` (the client's
/// chain with the client appended), `X-Forwarded-Proto`, `X-Forwarded-Host`,
/// `X-Forwarded-Prefix` and `X-Request-Id`.
///
/// It is built anew rather than edited from a copy: Pingora sizes a parsed request's header
/// maps (the values and the case-preserving names) exactly, so each header inserted into a copy
/// grows and rehashes both maps, while here they are made at their final size once.
pub fn upstream_request(
    client: &RequestHeader,
    forwarding: &Forwarding<'_>,
    hops: Hops,
) -> Result<RequestHeader> {
    let malformed = || Error::explain(ErrorType::HTTPStatus(400), "malformed request target");
    let target = client.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let upstream = target
        .get(forwarding.upstream_at..)
        .map(upstream_target)
        .ok_or_else(malformed)?;
    let values = [
        forwarded_for(
            client.headers.get(&FORWARDING[0]).map(|v| v.as_bytes()),
            forwarding.client,
        ),
        Some(if forwarding.tls {
            PROTO_HTTPS
        } else {
            PROTO_HTTP
        }),
        client.headers.get(http::header::HOST).cloned(),
        forwarding.prefix.cloned(),
        forwarding.request_id.cloned(),
    ];
    let nominated = match hops {
        Hops::Strip => connection_nominated(&client.headers),
        Hops::Keep => Vec::new(),
    };
    let left_out = |name: &http::HeaderName| {
        FORWARDING.contains(name)
            || (hops == Hops::Strip && (is_hop_by_hop(name) || nominated.contains(name)))
    };
    let mut request = RequestHeader::build(
        client.method.clone(),
        upstream.as_bytes(),
        Some(client.headers.len() + FORWARDING.len()),
    )
    .map_err(|_| malformed())?;
    request.set_version(http::Version::HTTP_11);
    copy_headers!(client, request, left_out);
    for (name, value) in FORWARDING_CASE.into_iter().zip(values) {
        if let Some(value) = value {
            request.append_header(name, value)?;
        }
    }
    if !client.extensions.is_empty() {
        *request.extensions_mut() = client.extensions.clone();
    }
    Ok(request)
}

/// Rewrites `request` (a copy of the client's, hop-by-hop headers already removed) into what
/// the instance gets: [`upstream_request`] in place.
pub fn rewrite_request(request: &mut RequestHeader, forwarding: &Forwarding<'_>) -> Result<()> {
    *request = upstream_request(request, forwarding, Hops::Keep)?;
    Ok(())
}

/// Room kept in a client response's header maps for what is still added to it: the request
/// id here, `Transfer-Encoding` (a close-delimited answer), `Date` and `Connection` (Pingora).
const RESPONSE_ROOM: usize = 4;

/// The response the client gets, made from the instance's: its status, reason and headers in
/// their order and case, less the ones about the instance's connection (`Connection`, what it
/// names, `Keep-Alive`, `Proxy-Connection`: the client's connection has its own), plus
/// `X-Request-Id`. Built at its final size, as [`upstream_request`] is.
pub fn client_response(
    instance: &ResponseHeader,
    request_id: Option<&HeaderValue>,
) -> Result<ResponseHeader> {
    let nominated = connection_nominated(&instance.headers);
    let left_out = |name: &http::HeaderName| {
        name == http::header::CONNECTION
            || name.as_str() == "keep-alive"
            || name.as_str() == "proxy-connection"
            || nominated.contains(name)
            || (request_id.is_some() && name == FORWARDING[4])
    };
    let mut response = ResponseHeader::build(
        instance.status,
        Some(instance.headers.len() + RESPONSE_ROOM),
    )?;
    response.set_version(instance.version);
    response.set_reason_phrase(instance.get_reason_phrase())?;
    copy_headers!(instance, response, left_out);
    if let Some(id) = request_id {
        response.append_header(FORWARDING_CASE[4], id.clone())?;
    }
    Ok(response)
}

/// Whether a header is about one connection only (RFC 9110, section 7.6.1).
fn is_hop_by_hop(name: &http::HeaderName) -> bool {
    use http::header::{CONNECTION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
    name == CONNECTION
        || name == TE
        || name == TRAILER
        || name == TRANSFER_ENCODING
        || name == UPGRADE
        || name.as_str() == "keep-alive"
        || name.as_str() == "proxy-connection"
}

/// The header names a `Connection` header lists (which are hop-by-hop too).
fn connection_nominated(headers: &http::HeaderMap) -> Vec<http::HeaderName> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| http::HeaderName::try_from(name.trim()).ok())
        .collect()
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
            tls: false,
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
                tls: false,
            },
        )
        .unwrap();
        assert_eq!(bare.uri, "/?q");
        assert!(bare.headers.get("x-forwarded-for").is_none());
    }

    #[test]
    fn the_clients_headers_keep_their_case_and_order_and_hops_are_left_out() {
        let mut client = RequestHeader::build("GET", b"/funko/hello/x?y", Some(4)).unwrap();
        for (name, value) in [
            ("Host", "gw"),
            ("x-CUSTOM", "1"),
            ("Connection", "keep-alive, X-Hop"),
            ("x-request-ID", "from-client"),
            ("X-Hop", "h"),
            ("Keep-Alive", "timeout=5"),
            ("Accept", "*/*"),
            ("x-custom", "2"),
        ] {
            client.append_header(name, value).unwrap();
        }
        let id = HeaderValue::from_static("from-client");
        let forwarding = Forwarding {
            upstream_at: "/funko/hello".len(),
            client: Some("10.0.0.7".parse().unwrap()),
            prefix: None,
            request_id: Some(&id),
            tls: false,
        };
        let wire = |request: &RequestHeader| {
            let mut wire = Vec::new();
            request.header_to_h1_wire(&mut wire);
            String::from_utf8(wire).unwrap()
        };
        let stripped = upstream_request(&client, &forwarding, Hops::Strip).unwrap();
        assert_eq!(
            wire(&stripped),
            "Host: gw\r\nx-CUSTOM: 1\r\nx-custom: 2\r\nAccept: */*\r\n\
             X-Forwarded-For: 10.0.0.7\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: gw\r\n\
             X-Request-Id: from-client\r\n"
        );
        assert_eq!(stripped.method, "GET");
        assert_eq!(stripped.uri, "/x?y");
        assert_eq!(stripped.version, http::Version::HTTP_11);

        let kept = upstream_request(&client, &forwarding, Hops::Keep).unwrap();
        let kept = wire(&kept);
        for header in [
            "Connection: keep-alive, X-Hop",
            "X-Hop: h",
            "Keep-Alive: timeout=5",
        ] {
            assert!(kept.contains(header), "{header} missing in {kept}");
        }
        assert_eq!(kept.matches("X-Request-Id").count(), 1, "{kept}");
    }

    #[test]
    fn responses_keep_the_instances_headers_but_not_its_connections() {
        let mut instance = ResponseHeader::build(201, Some(2)).unwrap();
        instance.set_reason_phrase(Some("Made")).unwrap();
        for (name, value) in [
            ("content-TYPE", "text/plain"),
            ("Connection", "keep-alive, X-Conn-Only"),
            ("Keep-Alive", "timeout=5"),
            ("X-Conn-Only", "1"),
            ("X-Request-Id", "instance-made"),
            ("Content-Length", "2"),
        ] {
            instance.append_header(name, value).unwrap();
        }
        let id = HeaderValue::from_static("abc");
        let response = client_response(&instance, Some(&id)).unwrap();
        let mut wire = Vec::new();
        response.header_to_h1_wire(&mut wire);
        assert_eq!(
            String::from_utf8(wire).unwrap(),
            "content-TYPE: text/plain\r\nContent-Length: 2\r\nX-Request-Id: abc\r\n"
        );
        assert_eq!(response.status, 201);
        assert_eq!(response.get_reason_phrase(), Some("Made"));
        // Without a request id of ours, the instance's stays.
        let response = client_response(&instance, None).unwrap();
        assert_eq!(response.headers["x-request-id"], "instance-made");
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
                tls: false,
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
