//! Custom domains: a funko's `domains:` route by `Host` with the whole path; a domain claimed
//! by two funkos stays with the first (the second's claim is refused, logged and shown by
//! `faaso status`); with ACME on, the gateway gets the domain's certificate from pebble.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use faaso_tests::cli::Faaso;
use faaso_tests::docker::Cleanup;
use faaso_tests::gateway::{GatewayProcess, free_port};
use faaso_tests::http::{client, echoed_headers};
use faaso_tests::tls::{https_client, peer_certificate};
use faaso_tests::{require_docker, unique_name};

/// A host name of its own for each test funko (a funko name may hold `_`, a host name not).
fn domain_of(funko: &str) -> String {
    format!("{}.example.test", funko.replace('_', "-"))
}

/// GET `path` on the gateway with `Host: host`; the status and the echoed JSON (if any).
async fn get_by_host(gateway: &GatewayProcess, host: &str, path: &str) -> (u16, serde_json::Value) {
    let response = client()
        .get(format!("{}{path}", gateway.url))
        .header("Host", host)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

#[tokio::test]
async fn a_domain_routes_by_host_and_a_second_claim_is_refused() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("").await;
    let first = unique_name("owner");
    let domain = domain_of(&first);
    gateway
        .serve_variant(
            &docker,
            &cleanup,
            &first,
            &format!("LABEL faaso.domains=\"{domain},www.{domain}\""),
        )
        .await;
    // The whole path and query, whatever the case of the host or its port; no prefix header.
    let host = format!("{}:8080", domain.to_uppercase());
    let (status, echo) = get_by_host(&gateway, &host, "/echo/a/b?x=1").await;
    assert_eq!(status, 200, "{echo}");
    assert_eq!(echo["path"], "/echo/a/b");
    assert_eq!(echo["query"], "x=1");
    let headers = echoed_headers(&echo);
    assert!(!headers.contains_key("x-forwarded-prefix"), "{headers:?}");
    assert_eq!(
        headers["host"].to_ascii_lowercase(),
        format!("{domain}:8080")
    );
    // The gateway's own paths belong to the funko on its domain: no admin there.
    let (status, _) = get_by_host(&gateway, &domain, "/admin/api/version").await;
    assert_eq!(status, 404, "the test funko has no /admin");
    let (status, echo) = get_by_host(&gateway, &format!("www.{domain}"), "/echo").await;
    assert_eq!((status, &echo["path"]), (200, &serde_json::json!("/echo")));
    // Another host is not routed; the path routes still work.
    let (status, _) = get_by_host(&gateway, "other.example.test", "/echo").await;
    assert_eq!(status, 404);
    let (status, _) = get_by_host(&gateway, &domain, &format!("/funko/{first}/ping")).await;
    assert_eq!(
        status, 404,
        "on the domain, /funko/... is the funko's own path"
    );

    // A second funko claims the same domain (and sorts first): refused, the first keeps it.
    let second = format!("a{first}");
    gateway
        .serve_variant(
            &docker,
            &cleanup,
            &second,
            &format!("LABEL faaso.domains=\"{domain}\"\nENV TESTFUNKO_VERSION=2"),
        )
        .await;
    let faaso = Faaso::in_dir(gateway.dir.path());
    let started = Instant::now();
    let status_text = loop {
        let text = faaso.ok(&["status", &second]);
        if text.contains("refused") || started.elapsed() > Duration::from_secs(10) {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        status_text.contains(&format!(
            "warning: domain {domain} is refused: funko {first} claimed it first"
        )),
        "{status_text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&faaso.ok(&["status", &second, "--json"])).unwrap();
    assert_eq!(json[0]["refused_domains"][0]["owner"], first.as_str());
    assert!(gateway.log().contains("domain claim refused"));
    // The first funko's instance still answers on the domain.
    let response = client()
        .get(format!("{}/version", gateway.url))
        .header("Host", &domain)
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap().trim(), "1");
    // Once the first funko is gone, the second gets the domain.
    faaso.ok(&["purge", &first, "--yes"]);
    let started = Instant::now();
    loop {
        let version = client()
            .get(format!("{}/version", gateway.url))
            .header("Host", &domain)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let text = faaso.ok(&["status", &second]);
        if version.trim() == "2" && !text.contains("refused") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{second} did not get {domain}: version {version}, {text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn acme_gets_a_funko_domains_certificate_from_pebble() {
    let docker = require_docker!();
    if !faaso_tests::pebble::available() {
        assert!(
            !faaso_tests::docker::is_ci(),
            "pebble is required under CI=true (apt-get install pebble)"
        );
        faaso_tests::skip::skip(module_path!(), "pebble is not installed");
        return;
    }
    let cleanup = Cleanup::new();
    let port = free_port();
    let pebble = faaso_tests::pebble::Pebble::start(port, 3600).await;
    let tls_port = free_port();
    // No acme.domains: only the funkos' own.
    let gateway = GatewayProcess::start(&format!(
        "listen: 127.0.0.1:{port}\ntls_listen: 127.0.0.1:{tls_port}\n\
         acme:\n  directory: {}\n  ca_cert: {}\n  funko_domains: true\n",
        pebble.directory,
        pebble.ca_file.display()
    ))
    .await;
    let name = unique_name("secure");
    let host = domain_of(&name);
    gateway
        .serve_variant(
            &docker,
            &cleanup,
            &name,
            &format!("LABEL faaso.domains=\"{host}\""),
        )
        .await;
    let root = pebble.issuing_root().await;
    let tls = SocketAddr::from(([127, 0, 0, 1], tls_port));
    let url = format!("https://{host}:{tls_port}/echo");
    let deadline = Instant::now() + Duration::from_secs(60);
    let certificate = loop {
        let fresh = https_client(&root, &host, tls, false);
        if let Ok(response) = fresh.get(&url).send().await {
            assert_eq!(response.status().as_u16(), 200);
            let certificate = peer_certificate(&response);
            let echo: serde_json::Value = response.json().await.unwrap();
            assert_eq!(echo["path"], "/echo");
            break certificate;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate for {host}; gateway log:\n{}\npebble log:\n{}",
            gateway.log(),
            pebble.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!certificate.is_empty());
    assert!(
        gateway
            .dir
            .path()
            .join(format!("state/acme/{host}.crt"))
            .exists()
    );
    // The funko goes: its domain's certificate is no longer served.
    Faaso::in_dir(gateway.dir.path()).ok(&["purge", &name, "--yes"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let fresh = https_client(&root, &host, tls, false);
        if fresh.get(&url).send().await.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "{host} is still served");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(gateway.log().contains("no longer served"));
}
