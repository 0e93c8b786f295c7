//! Canary releases: `faaso deploy --canary` sends a share of the requests to the newest
//! image, `faaso promote` rolls it out under load without a failed request, and `faaso
//! rollback` ends a canary; `faaso status` and the metrics show both releases meanwhile.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use faaso_tests::cli::Faaso;
use faaso_tests::docker::Cleanup;
use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::client;
use faaso_tests::{require_docker, testfunko, unique_name};

/// The version (`TESTFUNKO_VERSION`) of the instance that answered `/version`.
async fn version(http: &reqwest::Client, url: &str) -> (u16, String) {
    let response = http.get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (
        status,
        response.text().await.unwrap_or_default().trim().to_string(),
    )
}

/// Sends `count` requests, 8 at a time, and returns how many each version answered.
async fn versions(url: &str, count: usize) -> std::collections::BTreeMap<String, usize> {
    let mut tasks = Vec::new();
    for worker in 0..8 {
        let url = url.to_string();
        tasks.push(tokio::spawn(async move {
            let http = client();
            let mut seen = Vec::new();
            for _ in (worker..count).step_by(8) {
                let (status, version) = version(&http, &url).await;
                assert_eq!(status, 200, "{version}");
                seen.push(version);
            }
            seen
        }));
    }
    let mut counts = std::collections::BTreeMap::new();
    for task in tasks {
        for version in task.await.unwrap() {
            *counts.entry(version).or_insert(0) += 1;
        }
    }
    counts
}

#[tokio::test]
async fn a_canary_gets_its_share_and_is_promoted_or_rolled_back_without_a_failed_request() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("").await;
    let name = unique_name("split");
    let tag = format!("faaso-{name}:latest");
    cleanup.funko(&name);
    cleanup.image(tag.clone());
    cleanup.image(format!("faaso-{name}:canary"));
    let faaso = Faaso::in_dir(gateway.dir.path());
    testfunko::variant(&docker, &tag, "ENV TESTFUNKO_VERSION=1").await;
    faaso.ok(&["scale", &name, "2"]);
    let url = format!("{}/funko/{name}/version", gateway.url);
    faaso_tests::http::wait_for_status(&url, 200, Duration::from_secs(20)).await;

    // Nothing new to try yet: refused, nothing started.
    let same = faaso.run(&["deploy", &name, "--canary", "20"]);
    assert!(!same.status.success());
    assert!(
        String::from_utf8_lossy(&same.stderr).contains("already serves"),
        "{same:?}"
    );
    let bad = faaso.run(&["deploy", &name, "--canary", "100"]);
    assert!(!bad.status.success());

    // Version 2 as a canary with 20 %.
    testfunko::variant(&docker, &tag, "ENV TESTFUNKO_VERSION=2").await;
    let out = faaso.ok(&["deploy", &name, "--canary", "20"]);
    assert!(out.contains("gets 20 % of requests"), "{out}");
    let http = client();
    let started = Instant::now();
    while version(&http, &url).await.1 != "2" {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the canary never answered"
        );
    }
    let counts = versions(&url, 1000).await;
    let canary = counts.get("2").copied().unwrap_or(0);
    assert_eq!(counts.values().sum::<usize>(), 1000, "{counts:?}");
    assert!(
        (100..=300).contains(&canary),
        "the canary got {canary} of 1000 requests: {counts:?}"
    );
    eprintln!("canary at 20 %: {canary} of 1000 requests");
    let status = faaso.ok(&["status", &name]);
    assert!(status.contains("canary: 20 % to image"), "{status}");
    assert!(
        status.contains("80 % to the serving release (2 instances)"),
        "{status}"
    );
    let metrics = gateway.metrics().await;
    let canary_series = format!("code=\"200\",funko=\"{name}\",release=\"canary\"");
    assert!(metrics.contains(&canary_series), "{metrics}");
    // A second canary is refused while one runs.
    let twice = faaso.run(&["deploy", &name, "--canary", "50"]);
    assert!(
        String::from_utf8_lossy(&twice.stderr).contains("already has a canary"),
        "{twice:?}"
    );
    // `latest` stays on the serving image meanwhile: a scale-up starts version 1.
    let inspect = docker.inspect_image(&tag).await.unwrap();
    let canary_image = docker
        .inspect_image(&format!("faaso-{name}:canary"))
        .await
        .unwrap();
    assert_ne!(inspect.id, canary_image.id);

    // Promote under load: every request answered 200.
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for _ in 0..4 {
        let (url, stop) = (url.clone(), Arc::clone(&stop));
        load.push(tokio::spawn(async move {
            let http = client();
            let (mut ok, mut failed) = (0, Vec::new());
            while !stop.load(Ordering::Relaxed) {
                match http.get(&url).send().await {
                    Ok(response) if response.status().as_u16() == 200 => ok += 1,
                    Ok(response) => failed.push(response.status().to_string()),
                    Err(err) => failed.push(err.to_string()),
                }
            }
            (ok, failed)
        }));
    }
    let out = faaso.ok(&["promote", &name]);
    assert!(out.contains("promoted image"), "{out}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut served = 0;
    for task in load {
        let (ok, failed) = task.await.unwrap();
        assert!(
            failed.is_empty(),
            "requests failed during promote: {failed:?}"
        );
        served += ok;
    }
    assert!(served > 100, "only {served} requests during promote");
    eprintln!("promote under load: {served} requests, none failed");
    let after = versions(&url, 200).await;
    assert_eq!(after.get("2"), Some(&200), "{after:?}");
    let status = faaso.ok(&["status", &name]);
    assert!(
        !status.contains("canary: ") && !status.contains(" canary "),
        "{status}"
    );
    assert_eq!(
        status.lines().filter(|l| l.contains(" current ")).count(),
        2,
        "{status}"
    );

    // A sticky canary of version 3, then rolled back: version 2 serves, nothing else changes.
    testfunko::variant(&docker, &tag, "ENV TESTFUNKO_VERSION=3").await;
    let out = faaso.ok(&["deploy", &name, "--canary", "50", "--sticky"]);
    assert!(out.contains("sticky by client address"), "{out}");
    let sticky = versions(&url, 100).await;
    assert_eq!(
        sticky.len(),
        1,
        "one client stays on one release: {sticky:?}"
    );
    let out = faaso.ok(&["rollback", &name]);
    assert!(out.contains("canary ended, 1 instance stopped"), "{out}");
    let after = versions(&url, 100).await;
    assert_eq!(after.get("2"), Some(&100), "{after:?}");
    let promote = faaso.run(&["promote", &name]);
    assert!(
        String::from_utf8_lossy(&promote.stderr).contains("has no canary"),
        "{promote:?}"
    );
    // The canary's series went with it.
    let started = Instant::now();
    while gateway.metrics().await.contains(&canary_series) {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "release series left"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    faaso.ok(&["purge", &name, "--yes"]);
}
