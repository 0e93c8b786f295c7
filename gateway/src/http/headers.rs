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
            || is_never_forwarded(name)
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
    drop_admin_claims(&mut response)?;
    Ok(response)
}

/// Takes out what a funko must not set for the gateway's origin, which it shares with the admin
/// under `/admin/`: the admin's cookies (`faaso_*`) and `Service-Worker-Allowed` (a funko's
/// service worker could then take over `/admin/`).
fn drop_admin_claims(response: &mut ResponseHeader) -> Result<()> {
    if response.headers.contains_key("service-worker-allowed") {
        response.remove_header("service-worker-allowed");
    }
    let claims = |value: &HeaderValue| {
        let name = value.as_bytes().trim_ascii_start();
        name.len() >= 6 && name[..6].eq_ignore_ascii_case(b"faaso_")
    };
    if !response
        .headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .any(claims)
    {
        return Ok(());
    }
    let kept: Vec<HeaderValue> = response
        .headers
        .get_all(http::header::SET_COOKIE)
        .iter()
        .filter(|value| !claims(value))
        .cloned()
        .collect();
    response.remove_header(&http::header::SET_COOKIE);
    for value in kept {
        response.append_header(http::header::SET_COOKIE, value)?;
    }
    Ok(())
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

/// Headers that never reach an instance, whatever carries the request: credentials for the
/// proxy itself, and headers about the client's connection only (`HTTP2-Settings` belongs to
/// an `h2c` upgrade, which is never passed on).
fn is_never_forwarded(name: &http::HeaderName) -> bool {
    use http::header::{PROXY_AUTHORIZATION, TE, TRAILER};
    name == PROXY_AUTHORIZATION
        || name == TE
        || name == TRAILER
        || matches!(
            name.as_str(),
            "http2-settings" | "keep-alive" | "proxy-connection"
        )
}

/// Most `Connection` nominations a request may carry (as Pingora's own limit).
pub const MAX_NOMINATIONS: usize = 9;

/// The hop-by-hop policy, the same for every carrier: a request whose `Connection` header
/// names more than [`MAX_NOMINATIONS`] options, or names a header the request cannot do
/// without (`Host`, its body's framing, the forwarding headers), is refused with the reason.
/// It reads the `Connection` values in place: nothing is allocated.
pub fn check_hops(headers: &http::HeaderMap) -> std::result::Result<(), &'static str> {
    let mut count = 0;
    for value in headers.get_all(http::header::CONNECTION) {
        for option in value.as_bytes().split(|&b| b == b',') {
            let option = option.trim_ascii();
            if option.is_empty() {
                continue;
            }
            count += 1;
            if count > MAX_NOMINATIONS {
                return Err("too many Connection options");
            }
            let vital = [&b"host"[..], b"content-length", b"transfer-encoding"]
                .into_iter()
                .chain(FORWARDING.iter().map(|name| name.as_str().as_bytes()))
                .any(|name| option.eq_ignore_ascii_case(name));
            if vital {
                return Err("Connection names a header the request needs");
            }
        }
    }
    Ok(())
}

/// Whether every protocol an `Upgrade` header offers is in `allowed` (lowercase names, as the
/// `upgrades` setting holds them); `websocket` and `websocket/13` both count as `websocket`.
pub fn upgrade_allowed(upgrade: &HeaderValue, allowed: &[String]) -> bool {
    let mut offered = upgrade
        .as_bytes()
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|p| !p.is_empty())
        .peekable();
    offered.peek().is_some()
        && offered.all(|protocol| {
            let name = protocol.split(|&b| b == b'/').next().unwrap_or_default();
            allowed
                .iter()
                .any(|allowed| name.eq_ignore_ascii_case(allowed.as_bytes()))
        })
}

/// Turns an `Upgrade` request the gateway does not pass on into a plain one: `Upgrade` and
/// `HTTP2-Settings` go, and so do their nominations in `Connection` (the rest of it stays).
pub fn drop_upgrade(request: &mut RequestHeader) {
    request.remove_header(&http::header::UPGRADE);
    request.remove_header("http2-settings");
    let Some(connection) = request.headers.get(http::header::CONNECTION) else {
        return;
    };
    let kept: Vec<&str> = connection
        .to_str()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|option| {
            !option.is_empty()
                && !option.eq_ignore_ascii_case("upgrade")
                && !option.eq_ignore_ascii_case("http2-settings")
        })
        .collect();
    let kept = kept.join(", ");
    if kept.is_empty() {
        request.remove_header(&http::header::CONNECTION);
    } else if let Ok(value) = HeaderValue::try_from(kept) {
        let _ = request.insert_header(http::header::CONNECTION, value);
    }
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

