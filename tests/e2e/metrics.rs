//! Metrics as Prometheus sees them: exact counts on `/metrics`, the same numbers through a real
//! Prometheus server's query API, and the shipped Prometheus config checked by `promtool`.
//! (The Grafana dashboard is checked against the metric definitions in `gateway/src/metrics.rs`.)

use std::time::{Duration, Instant};

use faaso_tests::docker::{Cleanup, start_instance};
use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::{client, wait_for_status, wait_until};
use faaso_tests::prom::{self, PrometheusServer, tool_or_skip};
use faaso_tests::{require_docker, unique_name, workspace_root};

const OK: usize = 20;
const UNAVAILABLE: usize = 7;
const UNKNOWN: usize = 3;

/// A gateway routing one fresh funko, after known traffic: `OK` 200s and `UNAVAILABLE` 503s
/// (answered by the test funko), and `UNKNOWN` requests to funkos that do not exist. No
/// request is sent before discovery has published the instance (watched on `/metrics`), so
/// nothing but the known traffic is counted.
async fn gateway_with_traffic(cleanup: &Cleanup) -> (GatewayProcess, String) {
    let docker = faaso::engine::docker::connect().await.unwrap();
    let funko = unique_name("metrics");
    start_instance(&docker, cleanup, &funko, &[]).await;
    let gateway = GatewayProcess::start("").await;
    let start = Instant::now();
    loop {
        let text = scrape(&gateway).await;
        let healthy = prom::value(
            &text,
            "faaso_funko_instances",
            &[("funko", &funko), ("state", "healthy")],
        );
        if healthy == Some(1.0) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "funko not discovered:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let client = client();
    for _ in 0..OK {
        let url = format!("{}/funko/{funko}/ping", gateway.url);
        assert_eq!(client.get(url).send().await.unwrap().status().as_u16(), 200);
    }
    for _ in 0..UNAVAILABLE {
        let url = format!("{}/funko/{funko}/status/503", gateway.url);
        assert_eq!(client.get(url).send().await.unwrap().status().as_u16(), 503);
    }
    for _ in 0..UNKNOWN {
        let url = format!("{}/funko/{}/x", gateway.url, unique_name("nosuch"));
        assert_eq!(client.get(url).send().await.unwrap().status().as_u16(), 404);
    }
    (gateway, funko)
}

async fn scrape(gateway: &GatewayProcess) -> String {
    let url = format!("{}/metrics", gateway.metrics_url);
    wait_for_status(&url, 200, Duration::from_secs(5)).await
}

#[tokio::test]
async fn metrics_count_exactly_what_was_sent() {
    let _docker = require_docker!();
    let cleanup = Cleanup::new();
    let (gateway, funko) = gateway_with_traffic(&cleanup).await;
    let text = scrape(&gateway).await;
    let value = |name: &str, labels: &[(&str, &str)]| prom::value(&text, name, labels);
    let requests = "faaso_http_requests_total";
    assert_eq!(
        value(requests, &[("funko", &funko), ("code", "200")]),
        Some(OK as f64)
    );
    assert_eq!(
        value(requests, &[("funko", &funko), ("code", "503")]),
        Some(UNAVAILABLE as f64)
    );
    let total = OK + UNAVAILABLE;
    let count = value(
        "faaso_http_request_duration_seconds_count",
        &[("funko", &funko)],
    );
    assert_eq!(count, Some(total as f64), "histogram count");
    assert_eq!(
        value(requests, &[("funko", "_unknown"), ("code", "404")]),
        Some(UNKNOWN as f64)
    );
    assert_eq!(
        value("faaso_http_requests_in_flight", &[("funko", &funko)]),
        Some(0.0)
    );
    assert_eq!(
        value(
            "faaso_funko_instances",
            &[("funko", &funko), ("state", "healthy")]
        ),
        Some(1.0)
    );
    // Every request went upstream; the client kept its connection, so the pool was reused.
    let reused = value(
        "faaso_upstream_requests_total",
        &[("funko", &funko), ("reused", "true")],
    )
    .unwrap_or(0.0);
    let fresh = value(
        "faaso_upstream_requests_total",
        &[("funko", &funko), ("reused", "false")],
    )
    .unwrap_or(0.0);
    assert_eq!(reused + fresh, total as f64);
    assert!(
        reused >= (OK + UNAVAILABLE) as f64 - 2.0,
        "reused {reused}, new {fresh}"
    );
    let version = faaso::VERSION;
    assert_eq!(
        value("faaso_build_info", &[("version", version)]),
        Some(1.0)
    );
}

/// Discovery counts the events it acts on. On a network of its own, the test's container is
/// the only one that connects to it: exactly one `connect` event (other tests' containers on
/// the shared engine cannot add to that count).
#[tokio::test]
async fn discovery_events_are_counted() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let network = unique_name("net");
    // Made by the gateway; removed with the test, after its container.
    cleanup.network(network.clone());
    let gateway = GatewayProcess::start(&format!("network: {network}\n")).await;
    wait_for_status(
        &format!("{}/readyz", gateway.url),
        200,
        Duration::from_secs(10),
    )
    .await;
    let funko = unique_name("events");
    let image = faaso_tests::testfunko::image(&docker).await;
    let name = faaso::conventions::instance_name(&funko, &faaso::conventions::random_suffix());
    faaso_tests::docker::run_container(&docker, &cleanup, &name, &image, &network, &[], &[]).await;
    wait_for_status(
        &format!("{}/funko/{funko}/ping", gateway.url),
        200,
        Duration::from_secs(10),
    )
    .await;
    let text = scrape(&gateway).await;
    assert_eq!(
        prom::value(
            &text,
            "faaso_discovery_events_total",
            &[("kind", "connect")]
        ),
        Some(1.0),
        "{text}"
    );
}

