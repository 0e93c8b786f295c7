//! The gateway at the edge, tried as hostile and careless clients would: idle keep-alive
//! connections, request heads that never finish, readers that take nothing, many connections
//! from one address, a port that someone else holds, pipelined requests and bodies that carry
//! requests; and an idle gateway that must sleep.

use std::sync::Arc;
use std::time::{Duration, Instant};

use faaso_tests::docker::{Cleanup, start_instance};
use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::{client, wait_until};
use faaso_tests::prom;
use faaso_tests::raw::RawConnection;
use faaso_tests::{require_docker, unique_name};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn addr_of(gateway: &GatewayProcess) -> String {
    gateway.url.trim_start_matches("http://").to_string()
}

/// `faaso_client_connections{state}` and `faaso_connections_refused_total{reason}`.
async fn connection_metrics(gateway: &GatewayProcess) -> (f64, f64, f64, f64) {
    let text = gateway.metrics().await;
    let get = |name, labels: &[(&str, &str)]| prom::value(&text, name, labels).unwrap_or(0.0);
    (
        get("faaso_client_connections", &[("state", "active")]),
        get("faaso_client_connections", &[("state", "idle")]),
        get(
            "faaso_connections_refused_total",
            &[("reason", "max_connections_per_ip")],
        ),
        get(
            "faaso_connections_refused_total",
            &[("reason", "max_connections")],
        ),
    )
}

#[tokio::test]
async fn an_idle_keepalive_connection_is_closed_and_a_busy_one_is_not() {
    let gateway = GatewayProcess::start("keepalive_timeout: 1s\n").await;
    let addr = addr_of(&gateway);
    let mut idle = RawConnection::open(&addr).await;
    idle.send("GET", "/healthz", &[]).await;
    assert_eq!(idle.response(false).await.unwrap().status, 200);
    let silent_since = Instant::now();
    let said = idle.closed_within(Duration::from_secs(5)).await;
    let took = silent_since.elapsed();
    assert_eq!(said.as_deref(), Some(&b""[..]), "closed without a word");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "closed after {took:?}"
    );

    // A connection that sends a request every 400 ms stays open for as long as it does.
    let mut busy = RawConnection::open(&addr).await;
    for _ in 0..6 {
        busy.send("GET", "/healthz", &[]).await;
        assert_eq!(busy.response(false).await.unwrap().status, 200);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
}

