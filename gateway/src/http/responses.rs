//! Responses the gateway writes itself: JSON errors (`{"error": ..., "funko": ...}`) and the
//! small health endpoints. One place so every error looks the same.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;

/// Builds the JSON error body; `funko` is left out when the error is not about one.
pub fn error_body(message: &str, funko: Option<&str>) -> Bytes {
    let body = match funko {
        Some(funko) => serde_json::json!({ "error": message, "funko": funko }),
        None => serde_json::json!({ "error": message }),
    };
    Bytes::from(body.to_string())
}

/// Writes a complete response with a JSON body and extra headers.
pub async fn write_json(
    session: &mut Session,
    status: u16,
    body: Bytes,
    extra_headers: &[(&'static str, &str)],
) -> Result<()> {
    let mut header = ResponseHeader::build(status, Some(4 + extra_headers.len()))?;
    header.insert_header("Content-Type", "application/json")?;
    header.insert_header("Content-Length", body.len().to_string())?;
    header.insert_header("Cache-Control", "no-store")?;
    for (name, value) in extra_headers {
        header.insert_header(*name, *value)?;
    }
    session
        .write_response_header(Box::new(header), false)
        .await?;
    session.write_response_body(Some(body), true).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_json() {
        let body = error_body("no such funko", Some("he\"llo"));
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["error"], "no such funko");
        assert_eq!(value["funko"], "he\"llo");
        let body = error_body("not found", None);
        assert_eq!(&body[..], br#"{"error":"not found"}"#);
    }
}