/// The client's request id when it is 1 to 128 characters of `[A-Za-z0-9._:-]` (safe in a
/// header, a log line and a page); `None` means make one.
pub fn client_request_id(value: Option<&HeaderValue>) -> Option<HeaderValue> {
    let value = value?;
    let bytes = value.as_bytes();
    let ok = !bytes.is_empty()
        && bytes.len() <= MAX_REQUEST_ID
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(b));
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
        for header in ["Connection: keep-alive, X-Hop", "X-Hop: h"] {
            assert!(kept.contains(header), "{header} missing in {kept}");
        }
        // `Keep-Alive` is about the client's connection whatever carries the request.
        assert!(!kept.contains("Keep-Alive"), "{kept}");
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
        assert_eq!(
            client_request_id(Some(&value(b"probe-\"quoted\"-<b>id</b>"))),
            None
        );
        assert_eq!(
            client_request_id(Some(&value(b"trace:01.AB_cd-9"))).unwrap(),
            "trace:01.AB_cd-9"
        );
        assert_eq!(client_request_id(Some(&value(&[b'a'; 129]))), None);
        assert_eq!(client_request_id(None), None);
        let a = new_request_id();
        let b = new_request_id();
        assert_eq!(a.len(), 32);
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
        assert_ne!(a, b);
    }

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut request = RequestHeader::build("GET", b"/funko/f/x", None).unwrap();
        for (name, value) in headers {
            request.append_header(name.to_string(), *value).unwrap();
        }
        request
    }

    #[test]
    fn connection_may_name_nine_options_and_nothing_vital() {
        let options = |n: usize| vec!["x-a"; n].join(", ");
        assert_eq!(
            check_hops(&request(&[("Connection", &options(9))]).headers),
            Ok(())
        );
        assert!(check_hops(&request(&[("Connection", &options(10))]).headers).is_err());
        // Split over several Connection headers, they still count together.
        let split = request(&[("Connection", &options(5)), ("Connection", &options(5))]);
        assert!(check_hops(&split.headers).is_err());
        for vital in [
            "Host",
            "content-length",
            "Transfer-Encoding",
            "X-Forwarded-For",
            "x-request-id",
        ] {
            let named = request(&[("Connection", &format!("keep-alive, {vital}"))]);
            assert!(check_hops(&named.headers).is_err(), "{vital}");
        }
        assert_eq!(
            check_hops(&request(&[("Connection", " , close ,")]).headers),
            Ok(())
        );
    }

    #[test]
    fn proxy_credentials_and_connection_settings_never_reach_an_instance() {
        let client = request(&[
            ("Host", "gw"),
            ("Proxy-Authorization", "Basic eDp5"),
            ("HTTP2-Settings", "AAMAAABkAARAAAAAAAIAAAAA"),
            ("Keep-Alive", "timeout=5"),
            ("TE", "trailers"),
            ("Trailer", "X-Sum"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("X-Kept", "1"),
        ]);
        for hops in [Hops::Strip, Hops::Keep] {
            let upstream = upstream_request(&client, &forwarding(), hops).unwrap();
            for gone in [
                "proxy-authorization",
                "http2-settings",
                "keep-alive",
                "te",
                "trailer",
            ] {
                assert!(upstream.headers.get(gone).is_none(), "{hops:?}: {gone}");
            }
            assert_eq!(upstream.headers["x-kept"], "1");
            // An upgrade keeps what the instance needs to switch.
            assert_eq!(
                upstream.headers.get("upgrade").is_some(),
                hops == Hops::Keep
            );
        }
    }

    #[test]
    fn only_listed_upgrades_pass() {
        let allowed = vec!["websocket".to_string()];
        let offer = |text: &'static str| HeaderValue::from_static(text);
        assert!(upgrade_allowed(&offer("websocket"), &allowed));
        assert!(upgrade_allowed(&offer("WebSocket/13"), &allowed));
        assert!(!upgrade_allowed(&offer("h2c"), &allowed));
        assert!(!upgrade_allowed(&offer("websocket, h2c"), &allowed));
        assert!(!upgrade_allowed(&offer(" , "), &allowed));
        assert!(upgrade_allowed(&offer("h2c"), &["h2c".to_string()]));

        let mut h2c = request(&[
            ("Upgrade", "h2c"),
            ("HTTP2-Settings", "AAMAAABk"),
            ("Connection", "Upgrade, HTTP2-Settings, close"),
        ]);
        drop_upgrade(&mut h2c);
        assert!(h2c.headers.get("upgrade").is_none());
        assert!(h2c.headers.get("http2-settings").is_none());
        assert_eq!(h2c.headers["connection"], "close");
        let mut only = request(&[("Upgrade", "h2c"), ("Connection", "upgrade")]);
        drop_upgrade(&mut only);
        assert!(only.headers.get("connection").is_none());
    }

    #[test]
    fn a_funko_cannot_set_the_admins_cookies_or_claim_its_paths() {
        let mut instance = ResponseHeader::build(200, None).unwrap();
        for (name, value) in [
            ("Set-Cookie", "faaso_session=forged; Path=/admin"),
            ("Set-Cookie", "theirs=1; Path=/"),
            ("Set-Cookie", " FAASO_csrf=x"),
            ("Service-Worker-Allowed", "/"),
            ("Content-Type", "text/html"),
        ] {
            instance.append_header(name, value).unwrap();
        }
        let response = client_response(&instance, None).unwrap();
        let cookies: Vec<&str> = response
            .headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap())
            .collect();
        assert_eq!(cookies, ["theirs=1; Path=/"]);
        assert!(response.headers.get("service-worker-allowed").is_none());
        assert_eq!(response.headers["content-type"], "text/html");
    }

    fn forwarding() -> Forwarding<'static> {
        Forwarding {
            upstream_at: "/funko/f".len(),
            client: None,
            prefix: None,
            request_id: None,
            tls: false,
        }
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

        /// Hostile `Connection` lists (duplicates, empty options, any visible byte including
        /// obs-text 0x80-0xFF, any length) are judged without a panic: refused exactly when
        /// they name more than nine options or a vital header, and what is let through is
        /// rewritten without one.
        #[test]
        fn hostile_connection_lists(
            options in proptest::collection::vec(
                proptest::collection::vec(
                    prop_oneof![0x20u8..0x2c, 0x2du8..0x7f, 0x80u8..=0xff, Just(b'a')],
                    0..12,
                ),
                0..40,
            ),
            separators in proptest::collection::vec(prop_oneof![Just(&b","[..]), Just(&b" , "[..]), Just(&b",,"[..])], 40),
        ) {
            let mut list = Vec::new();
            for (option, separator) in options.iter().zip(&separators) {
                list.extend_from_slice(option);
                list.extend_from_slice(separator);
            }
            let mut client = RequestHeader::build("GET", b"/funko/f/x", None).unwrap();
            client.insert_header("Host", "gw").unwrap();
            client
                .insert_header("Connection", HeaderValue::from_bytes(&list).unwrap())
                .unwrap();
            let named: Vec<&[u8]> = list
                .split(|&b| b == b',')
                .map(<[u8]>::trim_ascii)
                .filter(|o| !o.is_empty())
                .collect();
            let vital = ["host", "content-length", "transfer-encoding", "x-forwarded-for",
                         "x-forwarded-proto", "x-forwarded-host", "x-forwarded-prefix", "x-request-id"];
            let first_ten = &named[..named.len().min(10)];
            let expect_refused = named.len() > MAX_NOMINATIONS
                || first_ten
                    .iter()
                    .any(|o| vital.iter().any(|v| o.eq_ignore_ascii_case(v.as_bytes())));
            let verdict = check_hops(&client.headers);
            prop_assert_eq!(verdict.is_err(), expect_refused, "{:?}", String::from_utf8_lossy(&list));
            if verdict.is_ok() {
                let forwarding = Forwarding {
                    upstream_at: "/funko/f".len(),
                    client: None,
                    prefix: None,
                    request_id: None,
                    tls: false,
                };
                let upstream = upstream_request(&client, &forwarding, Hops::Strip).unwrap();
                prop_assert!(upstream.headers.get("connection").is_none());
                prop_assert_eq!(&upstream.headers["host"], "gw");
            }
        }
    }
}
