//! Per-funko settings from Docker labels, as `faaso build` writes them from `funko.yml`
//! (`limits:`) or `docker run -l` sets them: each funko's own upstream timeout and body limit.

use std::time::{Duration, Instant};

use faaso_tests::cli::Faaso;
use faaso_tests::docker::Cleanup;
use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::client;
use faaso_tests::{require_docker, testfunko, unique_name};

#[tokio::test]
async fn a_funkos_own_timeout_and_body_limit_apply_to_it_alone() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("").await;
    let limited = unique_name("limited");
    let plain = unique_name("plain");
    for (name, instructions) in [
        (
            &limited,
            "LABEL faaso.limits.timeout=\"1s\" faaso.limits.max_body=\"1KiB\"",
        ),
        (&plain, "ENV TESTFUNKO_VERSION=1"),
    ] {
        gateway
            .serve_variant(&docker, &cleanup, name, instructions)
            .await;
    }
    let http = client();
    let get = |funko: &str, path: &str| {
        let request = http.get(format!("{}/funko/{funko}/{path}", gateway.url));
        async move {
            let started = Instant::now();
            let status = request.send().await.unwrap().status().as_u16();
            (status, started.elapsed())
        }
    };
    // 1 s for the limited funko: 504 after about a second; the other keeps the gateway's 60 s.
    let (status, took) = get(&limited, "sleep/2500").await;
    assert_eq!(status, 504, "after {took:?}");
    assert!(took < Duration::from_millis(2200), "{took:?}");
    assert_eq!(get(&limited, "sleep/200").await.0, 200);
    assert_eq!(get(&plain, "sleep/2500").await.0, 200);

    let post = |funko: &str, bytes: usize| {
        let request = http
            .post(format!("{}/funko/{funko}/echo", gateway.url))
            .body(vec![b'x'; bytes]);
        async move { request.send().await.unwrap() }
    };
    let refused = post(&limited, 2048).await;
    assert_eq!(refused.status().as_u16(), 413);
    let body: serde_json::Value = refused.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("1024 bytes"),
        "{body}"
    );
    assert_eq!(post(&limited, 1000).await.status().as_u16(), 200);
    assert_eq!(post(&plain, 2048).await.status().as_u16(), 200);
}

/// `faaso build` writes `scaling:` and `limits:` as image labels (without a warning: the
/// gateway acts on all of them).
#[tokio::test]
async fn funko_yml_settings_become_image_labels() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let base = testfunko::image(&docker).await;
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("labelled");
    let folder = dir.path().join(&name);
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("Dockerfile"), format!("FROM {base}\n")).unwrap();
    std::fs::write(
        folder.join("funko.yml"),
        format!("name: {name}\nscaling:\n  max: 2\nlimits:\n  timeout: 1500ms\n  max_body: 1MiB\n"),
    )
    .unwrap();
    let faaso = Faaso::in_dir(dir.path());
    cleanup.image(format!("faaso-{name}:latest"));
    let out = faaso.run(&["build", folder.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for (_, tag) in faaso::engine::releases::list(&docker, &name).await.unwrap() {
        cleanup.image(tag);
    }
    assert!(!stderr.contains("warning:"), "{stderr}");
    let image = docker
        .inspect_image(&format!("faaso-{name}:latest"))
        .await
        .unwrap();
    let labels = image.config.and_then(|c| c.labels).unwrap_or_default();
    assert_eq!(
        labels.get("faaso.limits.timeout").map(String::as_str),
        Some("1500ms")
    );
    assert_eq!(
        labels.get("faaso.limits.max_body").map(String::as_str),
        Some("1048576")
    );
    assert_eq!(labels.get("faaso.scale.max").map(String::as_str), Some("2"));
}

/// `max_inflight: 2`: ten concurrent slow requests all succeed, and the instance never sees more
/// than two at once; a request that waits longer than `queue_timeout` gets 429 and `Retry-After`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_inflight_queues_requests_and_refuses_after_the_queue_timeout() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("").await;
    let queued = unique_name("queued");
    let strict = unique_name("strict");
    for (name, instructions) in [
        (
            &queued,
            "LABEL faaso.limits.max_inflight=\"2\" faaso.limits.queue_timeout=\"10s\"",
        ),
        (
            &strict,
            "LABEL faaso.limits.max_inflight=\"1\" faaso.limits.queue_timeout=\"1s\"",
        ),
    ] {
        gateway
            .serve_variant(&docker, &cleanup, name, instructions)
            .await;
    }
    let http = client();
    let started = Instant::now();
    let requests: Vec<_> = (0..10)
        .map(|_| {
            let request = http.get(format!("{}/funko/{queued}/sleep/300", gateway.url));
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    for request in requests {
        assert_eq!(request.await.unwrap(), 200);
    }
    let took = started.elapsed();
    let peak = testfunko::peak(&format!("{}/funko/{queued}", gateway.url)).await;
    println!("10 requests of 300 ms at max_inflight 2: {took:?}, peak {peak} at once");
    assert_eq!(peak, 2, "the instance saw {peak} at once");
    // Five rounds of two: about 1.5 s (not 0.3 s: they were not all let through).
    assert!(took >= Duration::from_millis(1400), "{took:?}");

    let busy = {
        let request = http.get(format!("{}/funko/{strict}/sleep/3000", gateway.url));
        tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let refused = http
        .get(format!("{}/funko/{strict}/ping", gateway.url))
        .send()
        .await
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(refused.status().as_u16(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_millis(2500),
        "{waited:?}"
    );
    assert_eq!(busy.await.unwrap(), 200);
    let metrics = gateway.metrics().await;
    assert_eq!(
        faaso_tests::prom::value(
            &metrics,
            "faaso_queue_rejections_total",
            &[("funko", &strict)]
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        faaso_tests::prom::value(&metrics, "faaso_queue_depth", &[("funko", &queued)]),
        Some(0.0)
    );
}
