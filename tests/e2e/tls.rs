//! HTTPS on the gateway: funkos over HTTP/1.1 and HTTP/2 by ALPN, certificates by SNI, the
//! plain listener's redirect, a certificate replaced on disk and reloaded on `SIGHUP` while a
//! connection stays open, the web UI's `Secure` cookie, and certificates from a real ACME
//! server (pebble), renewed.

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use faaso_tests::docker::{Cleanup, start_instance};
use faaso_tests::gateway::{GatewayProcess, free_port};
use faaso_tests::http::{client, echoed_headers, session_cookie, wait_for_status, wait_until};
use faaso_tests::tls::{TestCa, https_client, peer_certificate, write_pair};
use faaso_tests::{require_docker, unique_name};

const PASSWORD: &str = "tls horse";

/// `tls_certs` YAML for the given (cert, key) files.
fn tls_certs(pairs: &[(std::path::PathBuf, std::path::PathBuf)]) -> String {
    let mut yaml = String::from("tls_certs:\n");
    for (cert, key) in pairs {
        yaml.push_str(&format!(
            "  - cert: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ));
    }
    yaml
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test]
async fn funkos_admin_and_ui_over_https_with_http2_sni_and_redirects() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("tls");
    start_instance(&docker, &cleanup, &funko, &[]).await;

    let ca = TestCa::new("FaaSO TLS test CA");
    let certs = tempfile::tempdir().unwrap();
    let one = ca.issue(&["one.faaso.test"]);
    let two = ca.issue(&["*.two.faaso.test"]);
    let pairs = [
        write_pair(certs.path(), "one", &one),
        write_pair(certs.path(), "two", &two),
    ];
    let tls_port = free_port();
    let gateway = GatewayProcess::start(&format!(
        "password: {PASSWORD}\ntls_listen: 127.0.0.1:{tls_port}\nredirect_https: true\n\
         hsts_max_age: 1d\n{}",
        tls_certs(&pairs)
    ))
    .await;
    let tls = loopback(tls_port);
    let url = |host: &str, path: &str| format!("https://{host}:{tls_port}{path}");

    // HTTP/1.1 and HTTP/2, each negotiated by ALPN, both reach the funko.
    let h1 = https_client(&ca.cert_pem(), "one.faaso.test", tls, true);
    let h2 = https_client(&ca.cert_pem(), "one.faaso.test", tls, false);
    let echo_url = url("one.faaso.test", &format!("/funko/{funko}/echo/x?y=1"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let response = h1.get(&echo_url).send().await.unwrap();
        if response.status().as_u16() == 200 {
            break response;
        }
        assert!(Instant::now() < deadline, "{}", response.status());
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(first.version(), reqwest::Version::HTTP_11);
    assert_eq!(peer_certificate(&first), one.cert_der);
    assert_eq!(
        first.headers()["strict-transport-security"],
        "max-age=86400"
    );
    let echo: serde_json::Value = first.json().await.unwrap();
    assert_eq!(echo["path"], "/echo/x");
    assert_eq!(echoed_headers(&echo)["x-forwarded-proto"], "https");

    for method in [reqwest::Method::GET, reqwest::Method::POST] {
        let response = h2
            .request(method.clone(), &echo_url)
            .body(if method == reqwest::Method::POST {
                "over h2"
            } else {
                ""
            })
            .send()
            .await
            .unwrap();
        assert_eq!(response.version(), reqwest::Version::HTTP_2, "{method}");
        assert_eq!(response.status().as_u16(), 200, "{method}");
        assert_eq!(peer_certificate(&response), one.cert_der);
        assert!(response.headers().contains_key("x-request-id"));
        let echo: serde_json::Value = response.json().await.unwrap();
        let headers = echoed_headers(&echo);
        assert_eq!(headers["x-forwarded-proto"], "https", "{method}");
        assert_eq!(
            headers["host"],
            format!("one.faaso.test:{tls_port}"),
            "{method}: HTTP/2's authority becomes the instance's Host"
        );
        if method == reqwest::Method::POST {
            assert_eq!(echo["body"], "over h2");
        }
    }

    // A chunked answer the instance cuts short ends the HTTP/2 stream with a reset, never a
    // clean end of stream: the client cannot take it for whole.
    let cut = h2
        .get(url(
            "one.faaso.test",
            &format!("/funko/{funko}/cut-chunked/3"),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(cut.version(), reqwest::Version::HTTP_2);
    let body = cut.bytes().await;
    assert!(
        body.is_err(),
        "a cut answer ended cleanly over HTTP/2: {body:?}"
    );

    // Streaming over HTTP/2: the chunks arrive one by one, 50 ms apart, not all at the end.
    let mut stream = h2
        .get(url("one.faaso.test", &format!("/funko/{funko}/stream/4")))
        .send()
        .await
        .unwrap();
    assert_eq!(stream.version(), reqwest::Version::HTTP_2);
    let started = Instant::now();
    let mut arrivals = Vec::new();
    while let Some(chunk) = stream.chunk().await.unwrap() {
        if !chunk.is_empty() {
            arrivals.push(started.elapsed());
        }
    }
    assert!(arrivals.len() >= 2, "{arrivals:?}");
    assert!(
        arrivals[arrivals.len() - 1] - arrivals[0] >= Duration::from_millis(100),
        "chunks were buffered: {arrivals:?}"
    );

    // A WebSocket-style upgrade over HTTPS (HTTP/1.1): 101, then bytes both ways.
    let upgrade = h1
        .get(url("one.faaso.test", &format!("/funko/{funko}/upgrade")))
        .header("Connection", "Upgrade")
        .header("Upgrade", "websocket")
        .send()
        .await
        .unwrap();
    assert_eq!(upgrade.status().as_u16(), 101);
    let mut tunnel = upgrade.upgrade().await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tunnel.write_all(b"through tls").await.unwrap();
    let mut echoed = [0u8; 11];
    tokio::time::timeout(Duration::from_secs(5), tunnel.read_exact(&mut echoed))
        .await
        .expect("the echo within 5 s")
        .unwrap();
    assert_eq!(&echoed, b"through tls");
    drop(tunnel);

    // Another name gets its own certificate (a wildcard here); a name no certificate has gets
    // the first one, which then fails the client's check.
    let other = https_client(&ca.cert_pem(), "api.two.faaso.test", tls, false);
    let response = other
        .get(url("api.two.faaso.test", "/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(peer_certificate(&response), two.cert_der);
    let stranger = https_client(&ca.cert_pem(), "nobody.faaso.test", tls, false);
    let refused = stranger
        .get(url("nobody.faaso.test", "/healthz"))
        .send()
        .await;
    assert!(
        refused.is_err(),
        "a certificate for another name is refused"
    );

    // The plain listener: health stays plain, the rest is sent to HTTPS with a 308.
    let plain = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let health = plain
        .get(format!("{}/healthz", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let moved = plain
        .post(format!("{}/funko/{funko}/echo?a=b", gateway.url))
        .header("Host", "one.faaso.test:8080")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status().as_u16(), 308);
    assert_eq!(
        moved.headers()["location"],
        format!("https://one.faaso.test:{tls_port}/funko/{funko}/echo?a=b")
    );
    assert!(!moved.headers().contains_key("strict-transport-security"));

    // The admin API over HTTPS (the CLI's path), and the UI's session cookie is `Secure`.
    let api = h2
        .get(url("one.faaso.test", "/admin/api/funkos"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status().as_u16(), 200, "{:?}", api.text().await);
    let login = url("one.faaso.test", "/admin/login");
    let page = h1.get(&login).send().await.unwrap();
    assert_eq!(page.headers()["strict-transport-security"], "max-age=86400");
    let cookie = page.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("Secure"), "{cookie}");
    let html = page.text().await.unwrap();
    let marker = r#"name="token" value=""#;
    let start = html.find(marker).unwrap() + marker.len();
    let token = html[start..].split('"').next().unwrap().to_string();
    let done = h1
        .post(&login)
        .header("Cookie", cookie.split(';').next().unwrap())
        .form(&[("token", token.as_str()), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(done.status().as_u16(), 303);
    let session = session_cookie(&done);
    assert!(
        session.contains("; Secure") && session.contains("HttpOnly"),
        "{session}"
    );
}

/// Waits until a new connection to `host` is served `expected` (DER).
async fn wait_for_certificate(ca_pem: &str, host: &str, addr: SocketAddr, expected: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = String::new();
    while Instant::now() < deadline {
        // A new client: a new connection, a new handshake.
        let fresh = https_client(ca_pem, host, addr, true);
        match fresh
            .get(format!("https://{host}:{}/healthz", addr.port()))
            .send()
            .await
        {
            Ok(response) if peer_certificate(&response) == expected => return,
            Ok(_) => last = "the old certificate".to_string(),
            Err(err) => last = format!("{err:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{host} was not served the new certificate; last: {last}");
}

#[tokio::test]
async fn a_certificate_replaced_on_disk_is_served_after_sighup_and_open_connections_go_on() {
    let _docker = require_docker!();
    let ca = TestCa::new("FaaSO reload test CA");
    let certs = tempfile::tempdir().unwrap();
    let old = ca.issue(&["reload.faaso.test"]);
    let pair = write_pair(certs.path(), "reload", &old);
    let tls_port = free_port();
    let gateway = GatewayProcess::start(&format!(
        "tls_listen: 127.0.0.1:{tls_port}\n{}",
        tls_certs(std::slice::from_ref(&pair))
    ))
    .await;
    let tls = loopback(tls_port);
    let healthz = format!("https://reload.faaso.test:{tls_port}/healthz");
    let open = https_client(&ca.cert_pem(), "reload.faaso.test", tls, true);
    let response = open.get(&healthz).send().await.unwrap();
    assert_eq!(peer_certificate(&response), old.cert_der);
    response.bytes().await.unwrap();

    // A bad replacement is refused whole: the certificate in use stays, and the log names the
    // file.
    std::fs::write(&pair.1, "not a key").unwrap();
    gateway.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gateway.log().contains("TLS certificates not reloaded") {
        assert!(Instant::now() < deadline, "{}", gateway.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        gateway.log().contains(&pair.1.display().to_string()),
        "{}",
        gateway.log()
    );
    let still = https_client(&ca.cert_pem(), "reload.faaso.test", tls, true);
    let response = still.get(&healthz).send().await.unwrap();
    assert_eq!(peer_certificate(&response), old.cert_der);

    // The real replacement, then SIGHUP: new connections get it.
    let new = ca.issue(&["reload.faaso.test"]);
    write_pair(certs.path(), "reload", &new);
    gateway.signal("HUP");
    wait_for_certificate(&ca.cert_pem(), "reload.faaso.test", tls, &new.cert_der).await;
    // The log line may land a moment after the new certificate is served (the log is
    // written by its own thread).
    wait_until("the reload's log line", Duration::from_secs(5), || async {
        gateway
            .log()
            .lines()
            .any(|l| l.contains("TLS certificates reloaded") && l.contains("SIGHUP"))
    })
    .await;
    // The connection opened before the reload still answers, with the certificate it was made
    // with: nothing was dropped.
    let response = open.get(&healthz).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(peer_certificate(&response), old.cert_der);
    // The gateway is still the same process.
    assert!(gateway.log().matches("faaso-gateway starting").count() == 1);
    let metrics = gateway.metrics().await;
    assert!(
        metrics.contains(
            "faaso_tls_certificate_expiry_timestamp_seconds{name=\"reload.faaso.test\",source=\"file\"}"
        ),
        "{metrics}"
    );
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn acme_obtains_a_certificate_from_pebble_serves_it_and_renews_it() {
    let _docker = require_docker!();
    if !faaso_tests::pebble::available() {
        assert!(
            !faaso_tests::docker::is_ci(),
            "pebble is required under CI=true (apt-get install pebble)"
        );
        faaso_tests::skip::skip(module_path!(), "pebble is not installed");
        return;
    }
    let port = free_port();
    // Certificates that live 30 s, renewed 20 s before they expire... or a third of their
    // lifetime (10 s), whichever is less: the renewal comes about 20 s after the first.
    let pebble = faaso_tests::pebble::Pebble::start(port, 30).await;
    let tls_port = free_port();
    let host = "acme.faaso.test";
    let gateway = GatewayProcess::start(&format!(
        "listen: 127.0.0.1:{port}\ntls_listen: 127.0.0.1:{tls_port}\n\
         acme:\n  domains: [{host}]\n  directory: {}\n  ca_cert: {}\n  email: ops@faaso.test\n  \
         renew_before: 20s\n",
        pebble.directory,
        pebble.ca_file.display()
    ))
    .await;
    let root = pebble.issuing_root().await;
    let tls = loopback(tls_port);
    let healthz = format!("https://{host}:{tls_port}/healthz");

    // The first certificate: the client trusts pebble's issuing root only.
    let deadline = Instant::now() + Duration::from_secs(60);
    let first = loop {
        let fresh = https_client(&root, host, tls, false);
        if let Ok(response) = fresh.get(&healthz).send().await {
            assert_eq!(response.status().as_u16(), 200);
            break peer_certificate(&response);
        }
        assert!(
            Instant::now() < deadline,
            "no certificate from ACME; gateway log:\n{}\npebble log:\n{}",
            gateway.log(),
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let acme_dir = gateway.dir.path().join("state").join("acme");
    for file in [
        "account.json",
        &format!("{host}.crt"),
        &format!("{host}.key"),
    ] {
        assert_eq!(mode(&acme_dir.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&acme_dir), 0o700);
    let stored = std::fs::read_to_string(acme_dir.join(format!("{host}.crt"))).unwrap();
    assert!(stored.contains("BEGIN CERTIFICATE"));

    // The renewal, served without a restart.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let fresh = https_client(&root, host, tls, false);
        if let Ok(response) = fresh.get(&healthz).send().await
            && peer_certificate(&response) != first
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the certificate was not renewed; gateway log:\n{}",
            gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let log = gateway.log();
    assert!(
        log.matches("ACME certificate obtained").count() >= 2,
        "{log}"
    );
    assert_eq!(log.matches("ACME account created").count(), 1, "{log}");
    let metrics = gateway.metrics().await;
    let expiry = metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "faaso_tls_certificate_expiry_timestamp_seconds{{name=\"{host}\",source=\"acme\"}}"
            ))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no expiry series for {host}: {metrics}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        expiry > now && expiry <= now + 31,
        "expires at {expiry}, now {now}"
    );
    // The plain listener answered the challenges and still serves.
    wait_for_status(
        &format!("{}/healthz", gateway.url),
        200,
        Duration::from_secs(5),
    )
    .await;
    let unknown = client()
        .get(format!(
            "{}/.well-known/acme-challenge/not-a-token",
            gateway.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);

    // A gateway the ACME server cannot validate (pebble fetches the token from the first
    // gateway's port, which does not know it): the order fails with the server's reason in one
    // line, it is retried later, and the gateway goes on serving.
    let stranded = GatewayProcess::start(&format!(
        "tls_listen: 127.0.0.1:{}\nacme:\n  domains: [stranded.faaso.test]\n  directory: {}\n  \
         ca_cert: {}\n",
        free_port(),
        pebble.directory,
        pebble.ca_file.display()
    ))
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stranded.log().contains("retry_in") {
        assert!(Instant::now() < deadline, "{}", stranded.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = stranded.log();
    let line = log.lines().find(|l| l.contains("retry_in")).unwrap();
    assert!(
        line.contains("ERROR")
            && line.contains("validating stranded.faaso.test")
            && line.contains("returned 404"),
        "{line}"
    );
    assert!(line.contains("retry_in=60s"), "{line}");
    wait_for_status(
        &format!("{}/healthz", stranded.url),
        200,
        Duration::from_secs(5),
    )
    .await;
    assert!(
        !stranded
            .dir
            .path()
            .join("state/acme/stranded.faaso.test.crt")
            .exists()
    );
}
