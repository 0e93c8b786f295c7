//! The gateway routing to real containers found through Docker: paths, headers, balancing,
//! instances coming and going, error statuses, streaming, and discovery failures.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use faaso::conventions::NETWORK;
use faaso_tests::docker::{Cleanup, ip_on_network, run_container, start_instance};
use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::{client, wait_for_status, wait_until};
use faaso_tests::relay::DockerRelay;
use faaso_tests::{require_docker, testfunko, unique_name};

/// Waits until the gateway routes `funko` (its `/ping` answers 200).
async fn wait_routed(gateway: &GatewayProcess, funko: &str) {
    let url = format!("{}/funko/{funko}/ping", gateway.url);
    wait_for_status(&url, 200, Duration::from_secs(10)).await;
}

async fn get(url: &str) -> (u16, String) {
    let response = client().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test]
async fn routes_with_prefix_stripped_query_kept_and_forwarding_headers() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("route");
    start_instance(&docker, &cleanup, &funko, &[]).await;
    let gateway = GatewayProcess::start("").await;
    wait_routed(&gateway, &funko).await;

    let response = client()
        .get(format!("{}/funko/{funko}/echo/a/b?x=1&y=2", gateway.url))
        .header("X-Request-Id", "test-id-1")
        .header("X-Forwarded-For", "203.0.113.7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.headers()["x-request-id"], "test-id-1");
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(echo["path"], "/echo/a/b");
    assert_eq!(echo["query"], "x=1&y=2");
    let headers = faaso_tests::http::echoed_headers(&echo);
    assert_eq!(headers["x-forwarded-prefix"], format!("/funko/{funko}"));
    assert_eq!(headers["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(
        headers["x-forwarded-host"],
        gateway.url.trim_start_matches("http://")
    );
    assert_eq!(headers["x-request-id"], "test-id-1");

    // A generated request id goes upstream and comes back.
    let response = client()
        .get(format!("{}/faaso/{funko}/echo", gateway.url))
        .send()
        .await
        .unwrap();
    let returned = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(returned.len(), 32);
    let echo: serde_json::Value = response.json().await.unwrap();
    assert_eq!(echo["path"], "/echo", "the /faaso/ form routes too");
    assert!(echo["headers"].to_string().contains(&returned));

    // `/funko/<name>` alone is `/` upstream (the test funko names the path in its 404).
    let (status, body) = get(&format!("{}/funko/{funko}", gateway.url)).await;
    assert_eq!((status, body.as_str()), (404, "no such endpoint: /"));
    let (status, body) = get(&format!("{}/funko/{funko}?q=1", gateway.url)).await;
    assert_eq!((status, body.as_str()), (404, "no such endpoint: /"));
}

#[tokio::test]
async fn balances_over_two_instances() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("balance");
    start_instance(&docker, &cleanup, &funko, &[]).await;
    start_instance(&docker, &cleanup, &funko, &[]).await;
    let gateway = GatewayProcess::start("").await;
    wait_routed(&gateway, &funko).await;

    let client = client();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for _ in 0..200 {
        let url = format!("{}/funko/{funko}/whoami", gateway.url);
        let body = client.get(&url).send().await.unwrap().text().await.unwrap();
        *seen.entry(body).or_default() += 1;
    }
    println!("distribution over 2 instances: {seen:?}");
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen.values().all(|n| *n >= 50), "{seen:?}");
}

#[tokio::test]
async fn stopping_an_instance_fails_no_request() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("stop");
    let first = start_instance(&docker, &cleanup, &funko, &[]).await;
    start_instance(&docker, &cleanup, &funko, &[]).await;
    let gateway = GatewayProcess::start("health_interval: 1s\n").await;
    wait_routed(&gateway, &funko).await;

    let url = format!("{}/funko/{funko}/sleep/5", gateway.url);
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = std::sync::Arc::clone(&sent);
    let load = tokio::spawn(async move {
        let client = client();
        let mut results = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(4);
        while Instant::now() < deadline {
            let status = match client.get(&url).send().await {
                Ok(response) => response.status().as_u16(),
                Err(err) => {
                    eprintln!("request failed: {err}");
                    0
                }
            };
            results.push(status);
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        results
    });
    wait_until("the load to run", Duration::from_secs(5), || async {
        sent.load(std::sync::atomic::Ordering::SeqCst) >= 20
    })
    .await;
    let options = bollard::query_parameters::StopContainerOptions {
        t: Some(5),
        ..Default::default()
    };
    docker.stop_container(&first, Some(options)).await.unwrap();
    let results = load.await.unwrap();
    let failed = results.iter().filter(|s| **s != 200).count();
    println!(
        "during docker stop: {} requests, {failed} failed",
        results.len()
    );
    assert!(results.len() >= 100, "too few requests: {}", results.len());
    assert_eq!(failed, 0, "statuses: {results:?}");
}

