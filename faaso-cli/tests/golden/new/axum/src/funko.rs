//! A FaaSO funko: an axum router. Routes here are served under /funko/<name>/ by the gateway.

use axum::extract::Query;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

#[derive(Deserialize)]
struct Hello {
    name: Option<String>,
}

/// The value of a secret added with `faaso secret add <funko> <name>`, if any.
#[allow(dead_code)]
fn secret(name: &str) -> Option<String> {
    std::fs::read_to_string(format!("/secrets/{name}"))
        .ok()
        .map(|s| s.trim().to_string())
}

pub fn router() -> Router {
    Router::new().route(
        "/",
        get(|Query(q): Query<Hello>| async move {
            Json(serde_json::json!({ "hello": q.name.unwrap_or_else(|| "world".into()) }))
        }),
    )
}
