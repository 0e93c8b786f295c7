//! The protocol's edges, as hostile clients try them on the wire: upgrades the gateway does not
//! pass on, upgrade requests with a body, long and vital `Connection` lists, `TRACE`, request
//! ids that are not safe to echo, and the admin API seen from a browser on another site.

use std::time::{Duration, Instant};

use faaso_tests::docker::{Cleanup, start_instance};
use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::{client, wait_for_status};
use faaso_tests::raw::{RawConnection, RawResponse};
use faaso_tests::{require_docker, unique_name};

use crate::exchange::{addr, one_instance};

/// The header names the instance received, from the test funko's `/echo`.
fn echoed_names(answer: &RawResponse) -> Vec<String> {
    let echo: serde_json::Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|err| panic!("{err}: {:?}", String::from_utf8_lossy(&answer.body)));
    echo["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h[0].as_str().unwrap().to_ascii_lowercase())
        .collect()
}

/// One request on a new connection, its answer.
async fn ask(gateway: &GatewayProcess, method: &str, target: &str, extra: &[&str]) -> RawResponse {
    let mut connection = RawConnection::open(&addr(gateway)).await;
    connection.send(method, target, extra).await;
    connection.response(method == "HEAD").await.unwrap()
}

/// `Upgrade: h2c` is not passed on: the instance gets a plain request without `Upgrade`,
/// `HTTP2-Settings` or their `Connection` nominations, and an instance that answers `101`
/// anyway does not get a tunnel to the client.
#[tokio::test]
async fn an_upgrade_not_allowed_goes_on_as_a_plain_request() {
    let docker = require_docker!();
    let (_cleanup, gateway, funko) = one_instance(&docker, "h2c").await;
    let h2c = [
        "Upgrade: h2c",
        "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA",
        "Connection: Upgrade, HTTP2-Settings",
    ];
    let answer = ask(&gateway, "GET", &format!("/funko/{funko}/echo"), &h2c).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let names = echoed_names(&answer);
    for gone in ["upgrade", "http2-settings", "connection"] {
        assert!(!names.contains(&gone.to_string()), "{gone}: {names:?}");
    }
    let answer = ask(&gateway, "GET", &format!("/funko/{funko}/upgrade"), &h2c).await;
    assert_ne!(answer.status, 101, "{answer:?}");

    // WebSocket, the default of `upgrades`, still gets its tunnel.
    let answer = ask(
        &gateway,
        "GET",
        &format!("/funko/{funko}/upgrade"),
        &["Upgrade: websocket", "Connection: Upgrade"],
    )
    .await;
    assert_eq!(answer.status, 101, "{answer:?}");
}

/// An upgrade request that announces a body is answered at once with 400, never left waiting
/// for a body the instance is told of.
#[tokio::test]
async fn an_upgrade_request_with_a_body_is_refused_at_once() {
    let docker = require_docker!();
    let (_cleanup, gateway, funko) = one_instance(&docker, "upbody").await;
    for framing in ["Content-Length: 5", "Transfer-Encoding: chunked"] {
        let started = Instant::now();
        let answer = ask(
            &gateway,
            "GET",
            &format!("/funko/{funko}/upgrade"),
            &["Upgrade: websocket", "Connection: Upgrade", framing],
        )
        .await;
        assert_eq!(answer.status, 400, "{framing}: {answer:?}");
        assert!(started.elapsed() < Duration::from_secs(2), "{framing}");
    }
}

