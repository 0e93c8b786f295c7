//! Scaling by the gateway, from `scaling:` labels: scale from zero on a request (one start for
//! many requests, bounded by `cold_start_timeout`), back to zero after `idle_timeout`, draining
//! before a stop, and autoscaling between `min` and `max` on requests in flight.

use std::time::{Duration, Instant};

use faaso_tests::cli::Faaso;
use faaso_tests::docker::Cleanup;
use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::{client, wait_for_status};
use faaso_tests::{require_docker, testfunko, unique_name};

/// Builds `name`'s image as a test-funko variant with `instructions` (its labels), for removal
/// with every instance the gateway starts.
async fn image(docker: &bollard::Docker, cleanup: &Cleanup, name: &str, instructions: &str) {
    let tag = format!("faaso-{name}:latest");
    testfunko::variant(docker, &tag, instructions).await;
    cleanup.image(tag);
    cleanup.funko(name);
}

/// Starts a gateway with `yaml` and waits for its first Docker sync.
async fn gateway(yaml: &str) -> GatewayProcess {
    let gateway = GatewayProcess::start(yaml).await;
    wait_for_status(
        &format!("{}/readyz", gateway.url),
        200,
        Duration::from_secs(20),
    )
    .await;
    gateway
}

/// Running instances of a funko.
async fn running(docker: &bollard::Docker, funko: &str) -> usize {
    faaso::engine::docker::list_instances(docker, funko)
        .await
        .unwrap()
        .iter()
        .filter(|c| c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING))
        .count()
}

/// Waits until a funko has `count` running instances; panics with the last count after
/// `timeout`. Returns how long it took.
async fn wait_for_running(
    docker: &bollard::Docker,
    funko: &str,
    count: usize,
    timeout: Duration,
) -> Duration {
    let started = Instant::now();
    let mut last = usize::MAX;
    while started.elapsed() < timeout {
        last = running(docker, funko).await;
        if last == count {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{funko}: {last} running after {timeout:?}, expected {count}");
}

/// The gateway's `faaso_autoscale_events_total` for a funko and direction, read again until it
/// reaches `expected` or 10 s pass: an event is counted once its change is wholly carried out
/// (a retired container is removed as well as stopped), a little after Docker shows the count.
/// Returns the last value and the metrics text it came from.
async fn autoscale_events(
    gateway: &GatewayProcess,
    funko: &str,
    direction: &str,
    expected: f64,
) -> (f64, String) {
    let started = Instant::now();
    loop {
        let text = gateway.metrics().await;
        let value = faaso_tests::prom::value(
            &text,
            "faaso_autoscale_events_total",
            &[("funko", funko), ("direction", direction)],
        )
        .unwrap_or(0.0);
        if value >= expected || started.elapsed() > Duration::from_secs(10) {
            return (value, text);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A funko at zero (`min: 0`, an image, no container) is shown as idle; twenty concurrent
/// requests start exactly one instance and all get 200; the start is counted and timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_requests_at_zero_start_one_instance_and_all_get_200() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let name = unique_name("sleepy");
    image(
        &docker,
        &cleanup,
        &name,
        "LABEL faaso.scale.min=\"0\" faaso.scale.max=\"3\"",
    )
    .await;
    let gateway = gateway("").await;
    let faaso = Faaso::in_dir(gateway.dir.path());
    let status = faaso.ok(&["status", &name]);
    assert!(
        status.contains("0 running (min 0, max 3, idle after 5m; idle: a request starts it)"),
        "{status}"
    );
    assert_eq!(running(&docker, &name).await, 0);

    let http = client();
    let started = Instant::now();
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let request = http.get(format!("{}/funko/{name}/whoami", gateway.url));
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.text().await.unwrap(), started.elapsed())
            })
        })
        .collect();
    let mut hosts = std::collections::BTreeSet::new();
    for request in requests {
        let (status, body, took) = request.await.unwrap();
        assert_eq!(status, 200, "{body}");
        hosts.insert(body);
        assert!(took < Duration::from_secs(30), "{took:?}");
    }
    println!(
        "20 requests at zero answered within {:?}",
        started.elapsed()
    );
    assert_eq!(hosts.len(), 1, "one instance answered them all: {hosts:?}");
    assert_eq!(running(&docker, &name).await, 1, "exactly one start");

    let text = gateway.metrics().await;
    let labels = [("funko", name.as_str()), ("kind", "start")];
    assert_eq!(
        faaso_tests::prom::value(&text, "faaso_cold_starts_total", &labels),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        faaso_tests::prom::value(
            &text,
            "faaso_cold_start_duration_seconds_count",
            &[("funko", name.as_str())]
        ),
        Some(1.0)
    );
    // The scale the gateway gave it is saved, as `faaso scale 1` would.
    let status = faaso.ok(&["status", &name]);
    assert!(
        status.contains("scale 1, 1 running (min 0, max 3, idle after 5m)"),
        "{status}"
    );
}

