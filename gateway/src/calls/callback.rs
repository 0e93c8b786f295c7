//! Callbacks: a finished call's answer POSTed to its `X-Callback-Url`, as is (body and content
//! type), with `X-Call-Id`, `X-Function-Status` (the funko's status) and `X-Function-Name`.
//! Retried with the funko's backoff until the receiver answers 2xx or the funko's
//! `async.retries` run out.

use std::time::Duration;

use super::attempt::error_chain;
use super::record::{Answer, CallId};

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

/// Checks an `X-Callback-Url`: absolute `http` or `https` with a host.
pub fn check_url(text: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(text).map_err(|e| format!("X-Callback-Url {text:?}: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return Err(format!(
            "X-Callback-Url {text:?}: needs an http:// or https:// address with a host"
        ));
    }
    Ok(url)
}

/// One POST of `answer` to `url`.
pub async fn deliver(
    client: &reqwest::Client,
    url: &str,
    id: CallId,
    funko: &str,
    answer: &Answer,
) -> Delivery {
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
    fn callback_urls_must_be_http_with_a_host() {
        assert!(check_url("http://127.0.0.1:9000/done").is_ok());
        assert!(check_url("https://example.com/x?y=1").is_ok());
        for bad in [
            "ftp://example.com/",
            "/relative",
            "http://",
            "file:///etc/passwd",
        ] {
            let err = check_url(bad).unwrap_err();
            assert!(err.starts_with("X-Callback-Url"), "{bad}: {err}");
        }
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