#[tokio::test]
async fn a_new_instance_is_routable_within_a_second() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("fresh");
    let image = testfunko::image(&docker).await;
    let gateway = GatewayProcess::start("").await;
    let name = faaso::conventions::instance_name(&funko, &faaso::conventions::random_suffix());

    let start = Instant::now();
    run_container(&docker, &cleanup, &name, &image, NETWORK, &[], &[]).await;
    let url = format!("{}/funko/{funko}/ping", gateway.url);
    let client = client();
    let latency = loop {
        if let Ok(response) = client.get(&url).send().await
            && response.status().as_u16() == 200
        {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "not routable after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    println!("new instance routable {latency:?} after docker create+start");
    assert!(latency < Duration::from_secs(1), "took {latency:?}");
}

/// `docker run` (or `faaso up`) and a request at once: the request finds the instance even
/// though it came before discovery had listed it. Each round starts an instance, waits until
/// it answers on its own address, then asks the gateway once; the rounds between remove it
/// and wait until the gateway has seen it go.
#[tokio::test]
async fn a_request_right_after_a_start_is_served() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("atonce");
    let image = testfunko::image(&docker).await;
    let gateway = GatewayProcess::start("").await;
    let client = client();
    let url = format!("{}/funko/{funko}/ping", gateway.url);
    for round in 0..8 {
        let name = faaso::conventions::instance_name(&funko, &faaso::conventions::random_suffix());
        run_container(&docker, &cleanup, &name, &image, NETWORK, &[], &[]).await;
        let direct = format!(
            "http://{}:3000/ping",
            ip_on_network(&docker, &name, NETWORK).await
        );
        // Polled tightly: the request must follow the first answer at once.
        let started = Instant::now();
        while !client
            .get(&direct)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{name} never answered"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let response = client.get(&url).send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        assert_eq!(status, 200, "round {round}: {body}");

        docker
            .remove_container(
                &name,
                Some(bollard::query_parameters::RemoveContainerOptions {
                    force: true,
                    ..Default::default()
                }),
            )
            .await
            .unwrap();
        wait_until(
            "the gateway forgets the instance",
            Duration::from_secs(10),
            || async {
                client
                    .get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().as_u16() == 404)
            },
        )
        .await;
    }
}

#[tokio::test]
async fn error_statuses_are_json() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("errs");
    start_instance(&docker, &cleanup, &funko, &[]).await;
    // A funko whose only container is stopped is known, but cannot be served until started.
    let idle = unique_name("idle");
    let idle_instance = start_instance(&docker, &cleanup, &idle, &[]).await;
    docker.stop_container(&idle_instance, None).await.unwrap();
    let gateway = GatewayProcess::start("read_timeout: 1s\nmax_body_bytes: 1KiB\n").await;
    wait_routed(&gateway, &funko).await;
    let client = client();

    let response = client
        .get(format!("{}/funko/{}/x", gateway.url, unique_name("none")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(
        response.json::<serde_json::Value>().await.unwrap()["error"],
        "no such funko"
    );

    let response = client
        .get(format!("{}/funko/{idle}/ping", gateway.url))
        .send()
        .await
        .unwrap();
    // Stopped, not failing: no Retry-After, and the answer says what starts it.
    assert_eq!(response.status().as_u16(), 503);
    assert!(
        !response.headers().contains_key("retry-after"),
        "{:?}",
        response.headers()
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["funko"], idle.as_str());
    assert_eq!(
        body["error"],
        format!("funko {idle} is stopped; `faaso up {idle}` starts it")
    );

    let started = Instant::now();
    let response = client
        .get(format!("{}/funko/{funko}/sleep/3000", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 504);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    assert!(response.json::<serde_json::Value>().await.unwrap()["error"].is_string());

    let response = client
        .post(format!("{}/funko/{funko}/echo", gateway.url))
        .body(vec![b'x'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        413,
        "Content-Length over the limit"
    );

    // Without Content-Length the limit is enforced while the body streams.
    let chunks = futures_util::stream::iter(
        (0..8).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'y'; 512]))),
    );
    let response = client
        .post(format!("{}/funko/{funko}/echo", gateway.url))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    match response {
        Ok(response) => assert_eq!(
            response.status().as_u16(),
            413,
            "streamed body over the limit"
        ),
        // The gateway may close the connection while the client is still sending.
        Err(err) => assert!(err.is_request() || err.is_body(), "{err}"),
    }

    let response = client
        .post(format!("{}/funko/{funko}/echo", gateway.url))
        .body(vec![b'x'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status().as_u16(),
        200,
        "a body under the limit passes"
    );
}

