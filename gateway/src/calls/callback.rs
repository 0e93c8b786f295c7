//! Callbacks: a finished call's answer POSTed to its `X-Callback-Url`, as is (body and content
//! type), with `X-Call-Id`, `X-Function-Status` (the funko's status) and `X-Function-Name`.
//! Retried with the funko's backoff until the receiver answers 2xx or the funko's
//! `async.retries` run out.
//!
//! Any client may name a callback URL, so the gateway will not post to addresses that
//! reach into its own host or its cloud's metadata service (loopback and link-local:
//! [`Reach`]) unless `callback_allow` lists them; a host name is checked on every
//! resolution, so it cannot turn into such an address later.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use ipnet::IpNet;

use super::record::{Answer, CallId};
use crate::http::errors::chain as error_chain;

/// Longest wait for a callback receiver's answer.
pub const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// The outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The receiver answered 2xx.
    Delivered(u16),
    /// It answered something else (its status), or could not be reached.
    Refused(Option<u16>, String),
}

/// Which addresses callbacks may reach.
#[derive(Debug, Clone, Default)]
pub struct Reach {
    /// `callback_allow`: networks reached although loopback or link-local.
    pub allow: Arc<[IpNet]>,
}

impl Reach {
    /// Whether a callback may be posted to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let inward = match ip {
            IpAddr::V4(v4) => v4.is_loopback() || v4.is_link_local() || v4.is_unspecified(),
            IpAddr::V6(v6) => {
                v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        };
        !inward || self.allow.iter().any(|net| net.contains(&ip))
    }

    /// An HTTP client for callbacks whose name lookups drop the addresses it may not reach.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(self.clone()))
            .build()
            .unwrap_or_default()
    }

    /// Checks an `X-Callback-Url`: absolute `http` or `https` with a host, which, when it is
    /// an address, may be reached.
    pub fn check_url(&self, text: &str) -> Result<reqwest::Url, String> {
        let url = reqwest::Url::parse(text).map_err(|e| format!("X-Callback-Url {text:?}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(format!(
                "X-Callback-Url {text:?}: needs an http:// or https:// address with a host"
            ));
        }
        let address = url
            .host_str()
            .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
            .and_then(|host| host.parse::<IpAddr>().ok());
        if let Some(ip) = address.filter(|ip| !self.permits(*ip)) {
            return Err(format!(
                "X-Callback-Url {text:?}: {ip} is a loopback or link-local address; \
                 callback_allow must list it"
            ));
        }
        Ok(url)
    }
}

impl reqwest::dns::Resolve for Reach {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let reach = self.clone();
        let host = name.as_str().to_string();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let permitted: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| reach.permits(a.ip()))
                .collect();
            if permitted.is_empty() {
                return Err(format!(
                    "{host} resolves only to loopback or link-local addresses, which \
                     callback_allow does not list"
                )
                .into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(permitted.into_iter());
            Ok(addrs)
        })
    }
}

/// One POST of `answer` to `url`, if `reach` permits it (the rules may have changed since
/// the call was accepted).
pub async fn deliver(
    reach: &Reach,
    client: &reqwest::Client,
    url: &str,
    id: CallId,
    funko: &str,
    answer: &Answer,
) -> Delivery {
    if let Err(refused) = reach.check_url(url) {
        return Delivery::Refused(None, refused);
    }
    let mut request = client
        .post(url)
        .timeout(CALLBACK_TIMEOUT)
        .header("X-Call-Id", id.to_string())
        .header("X-Function-Status", answer.status.to_string())
        .header("X-Function-Name", funko)
        .body(answer.body.clone());
    if let Some(content_type) = &answer.content_type {
        request = request.header(http::header::CONTENT_TYPE, content_type.as_str());
    }
    match request.send().await {
        Ok(response) if response.status().is_success() => {
            Delivery::Delivered(response.status().as_u16())
        }
        Ok(response) => {
            let status = response.status().as_u16();
            Delivery::Refused(Some(status), format!("the callback answered {status}"))
        }
        Err(err) => Delivery::Refused(None, error_chain(&err)),
    }
}

/// The wait before retry `n` (from 1): `backoff`, doubled for each next one, at most an hour.
pub fn backoff(base: Duration, retry: u32) -> Duration {
    let factor = 1u32 << retry.saturating_sub(1).min(16);
    base.saturating_mul(factor).min(Duration::from_secs(3600))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_urls_must_be_http_with_a_host_it_may_reach() {
        let reach = Reach::default();
        assert!(reach.check_url("http://10.0.0.5:9000/done").is_ok());
        assert!(reach.check_url("https://example.com/x?y=1").is_ok());
        for bad in [
            "ftp://example.com/",
            "/relative",
            "http://",
            "file:///etc/passwd",
            "http://127.0.0.1:9000/done",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[fe80::1]/",
            "http://0.0.0.0/",
        ] {
            let err = reach.check_url(bad).unwrap_err();
            assert!(err.starts_with("X-Callback-Url"), "{bad}: {err}");
        }
        let local = Reach {
            allow: Arc::from(vec!["127.0.0.1/32".parse::<IpNet>().unwrap()]),
        };
        assert!(local.check_url("http://127.0.0.1:9000/done").is_ok());
        assert!(local.check_url("http://127.0.0.2:9000/done").is_err());
    }

    #[tokio::test]
    async fn names_resolve_only_to_addresses_callbacks_may_reach() {
        use reqwest::dns::Resolve;
        let name = |host: &str| host.parse::<reqwest::dns::Name>().unwrap();
        let refused = Reach::default().resolve(name("localhost")).await;
        let message = refused.err().unwrap().to_string();
        assert!(message.contains("callback_allow"), "{message}");
        let allowed = Reach {
            allow: Arc::from(vec![
                "127.0.0.0/8".parse::<IpNet>().unwrap(),
                "::1/128".parse().unwrap(),
            ]),
        };
        let addrs: Vec<SocketAddr> = allowed.resolve(name("localhost")).await.unwrap().collect();
        assert!(
            !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback()),
            "{addrs:?}"
        );
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        let base = Duration::from_millis(500);
        assert_eq!(backoff(base, 1), Duration::from_millis(500));
        assert_eq!(backoff(base, 2), Duration::from_secs(1));
        assert_eq!(backoff(base, 4), Duration::from_secs(4));
        assert_eq!(backoff(base, 40), Duration::from_secs(3600));
    }
}
