//! The `ProxyHttp` implementation, kept thin: it reads the session, asks the pure modules
//! ([`crate::router`]) what to do, and writes the answer.

use async_trait::async_trait;
use pingora::prelude::*;

use crate::responses::{error_body, write_json};
use crate::router::{Route, route};

/// The gateway's proxy logic.
pub struct Gateway {}

impl Gateway {
    pub fn new() -> Gateway {
        Gateway {}
    }
}

impl Default for Gateway {
    fn default() -> Self {
        Self::new()
    }
}

/// Per-request state.
#[derive(Debug, Default)]
pub struct RequestCtx {}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::default()
    }

    async fn request_filter(&self, session: &mut Session, _ctx: &mut RequestCtx) -> Result<bool> {
        let target = session
            .req_header()
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        match route(&target) {
            Route::Healthz => {
                write_json(session, 200, r#"{"status":"ok"}"#.into(), &[]).await?;
            }
            Route::Readyz => {
                write_json(session, 200, r#"{"status":"ready"}"#.into(), &[]).await?;
            }
            Route::Funko(funko) => {
                let body = error_body("no such funko", Some(funko.name));
                write_json(session, 404, body, &[]).await?;
            }
            Route::Admin | Route::NotFound => {
                write_json(session, 404, error_body("not found", None), &[]).await?;
            }
        }
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        Err(Error::explain(
            ErrorType::HTTPStatus(404),
            "no route to an upstream",
        ))
    }
}