/// An instance that never answers `/ping`: the request gets 503 with the reason once
/// `cold_start_timeout` is up, and no container is left.
#[tokio::test]
async fn a_start_that_never_becomes_ready_gets_503_and_leaves_nothing() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let name = unique_name("mute");
    image(
        &docker,
        &cleanup,
        &name,
        "LABEL faaso.scale.min=\"0\"\nENV TESTFUNKO_PING_STATUS=500",
    )
    .await;
    let gateway = gateway("cold_start_timeout: 3s\n").await;
    let started = Instant::now();
    let response = client()
        .get(format!("{}/funko/{name}/whoami", gateway.url))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(response.status().as_u16(), 503);
    assert_eq!(response.headers()["retry-after"], "5");
    let body: serde_json::Value = response.json().await.unwrap();
    let error = body["error"].as_str().unwrap();
    assert!(
        error.starts_with("starting an instance failed"),
        "{error} after {took:?}"
    );
    assert!(error.contains("GET /ping"), "{error}");
    assert!(took <= Duration::from_millis(3500), "{took:?}");
    assert!(took >= Duration::from_millis(1500), "{took:?}: {error}");
    wait_for_running(&docker, &name, 0, Duration::from_secs(5)).await;
    assert!(
        faaso::engine::docker::list_instances(&docker, &name)
            .await
            .unwrap()
            .is_empty(),
        "the failed instance is removed"
    );
    // Right after, the same answer at once, without another start.
    let again = Instant::now();
    let response = client()
        .get(format!("{}/funko/{name}/whoami", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 503);
    assert!(again.elapsed() < Duration::from_millis(500));
}

/// `idle_timeout: 2s`: a request wakes the funko, a long request keeps it up, and once nothing
/// comes for two seconds it is back at zero; the next request wakes it again, also after a
/// gateway restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_funko_goes_back_to_zero_and_wakes_again() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let name = unique_name("nap");
    image(
        &docker,
        &cleanup,
        &name,
        "LABEL faaso.scale.min=\"0\" faaso.scale.idle_timeout=\"2s\"",
    )
    .await;
    let mut gateway = gateway("").await;
    let http = client();
    let get = |gateway: &GatewayProcess, path: &str| {
        let request = http.get(format!("{}/funko/{name}/{path}", gateway.url));
        async move {
            let response = request.send().await.unwrap();
            (response.status().as_u16(), response.text().await.unwrap())
        }
    };
    assert_eq!(get(&gateway, "ping").await.0, 200);
    // A request longer than the idle timeout is not cut: in flight counts as busy.
    let (status, body) = get(&gateway, "sleep/3500").await;
    assert_eq!((status, body.as_str()), (200, "slept 3500"));
    assert_eq!(running(&docker, &name).await, 1, "still up right after");
    let took = wait_for_running(&docker, &name, 0, Duration::from_secs(8)).await;
    println!("back at zero {took:?} after the last request");
    let faaso = Faaso::in_dir(gateway.dir.path());
    let status = faaso.ok(&["status", &name]);
    assert!(status.contains("scale 0, 0 running"), "{status}");
    assert!(status.contains("idle: a request starts it"), "{status}");
    assert_eq!(get(&gateway, "ping").await.0, 200, "wakes again");
    wait_for_running(&docker, &name, 0, Duration::from_secs(8)).await;

    // The settings are the image's labels: a new gateway wakes it the same way.
    gateway.signal("TERM");
    gateway.wait_exit(Duration::from_secs(15));
    let restarted = GatewayProcess::start_in(std::sync::Arc::clone(&gateway.dir), "").await;
    wait_for_status(
        &format!("{}/readyz", restarted.url),
        200,
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(get(&restarted, "ping").await.0, 200);
    let text = restarted.metrics().await;
    let events = faaso_tests::prom::value(
        &text,
        "faaso_cold_starts_total",
        &[("funko", name.as_str()), ("kind", "start")],
    );
    assert_eq!(events, Some(1.0), "{text}\n{}", restarted.log());
}

