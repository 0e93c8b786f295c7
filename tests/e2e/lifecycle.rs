//! The gateway process's life: SIGTERM drains requests in flight, `-u` hands the listeners to a
//! new process without refusing a connection, and upgraded connections pass through.

use std::time::{Duration, Instant};

use faaso_tests::docker::{Cleanup, start_instance};
use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::{client, wait_for_status, wait_until};
use faaso_tests::{require_docker, unique_name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn routed_gateway(extra: &str) -> (Cleanup, String, GatewayProcess) {
    let docker = faaso::engine::docker::connect().await.unwrap();
    let cleanup = Cleanup::new();
    let funko = unique_name("life");
    start_instance(&docker, &cleanup, &funko, &[]).await;
    let gateway = GatewayProcess::start(extra).await;
    let url = format!("{}/funko/{funko}/ping", gateway.url);
    wait_for_status(&url, 200, Duration::from_secs(10)).await;
    (cleanup, funko, gateway)
}

#[tokio::test]
async fn sigterm_drains_requests_in_flight() {
    let _docker = require_docker!();
    let (_cleanup, funko, mut gateway) = routed_gateway("grace_period: 5s\n").await;
    let url = format!("{}/funko/{funko}/sleep/1500", gateway.url);
    let in_flight = tokio::spawn(async move { client().get(url).send().await });
    // The gateway counts it in flight (its metrics say so) before the signal.
    let metrics = format!("{}/metrics", gateway.metrics_url);
    wait_until("the request in flight", Duration::from_secs(5), || async {
        let text = wait_for_status(&metrics, 200, Duration::from_secs(5)).await;
        faaso_tests::prom::value(&text, "faaso_http_requests_in_flight", &[("funko", &funko)])
            == Some(1.0)
    })
    .await;
    let start = Instant::now();
    gateway.signal("TERM");
    let response = in_flight
        .await
        .unwrap()
        .expect("the request in flight completes");
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), "slept 1500");
    let exit = tokio::task::spawn_blocking(move || {
        let exit = gateway.wait_exit(Duration::from_secs(8));
        (exit, gateway)
    })
    .await
    .unwrap()
    .0;
    println!("gateway exited {:?} after SIGTERM", start.elapsed());
    assert!(
        exit.is_some(),
        "the gateway did not exit within the grace period"
    );
}

#[tokio::test]
async fn upgrade_hands_over_the_listener_without_failures() {
    let _docker = require_docker!();
    let (_cleanup, funko, old) = routed_gateway("").await;
    let url = format!("{}/funko/{funko}/ping", old.url);
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = tokio::spawn({
        let url = url.clone();
        let sent = std::sync::Arc::clone(&sent);
        async move {
            let client = client();
            let mut statuses = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(4);
            while Instant::now() < deadline {
                let status = match client.get(&url).send().await {
                    Ok(r) => r.status().as_u16(),
                    Err(err) => {
                        eprintln!("request failed: {err}");
                        0
                    }
                };
                statuses.push(status);
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            statuses
        }
    });
    wait_until("the load to run", Duration::from_secs(5), || async {
        sent.load(std::sync::atomic::Ordering::SeqCst) >= 20
    })
    .await;
    let mut new = old.upgrade();
    // The new process waits on the upgrade socket once it exists; then the old one hands over.
    let socket = old.dir.path().join("upgrade.sock");
    wait_until("the upgrade socket", Duration::from_secs(10), || async {
        socket.exists()
    })
    .await;
    old.signal("QUIT");
    let statuses = load.await.unwrap();
    let failed = statuses.iter().filter(|s| **s != 200).count();
    println!(
        "during the upgrade: {} requests, {failed} failed",
        statuses.len()
    );
    assert_eq!(failed, 0, "{statuses:?}");
    assert!(
        new.wait_exit(Duration::from_millis(10)).is_none(),
        "the new process runs"
    );
    // The new process serves after the old one is gone.
    let mut old = old;
    let old_exit = tokio::task::spawn_blocking(move || old.wait_exit(Duration::from_secs(15)))
        .await
        .unwrap();
    assert!(old_exit.is_some(), "the old process did not exit");
    wait_for_status(&url, 200, Duration::from_secs(2)).await;
    // The new process took state_dir over once the old one was gone.
    let lock = new.dir.path().join("state/gateway.lock");
    let holder = format!("faaso-gateway pid {} ", new.child.id());
    wait_until(
        "the new process to hold state_dir",
        Duration::from_secs(5),
        || async { std::fs::read_to_string(&lock).is_ok_and(|text| text.starts_with(&holder)) },
    )
    .await;
}

/// One WebSocket-style upgrade through the gateway and two echoed messages; `Err` says where
/// the tunnel broke.
async fn upgrade_once(addr: &str, funko: &str) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!(
        "GET /funko/{funko}/upgrade HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        stream
            .read_exact(&mut byte)
            .await
            .map_err(|e| format!("reading the 101: {e}"))?;
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for message in ["hello", "over the upgraded connection"] {
        stream
            .write_all(message.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut echoed = vec![0u8; message.len()];
        tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut echoed))
            .await
            .map_err(|_| "no echo within 5 s".to_string())?
            .map_err(|e| format!("echo of {message:?}: {e}"))?;
        assert_eq!(echoed, message.as_bytes());
    }
    Ok(())
}