/// `Connection` may name nine options; ten, a 400 KB list, or a vital header are a 400 on the
/// body-less path and on Pingora's loop (a POST) alike, and cheaply.
#[tokio::test]
async fn connection_lists_are_bounded_and_cannot_name_vital_headers() {
    let docker = require_docker!();
    let (_cleanup, gateway, funko) = one_instance(&docker, "conn").await;
    let echo = format!("/funko/{funko}/echo");
    let list = |n: usize| format!("Connection: {}", vec!["x-a"; n].join(", "));
    let nine = ask(&gateway, "GET", &echo, &[&list(9)]).await;
    assert_eq!(nine.status, 200, "{nine:?}");
    for method in ["GET", "POST"] {
        let body = if method == "POST" {
            "Content-Length: 0"
        } else {
            "X-No-Body: 1"
        };
        let ten = ask(&gateway, method, &echo, &[&list(10), body]).await;
        assert_eq!(ten.status, 400, "{method}: {ten:?}");
        for vital in [
            "Host",
            "Content-Length",
            "Transfer-Encoding",
            "X-Forwarded-For",
        ] {
            let named = format!("Connection: keep-alive, {vital}");
            let answer = ask(&gateway, method, &echo, &[&named, body]).await;
            assert_eq!(answer.status, 400, "{method} naming {vital}: {answer:?}");
        }
    }
    let huge = format!("Connection: {}", vec!["a"; 200_000].join(","));
    let started = Instant::now();
    for _ in 0..5 {
        let answer = ask(&gateway, "GET", &echo, &[&huge]).await;
        assert!(
            matches!(answer.status, 400 | 431),
            "a 400 KB Connection list: {}",
            answer.status
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "5 huge lists took {:?}",
        started.elapsed()
    );
}

/// `TRACE` is refused (the instance would echo the client's cookies back to a page script).
#[tokio::test]
async fn trace_is_refused() {
    let docker = require_docker!();
    let (_cleanup, gateway, funko) = one_instance(&docker, "trace").await;
    let answer = ask(
        &gateway,
        "TRACE",
        &format!("/funko/{funko}/echo"),
        &["Cookie: faaso_session=secret"],
    )
    .await;
    assert_eq!(answer.status, 405, "{answer:?}");
    assert!(!String::from_utf8_lossy(&answer.body).contains("secret"));
}

/// A client's `X-Request-Id` is kept only when it is safe to echo and log; else the gateway
/// makes one.
#[tokio::test]
async fn unsafe_request_ids_are_replaced() {
    let docker = require_docker!();
    let (_cleanup, gateway, funko) = one_instance(&docker, "reqid").await;
    let ping = format!("/funko/{funko}/ping");
    let kept = ask(&gateway, "GET", &ping, &["X-Request-Id: trace:01.AB_cd-9"]).await;
    assert_eq!(kept.header("x-request-id"), Some("trace:01.AB_cd-9"));
    let probe = ask(
        &gateway,
        "GET",
        &ping,
        &["X-Request-Id: probe-\"quoted\"-<b>id</b>"],
    )
    .await;
    let id = probe.header("x-request-id").unwrap_or_default().to_string();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    let log = gateway.log();
    assert!(!log.contains("<b>id</b>"), "{log}");
}

/// The admin API: no `WWW-Authenticate` challenge (a browser would keep the password), a
/// state-changing request from another site is refused with 403 even with the password, and
/// requests without credentials do not count as failed logins.
#[tokio::test]
async fn the_admin_api_refuses_other_sites_and_cannot_be_locked_by_knocking() {
    let _docker = require_docker!();
    let password = "protocol-edge-password";
    let gateway = GatewayProcess::start(&format!("password: {password}\n")).await;
    let url = format!("{}/admin/api/version", gateway.url);
    let bare = client().get(&url).send().await.unwrap();
    assert_eq!(bare.status().as_u16(), 401);
    assert!(bare.headers().get("www-authenticate").is_none());

    for _ in 0..30 {
        let knock = client().get(&url).send().await.unwrap();
        assert_eq!(knock.status().as_u16(), 401);
    }
    let right = client()
        .get(&url)
        .basic_auth("admin", Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(
        right.status().as_u16(),
        200,
        "locked out by requests without credentials"
    );

    let prune = format!("{}/admin/api/funkos/nothing-here/prune", gateway.url);
    for (name, value) in [
        ("Origin", "https://evil.example"),
        ("Sec-Fetch-Site", "cross-site"),
    ] {
        let forged = client()
            .post(&prune)
            .basic_auth("admin", Some(password))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(forged.status().as_u16(), 403, "{name}: {value}");
    }
    // The faaso command sends neither header: its requests go through.
    let own = client()
        .post(&prune)
        .basic_auth("admin", Some(password))
        .send()
        .await
        .unwrap();
    assert_ne!(own.status().as_u16(), 403);
}

/// A funko shares the gateway's origin with the admin: it cannot set the admin's cookies
/// (`faaso_*`) or widen its service worker's scope to `/admin/`; its own cookies pass.
#[tokio::test]
async fn a_funko_cannot_set_the_admins_cookies() {
    let docker = require_docker!();
    let (_cleanup, gateway, funko) = one_instance(&docker, "cookies").await;
    let answer = ask(&gateway, "GET", &format!("/funko/{funko}/cookies"), &[]).await;
    assert_eq!(answer.status, 200, "{answer:?}");
    let cookies: Vec<&str> = answer
        .headers
        .iter()
        .filter(|(name, _)| name.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, value)| value.as_str())
        .collect();
    assert_eq!(cookies, ["theirs=1; Path=/"], "{answer:?}");
    assert!(
        answer.header("service-worker-allowed").is_none(),
        "{answer:?}"
    );
}

/// `admin_listen` gives the admin an address of its own: the API and the UI answer there,
/// the funko listener answers 404 under `/admin/`, and funkos are not served on the admin's
/// address.
#[tokio::test]
async fn admin_listen_puts_the_admin_on_its_own_address() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("apart");
    start_instance(&docker, &cleanup, &funko, &[]).await;
    let password = "apart-password";
    let admin_port = faaso_tests::gateway::free_port();
    let gateway = GatewayProcess::start(&format!(
        "password: {password}\nadmin_listen: 127.0.0.1:{admin_port}\n"
    ))
    .await;
    wait_for_status(
        &format!("{}/funko/{funko}/ping", gateway.url),
        200,
        Duration::from_secs(10),
    )
    .await;
    let admin = format!("http://127.0.0.1:{admin_port}");
    let version = client()
        .get(format!("{admin}/admin/api/version"))
        .basic_auth("admin", Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(version.status().as_u16(), 200);
    let login_page = client()
        .get(format!("{admin}/admin/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(login_page.status().as_u16(), 200);

    for path in ["/admin/api/version", "/admin/", "/admin/login"] {
        let on_funkos = client()
            .get(format!("{}{path}", gateway.url))
            .basic_auth("admin", Some(password))
            .send()
            .await
            .unwrap();
        assert_eq!(
            on_funkos.status().as_u16(),
            404,
            "{path} on the funko listener"
        );
    }
    let funko_on_admin = client()
        .get(format!("{admin}/funko/{funko}/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(funko_on_admin.status().as_u16(), 404);
    let health = client()
        .get(format!("{admin}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

/// An HTTP/1.0 client never gets a chunked answer: a body without a length (close-delimited
/// or chunked by the instance) reaches it as it is, ended by the close of its connection.
#[tokio::test]
async fn an_http10_client_gets_answers_it_can_read() {
    let docker = require_docker!();
    let (_cleanup, gateway, funko) = one_instance(&docker, "http10").await;
    for (path, length) in [("unframed/5000", 5000), ("bytes/300", 300)] {
        let mut connection = RawConnection::open(&addr(&gateway)).await;
        let request = format!("GET /funko/{funko}/{path} HTTP/1.0\r\nHost: test\r\n\r\n");
        connection.write(request.as_bytes()).await.unwrap();
        let answer = connection.response(false).await.unwrap();
        assert_eq!(answer.status, 200, "{path}: {answer:?}");
        assert!(
            !answer.chunked,
            "{path}: a chunked answer to HTTP/1.0: {answer:?}"
        );
        assert!(answer.header("transfer-encoding").is_none(), "{path}");
        assert_eq!(answer.body.len(), length, "{path}");
    }
    let mut connection = RawConnection::open(&addr(&gateway)).await;
    let request = format!("GET /funko/{funko}/stream/3 HTTP/1.0\r\nHost: test\r\n\r\n");
    connection.write(request.as_bytes()).await.unwrap();
    let answer = connection.response(false).await.unwrap();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert!(!answer.chunked, "{answer:?}");
    assert!(!answer.body.is_empty());
}

/// A chunked answer the instance cuts short: the client gets the chunks sent and then the end
/// of its connection, never a last chunk that would make the answer look whole; the access log
/// and the metrics count it as the upstream error it is (502).
#[tokio::test]
async fn a_cut_chunked_answer_never_looks_whole() {
    let docker = require_docker!();
    let (_cleanup, gateway, funko) = one_instance(&docker, "cutchunk").await;
    for round in 0..3 {
        let mut client = RawConnection::open(&addr(&gateway)).await;
        client
            .send("GET", &format!("/funko/{funko}/cut-chunked/3"), &[])
            .await;
        let failure = client.response(false).await.unwrap_err();
        assert!(
            failure.contains("connection closed"),
            "round {round}: {failure}"
        );
    }
    // Through Pingora's loop too (a request with a body).
    let mut client = RawConnection::open(&addr(&gateway)).await;
    client
        .send(
            "POST",
            &format!("/funko/{funko}/cut-chunked/3"),
            &["Content-Length: 2"],
        )
        .await;
    client.write(b"hi").await.unwrap();
    let failure = client.response(false).await.unwrap_err();
    assert!(failure.contains("connection closed"), "POST: {failure}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let log = gateway.log();
    let cut_lines = log
        .lines()
        .filter(|line| line.contains("cut-chunked") && line.contains("status=502"))
        .count();
    assert_eq!(cut_lines, 4, "{log}");
}
