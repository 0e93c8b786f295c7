//! The client side of the gateway's admin API, for the CLI's remote mode: authenticated
//! requests, streamed NDJSON results, and build-context uploads (`.tar.gz`).

use futures_util::StreamExt;
use serde_json::Value;

use crate::engine::status::FunkoStatus;

/// A failed remote call.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("cannot reach the gateway at {url}: {message} (is faaso-gateway running there?)")]
    Unreachable { url: String, message: String },
    #[error("the gateway refused the password (HTTP 401); run `faaso login` again")]
    Unauthorized,
    /// The gateway's own message, as local mode would say it (the HTTP status shows with `-v`).
    #[error("{message}")]
    Status { status: u16, message: String },
    #[error("{0}")]
    Failed(String),
    #[error("unexpected answer from the gateway: {0}")]
    Protocol(String),
    #[error("CA certificate {path}: {message}")]
    CaCert { path: String, message: String },
    #[error("{url}: {message}")]
    BadUrl { url: String, message: String },
}

/// One line of a streamed result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamLine {
    /// A progress line, or a log line of `instance`.
    Log {
        instance: Option<String>,
        line: String,
    },
}

/// A gateway to act on.
#[derive(Debug, Clone)]
pub struct Remote {
    pub server: String,
    password: Option<String>,
    client: reqwest::Client,
}

/// The server's URL as the client uses it: `http://` when no scheme is given, no trailing `/`.
pub fn normalize_server(server: &str) -> Result<String, RemoteError> {
    let server = server.trim();
    let bad = |message: &str| RemoteError::BadUrl {
        url: server.to_string(),
        message: message.to_string(),
    };
    let url = match server.split_once("://") {
        Some((scheme @ ("http" | "https"), rest)) => {
            let rest = rest.trim_end_matches('/');
            if rest.is_empty() {
                return Err(bad("no host after the scheme"));
            }
            format!("{scheme}://{rest}")
        }
        Some((scheme, _)) => {
            return Err(bad(&format!(
                "unsupported scheme {scheme:?}; use http:// or https://"
            )));
        }
        None if server.trim_end_matches('/').is_empty() => {
            return Err(bad("empty server address"));
        }
        None => format!("http://{}", server.trim_end_matches('/')),
    };
    reqwest::Url::parse(&url).map_err(|e| bad(&e.to_string()))?;
    Ok(url)
}