/// `count` upgrades through the gateway, `parallel` at a time; returns why those that broke did.
async fn upgrades(addr: &str, funko: &str, count: usize, parallel: usize) -> Vec<String> {
    let tasks: Vec<_> = (0..parallel)
        .map(|_| {
            let (addr, funko) = (addr.to_string(), funko.to_string());
            tokio::spawn(async move {
                let mut broken = Vec::new();
                for _ in 0..count / parallel {
                    if let Err(reason) = upgrade_once(&addr, &funko).await {
                        broken.push(reason);
                    }
                }
                broken
            })
        })
        .collect();
    let mut broken = Vec::new();
    for task in tasks {
        broken.extend(task.await.unwrap());
    }
    broken
}

/// WebSocket upgrades pass through, every one of them: 1,000 upgrades to the fast test funko,
/// 8 at a time, each echoing data both ways, and 200 to an instance that sends its `101` before
/// it has even read the request. Pingora 0.9's own upgrade path tears an upgrade down right after
/// the `101` when that answer is read before the end of the request's empty body
/// (cloudflare/pingora#946; about half of the eager instance's upgrades). The gateway relays
/// upgrades itself (`gateway/src/tunnel.rs`), so none may break.
#[tokio::test]
async fn websocket_upgrades_never_break() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let fast = unique_name("ws");
    let eager = unique_name("wseager");
    start_instance(&docker, &cleanup, &fast, &[]).await;
    // The eager instance answers 101 to `GET /ping` too: it opts out of active checks.
    let image = faaso_tests::testfunko::image(&docker).await;
    let eager_instance =
        faaso::conventions::instance_name(&eager, &faaso::conventions::random_suffix());
    faaso_tests::docker::run_container(
        &docker,
        &cleanup,
        &eager_instance,
        &image,
        faaso::conventions::NETWORK,
        &["TESTFUNKO_EAGER_UPGRADE=1"],
        &[(faaso::conventions::HEALTHCHECK_LABEL, "off")],
    )
    .await;
    let gateway = GatewayProcess::start("").await;
    let addr = gateway.url.trim_start_matches("http://").to_string();
    wait_for_status(
        &format!("{}/funko/{fast}/ping", gateway.url),
        200,
        Duration::from_secs(10),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while upgrade_once(&addr, &eager).await.is_err() {
        assert!(Instant::now() < deadline, "{eager} is not routed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let broken_fast = upgrades(&addr, &fast, 1_000, 8).await;
    let broken_eager = upgrades(&addr, &eager, 200, 4).await;
    println!(
        "websocket upgrades: {} of 1000 broke (fast instance), {} of 200 (eager instance)",
        broken_fast.len(),
        broken_eager.len()
    );
    for (broken, of) in [(&broken_fast, &fast), (&broken_eager, &eager)] {
        assert!(
            broken.is_empty(),
            "{} upgrades to {of} broke, first: {:?}",
            broken.len(),
            &broken[..broken.len().min(5)]
        );
    }

    // An instance that does not switch protocols answers as for any request.
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET /funko/{fast}/ping HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nX-Request-Id: refused-1\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut chunk = [0u8; 1024];
    while !response.ends_with(b"\r\n\r\nOK") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("the refused upgrade is answered within 5 s")
            .unwrap();
        assert!(
            n > 0,
            "closed early: {}",
            String::from_utf8_lossy(&response)
        );
        response.extend_from_slice(&chunk[..n]);
    }
    let response = String::from_utf8_lossy(&response).to_lowercase();
    assert!(response.starts_with("http/1.1 200"), "{response}");
    assert!(response.contains("x-request-id: refused-1"), "{response}");
}

#[tokio::test]
async fn malformed_requests_get_400_saying_why() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("malformed");
    start_instance(&docker, &cleanup, &funko, &[]).await;
    let gateway = GatewayProcess::start("").await;
    wait_for_status(
        &format!("{}/funko/{funko}/ping", gateway.url),
        200,
        Duration::from_secs(10),
    )
    .await;
    let addr = gateway.url.trim_start_matches("http://").to_string();
    let exchange = |request: String| {
        let addr = addr.clone();
        async move {
            let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response))
                .await;
            String::from_utf8_lossy(&response).into_owned()
        }
    };
    let echo = format!("/funko/{funko}/echo");
    let cases = [
        // The parser's own refusal.
        (
            format!("GET {echo} HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n"),
            "HTTP/1.1 400",
            "",
        ),
        (
            format!("GET {echo} HTTP/1.1\r\nAccept: */*\r\n\r\n"),
            "HTTP/1.1 400",
            "an HTTP/1.1 request needs a Host header",
        ),
        (
            format!("TRACE {echo} HTTP/1.1\r\nHost: x\r\n\r\n"),
            "HTTP/1.1 405",
            "TRACE is not allowed",
        ),
        (
            format!(
                "GET /funko/{funko}/upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n\
                 Upgrade: websocket\r\nContent-Length: 2\r\n\r\nhi"
            ),
            "HTTP/1.1 400",
            "an upgrade request cannot carry a body",
        ),
        (
            format!(
                "POST {echo} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                 zz\r\nabcd\r\n0\r\n\r\n"
            ),
            "HTTP/1.1 400",
            "malformed chunked request body",
        ),
    ];
    for (request, status, reason) in cases {
        let response = exchange(request.clone()).await;
        assert!(response.starts_with(status), "{request:?}: {response}");
        assert!(response.contains(reason), "{request:?}: {response}");
    }
    // HTTP/1.0 needs no Host.
    let response = exchange(format!("GET {echo} HTTP/1.0\r\n\r\n")).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // Content-Length beside chunked: the chunks count (RFC 9112 §6.3), the instance sees no
    // Content-Length, and the connection closes after the answer, so that what follows the
    // chunks is never answered as a request.
    let response = exchange(format!(
        "POST {echo} HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\
         Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n\
         GET {echo}?smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    ))
    .await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(response.matches("HTTP/1.1 ").count(), 1, "{response}");
    let body = &response[response.find("\r\n\r\n").unwrap() + 4..];
    let echoed: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(echoed["body"], "hi");
    assert!(
        !body.to_lowercase().contains("content-length"),
        "the instance was sent Content-Length: {body}"
    );
}
