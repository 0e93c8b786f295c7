//! Proxy failures mapped to HTTP status codes and messages, in one place.
//!
//! | failure | status |
//! |---|---|
//! | the gateway decided (unknown funko, no instance, body too large, bad header) | as decided |
//! | cannot connect to an instance, after retries | 502 |
//! | the instance did not answer or accept data in time | 504 |
//! | any other upstream failure | 502 |
//! | the client sent something malformed | 400 |
//! | the client went away | none (nothing can be sent) |

use pingora::{Error, ErrorSource, ErrorType};

/// The status for a failure; 0 when the client connection is gone.
pub fn status_for(e: &Error) -> u16 {
    status(e.etype(), e.esource())
}

fn status(etype: &ErrorType, source: &ErrorSource) -> u16 {
    use ErrorType::*;
    match (etype, source) {
        (HTTPStatus(code), _) => *code,
        (ReadTimedout | WriteTimedout, ErrorSource::Upstream) => 504,
        (_, ErrorSource::Upstream) => 502,
        (ConnectTimedout | ConnectRefused | ConnectNoRoute | ConnectError, _) => 502,
        (ReadError | WriteError | ConnectionClosed, ErrorSource::Downstream) => 0,
        (ReadTimedout | WriteTimedout, ErrorSource::Downstream) => 0,
        (_, ErrorSource::Downstream) => 400,
        _ => 500,
    }
}

/// The error message sent for a status.
pub fn message(code: u16, max_body_bytes: u64) -> String {
    match code {
        400 => "malformed request".to_string(),
        404 => "no such funko".to_string(),
        405 => "method not allowed".to_string(),
        408 => "the request body did not arrive in time".to_string(),
        413 => format!("request body larger than max_body_bytes ({max_body_bytes} bytes)"),
        429 => {
            "every instance of this funko is at its max_inflight; the queue timed out".to_string()
        }
        502 => "cannot reach an instance of this funko".to_string(),
        503 => "no healthy instance of this funko".to_string(),
        504 => "the instance did not answer in time".to_string(),
        _ => "gateway error".to_string(),
    }
}

/// The error message sent for a failure: for a request the gateway refused as malformed (400)
/// or for its method (405), its own reason; a body whose chunks are malformed says so; else
/// [`message`] for the status.
pub fn message_for(e: &Error, code: u16, max_body_bytes: u64) -> String {
    match (code, e.etype(), e.context.as_ref()) {
        (400 | 405, ErrorType::HTTPStatus(_), Some(reason)) => reason.as_str().to_string(),
        (400, ErrorType::Custom("InvalidChunk"), _) => "malformed chunked request body".to_string(),
        _ => message(code, max_body_bytes),
    }
}

/// An error with its causes, on one line (`outer: cause: root cause`).
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use ErrorType::*;

    #[test]
    fn failures_map_to_statuses() {
        assert_eq!(status(&HTTPStatus(413), &ErrorSource::Internal), 413);
        assert_eq!(status(&ConnectRefused, &ErrorSource::Upstream), 502);
        assert_eq!(status(&ConnectTimedout, &ErrorSource::Unset), 502);
        assert_eq!(status(&ReadTimedout, &ErrorSource::Upstream), 504);
        assert_eq!(status(&ConnectionClosed, &ErrorSource::Upstream), 502);
        assert_eq!(status(&InvalidHTTPHeader, &ErrorSource::Downstream), 400);
        assert_eq!(status(&ReadError, &ErrorSource::Downstream), 0);
        assert_eq!(status(&InternalError, &ErrorSource::Internal), 500);
        assert!(message(413, 10).contains("10 bytes"));
    }

    #[test]
    fn a_refused_request_is_told_why() {
        let refused = Error::explain(HTTPStatus(400), "an upgrade request cannot carry a body");
        assert_eq!(
            message_for(&refused, 400, 10),
            "an upgrade request cannot carry a body"
        );
        let method = Error::explain(HTTPStatus(405), "TRACE is not allowed");
        assert_eq!(message_for(&method, 405, 10), "TRACE is not allowed");
        let mut chunk = Error::explain(
            ErrorType::new("InvalidChunk"),
            "Invalid chunked encoding: InvalidChunkSize",
        );
        chunk.esource = ErrorSource::Downstream;
        assert_eq!(
            message_for(&chunk, 400, 10),
            "malformed chunked request body"
        );
        // Other statuses keep their fixed text, whatever the context says.
        let large = Error::explain(HTTPStatus(413), "body too large");
        assert_eq!(message_for(&large, 413, 10), message(413, 10));
        let mut header = Error::explain(InvalidHTTPHeader, "a parser's words");
        header.esource = ErrorSource::Downstream;
        assert_eq!(message_for(&header, 400, 10), "malformed request");
    }
}