/// A scale-down drains first: the autoscaler takes an instance away while slow requests are in
/// flight on it, and every one of them finishes with 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_down_drains_requests_in_flight() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let name = unique_name("shrink");
    image(
        &docker,
        &cleanup,
        &name,
        "LABEL faaso.scale.min=\"1\" faaso.scale.max=\"3\"",
    )
    .await;
    let gateway = gateway("autoscale_down_window: 2s\n").await;
    Faaso::in_dir(gateway.dir.path()).ok(&["scale", &name, "3"]);
    let http = client();
    // Nine requests of 6 s over three instances: 9 in flight is below half the target (10) on
    // two, so one instance goes after the 2 s window, with its requests still running.
    let requests: Vec<_> = (0..9)
        .map(|_| {
            let request = http.get(format!("{}/funko/{name}/sleep/6000", gateway.url));
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(4500)).await;
    let log = gateway.log();
    let decided = log
        .lines()
        .find(|l| l.contains("autoscale: changing the instance count") && l.contains("down"))
        .unwrap_or_else(|| panic!("no scale-down while the requests run: {log}"));
    println!("{decided}");
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert_eq!((status, body.as_str()), (200, "slept 6000"));
    }
    // Idle now: the next removal leaves min (1).
    wait_for_running(&docker, &name, 1, Duration::from_secs(15)).await;
    let (down, text) = autoscale_events(&gateway, &name, "down", 2.0).await;
    assert_eq!(down, 2.0, "{text}");
}

/// Sustained load above `target_inflight` adds instances up to `max`; when it stops they go
/// back to `min`, one at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sustained_load_grows_to_max_and_quiet_shrinks_to_min() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let name = unique_name("elastic");
    image(
        &docker,
        &cleanup,
        &name,
        "LABEL faaso.scale.min=\"1\" faaso.scale.max=\"3\" faaso.scale.target_inflight=\"2\"",
    )
    .await;
    let gateway = gateway("autoscale_up_window: 2s\nautoscale_down_window: 3s\n").await;
    Faaso::in_dir(gateway.dir.path()).ok(&["up", &name]);
    wait_for_status(
        &format!("{}/funko/{name}/ping", gateway.url),
        200,
        Duration::from_secs(20),
    )
    .await;
    // Twelve clients in a loop of 300 ms requests: about 12 in flight, 6 per instance at 2.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = format!("{}/funko/{name}/sleep/300", gateway.url);
    let clients: Vec<_> = (0..12)
        .map(|_| {
            let (stop, url, http) = (std::sync::Arc::clone(&stop), url.clone(), client());
            tokio::spawn(async move {
                let mut failures = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let status = http.get(&url).send().await.unwrap().status().as_u16();
                    if status != 200 {
                        failures.push(status);
                    }
                }
                failures
            })
        })
        .collect();
    let grew = wait_for_running(&docker, &name, 3, Duration::from_secs(20)).await;
    println!("grew to max (3) {grew:?} into the load");
    // Never above max while the load goes on.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(running(&docker, &name).await, 3);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for client in clients {
        assert_eq!(
            client.await.unwrap(),
            Vec::<u16>::new(),
            "every request 200"
        );
    }
    let shrank = wait_for_running(&docker, &name, 1, Duration::from_secs(30)).await;
    println!("back to min (1) {shrank:?} after the load");
    let (up, text) = autoscale_events(&gateway, &name, "up", 1.0).await;
    assert!(up >= 1.0, "{text}");
    let (down, text) = autoscale_events(&gateway, &name, "down", 2.0).await;
    assert_eq!(down, 2.0, "one at a time: {text}");
    let status = Faaso::in_dir(gateway.dir.path()).ok(&["status", &name]);
    assert!(
        status.contains("scale 1, 1 running (min 1, max 3"),
        "{status}"
    );
}