#[tokio::test]
async fn a_request_head_must_arrive_whole_within_header_timeout() {
    let gateway = GatewayProcess::start("header_timeout: 1s\n").await;
    let addr = addr_of(&gateway);

    // Half a head: 408, then the connection is closed.
    let mut half = RawConnection::open(&addr).await;
    half.write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let said = half
        .closed_within(Duration::from_secs(5))
        .await
        .expect("the connection is closed");
    let took = started.elapsed();
    let said = String::from_utf8_lossy(&said);
    assert!(said.starts_with("HTTP/1.1 408 "), "{said}");
    assert!(said.contains("header_timeout"), "{said}");
    assert!(took < Duration::from_millis(2500), "after {took:?}");

    // One byte every 100 ms: the deadline is for the whole head, not for each read.
    let stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let drip = tokio::spawn(async move {
        let head = format!("GET /healthz HTTP/1.1\r\nX-Slow: {}", "a".repeat(100));
        for byte in head.bytes() {
            if write.write_all(&[byte]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let started = Instant::now();
    let mut said = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(5), read.read_to_end(&mut said)).await;
    let took = started.elapsed();
    drip.abort();
    assert!(end.is_ok(), "still open after 5 s of dripping");
    assert!(
        said.starts_with(b"HTTP/1.1 408 "),
        "{:?}",
        String::from_utf8_lossy(&said)
    );
    assert!(took < Duration::from_millis(2500), "after {took:?}");

    // A new connection that says nothing is closed without an answer.
    let mut silent = RawConnection::open(&addr).await;
    let said = silent.closed_within(Duration::from_secs(5)).await;
    assert_eq!(said.as_deref(), Some(&b""[..]));

    // On a kept-alive connection the clock starts at the next request's first byte: a pause
    // longer than header_timeout between requests is fine.
    let mut polite = RawConnection::open(&addr).await;
    polite.send("GET", "/healthz", &[]).await;
    assert_eq!(polite.response(false).await.unwrap().status, 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    polite.send("GET", "/healthz", &[]).await;
    assert_eq!(polite.response(false).await.unwrap().status, 200);
}

#[tokio::test]
async fn one_address_is_capped_and_another_is_served_at_once() {
    let gateway = GatewayProcess::start("max_connections_per_ip: 4\nheader_timeout: 30s\n").await;
    let addr = addr_of(&gateway);
    // The start's health checks may still hold a connection from 127.0.0.1 for a moment.
    wait_until("no client connection", Duration::from_secs(5), || async {
        let (active, idle, _, _) = connection_metrics(&gateway).await;
        active + idle == 0.0
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(RawConnection::open(&addr).await);
    }
    wait_until("four idle connections", Duration::from_secs(5), || async {
        connection_metrics(&gateway).await.1 >= 4.0
    })
    .await;

    // The fifth from 127.0.0.1 is closed at accept, without an answer.
    let mut refused = RawConnection::open(&addr).await;
    let _ = refused
        .write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    let said = refused.closed_within(Duration::from_secs(3)).await;
    assert_eq!(said.as_deref(), Some(&b""[..]), "refused at accept");

    // 127.0.0.2 is another client: served at once.
    let started = Instant::now();
    let mut other = RawConnection::open_from("127.0.0.2", &addr).await.unwrap();
    other.send("GET", "/healthz", &[]).await;
    assert_eq!(other.response(false).await.unwrap().status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let (_, idle, per_ip, total) = connection_metrics(&gateway).await;
    assert!(idle >= 4.0, "idle {idle}");
    assert_eq!((per_ip, total), (1.0, 0.0));

    // One of the four leaves: 127.0.0.1 gets in again.
    drop(held.pop());
    wait_until("a slot for 127.0.0.1", Duration::from_secs(5), || async {
        let mut again = RawConnection::open(&addr).await;
        again.send("GET", "/healthz", &[]).await;
        again.response(false).await.is_ok_and(|r| r.status == 200)
    })
    .await;
}

#[tokio::test]
async fn the_total_is_capped_at_accept() {
    let gateway = GatewayProcess::start("max_connections: 3\nheader_timeout: 30s\n").await;
    let addr = addr_of(&gateway);
    // The start's health checks may still hold a connection for a moment.
    wait_until("no client connection", Duration::from_secs(5), || async {
        let (active, idle, _, _) = connection_metrics(&gateway).await;
        active + idle == 0.0
    })
    .await;
    let held: Vec<_> = futures_util::future::join_all(
        (0..3).map(|i| RawConnection::open_from(["127.0.0.1", "127.0.0.3", "127.0.0.4"][i], &addr)),
    )
    .await;
    wait_until("three idle connections", Duration::from_secs(5), || async {
        connection_metrics(&gateway).await.1 >= 3.0
    })
    .await;
    let mut refused = RawConnection::open_from("127.0.0.5", &addr).await.unwrap();
    let _ = refused
        .write(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
        .await;
    assert_eq!(
        refused
            .closed_within(Duration::from_secs(3))
            .await
            .as_deref(),
        Some(&b""[..])
    );
    assert_eq!(connection_metrics(&gateway).await.3, 1.0);
    drop(held);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_takes_nothing_is_dropped_and_frees_its_slot() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("send_timeout: 1s\n").await;
    let name = unique_name("slowread");
    gateway
        .serve_variant(
            &docker,
            &cleanup,
            &name,
            "LABEL faaso.limits.max_inflight=\"1\" faaso.limits.queue_timeout=\"30s\"",
        )
        .await;
    let addr = addr_of(&gateway);

    // 64 MiB asked for, nothing read, on a small receive buffer.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stalled = socket.connect(addr.parse().unwrap()).await.unwrap();
    stalled
        .write_all(
            format!("GET /funko/{name}/bytes/67108864 HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let in_flight = || async {
        let text = gateway.metrics().await;
        prom::value(&text, "faaso_http_requests_in_flight", &[("funko", &name)]).unwrap_or(0.0)
    };
    wait_until(
        "the big answer to be on its way",
        Duration::from_secs(10),
        || async { in_flight().await >= 1.0 },
    )
    .await;

    // The only slot is taken: this waits until the stalled reader is dropped.
    let started = Instant::now();
    let answer = client()
        .get(format!("{}/funko/{name}/say/hi", gateway.url))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(answer.status(), 200, "waited {waited:?}");
    assert!(
        waited < Duration::from_secs(8),
        "waited {waited:?}: the slot was not freed"
    );
    wait_until("nothing in flight", Duration::from_secs(5), || async {
        in_flight().await == 0.0
    })
    .await;
    // The stalled client's connection was closed: after what the buffers held, it ends.
    let mut sink = vec![0u8; 1 << 20];
    let mut read = 0usize;
    let end = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match stalled.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
        }
    })
    .await;
    assert!(
        end.is_ok(),
        "the stalled connection is still open after {read} bytes"
    );
    assert!(read < 64 << 20, "the whole answer was sent ({read} bytes)");
}

#[tokio::test]
async fn a_taken_port_ends_the_start_with_one_line() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let me = std::process::id();
    for key in ["listen", "metrics_listen"] {
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let refused = GatewayProcess::start_refused(
            dir,
            &format!("{key}: 127.0.0.1:{port}\n"),
            Duration::from_secs(5),
        );
        assert_eq!(refused.code, Some(Some(1)), "{refused:?}");
        assert!(refused.took < Duration::from_secs(2), "{refused:?}");
        let errors: Vec<&str> = refused
            .stderr
            .lines()
            .filter(|line| line.starts_with("faaso-gateway: "))
            .collect();
        assert_eq!(errors.len(), 1, "{}", refused.stderr);
        assert!(
            errors[0].contains(&format!("{key} 127.0.0.1:{port}: address in use by ")),
            "{}",
            errors[0]
        );
        assert!(errors[0].contains(&format!("(pid {me})")), "{}", errors[0]);
        for noise in ["panicked", "WARN", "backtrace"] {
            assert!(!refused.stderr.contains(noise), "{}", refused.stderr);
        }
    }
}

#[tokio::test]
async fn a_second_gateway_is_refused_naming_the_first() {
    let first = GatewayProcess::start("").await;
    let port = addr_of(&first).rsplit(':').next().unwrap().to_string();
    let pid = first.child.id();

    let same_port = GatewayProcess::start_refused(
        Arc::new(tempfile::tempdir().unwrap()),
        &format!("listen: 127.0.0.1:{port}\n"),
        Duration::from_secs(5),
    );
    assert_eq!(same_port.code, Some(Some(1)), "{same_port:?}");
    assert!(
        same_port.stderr.contains(&format!(
            "faaso-gateway: cannot listen on listen 127.0.0.1:{port}: address in use by faaso-gateway (pid {pid})"
        )),
        "{}",
        same_port.stderr
    );

    let state_dir = first.dir.path().join("state");
    let same_state = GatewayProcess::start_refused(
        Arc::new(tempfile::tempdir().unwrap()),
        &format!("state_dir: {}\n", state_dir.display()),
        Duration::from_secs(5),
    );
    assert_eq!(same_state.code, Some(Some(1)), "{same_state:?}");
    assert!(
        same_state.stderr.contains(&format!(
            "faaso-gateway: state_dir {} is in use by another faaso-gateway (faaso-gateway pid {pid} listening on 127.0.0.1:{port})",
            state_dir.display()
        )),
        "{}",
        same_state.stderr
    );
    // The first one was not disturbed.
    let health = client()
        .get(format!("{}/healthz", first.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn a_tls_handshake_that_never_comes_is_cut_at_header_timeout() {
    let ca = faaso_tests::tls::TestCa::new("FaaSO edge test CA");
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) =
        faaso_tests::tls::write_pair(certs.path(), "edge", &ca.issue(&["edge.faaso.test"]));
    let tls_port = faaso_tests::gateway::free_port();
    let gateway = GatewayProcess::start(&format!(
        "header_timeout: 1s\ntls_listen: 127.0.0.1:{tls_port}\ntls_certs:\n  - cert: {}\n    key: {}\n",
        cert.display(),
        key.display()
    ))
    .await;
    // Connected, and then nothing: no ClientHello.
    let mut silent = RawConnection::open(&format!("127.0.0.1:{tls_port}")).await;
    let started = Instant::now();
    let said = silent.closed_within(Duration::from_secs(5)).await;
    let took = started.elapsed();
    assert_eq!(said.as_deref(), Some(&b""[..]), "closed without a word");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(2500),
        "closed after {took:?}"
    );
    // Half a ClientHello (a TLS record header announcing more than comes): the same.
    let mut half = RawConnection::open(&format!("127.0.0.1:{tls_port}")).await;
    half.write(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
        .await
        .unwrap();
    let started = Instant::now();
    assert!(half.closed_within(Duration::from_secs(5)).await.is_some());
    assert!(started.elapsed() < Duration::from_millis(2500));
    drop(gateway);
}

/// A gateway with nothing to do sleeps: its threads wake fewer than 100 times a second
/// altogether (timers of its background services, the health checks of one instance), where a
/// loop that spins wakes them a thousand times.
#[tokio::test]
async fn an_idle_gateway_sleeps() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("").await;
    let funko = unique_name("idle");
    gateway
        .serve_variant(&docker, &cleanup, &funko, "ENV TESTFUNKO_VERSION=1")
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = gateway.context_switches();
    let window = Duration::from_secs(3);
    tokio::time::sleep(window).await;
    let per_second = (gateway.context_switches() - before) as f64 / window.as_secs_f64();
    eprintln!("idle gateway: {per_second:.0} wake-ups a second");
    assert!(
        per_second < 100.0,
        "an idle gateway's threads woke {per_second:.0} times a second"
    );
}

/// Requests pipelined on one connection are each answered, in order, whoever answers them (a
/// funko, the gateway for a stopped or unknown funko); bytes inside a body are never taken
/// for a request, and a request after a body closes the connection rather than be guessed.
#[tokio::test]
async fn pipelined_requests_are_answered_in_order_and_a_body_is_never_a_request() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let live = unique_name("pipe");
    start_instance(&docker, &cleanup, &live, &[]).await;
    let stopped = unique_name("pipestop");
    let instance = start_instance(&docker, &cleanup, &stopped, &[]).await;
    docker.stop_container(&instance, None).await.unwrap();
    let gateway = GatewayProcess::start("").await;
    let addr = addr_of(&gateway);
    let url = format!("{}/funko/{live}/ping", gateway.url);
    faaso_tests::http::wait_for_status(&url, 200, Duration::from_secs(10)).await;
    let get = |target: &str| format!("GET {target} HTTP/1.1\r\nHost: test\r\n\r\n");

    // Five requests in one write, then one more on the same connection.
    let mut conn = RawConnection::open(&addr).await;
    let batch = [
        get(&format!("/funko/{live}/echo?n=1")),
        format!("HEAD /funko/{live}/echo?n=2 HTTP/1.1\r\nHost: test\r\n\r\n"),
        get(&format!("/funko/{stopped}/echo?n=3")),
        get(&format!("/funko/{}/echo?n=4", unique_name("none"))),
        get(&format!("/funko/{live}/echo?n=5")),
    ]
    .concat();
    conn.write(batch.as_bytes()).await.unwrap();
    let mut statuses = Vec::new();
    for head_only in [false, true, false, false, false] {
        let response = conn.response(head_only).await.expect("an answer");
        statuses.push(response.status);
        if response.status == 200 && !head_only {
            let echo: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            statuses.push(echo["query"].as_str().unwrap()[2..].parse().unwrap());
        }
    }
    assert_eq!(statuses, [200, 1, 200, 503, 404, 200, 5]);
    // A head split across writes, after a whole one in the same write.
    let next = get(&format!("/funko/{live}/echo?n=7"));
    let (first, second) = next.split_at(20);
    conn.write(format!("{}{first}", get(&format!("/funko/{live}/echo?n=6"))).as_bytes())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    conn.write(second.as_bytes()).await.unwrap();
    for n in ["n=6", "n=7"] {
        let response = conn.response(false).await.expect("an answer");
        let echo: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
        assert_eq!(echo["query"], n);
    }

    // A body that holds a request: the funko gets it as a body, and nothing else is answered.
    let inner = get(&format!("/funko/{live}/echo?smuggled=1"));
    for (framing, body) in [
        (format!("Content-Length: {}", inner.len()), inner.clone()),
        (
            "Transfer-Encoding: chunked".to_string(),
            format!("{:x}\r\n{inner}\r\n0\r\n\r\n", inner.len()),
        ),
    ] {
        for target in [
            format!("/funko/{live}/echo"),
            format!("/funko/{stopped}/echo"),
        ] {
            let mut conn = RawConnection::open(&addr).await;
            let request =
                format!("POST {target} HTTP/1.1\r\nHost: test\r\n{framing}\r\n\r\n{body}");
            conn.write(request.as_bytes()).await.unwrap();
            let response = conn.response(false).await.expect("an answer");
            if target.contains(&live) {
                assert_eq!(response.status, 200, "{framing} to {target}");
                let echo: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
                assert_eq!(echo["body"], inner.as_str(), "{framing}");
            } else {
                assert_eq!(response.status, 503, "{framing} to {target}");
            }
            // Closed, or open with nothing more said: the next answer is the next request's.
            if let Some(rest) = conn.closed_within(Duration::from_secs(1)).await {
                assert!(
                    rest.is_empty(),
                    "after {framing} to {target}: more was answered"
                );
                continue;
            }
            conn.write(get(&format!("/funko/{live}/echo?n=8")).as_bytes())
                .await
                .unwrap();
            let response = conn.response(false).await.expect("an answer");
            let echo: serde_json::Value = serde_json::from_slice(&response.body).unwrap();
            assert_eq!(echo["query"], "n=8", "after {framing} to {target}");
        }
    }
}