impl Remote {
    /// A client for `server` (`http://` assumed without a scheme). `ca_cert` adds a PEM CA
    /// certificate (a private CA) to the system's trusted roots for `https://` servers.
    pub fn new(
        server: &str,
        password: Option<String>,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<Remote, RemoteError> {
        let mut builder = reqwest::Client::builder();
        if let Some(path) = ca_cert {
            let fail = |message: String| RemoteError::CaCert {
                path: path.display().to_string(),
                message,
            };
            let pem = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| fail(format!("not a PEM certificate: {}", root_cause(&e))))?;
            if certificates.is_empty() {
                return Err(fail("no certificate in the file".to_string()));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let client = builder
            .build()
            .map_err(|e| RemoteError::Failed(format!("cannot set up HTTPS: {}", root_cause(&e))))?;
        Ok(Remote {
            server: normalize_server(server)?,
            password,
            client,
        })
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}/admin/api/{path}", self.server);
        let request = self.client.request(method, url);
        match &self.password {
            Some(password) => request.basic_auth("admin", Some(password)),
            None => request,
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, RemoteError> {
        let response = request
            .send()
            .await
            .map_err(|err| RemoteError::Unreachable {
                url: self.server.clone(),
                message: root_cause(&err),
            })?;
        let status = response.status().as_u16();
        if status == 401 {
            return Err(RemoteError::Unauthorized);
        }
        if status >= 400 {
            let text = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or(text);
            return Err(RemoteError::Status { status, message });
        }
        Ok(response)
    }

    async fn json(&self, request: reqwest::RequestBuilder) -> Result<Value, RemoteError> {
        self.send(request)
            .await?
            .json()
            .await
            .map_err(|e| RemoteError::Protocol(e.to_string()))
    }

    /// Reads a streamed result, passing lines on; `Err` for the final `{"error": ...}`.
    async fn stream(
        &self,
        request: reqwest::RequestBuilder,
        on_line: &mut (dyn FnMut(StreamLine) + Send),
    ) -> Result<(), RemoteError> {
        let response = self.send(request).await?;
        let mut body = response.bytes_stream();
        let mut buffer = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|err| RemoteError::Unreachable {
                url: self.server.clone(),
                message: format!("the stream broke: {}", root_cause(&err)),
            })?;
            buffer.extend_from_slice(&chunk);
            while let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=end).collect();
                if let Some(done) = handle_line(&line, on_line)? {
                    return done;
                }
            }
        }
        Err(RemoteError::Protocol(
            "the result ended without {\"ok\": true} or an error".to_string(),
        ))
    }

    /// The server's version.
    pub async fn version(&self) -> Result<String, RemoteError> {
        let value = self
            .json(self.request(reqwest::Method::GET, "version"))
            .await?;
        value["version"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| RemoteError::Protocol(value.to_string()))
    }

    /// Status of all funkos, or of the named ones.
    pub async fn status(&self, names: &[String]) -> Result<Vec<FunkoStatus>, RemoteError> {
        if names.is_empty() {
            let value = self
                .json(self.request(reqwest::Method::GET, "funkos"))
                .await?;
            return serde_json::from_value(value).map_err(|e| RemoteError::Protocol(e.to_string()));
        }
        let mut all = Vec::new();
        for name in names {
            let value = self
                .json(self.request(reqwest::Method::GET, &format!("funkos/{name}")))
                .await?;
            all.push(
                serde_json::from_value(value).map_err(|e| RemoteError::Protocol(e.to_string()))?,
            );
        }
        Ok(all)
    }

    /// Uploads a build context (`.tar.gz`) and builds it as funko `name`.
    pub async fn build(
        &self,
        name: &str,
        context_gz: Vec<u8>,
        no_cache: bool,
        on_line: &mut (dyn FnMut(StreamLine) + Send),
    ) -> Result<(), RemoteError> {
        let path = format!(
            "funkos/{name}/build{}",
            if no_cache { "?no_cache=1" } else { "" }
        );
        let request = self
            .request(reqwest::Method::POST, &path)
            .header("Content-Type", "application/gzip")
            .body(context_gz);
        self.stream(request, on_line).await
    }

    pub async fn scale(
        &self,
        name: &str,
        scale: u32,
        timeout_seconds: u64,
        on_line: &mut (dyn FnMut(StreamLine) + Send),
    ) -> Result<(), RemoteError> {
        let request = self
            .request(
                reqwest::Method::PUT,
                &format!("funkos/{name}/scale?timeout={timeout_seconds}"),
            )
            .json(&serde_json::json!({ "scale": scale }));
        self.stream(request, on_line).await
    }

    pub async fn deploy(
        &self,
        name: &str,
        timeout_seconds: u64,
        on_line: &mut (dyn FnMut(StreamLine) + Send),
    ) -> Result<(), RemoteError> {
        self.funko_operation(name, &format!("deploy?timeout={timeout_seconds}"), on_line)
            .await
    }

    /// `deploy --canary`: a canary of the newest image with `percent` of the requests.
    pub async fn deploy_canary(
        &self,
        name: &str,
        percent: u32,
        sticky: bool,
        timeout_seconds: u64,
        on_line: &mut (dyn FnMut(StreamLine) + Send),
    ) -> Result<(), RemoteError> {
        let sticky = if sticky { "&sticky=1" } else { "" };
        self.funko_operation(
            name,
            &format!("deploy?timeout={timeout_seconds}&canary={percent}{sticky}"),
            on_line,
        )
        .await
    }

    pub async fn promote(
        &self,
        name: &str,
        timeout_seconds: u64,
        on_line: &mut (dyn FnMut(StreamLine) + Send),
    ) -> Result<(), RemoteError> {
        self.funko_operation(name, &format!("promote?timeout={timeout_seconds}"), on_line)
            .await
    }

    pub async fn rollback(
        &self,
        name: &str,
        timeout_seconds: u64,
        on_line: &mut (dyn FnMut(StreamLine) + Send),
    ) -> Result<(), RemoteError> {
        self.funko_operation(
            name,
            &format!("rollback?timeout={timeout_seconds}"),
            on_line,
        )
        .await
    }

    /// Removes old releases; one streamed line per tag removed.
    pub async fn prune(
        &self,
        name: &str,
        keep: u32,
        on_line: &mut (dyn FnMut(StreamLine) + Send),
    ) -> Result<(), RemoteError> {
        self.funko_operation(name, &format!("prune?keep={keep}"), on_line)
            .await
    }

    /// `POST funkos/<name>/<operation>` (with its query), its progress streamed to `on_line`.
    async fn funko_operation(
        &self,
        name: &str,
        operation: &str,
        on_line: &mut (dyn FnMut(StreamLine) + Send),
    ) -> Result<(), RemoteError> {
        let request = self.request(reqwest::Method::POST, &format!("funkos/{name}/{operation}"));
        self.stream(request, on_line).await
    }

    pub async fn purge(
        &self,
        name: &str,
        on_line: &mut (dyn FnMut(StreamLine) + Send),
    ) -> Result<(), RemoteError> {
        self.stream(
            self.request(reqwest::Method::DELETE, &format!("funkos/{name}")),
            on_line,
        )
        .await
    }

    pub async fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: Option<u32>,
        on_line: &mut (dyn FnMut(StreamLine) + Send),
    ) -> Result<(), RemoteError> {
        let tail = tail.map_or_else(|| "all".to_string(), |n| n.to_string());
        let path = format!("funkos/{name}/logs?follow={}&tail={tail}", u8::from(follow));
        self.stream(self.request(reqwest::Method::GET, &path), on_line)
            .await
    }

    /// The newest `limit` async calls of funko `name` (records as JSON), newest first.
    pub async fn calls(&self, name: &str, limit: usize) -> Result<Vec<Value>, RemoteError> {
        let path = format!("funkos/{name}/calls?limit={limit}");
        let value = self.json(self.request(reqwest::Method::GET, &path)).await?;
        serde_json::from_value(value).map_err(|e| RemoteError::Protocol(e.to_string()))
    }

    /// One async call's record.
    pub async fn call(&self, id: &str) -> Result<Value, RemoteError> {
        self.json(self.request(reqwest::Method::GET, &format!("calls/{id}")))
            .await
    }

    /// Secret names per funko.
    pub async fn secrets(&self) -> Result<Vec<(String, Vec<String>)>, RemoteError> {
        let value = self
            .json(self.request(reqwest::Method::GET, "secrets"))
            .await?;
        let map = value["secrets"]
            .as_object()
            .ok_or_else(|| RemoteError::Protocol(value.to_string()))?;
        Ok(map
            .iter()
            .map(|(funko, names)| {
                let names = names
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|n| n.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                (funko.clone(), names)
            })
            .collect())
    }

    pub async fn put_secret(
        &self,
        funko: &str,
        secret: &str,
        value: Vec<u8>,
    ) -> Result<(), RemoteError> {
        let request = self
            .request(reqwest::Method::PUT, &format!("secrets/{funko}/{secret}"))
            .body(value);
        self.json(request).await.map(|_| ())
    }

    /// A private funko's keys: names and creation times.
    pub async fn keys(&self, funko: &str) -> Result<Vec<crate::store::keys::KeyInfo>, RemoteError> {
        let path = format!("funkos/{funko}/keys");
        let value = self.json(self.request(reqwest::Method::GET, &path)).await?;
        serde_json::from_value(value["keys"].clone())
            .map_err(|e| RemoteError::Protocol(e.to_string()))
    }

    /// Makes a key for `funko`; its value is only in this answer.
    pub async fn add_key(
        &self,
        funko: &str,
        name: Option<&str>,
    ) -> Result<crate::store::keys::NewKey, RemoteError> {
        let request = self
            .request(reqwest::Method::POST, &format!("funkos/{funko}/keys"))
            .json(&serde_json::json!({ "name": name }));
        let value = self.json(request).await?;
        serde_json::from_value(value).map_err(|e| RemoteError::Protocol(e.to_string()))
    }

    pub async fn delete_key(&self, funko: &str, name: &str) -> Result<(), RemoteError> {
        let request = self.request(
            reqwest::Method::DELETE,
            &format!("funkos/{funko}/keys/{name}"),
        );
        self.json(request).await.map(|_| ())
    }

    pub async fn delete_secret(&self, funko: &str, secret: &str) -> Result<(), RemoteError> {
        let request = self.request(
            reqwest::Method::DELETE,
            &format!("secrets/{funko}/{secret}"),
        );
        self.json(request).await.map(|_| ())
    }
}

