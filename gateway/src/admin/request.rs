//! What the admin API and the web UI share for one request: refusals with their status,
//! names checked, small bodies read, query parameters, lifecycle errors as statuses.

use bytes::Bytes;
use faaso::engine::Lifecycle;
use pingora::prelude::*;

use crate::http::responses::write_json;

/// Largest JSON body (scale) and secret value accepted.
const MAX_SMALL_BODY: usize = 64 * 1024;

/// A request answered with an error before any streaming.
pub(crate) struct Reject {
    pub(crate) status: u16,
    pub(crate) message: String,
}

pub(crate) fn reject(status: u16, message: impl Into<String>) -> Reject {
    Reject {
        status,
        message: message.into(),
    }
}

pub(crate) fn valid(name: &str) -> std::result::Result<String, Reject> {
    faaso::conventions::validate_name(name)
        .map(|()| name.to_string())
        .map_err(|e| reject(400, e.to_string()))
}

/// 404 unless the funko has an image or a container.
pub(crate) async fn require_funko(
    lifecycle: &Lifecycle,
    name: &str,
) -> std::result::Result<(), Reject> {
    if lifecycle
        .funko_exists(name)
        .await
        .map_err(lifecycle_reject)?
    {
        return Ok(());
    }
    Err(reject(
        404,
        faaso::engine::unknown_funko(&lifecycle.docker, name)
            .await
            .to_string(),
    ))
}

pub(crate) fn lifecycle_reject(err: faaso::engine::LifecycleError) -> Reject {
    match err {
        faaso::engine::LifecycleError::Unknown { .. } => reject(404, err.to_string()),
        faaso::engine::LifecycleError::Name(_) => reject(400, err.to_string()),
        other => reject(500, other.to_string()),
    }
}

/// A key operation's failure as an answer: bad names 400, no such key 404, a taken name or
/// too many keys 409.
pub(crate) fn key_reject(err: faaso::store::keys::KeyError) -> Reject {
    use faaso::store::keys::KeyError;
    let status = match &err {
        KeyError::InvalidName { .. } | KeyError::Funko(_) => 400,
        KeyError::NotFound { .. } => 404,
        KeyError::Exists { .. } | KeyError::TooMany { .. } => 409,
        KeyError::Io { .. } => 500,
    };
    reject(status, err.to_string())
}

pub(crate) async fn respond(
    session: &mut Session,
    status: u16,
    body: serde_json::Value,
) -> std::result::Result<(), Reject> {
    write_json(session, status, Bytes::from(body.to_string()), &[])
        .await
        .map_err(|e| reject(500, e.to_string()))
}

pub(crate) async fn read_small_body(session: &mut Session) -> std::result::Result<Vec<u8>, Reject> {
    let mut body = Vec::new();
    while let Some(chunk) = session
        .read_request_body()
        .await
        .map_err(|e| reject(400, format!("reading the body failed: {e}")))?
    {
        if body.len() + chunk.len() > MAX_SMALL_BODY {
            return Err(reject(
                413,
                format!("body larger than {MAX_SMALL_BODY} bytes"),
            ));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A query parameter's value, percent-decoded (`form_urlencoded`).
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}