/// A deploy of a scaled funko at its `max` keeps the count: the one instance more that a
/// rolling deploy runs for a while is not taken for a scale-down, and the count ends where it
/// began, every instance on the new release.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_at_max_keeps_the_count() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let name = unique_name("rolling");
    let labels = "LABEL faaso.scale.min=\"1\" faaso.scale.max=\"2\"";
    image(&docker, &cleanup, &name, labels).await;
    let gateway = gateway("").await;
    let faaso = Faaso::in_dir(gateway.dir.path());
    faaso.ok(&["scale", &name, "2"]);
    let tag = format!("faaso-{name}:latest");
    testfunko::variant(&docker, &tag, &format!("{labels}\nENV TESTFUNKO_VERSION=2")).await;
    faaso.ok(&["deploy", &name]);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(running(&docker, &name).await, 2);
    let version = client()
        .get(format!("{}/funko/{name}/version", gateway.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(version, "2");
    let text = gateway.metrics().await;
    let down = faaso_tests::prom::value(
        &text,
        "faaso_autoscale_events_total",
        &[("funko", name.as_str()), ("direction", "down")],
    );
    assert_eq!(down, None, "no scale-down during the deploy: {text}");
    assert!(!gateway.log().contains("above max"), "{}", gateway.log());
}

/// Instances of a funko in a Docker state.
async fn in_state(
    docker: &bollard::Docker,
    funko: &str,
    state: bollard::models::ContainerSummaryStateEnum,
) -> Vec<String> {
    faaso::engine::docker::list_instances(docker, funko)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.state == Some(state))
        .filter_map(|c| c.id)
        .collect()
}

