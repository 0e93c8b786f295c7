//! Header rewrites between client and instance, as pure functions:
//! `X-Forwarded-For` (appended to), `X-Forwarded-Proto`, `X-Forwarded-Host`,
//! `X-Forwarded-Prefix` and `X-Request-Id` (kept when the client sent a sane one, else made).
//!
//! Values are [`HeaderValue`]s, which share their bytes when cloned: a request id is made (or
//! taken from the client) once and then sent upstream and back without another copy.

use std::io::Write;
use std::net::IpAddr;

use http::HeaderValue;

/// Longest client-supplied request id that is kept.
const MAX_REQUEST_ID: usize = 128;

/// `X-Forwarded-Proto` of the plain listener.
pub const PROTO_HTTP: HeaderValue = HeaderValue::from_static("http");

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
