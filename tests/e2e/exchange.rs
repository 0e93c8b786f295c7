//! How the gateway carries a request to an instance and the answer back, seen on the wire:
//! pooled connections that the instance closed, answers delimited by the end of the
//! connection, answers without a body, answers cut short, and hop-by-hop headers.

use std::time::Duration;

use bollard::Docker;

use faaso_tests::docker::{Cleanup, start_instance};
use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::wait_for_status;
use faaso_tests::raw::RawConnection;
use faaso_tests::{require_docker, unique_name};

/// One instance of a new funko behind a gateway with one worker (one connection pool), routed.
pub(crate) async fn one_instance(
    docker: &Docker,
    prefix: &str,
) -> (Cleanup, GatewayProcess, String) {
    let cleanup = Cleanup::new();
    let funko = unique_name(prefix);
    start_instance(docker, &cleanup, &funko, &[]).await;
    let gateway = GatewayProcess::start("threads: 1\n").await;
    let url = format!("{}/funko/{funko}/ping", gateway.url);
    wait_for_status(&url, 200, Duration::from_secs(10)).await;
    (cleanup, gateway, funko)
}

/// The gateway's `host:port`, for raw connections.
pub(crate) fn addr(gateway: &GatewayProcess) -> String {
    gateway.url.trim_start_matches("http://").to_string()
}

/// The instance answers and keeps the connection, then closes it at the next request without
/// answering: the gateway sends that (idempotent) request again on a new connection, and no
/// client sees a failure; a `POST` is not sent again.
#[tokio::test]
async fn a_pooled_connection_found_closed_is_replaced() {
    let docker = require_docker!();
    let (_cleanup, gateway, funko) = one_instance(&docker, "stale").await;
    let mut client = RawConnection::open(&addr(&gateway)).await;
    for round in 0..50 {
        client
            .send("GET", &format!("/funko/{funko}/drop-next"), &[])
            .await;
        let armed = client.response(false).await.unwrap();
        assert_eq!(armed.status, 200, "round {round}");
        client
            .send("GET", &format!("/funko/{funko}/ping"), &[])
            .await;
        let answer = client.response(false).await.unwrap();
        assert_eq!(
            (answer.status, answer.body.as_slice()),
            (200, &b"OK"[..]),
            "round {round}: {answer:?}"
        );
    }
    let log = gateway.log();
    assert!(!log.contains("ERROR"), "{log}");

    // A POST may have reached the instance before the connection ended: it is not sent twice.
    client
        .send("GET", &format!("/funko/{funko}/drop-next"), &[])
        .await;
    assert_eq!(client.response(false).await.unwrap().status, 200);
    client
        .send(
            "POST",
            &format!("/funko/{funko}/ping"),
            &["Content-Length: 0"],
        )
        .await;
    let answer = client.response(false).await.unwrap();
    assert_eq!(answer.status, 502, "{answer:?}");
}

/// An answer that only the end of the instance's connection delimits reaches the client
/// chunked, whole, and the client's connection stays open for the next request.
#[tokio::test]
async fn answers_delimited_by_closing_reach_the_client_chunked() {
    let docker = require_docker!();
    let (_cleanup, gateway, funko) = one_instance(&docker, "unframed").await;
    let mut client = RawConnection::open(&addr(&gateway)).await;
    for size in [0usize, 1, 5_000, 300_000] {
        client
            .send("GET", &format!("/funko/{funko}/unframed/{size}"), &[])
            .await;
        let answer = client.response(false).await.unwrap();
        assert_eq!(answer.status, 200);
        assert!(answer.chunked, "{:?}", answer.headers);
        assert_eq!(answer.body.len(), size);
        assert!(answer.body.iter().all(|b| *b == b'x'));
    }
    client
        .send("GET", &format!("/funko/{funko}/ping"), &[])
        .await;
    assert_eq!(client.response(false).await.unwrap().body, b"OK");
}

