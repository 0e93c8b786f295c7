//! Who the client is: the peer's address, or, behind a trusted reverse proxy
//! (`trusted_proxies`), the address that proxy reports in `X-Forwarded-For`.
//!
//! `X-Forwarded-For` is only believed when the peer is a listed proxy: otherwise any client
//! could name any address (and escape the login limit). Behind trusted proxies the chain is
//! read from the right, skipping proxies that are themselves trusted; the first address that
//! is not trusted is the client.

use std::net::IpAddr;

use ipnet::IpNet;

/// The client of a request from `peer` carrying `forwarded_for`.
pub fn client_ip(
    peer: Option<IpAddr>,
    forwarded_for: Option<&[u8]>,
    trusted: &[IpNet],
) -> Option<IpAddr> {
    let peer = peer?;
    if !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let Some(chain) = forwarded_for.and_then(|v| std::str::from_utf8(v).ok()) else {
        return Some(peer);
    };
    let mut client = peer;
    for hop in chain.rsplit(',') {
        let Ok(hop) = hop.trim().parse::<IpAddr>() else {
            // Garbage in the chain: the last address known good stands.
            break;
        };
        client = hop;
        if !is_trusted(hop, trusted) {
            break;
        }
    }
    Some(client)
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    trusted.iter().any(|net| net.contains(&ip))
}

/// Parses a `trusted_proxies` entry: an address (`10.0.0.1`) or a network (`10.0.0.0/8`).
pub fn parse_trusted(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("expected an address or a network like 10.0.0.0/8, got {text:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted = [
            parse_trusted("10.0.0.0/8").unwrap(),
            parse_trusted("192.168.1.1").unwrap(),
        ];
        let chain = Some(&b"203.0.113.9, 10.1.1.1"[..]);
        // From a stranger: its own address, whatever it claims.
        assert_eq!(
            client_ip(Some(ip("198.51.100.7")), chain, &trusted),
            Some(ip("198.51.100.7"))
        );
        // From a trusted proxy: the rightmost untrusted address of the chain.
        assert_eq!(
            client_ip(Some(ip("10.2.2.2")), chain, &trusted),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_ip(Some(ip("192.168.1.1")), None, &trusted),
            Some(ip("192.168.1.1"))
        );
        // A forged left part of the chain does not matter.
        assert_eq!(
            client_ip(
                Some(ip("10.2.2.2")),
                Some(b"1.1.1.1, 203.0.113.9"),
                &trusted
            ),
            Some(ip("203.0.113.9"))
        );
        assert_eq!(
            client_ip(Some(ip("10.2.2.2")), Some(b"nonsense"), &trusted),
            Some(ip("10.2.2.2"))
        );
        assert_eq!(
            client_ip(Some(ip("::ffff:10.3.3.3")), Some(b"203.0.113.1"), &trusted),
            Some(ip("203.0.113.1"))
        );
        assert!(parse_trusted("10.0.0.0/33").is_err());
        assert!(parse_trusted("proxy.example").is_err());
    }
}