/// Waits until a funko has `count` paused instances (and none running).
async fn wait_for_paused(docker: &bollard::Docker, funko: &str, count: usize, timeout: Duration) {
    use bollard::models::ContainerSummaryStateEnum::PAUSED;
    let started = Instant::now();
    while started.elapsed() < timeout {
        if in_state(docker, funko, PAUSED).await.len() == count && running(docker, funko).await == 0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{funko}: not {count} paused after {timeout:?}");
}

/// `scaling.zero: pause`: an idle instance is paused, not stopped; twenty concurrent requests
/// thaw it once (all 200, from the same container, counted as `kind="unpause"`); a deploy
/// removes a paused instance of the old release, so the next request starts the new one;
/// `pause_max` stops a funko paused too long; a purge takes a paused funko away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_funko_is_thawed_by_a_request_and_stopped_after_pause_max() {
    use bollard::models::ContainerSummaryStateEnum::PAUSED;
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let name = unique_name("frozen");
    let tag = format!("faaso-{name}:latest");
    image(
        &docker,
        &cleanup,
        &name,
        "LABEL faaso.scale.min=\"0\" faaso.scale.idle_timeout=\"2s\" faaso.scale.zero=\"pause\" \
         faaso.scale.pause_max=\"8s\"",
    )
    .await;
    let gateway = gateway("").await;
    let faaso = Faaso::in_dir(gateway.dir.path());
    let http = client();
    let whoami = format!("{}/funko/{name}/whoami", gateway.url);
    let first = http.get(&whoami).send().await.unwrap();
    assert_eq!(first.status().as_u16(), 200);
    let host = first.text().await.unwrap();
    wait_for_paused(&docker, &name, 1, Duration::from_secs(20)).await;
    let status = faaso.ok(&["status", &name]);
    assert!(status.contains("paused"), "{status}");

    // Twenty at once: one thaw, the same container answers them all.
    let started = Instant::now();
    let requests: Vec<_> = (0..20)
        .map(|_| {
            let request = http.get(&whoami);
            tokio::spawn(async move {
                let response = request.send().await.unwrap();
                (response.status().as_u16(), response.text().await.unwrap())
            })
        })
        .collect();
    for request in requests {
        let (status, body) = request.await.unwrap();
        assert_eq!((status, body.as_str()), (200, host.as_str()));
    }
    println!(
        "20 requests to a paused funko answered within {:?}",
        started.elapsed()
    );
    assert_eq!(running(&docker, &name).await, 1);
    let text = gateway.metrics().await;
    let kind = |kind: &str| {
        faaso_tests::prom::value(
            &text,
            "faaso_cold_starts_total",
            &[("funko", name.as_str()), ("kind", kind)],
        )
    };
    assert_eq!(kind("unpause"), Some(1.0), "{text}");
    assert_eq!(kind("start"), Some(1.0), "{text}");

    // Paused again; a deploy removes the paused instance of the old release.
    wait_for_paused(&docker, &name, 1, Duration::from_secs(20)).await;
    testfunko::variant(
        &docker,
        &tag,
        "LABEL faaso.scale.min=\"0\" faaso.scale.idle_timeout=\"2s\" faaso.scale.zero=\"pause\" \
         faaso.scale.pause_max=\"8s\"\nENV TESTFUNKO_VERSION=2",
    )
    .await;
    let deployed = faaso.run(&["deploy", &name]);
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&deployed.stdout),
        String::from_utf8_lossy(&deployed.stderr)
    );
    assert!(deployed.status.success(), "{out}");
    assert!(out.contains("removed paused"), "{out}");
    assert!(in_state(&docker, &name, PAUSED).await.is_empty());
    let version = http
        .get(format!("{}/funko/{name}/version", gateway.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(version.trim(), "2");

    // Paused longer than pause_max (8 s): stopped, its memory freed.
    wait_for_paused(&docker, &name, 1, Duration::from_secs(20)).await;
    // (`docker stop` thaws a paused container before it stops it: gone is what counts.)
    let paused = Instant::now();
    while !in_state(&docker, &name, PAUSED).await.is_empty() || running(&docker, &name).await > 0 {
        assert!(
            paused.elapsed() < Duration::from_secs(20),
            "still there after {:?}",
            paused.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("stopped {:?} after it was seen paused", paused.elapsed());

    // A purge of a paused funko leaves nothing behind.
    assert_eq!(
        http.get(&whoami).send().await.unwrap().status().as_u16(),
        200
    );
    wait_for_paused(&docker, &name, 1, Duration::from_secs(20)).await;
    faaso.ok(&["purge", &name, "--yes"]);
    let left = faaso::engine::docker::list_instances(&docker, &name)
        .await
        .unwrap();
    assert!(left.is_empty(), "{left:?}");
}

/// The ready containers of a funko (created, not started, labelled `faaso.ready`).
async fn ready_containers(docker: &bollard::Docker, funko: &str) -> Vec<String> {
    faaso::engine::docker::list_instances(docker, funko)
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.state == Some(bollard::models::ContainerSummaryStateEnum::CREATED))
        .filter(|c| {
            c.labels
                .as_ref()
                .is_some_and(|l| l.contains_key(faaso::conventions::READY_LABEL))
        })
        .filter_map(|c| c.id)
        .collect()
}

/// `min: 0` with the default `zero: stop`: the funko at zero keeps one ready container
/// (created, not started); the next wake starts that very container, and a new ready one is
/// made after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ready_container_is_used_by_the_next_wake_and_replaced_after() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let name = unique_name("primed");
    image(
        &docker,
        &cleanup,
        &name,
        "LABEL faaso.scale.min=\"0\" faaso.scale.idle_timeout=\"2s\"",
    )
    .await;
    let gateway = gateway("").await;
    let http = client();
    let whoami = format!("{}/funko/{name}/whoami", gateway.url);
    assert_eq!(
        http.get(&whoami).send().await.unwrap().status().as_u16(),
        200
    );
    // Idle: stopped, and one ready container left for the next wake.
    wait_for_running(&docker, &name, 0, Duration::from_secs(20)).await;
    let started = Instant::now();
    let ready = loop {
        let ready = ready_containers(&docker, &name).await;
        if ready.len() == 1 {
            break ready[0].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no ready container: {ready:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let woken = Instant::now();
    let response = http.get(&whoami).send().await.unwrap();
    let took = woken.elapsed();
    assert_eq!(response.status().as_u16(), 200);
    let host = response.text().await.unwrap();
    println!("wake by a ready container: {took:?}");
    assert!(
        ready.starts_with(host.trim()),
        "the ready container {ready} answered, not {host}"
    );
    // Replaced after: a new ready container, not the one now running.
    let started = Instant::now();
    loop {
        let now = ready_containers(&docker, &name).await;
        if now.len() == 1 && now[0] != ready {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "not replaced: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = gateway.metrics().await;
    assert_eq!(
        faaso_tests::prom::value(
            &text,
            "faaso_cold_starts_total",
            &[("funko", name.as_str()), ("kind", "start")]
        ),
        Some(2.0),
        "{text}"
    );
}