#[tokio::test]
async fn streamed_chunks_arrive_before_the_response_ends() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("stream");
    start_instance(&docker, &cleanup, &funko, &[]).await;
    let gateway = GatewayProcess::start("").await;
    wait_routed(&gateway, &funko).await;

    let start = Instant::now();
    let mut response = client()
        .get(format!("{}/funko/{funko}/stream/6", gateway.url))
        .send()
        .await
        .unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    let first_at = start.elapsed();
    assert_eq!(&first[..], b"chunk 0\n");
    let mut rest = Vec::new();
    while let Some(chunk) = response.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    let total = start.elapsed();
    println!("first chunk after {first_at:?}, whole response after {total:?}");
    assert!(total >= Duration::from_millis(250), "{total:?}");
    assert!(
        first_at + Duration::from_millis(150) < total,
        "the first chunk was held back"
    );
    assert!(String::from_utf8(rest).unwrap().ends_with("chunk 5\n"));
}

#[tokio::test]
async fn discovery_recovers_after_the_event_stream_is_cut() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let relay = DockerRelay::start();
    // No periodic resync: only a reconnect can notice what happens after the cut.
    let gateway = GatewayProcess::start(&format!(
        "docker_host: {}\nresync_interval: 1h\n",
        relay.host
    ))
    .await;
    wait_for_status(
        &format!("{}/readyz", gateway.url),
        200,
        Duration::from_secs(10),
    )
    .await;
    let cut = relay.cut();
    assert!(cut >= 1, "no Docker connection to cut");

    let funko = unique_name("recover");
    start_instance(&docker, &cleanup, &funko, &[]).await;
    wait_routed(&gateway, &funko).await;
}

#[tokio::test]
async fn the_instance_is_reached_on_faaso_net_when_on_two_networks() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let other = format!("faaso-test-{}", faaso::conventions::random_suffix());
    faaso::engine::docker::ensure_network(&docker, &other)
        .await
        .unwrap();
    let funko = unique_name("twonets");
    let image = testfunko::image(&docker).await;
    let name = faaso::conventions::instance_name(&funko, &faaso::conventions::random_suffix());
    // Created on the other network first, so faaso-net is not "the first network".
    run_container(&docker, &cleanup, &name, &image, &other, &[], &[]).await;
    docker
        .connect_network(
            NETWORK,
            bollard::models::NetworkConnectRequest {
                container: name.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let ip = ip_on_network(&docker, &name, NETWORK).await;
    let gateway = GatewayProcess::start("").await;
    wait_routed(&gateway, &funko).await;
    let (status, body) = get(&format!("{}/funko/{funko}/echo", gateway.url)).await;
    assert_eq!(status, 200, "{body}");
    drop(cleanup);
    let _ = docker.remove_network(&other).await;
    println!("reached {name} at {ip} on {NETWORK}");
}

#[tokio::test]
async fn a_bare_container_started_with_plain_docker_run_is_routed() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("bare");
    let image = testfunko::image(&docker).await;
    let name = format!("faaso-{funko}");
    // No labels, no suffix: the naming convention alone makes it an instance.
    run_container(&docker, &cleanup, &name, &image, NETWORK, &[], &[]).await;
    let gateway = GatewayProcess::start("").await;
    wait_routed(&gateway, &funko).await;
    let (status, body) = get(&format!("{}/funko/{funko}/version", gateway.url)).await;
    assert_eq!((status, body.as_str()), (200, "1"));
}

