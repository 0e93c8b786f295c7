//! The gateway process's life: SIGTERM drains requests in flight, `-u` hands the listeners to a
//! new process without refusing a connection, and upgraded connections pass through.

use std::time::{Duration, Instant};

use faaso_tests::docker::{Cleanup, start_instance};
use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::{client, wait_for_status};
use faaso_tests::{require_docker, unique_name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn routed_gateway(extra: &str) -> (Cleanup, String, GatewayProcess) {
    let docker = faaso::docker::connect().await.unwrap();
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
    tokio::time::sleep(Duration::from_millis(300)).await;
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
    let load = tokio::spawn({
        let url = url.clone();
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
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            statuses
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut new = old.upgrade();
    // Give the new process time to wait on the upgrade socket, then ask the old one to hand over.
    tokio::time::sleep(Duration::from_millis(500)).await;
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

/// WebSocket upgrades pass through. Pingora 0.9 has a known race (cloudflare/pingora#946,
/// open): when the instance's `101` is read before the upgrade request's empty body, the tunnel
/// is torn down at once, so a few percent of upgrades to a very fast instance fail and the
/// client must reconnect. The test allows for that, prints how often it happened, and fails
/// if most attempts break.
#[tokio::test]
async fn websocket_upgrades_pass_through() {
    let _docker = require_docker!();
    let (_cleanup, funko, gateway) = routed_gateway("").await;
    let addr = gateway.url.trim_start_matches("http://");
    let mut broken = Vec::new();
    const ATTEMPTS: usize = 20;
    for _ in 0..ATTEMPTS {
        if let Err(reason) = upgrade_once(addr, &funko).await {
            broken.push(reason);
        }
    }
    println!(
        "websocket upgrades: {} of {ATTEMPTS} torn down by the upstream race: {broken:?}",
        broken.len()
    );
    assert!(
        broken.len() <= ATTEMPTS / 4,
        "{} of {ATTEMPTS} upgrades broke: {broken:?}",
        broken.len()
    );
}

#[tokio::test]
async fn malformed_requests_get_400() {
    let _docker = require_docker!();
    let gateway = GatewayProcess::start("").await;
    let addr = gateway.url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(b"GET /funko/x/ HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n")
        .await
        .unwrap();
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
}