/// `HEAD`, `204` and `304` answers have no body, and the connection carries on after each.
#[tokio::test]
async fn answers_without_a_body_keep_the_connection_in_step() {
    let docker = require_docker!();
    let (_cleanup, gateway, funko) = one_instance(&docker, "nobody").await;
    let mut client = RawConnection::open(&addr(&gateway)).await;
    for _ in 0..3 {
        client
            .send("HEAD", &format!("/funko/{funko}/bytes/100"), &[])
            .await;
        let head = client.response(true).await.unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.header("content-length"), Some("100"));
        for code in [204u16, 304] {
            client
                .send("GET", &format!("/funko/{funko}/status/{code}"), &[])
                .await;
            assert_eq!(client.response(false).await.unwrap().status, code);
        }
        client
            .send("GET", &format!("/funko/{funko}/bytes/10"), &[])
            .await;
        assert_eq!(client.response(false).await.unwrap().body, b"xxxxxxxxxx");
    }
}

/// An instance that stops halfway through its answer: the client gets what was sent and then
/// the end of its connection (so it cannot take the answer for whole), and the next client is
/// served as usual.
#[tokio::test]
async fn an_answer_cut_short_ends_the_clients_connection() {
    let docker = require_docker!();
    let (_cleanup, gateway, funko) = one_instance(&docker, "cut").await;
    for size in [1usize, 100_000] {
        let mut client = RawConnection::open(&addr(&gateway)).await;
        client
            .send("GET", &format!("/funko/{funko}/cut/{size}"), &[])
            .await;
        let failure = client.response(false).await.unwrap_err();
        assert!(failure.contains("connection closed"), "{failure}");
        let mut next = RawConnection::open(&addr(&gateway)).await;
        next.send("GET", &format!("/funko/{funko}/ping"), &[]).await;
        assert_eq!(next.response(false).await.unwrap().body, b"OK");
    }
}

/// Headers about the client's connection stay on it; the others reach the instance with their
/// names' case kept.
#[tokio::test]
async fn hop_by_hop_headers_stay_on_the_clients_connection() {
    let docker = require_docker!();
    let (_cleanup, gateway, funko) = one_instance(&docker, "hops").await;
    let mut client = RawConnection::open(&addr(&gateway)).await;
    client
        .send(
            "GET",
            &format!("/funko/{funko}/echo"),
            &[
                "Connection: keep-alive, X-Private-Hop",
                "X-Private-Hop: 1",
                "Keep-Alive: timeout=5",
                "Proxy-Connection: keep-alive",
                "TE: trailers",
                "X-MiXeD-Case: kept",
            ],
        )
        .await;
    let answer = client.response(false).await.unwrap();
    let echo: serde_json::Value = serde_json::from_slice(&answer.body).unwrap();
    let names: Vec<&str> = echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap())
        .collect();
    for hop in [
        "connection",
        "x-private-hop",
        "keep-alive",
        "proxy-connection",
        "te",
    ] {
        assert!(
            !names.iter().any(|n| n.eq_ignore_ascii_case(hop)),
            "{hop} reached the instance: {names:?}"
        );
    }
    assert!(names.contains(&"X-MiXeD-Case"), "{names:?}");
    assert!(names.contains(&"X-Forwarded-For"), "{names:?}");
    // The client asked to keep its connection: the next request goes on it.
    client
        .send("GET", &format!("/funko/{funko}/ping"), &[])
        .await;
    assert_eq!(client.response(false).await.unwrap().body, b"OK");
}

/// Clients that hang up before their answer, with and without a body, are nothing an operator
/// must act on: they are not logged at warn or error (the access log still has them).
#[tokio::test]
async fn clients_that_hang_up_are_not_logged_as_errors() {
    let docker = require_docker!();
    let (_cleanup, gateway, funko) = one_instance(&docker, "hangup").await;
    for round in 0..10 {
        let mut client = RawConnection::open(&addr(&gateway)).await;
        if round % 2 == 0 {
            client
                .send("GET", &format!("/funko/{funko}/sleep/300"), &[])
                .await;
        } else {
            client
                .send(
                    "POST",
                    &format!("/funko/{funko}/sleep/300"),
                    &["Content-Length: 9", "", "hello"],
                )
                .await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(client);
    }
    // The instance answers after 300 ms, to clients that are gone.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let url = format!("{}/funko/{funko}/ping", gateway.url);
    wait_for_status(&url, 200, Duration::from_secs(5)).await;
    let log = gateway.log();
    let loud: Vec<&str> = log
        .lines()
        .filter(|l| l.contains(" ERROR ") || l.contains(" WARN "))
        .collect();
    assert!(
        loud.is_empty(),
        "warn/error lines for clients that left:\n{}",
        loud.join("\n")
    );
    assert!(
        log.contains("/sleep/300"),
        "the access log has them:\n{log}"
    );
}