/// Why the balancer picks the less loaded of two random instances rather than going round
/// robin: with one slow instance, round robin would send it half the requests; the power of two
/// choices sends most of them to the fast one, and the mean latency shows it.
#[tokio::test]
async fn balancing_steers_away_from_a_slow_instance() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("slowfast");
    start_instance(&docker, &cleanup, &funko, &["TESTFUNKO_DELAY_MS=40"]).await;
    start_instance(&docker, &cleanup, &funko, &[]).await;
    let gateway = GatewayProcess::start("").await;
    wait_routed(&gateway, &funko).await;
    // Both instances must be routed before measuring.
    let client = client();
    let url = format!("{}/funko/{funko}/whoami", gateway.url);
    let mut names = std::collections::HashSet::new();
    while names.len() < 2 {
        names.insert(client.get(&url).send().await.unwrap().text().await.unwrap());
    }

    let workers: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            let url = url.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(2);
                while Instant::now() < deadline {
                    let start = Instant::now();
                    let body = client.get(&url).send().await.unwrap().text().await.unwrap();
                    seen.push((body, start.elapsed()));
                }
                seen
            })
        })
        .collect();
    let mut per_instance: HashMap<String, (usize, Duration)> = HashMap::new();
    for worker in workers {
        for (name, took) in worker.await.unwrap() {
            let entry = per_instance.entry(name).or_default();
            entry.0 += 1;
            entry.1 += took;
        }
    }
    let total: usize = per_instance.values().map(|(n, _)| n).sum();
    let all_time: Duration = per_instance.values().map(|(_, t)| *t).sum();
    let slow_share = per_instance
        .values()
        .map(|(n, t)| (*n, *t / (*n as u32).max(1)))
        .filter(|(_, mean)| *mean >= Duration::from_millis(40))
        .map(|(n, _)| n as f64 / total as f64)
        .sum::<f64>();
    println!(
        "8 clients, 2 s, one instance 40 ms slower: {total} requests, slow instance got {:.1}% \
         (round robin: 50%), mean latency {:?}",
        slow_share * 100.0,
        all_time / total as u32
    );
    assert!(
        slow_share < 0.35,
        "slow instance share {slow_share:.2}: {per_instance:?}"
    );
}

/// With Docker unreachable, the gateway keeps routing from its last table (no request fails
/// under load); once Docker is back, what changed meanwhile is picked up.
#[tokio::test]
async fn routing_goes_on_while_docker_is_unreachable() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let relay = DockerRelay::start();
    let serving = unique_name("outage");
    start_instance(&docker, &cleanup, &serving, &[]).await;
    let gateway = GatewayProcess::start(&format!(
        "docker_host: {}\nresync_interval: 1h\n",
        relay.host
    ))
    .await;
    wait_routed(&gateway, &serving).await;

    let url = format!("{}/funko/{serving}/ping", gateway.url);
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered_so_far = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = tokio::spawn({
        let (url, done) = (url.clone(), std::sync::Arc::clone(&done));
        let answered = std::sync::Arc::clone(&answered_so_far);
        async move {
            let client = client();
            let (mut ok, mut failed) = (0usize, Vec::new());
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        ok += 1;
                        answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    Ok(r) => failed.push(format!("status {}", r.status())),
                    Err(e) => failed.push(e.to_string()),
                }
            }
            (ok, failed)
        }
    });
    wait_until("the load to run", Duration::from_secs(5), || async {
        answered_so_far.load(std::sync::atomic::Ordering::SeqCst) >= 20
    })
    .await;
    let cut = relay.down();
    assert!(cut >= 1, "no Docker connection to cut");
    // Meanwhile a new funko starts; the gateway cannot know yet.
    let added = unique_name("meanwhile");
    start_instance(&docker, &cleanup, &added, &[]).await;
    // An absence: given time in which a connected gateway would have picked it up (it does
    // within milliseconds), it must still be unknown.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let added_url = format!("{}/funko/{added}/ping", gateway.url);
    let status = client().get(&added_url).send().await.unwrap().status();
    assert_eq!(status.as_u16(), 404, "known before Docker came back?");
    relay.up();
    wait_routed(&gateway, &added).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, failed) = load.await.unwrap();
    println!(
        "during the outage: {ok} requests answered, {} failed",
        failed.len()
    );
    assert!(ok >= 100, "only {ok} requests");
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
}

/// An instance that closes the connection under a request (as one that dies would) while it
/// still passes its checks: requests that may be sent twice go to the other instance, and none
/// fails.
#[tokio::test]
async fn a_request_lost_by_an_instance_goes_to_another() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("hangup");
    start_instance(&docker, &cleanup, &funko, &[]).await;
    start_instance(&docker, &cleanup, &funko, &["TESTFUNKO_HANG_UP=1"]).await;
    let gateway = GatewayProcess::start("").await;
    wait_routed(&gateway, &funko).await;
    let client = client();
    let mut statuses = Vec::new();
    for n in 0..40 {
        let method = if n % 2 == 0 { "GET" } else { "DELETE" };
        let request = client.request(
            method.parse().unwrap(),
            format!("{}/funko/{funko}/say/n{n}", gateway.url),
        );
        statuses.push(request.send().await.unwrap().status().as_u16());
    }
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(
        gateway
            .log()
            .contains("closed the connection before answering"),
        "the hang-up was never met:\n{}",
        gateway.log()
    );
}