/// A funko that is gone (no container, no image) leaves no series behind in `/metrics`.
#[tokio::test]
async fn a_gone_funkos_series_are_removed() {
    let _docker = require_docker!();
    let cleanup = Cleanup::new();
    let (gateway, funko) = gateway_with_traffic(&cleanup).await;
    let text = scrape(&gateway).await;
    assert_eq!(
        prom::value(
            &text,
            "faaso_http_requests_total",
            &[("funko", &funko), ("code", "200")]
        ),
        Some(OK as f64)
    );
    drop(cleanup);
    let start = Instant::now();
    loop {
        let text = scrape(&gateway).await;
        if !text.contains(&format!("funko=\"{funko}\"")) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "series of {funko} still there:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_real_prometheus_scrapes_the_same_counts() {
    let _docker = require_docker!();
    let Some(prometheus) = tool_or_skip(module_path!(), "prometheus", "prometheus") else {
        return;
    };
    let cleanup = Cleanup::new();
    let (gateway, funko) = gateway_with_traffic(&cleanup).await;
    let server = PrometheusServer::start(
        &prometheus,
        gateway.metrics_url.trim_start_matches("http://"),
    )
    .await;
    let expr = format!(r#"faaso_http_requests_total{{funko="{funko}",code="200"}}"#);
    let start = Instant::now();
    let seen = loop {
        if let Some(value) = server.query(&expr).await {
            break value;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "Prometheus never scraped {expr}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    println!("Prometheus saw {expr} = {seen} after {:?}", start.elapsed());
    assert_eq!(seen, OK as f64);
    let unknown = server
        .query(r#"sum(faaso_http_requests_total{funko="_unknown"})"#)
        .await;
    assert_eq!(unknown, Some(UNKNOWN as f64));
}

#[test]
fn the_sample_prometheus_config_is_valid() {
    let Some(promtool) = tool_or_skip(module_path!(), "promtool", "prometheus") else {
        return;
    };
    let config = workspace_root().join("conf/prometheus.yml");
    let out = std::process::Command::new(promtool)
        .args(["check", "config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn access_log_and_metrics_can_be_turned_off() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("quiet");
    start_instance(&docker, &cleanup, &funko, &[]).await;

    let logged = GatewayProcess::start("").await;
    let url = format!("{}/funko/{funko}/ping", logged.url);
    wait_for_status(&url, 200, Duration::from_secs(10)).await;
    let response = client()
        .get(&url)
        .header("X-Request-Id", "log-me-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    // The access line is written when the request ends, in the next batch.
    wait_until("the access line", Duration::from_secs(5), || async {
        logged.log().contains("request_id=log-me-1")
    })
    .await;
    let log = logged.log();
    let line = log
        .lines()
        .find(|l| l.contains("faaso::access") && l.contains("request_id=log-me-1"))
        .unwrap_or_else(|| panic!("no access line in:\n{log}"));
    for field in [
        "method=GET",
        &format!("path=/funko/{funko}/ping"),
        "status=200",
        "reused=",
        "duration_ms=",
        "bytes=2",
        "instance=\"faaso-",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }

    let quiet = GatewayProcess::start("access_log: false\nmetrics: false\n").await;
    let url = format!("{}/funko/{funko}/ping", quiet.url);
    wait_for_status(&url, 200, Duration::from_secs(10)).await;
    // Nothing to wait for: an absence is checked after several access-log flush intervals
    // (100 ms) have passed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!quiet.log().contains("faaso::access"), "{}", quiet.log());
    // The metrics port is checked on the gateway's own sockets: asking the port could reach
    // another test's gateway that picked the same free port since.
    let port_of = |url: &str| -> u16 { url.rsplit(':').next().unwrap().parse().unwrap() };
    let ports = quiet.listening_ports();
    assert!(
        ports.contains(&port_of(&quiet.url)),
        "the public port is not among the gateway's listeners {ports:?}"
    );
    assert!(
        !ports.contains(&port_of(&quiet.metrics_url)),
        "metrics are served although turned off: {ports:?}"
    );
    assert!(
        !quiet.log().contains("Starting service: metrics"),
        "{}",
        quiet.log()
    );
}
