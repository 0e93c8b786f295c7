//! FaaSO's entry point for an axum funko: serves `funko::router()` on port 3000 with `/ping`
//! added, shuts down gracefully on SIGTERM, and checks a running server with `--healthcheck`.

mod funko;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use axum::routing::get;

fn port() -> u16 {
    std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000)
}

/// `GET /ping` on the local server; exit code 0 when it answers 2xx.
fn healthcheck() -> std::process::ExitCode {
    let check = || -> std::io::Result<bool> {
        let mut stream = TcpStream::connect(("127.0.0.1", port()))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head)?;
        Ok(head.starts_with(b"HTTP/1.") && head[9] == b'2')
    };
    match check() {
        Ok(true) => std::process::ExitCode::SUCCESS,
        _ => std::process::ExitCode::FAILURE,
    }
}

async fn shutdown_signal() {
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some("--healthcheck") {
        return healthcheck();
    }
    let app = funko::router().route("/ping", get(|| async { "OK" }));
    let listener = match tokio::net::TcpListener::bind(("0.0.0.0", port())).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cannot listen on port {}: {err}", port());
            return std::process::ExitCode::FAILURE;
        }
    };
    if let Err(err) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        eprintln!("server error: {err}");
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}
