//! HTTP helpers for tests: a shared client and polling until a server answers.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// A client with short timeouts and no connection reuse surprises across tests.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .expect("an HTTP client can be built")
}

/// GETs `url` until it answers with `expected_status` or `timeout` passes; returns the body.
/// `GET url`, answered 200 with a JSON body, which is returned.
pub async fn get_json(url: &str) -> serde_json::Value {
    let response = client()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert_eq!(response.status().as_u16(), 200, "GET {url}");
    response
        .json()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: not JSON: {e}"))
}

pub async fn wait_for_status(url: &str, expected_status: u16, timeout: Duration) -> String {
    let client = client();
    let start = Instant::now();
    let mut last = String::from("no attempt");
    while start.elapsed() < timeout {
        match client.get(url).send().await {
            Ok(response) if response.status().as_u16() == expected_status => {
                return response.text().await.unwrap_or_default();
            }
            Ok(response) => last = format!("status {}", response.status()),
            Err(err) => last = format!("{err}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{url} did not answer {expected_status} within {timeout:?}; last: {last}");
}

/// Waits (polling every 10 ms) until `condition` holds, and panics naming `what` after
/// `timeout`: a condition to wait on, never a sleep that hopes it was long enough.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !condition().await {
        assert!(start.elapsed() < timeout, "{what}: not within {timeout:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The request headers the test funko's `/echo` saw, by lowercased name.
pub fn echoed_headers(echo: &serde_json::Value) -> HashMap<String, String> {
    echo["headers"]
        .as_array()
        .expect("an echo with headers")
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap_or_default().to_ascii_lowercase(),
                h[1].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The `faaso_session` cookie a login answer set (the whole `Set-Cookie` value).
pub fn session_cookie(response: &reqwest::Response) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("faaso_session="))
        .expect("a session cookie")
        .to_string()
}