/// Handles one NDJSON line; `Some` when the result is complete.
fn handle_line(
    line: &[u8],
    on_line: &mut (dyn FnMut(StreamLine) + Send),
) -> Result<Option<Result<(), RemoteError>>, RemoteError> {
    let text = String::from_utf8_lossy(line);
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let value: Value =
        serde_json::from_str(text).map_err(|_| RemoteError::Protocol(text.to_string()))?;
    if value.get("ok").and_then(Value::as_bool) == Some(true) {
        return Ok(Some(Ok(())));
    }
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        return Ok(Some(Err(RemoteError::Failed(error.to_string()))));
    }
    if let Some(log) = value.get("log").and_then(Value::as_str) {
        let instance = value
            .get("instance")
            .and_then(Value::as_str)
            .map(str::to_string);
        on_line(StreamLine::Log {
            instance,
            line: log.to_string(),
        });
        return Ok(None);
    }
    Err(RemoteError::Protocol(text.to_string()))
}

/// The innermost error message (reqwest wraps the interesting one).
fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// A build context tar, gzip-compressed for upload.
pub fn gzip(tar: &[u8]) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(tar)?;
    encoder.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_without_a_scheme_are_http() {
        assert_eq!(
            normalize_server("127.0.0.1:8888").unwrap(),
            "http://127.0.0.1:8888"
        );
        assert_eq!(
            normalize_server("https://gw.example/").unwrap(),
            "https://gw.example"
        );
        assert!(normalize_server("ftp://x").is_err());
        assert!(normalize_server("").is_err());
        assert!(normalize_server("http://").is_err());
    }

    #[test]
    fn ndjson_lines() {
        let mut seen = Vec::new();
        let mut on_line = |line: StreamLine| seen.push(line);
        assert!(
            handle_line(br#"{"log": "step 1"}"#, &mut on_line)
                .unwrap()
                .is_none()
        );
        assert!(
            handle_line(br#"{"instance": "faaso-a-1", "log": "hi"}"#, &mut on_line)
                .unwrap()
                .is_none()
        );
        assert!(matches!(
            handle_line(br#"{"ok": true}"#, &mut on_line).unwrap(),
            Some(Ok(()))
        ));
        match handle_line(br#"{"error": "boom"}"#, &mut on_line).unwrap() {
            Some(Err(RemoteError::Failed(message))) => assert_eq!(message, "boom"),
            other => panic!("{other:?}"),
        }
        assert!(handle_line(b"not json", &mut on_line).is_err());
        assert_eq!(seen.len(), 2);
    }
}
