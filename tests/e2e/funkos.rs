//! Running funkos with the `faaso` command on a real Docker engine: scale, concurrent scale,
//! deploy under load and its rollback, restore by the gateway, secrets, status, logs, and bad
//! input.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::ContainerSummaryStateEnum;
use faaso_tests::cli::Faaso;
use faaso_tests::docker::Cleanup;
use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::{client, wait_for_status, wait_until};
use faaso_tests::{require_docker, testfunko, unique_name};

/// A funko named `<prefix>_<random>` whose `latest` image is the test funko (version 1), with
/// its containers and images removed at the end.
async fn funko(docker: &Docker, cleanup: &Cleanup, prefix: &str) -> String {
    funko_with(docker, cleanup, prefix, "ENV TESTFUNKO_VERSION=1").await
}

/// Like [`funko`], with the test funko image changed by Dockerfile `instructions`.
async fn funko_with(
    docker: &Docker,
    cleanup: &Cleanup,
    prefix: &str,
    instructions: &str,
) -> String {
    let name = unique_name(prefix);
    let tag = format!("faaso-{name}:latest");
    testfunko::variant(docker, &tag, instructions).await;
    cleanup.image(tag);
    name
}

/// Running containers of a funko; registers them all for cleanup.
async fn running(docker: &Docker, cleanup: &Cleanup, funko: &str) -> usize {
    let containers = faaso::engine::docker::list_instances(docker, funko)
        .await
        .unwrap();
    for c in &containers {
        if let Some(id) = &c.id {
            cleanup.container(id.clone());
        }
    }
    containers
        .iter()
        .filter(|c| c.state == Some(ContainerSummaryStateEnum::RUNNING))
        .count()
}

#[tokio::test]
async fn scale_sets_exact_counts() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let dir = tempfile::tempdir().unwrap();
    let faaso = Faaso::in_dir(dir.path());
    let name = funko(&docker, &cleanup, "scale").await;
    for count in [0, 3, 1, 0] {
        faaso.ok(&["scale", &name, &count.to_string()]);
        assert_eq!(
            running(&docker, &cleanup, &name).await,
            count,
            "after scale {count}"
        );
        let shown = faaso.ok(&["scale", &name]);
        assert_eq!(
            shown.trim(),
            format!("{name}: scale {count}, {count} running")
        );
    }
    faaso.ok(&["up", &name]);
    assert_eq!(
        running(&docker, &cleanup, &name).await,
        1,
        "up starts 1 by default"
    );
    faaso.ok(&["up", &name, "--scale", "2"]);
    assert_eq!(running(&docker, &cleanup, &name).await, 2);
    faaso.ok(&["up", &name, "--scale", "1"]);
    assert_eq!(
        running(&docker, &cleanup, &name).await,
        2,
        "up never scales down"
    );
    faaso.ok(&["down", &name]);
    assert_eq!(running(&docker, &cleanup, &name).await, 0);
}

#[tokio::test]
async fn concurrent_scales_never_overshoot() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let dir = tempfile::tempdir().unwrap();
    let faaso = Faaso::in_dir(dir.path());
    let name = funko(&docker, &cleanup, "race").await;
    let mut first = faaso.spawn(&["scale", &name, "2"]);
    let mut second = faaso.spawn(&["scale", &name, "4"]);
    let mut most = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let containers = faaso::engine::docker::list_instances(&docker, &name)
            .await
            .unwrap();
        most = most.max(containers.len());
        let done = first.try_wait().unwrap().is_some() && second.try_wait().unwrap().is_some();
        if done || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(first.wait().unwrap().success() && second.wait().unwrap().success());
    let end = running(&docker, &cleanup, &name).await;
    println!("concurrent scale 2 and 4: ended at {end}, at most {most} containers seen");
    assert!(end == 2 || end == 4, "ended at {end}");
    assert!(most <= 4, "{most} containers at one time");
}

#[tokio::test]
async fn deploy_under_load_fails_no_request() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("health_interval: 1s\n").await;
    let faaso = Faaso::in_dir(gateway.dir.path());
    let name = funko(&docker, &cleanup, "deploy").await;
    faaso.ok(&["up", &name, "--scale", "2"]);
    running(&docker, &cleanup, &name).await;
    let url = format!("{}/funko/{name}/version", gateway.url);
    wait_for_status(&url, 200, Duration::from_secs(10)).await;

    testfunko::variant(
        &docker,
        &format!("faaso-{name}:latest"),
        "ENV TESTFUNKO_VERSION=2",
    )
    .await;
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let load = tokio::spawn({
        let url = url.clone();
        let done = Arc::clone(&done);
        let sent = Arc::clone(&sent);
        async move {
            let client = client();
            let mut results = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(120);
            // From before the deploy starts until it has finished, and at least 200 requests.
            while !(done.load(std::sync::atomic::Ordering::SeqCst) && results.len() >= 200)
                && Instant::now() < deadline
            {
                let result = match client.get(&url).send().await {
                    Ok(r) if r.status().is_success() => Ok(r.text().await.unwrap_or_default()),
                    Ok(r) => Err(format!("status {}", r.status())),
                    Err(e) => Err(e.to_string()),
                };
                results.push(result);
                sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            results
        }
    });
    wait_until("the load to run", Duration::from_secs(5), || async {
        sent.load(std::sync::atomic::Ordering::SeqCst) >= 20
    })
    .await;
    let deployed = tokio::task::spawn_blocking({
        let faaso = Faaso::in_dir(gateway.dir.path());
        let name = name.clone();
        move || faaso.ok(&["deploy", &name])
    })
    .await
    .unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(deployed.contains("2 instances replaced"), "{deployed}");
    let results = load.await.unwrap();
    running(&docker, &cleanup, &name).await;
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let new = results.iter().filter(|r| r.as_deref() == Ok("2")).count();
    println!(
        "deploy under load: {} requests ({new} answered by the new release), {} failed",
        results.len(),
        failed.len()
    );
    assert!(new > 0, "no request reached the new release");
    assert!(results.len() >= 200, "only {} requests", results.len());
    assert!(failed.is_empty(), "failures: {failed:?}");

    let status: serde_json::Value =
        serde_json::from_str(&faaso.ok(&["status", "--json", &name])).unwrap();
    let instances = status[0]["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2);
    assert!(instances.iter().all(|i| i["current"] == true), "{status}");
    assert_eq!(
        client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "2"
    );
}

/// A funko with one instance, deployed three times under load: each time the new instance is
/// started, answers, and the old one is stopped at once, so requests admitted just before the
/// new instance was listed must find it (the snapshot they came with has only the old one).
#[tokio::test]
async fn deploys_of_a_single_instance_under_load_fail_no_request() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("health_interval: 1s\n").await;
    let faaso = Faaso::in_dir(gateway.dir.path());
    let name = funko(&docker, &cleanup, "deploy1").await;
    faaso.ok(&["up", &name]);
    running(&docker, &cleanup, &name).await;
    let url = format!("{}/funko/{name}/version", gateway.url);
    wait_for_status(&url, 200, Duration::from_secs(10)).await;

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn(load_until(url.clone(), 4, Arc::clone(&done)));
    for version in 2..=4 {
        testfunko::variant(
            &docker,
            &format!("faaso-{name}:latest"),
            &format!("ENV TESTFUNKO_VERSION={version}"),
        )
        .await;
        let deployed = tokio::task::spawn_blocking({
            let faaso = Faaso::in_dir(gateway.dir.path());
            let name = name.clone();
            move || faaso.ok(&["deploy", &name])
        })
        .await
        .unwrap();
        assert!(deployed.contains("1 instance replaced"), "{deployed}");
        running(&docker, &cleanup, &name).await;
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let results = load.await.unwrap();
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    println!(
        "three single-instance deploys under load: {} requests, {} failed",
        results.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "failures: {failed:?}");
    assert!(results.len() >= 200, "only {} requests", results.len());
    assert_eq!(
        wait_for_status(&url, 200, Duration::from_secs(5)).await,
        "4"
    );
}

/// Latencies of requests sent by `connections` loops until `done` is set.
async fn load_until(
    url: String,
    connections: usize,
    done: Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Result<Duration, String>> {
    let client = client();
    let loops: Vec<_> = (0..connections)
        .map(|_| {
            let (client, url, done) = (client.clone(), url.clone(), Arc::clone(&done));
            tokio::spawn(async move {
                let mut results = Vec::new();
                while !done.load(std::sync::atomic::Ordering::SeqCst) {
                    let start = Instant::now();
                    let result = match client.get(&url).send().await {
                        Ok(r) if r.status().is_success() => match r.bytes().await {
                            Ok(_) => Ok(start.elapsed()),
                            Err(e) => Err(e.to_string()),
                        },
                        Ok(r) => Err(format!("status {}", r.status())),
                        Err(e) => Err(e.to_string()),
                    };
                    results.push(result);
                }
                results
            })
        })
        .collect();
    let mut all = Vec::new();
    for each in loops {
        all.extend(each.await.unwrap());
    }
    all
}

/// A stopping instance is out of routing from its stop until it is gone, and never comes back:
/// with instances that drain for 3 s after SIGTERM, no request waits on one (a request routed to
/// an instance that has exited waits out the connect timeout, 2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_and_scale_down_under_load_never_stall() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("health_interval: 1s\n").await;
    let faaso = Faaso::in_dir(gateway.dir.path());
    let name = funko_with(
        &docker,
        &cleanup,
        "drain",
        "ENV TESTFUNKO_VERSION=1 TESTFUNKO_DRAIN_MS=3000",
    )
    .await;
    let tag = format!("faaso-{name}:latest");
    faaso.ok(&["up", &name, "--scale", "2"]);
    running(&docker, &cleanup, &name).await;
    let url = format!("{}/funko/{name}/version", gateway.url);
    wait_for_status(&url, 200, Duration::from_secs(10)).await;
    testfunko::variant(
        &docker,
        &tag,
        "ENV TESTFUNKO_VERSION=2 TESTFUNKO_DRAIN_MS=3000",
    )
    .await;

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn(load_until(url.clone(), 16, Arc::clone(&done)));
    let steps = tokio::task::spawn_blocking({
        let faaso = Faaso::in_dir(gateway.dir.path());
        let name = name.clone();
        move || {
            let deployed = faaso.ok(&["deploy", &name]);
            let scaled = faaso.ok(&["scale", &name, "1"]);
            // The last stopped instance has exited; requests go on a little longer.
            std::thread::sleep(Duration::from_secs(1));
            (deployed, scaled)
        }
    })
    .await
    .unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let results = load.await.unwrap();
    running(&docker, &cleanup, &name).await;
    assert!(steps.0.contains("2 instances replaced"), "{}", steps.0);

    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    let mut latencies: Vec<Duration> = results.iter().filter_map(|r| r.clone().ok()).collect();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    let slowest = latencies.last().copied().unwrap_or_default();
    let over_second = latencies
        .iter()
        .filter(|l| **l >= Duration::from_secs(1))
        .count();
    println!(
        "deploy and scale-down under load (16 connections, 3 s drain): {} requests, {} failed, \
         p99 {p99:?}, slowest {slowest:?}, {over_second} over 1 s",
        results.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "failures: {failed:?}");
    assert!(results.len() >= 1000, "only {} requests", results.len());
    assert!(p99 < Duration::from_millis(100), "p99 {p99:?}");
    assert_eq!(
        over_second, 0,
        "requests that waited on a gone instance (slowest {slowest:?})"
    );
}

#[tokio::test]
async fn a_release_that_fails_ping_is_rolled_back() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("").await;
    let faaso = Faaso::in_dir(gateway.dir.path());
    let name = funko(&docker, &cleanup, "rollback").await;
    faaso.ok(&["up", &name, "--scale", "2"]);
    running(&docker, &cleanup, &name).await;
    let before: Vec<String> = faaso::engine::docker::list_instances(&docker, &name)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect();

    testfunko::variant(
        &docker,
        &format!("faaso-{name}:latest"),
        "ENV TESTFUNKO_VERSION=2 TESTFUNKO_PING_STATUS=500",
    )
    .await;
    let out = faaso.run(&["deploy", &name, "--timeout", "3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert!(
        error.contains("did not become ready") && error.contains("/ping answered 500"),
        "{error}"
    );
    assert!(
        error.contains("listening on 0.0.0.0:3000"),
        "the new instance's log lines: {error}"
    );

    // `latest` is back on the image that serves: the next scale starts a working instance.
    let latest = docker
        .inspect_image(&format!("faaso-{name}:latest"))
        .await
        .unwrap()
        .id;
    let serving = docker
        .inspect_container(&before[0], None)
        .await
        .unwrap()
        .image;
    assert_eq!(latest, serving, "latest points at the release that serves");
    assert!(stderr.contains("which serves"), "{stderr}");

    let after: Vec<String> = faaso::engine::docker::list_instances(&docker, &name)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|c| c.id)
        .collect();
    assert_eq!(after, before, "the old instances, and only they, are left");
    let url = format!("{}/funko/{name}/version", gateway.url);
    assert_eq!(
        wait_for_status(&url, 200, Duration::from_secs(5)).await,
        "1"
    );
    faaso.ok(&["scale", &name, "3"]);
    assert_eq!(running(&docker, &cleanup, &name).await, 3);
}

/// `up` (and `scale`) wait until a new instance is ready: one that crashes at start, which
/// the restart policy turns into a loop, fails the command at once with its last log lines, and
/// is removed.
#[tokio::test]
async fn up_fails_for_an_instance_that_crashes_at_start() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let dir = tempfile::tempdir().unwrap();
    let faaso = Faaso::in_dir(dir.path());
    let name = funko_with(&docker, &cleanup, "crash", "ENV TESTFUNKO_EXIT_CODE=3").await;
    let started = Instant::now();
    let out = faaso.run(&["up", &name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("did not become ready: it exited with code 3"),
        "{stderr}"
    );
    assert!(
        errors[0].contains("testfunko: exiting with code 3 as asked"),
        "its log lines: {stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "failed at once, not at the timeout: {:?}",
        started.elapsed()
    );
    let left = faaso::engine::docker::list_instances(&docker, &name)
        .await
        .unwrap();
    assert!(left.is_empty(), "no container left: {left:?}");
    let shown = faaso.ok(&["scale", &name]);
    assert!(shown.contains("0 running"), "{shown}");

    // One that runs but never answers /ping fails at the --timeout.
    let tag = format!("faaso-{name}:latest");
    testfunko::variant(&docker, &tag, "ENV TESTFUNKO_PING_STATUS=500").await;
    let started = Instant::now();
    let out = faaso.run(&["scale", &name, "1", "--timeout", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("GET /ping: /ping answered 500 (after 2s)"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let left = faaso::engine::docker::list_instances(&docker, &name)
        .await
        .unwrap();
    assert!(left.is_empty(), "no container left: {left:?}");
}

/// `rollback` puts the earlier release back on `latest` and rolls it out with no failed request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_puts_the_previous_release_back_under_load() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("health_interval: 1s\n").await;
    let faaso = Faaso::in_dir(gateway.dir.path());
    let name = unique_name("rollback");
    let repo = format!("faaso-{name}");
    // Two releases, as two builds would tag them.
    for (version, stamp) in [(1, "1700000001"), (2, "1700000002")] {
        let tag = format!("{repo}:{stamp}");
        testfunko::variant(&docker, &tag, &format!("ENV TESTFUNKO_VERSION={version}")).await;
        cleanup.image(tag.clone());
        faaso::engine::docker::tag_image(&docker, &tag, &repo, "latest")
            .await
            .unwrap();
    }
    cleanup.image(format!("{repo}:latest"));
    faaso.ok(&["up", &name, "--scale", "2"]);
    running(&docker, &cleanup, &name).await;
    let url = format!("{}/funko/{name}/version", gateway.url);
    assert_eq!(
        wait_for_status(&url, 200, Duration::from_secs(10)).await,
        "2"
    );

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = tokio::spawn(load_until(url.clone(), 4, Arc::clone(&done)));
    let rolled = tokio::task::spawn_blocking({
        let faaso = Faaso::in_dir(gateway.dir.path());
        let name = name.clone();
        move || faaso.ok(&["rollback", &name])
    })
    .await
    .unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let results = load.await.unwrap();
    running(&docker, &cleanup, &name).await;
    assert_eq!(
        rolled.trim(),
        format!(
            "{name}: rolled back to {repo}:1700000001, 2 instances replaced, 0 already current"
        )
    );
    let failed: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    println!(
        "rollback under load: {} requests, {} failed",
        results.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "failures: {failed:?}");
    assert!(results.len() >= 200, "only {} requests", results.len());
    for _ in 0..10 {
        assert_eq!(
            wait_for_status(&url, 200, Duration::from_secs(5)).await,
            "1"
        );
    }
    let latest = docker
        .inspect_image(&format!("{repo}:latest"))
        .await
        .unwrap()
        .id;
    let first = docker
        .inspect_image(&format!("{repo}:1700000001"))
        .await
        .unwrap()
        .id;
    assert_eq!(latest, first);
    // Nothing older to go back to.
    let out = faaso.run(&["rollback", &name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("has no release older than the one that serves"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_gateway_restores_saved_scales() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let faaso = Faaso::in_dir(dir.path());
    let name = funko(&docker, &cleanup, "restore").await;
    faaso.ok(&["scale", &name, "2"]);
    // Everything is gone, as after a host reboot without restart policies.
    for container in faaso::engine::docker::list_instances(&docker, &name)
        .await
        .unwrap()
    {
        faaso::engine::docker::remove_container(&docker, container.id.as_deref().unwrap())
            .await
            .unwrap();
    }
    assert_eq!(running(&docker, &cleanup, &name).await, 0);
    // A corrupt state file beside it (sorted first) must not stop the restore.
    let broken = format!("aaa_{}", unique_name("broken"));
    std::fs::write(
        dir.path().join(format!("state/funkos/{broken}.yml")),
        "scale: [not a number\n",
    )
    .unwrap();

    let gateway = GatewayProcess::start_in(Arc::clone(&dir), "").await;
    let start = Instant::now();
    while running(&docker, &cleanup, &name).await < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not restored:\n{}",
            gateway.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "restored 2 instances {:?} after the gateway started",
        start.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(running(&docker, &cleanup, &name).await, 2);
    let log = gateway.log();
    assert!(
        log.contains(&format!(
            "{broken}: not restored, its saved state is unreadable"
        )),
        "{log}"
    );
    // status works, and says what it could not read.
    let status = faaso.ok(&["status", "--local"]);
    assert!(status.contains(&name), "{status}");
    assert!(
        status.contains(&format!("{broken}  scale -")) && status.contains("saved scale unreadable"),
        "{status}"
    );
    wait_for_status(
        &format!("{}/funko/{name}/ping", gateway.url),
        200,
        Duration::from_secs(10),
    )
    .await;
}

#[tokio::test]
async fn secrets_reach_running_instances_and_are_never_shown() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("").await;
    let faaso = Faaso::in_dir(gateway.dir.path());
    let name = funko(&docker, &cleanup, "secret").await;
    faaso.ok(&["up", &name]);
    running(&docker, &cleanup, &name).await;
    wait_for_status(
        &format!("{}/funko/{name}/ping", gateway.url),
        200,
        Duration::from_secs(10),
    )
    .await;

    // Added after the instance started: visible at once through the mounted folder.
    let mut add = faaso.command();
    add.args(["secret", "add", &name, "db_password"])
        .stdin(std::process::Stdio::piped());
    let mut child = add.stdout(std::process::Stdio::piped()).spawn().unwrap();
    std::io::Write::write_all(child.stdin.as_mut().unwrap(), b"hunter2\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("hunter2"));
    let url = format!(
        "{}/funko/{name}/file?path=/secrets/db_password",
        gateway.url
    );
    assert_eq!(
        wait_for_status(&url, 200, Duration::from_secs(5)).await,
        "hunter2"
    );

    let from_file = gateway.dir.path().join("token.txt");
    std::fs::write(&from_file, "tok").unwrap();
    faaso.ok(&[
        "secret",
        "add",
        &name,
        "api_token",
        "--from-file",
        from_file.to_str().unwrap(),
    ]);
    let listed = faaso.ok(&["secret", "list", &name]);
    assert_eq!(listed, format!("{name}\tapi_token\n{name}\tdb_password\n"));
    assert!(!listed.contains("hunter2") && !listed.contains("tok\n"));
    faaso.ok(&["secret", "rm", &name, "db_password"]);
    let gone = client().get(&url).send().await.unwrap();
    assert_eq!(gone.status().as_u16(), 404);
}

#[tokio::test]
async fn status_json_follows_the_documented_schema_and_logs_merge_instances() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let dir = tempfile::tempdir().unwrap();
    let faaso = Faaso::in_dir(dir.path());
    let name = funko(&docker, &cleanup, "status").await;
    faaso.ok(&["up", &name, "--scale", "2"]);
    running(&docker, &cleanup, &name).await;

    let status: serde_json::Value =
        serde_json::from_str(&faaso.ok(&["status", "--json", &name])).unwrap();
    let funko = &status[0];
    assert_eq!(funko["name"], name.as_str());
    assert_eq!(funko["scale"], 2);
    assert_eq!(funko["running"], 2);
    for instance in funko["instances"].as_array().unwrap() {
        assert!(
            instance["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("faaso-{name}-"))
        );
        assert_eq!(instance["id"].as_str().unwrap().len(), 12);
        assert_eq!(instance["state"], "running");
        assert!(instance["health"].is_null());
        assert_eq!(instance["current"], true);
        assert!(instance["created"].as_i64().unwrap() > 1_700_000_000);
        assert!(instance["age_seconds"].as_i64().unwrap() >= 0);
        assert!(instance["ip"].as_str().unwrap().contains('.'));
        assert_eq!(instance.as_object().unwrap().len(), 8, "{instance}");
    }
    let image = &funko["images"][0];
    assert_eq!(image["tags"][0], format!("faaso-{name}:latest"));
    assert_eq!(image["latest"], true);
    assert!(image["created"].as_i64().is_some() && image["id"].as_str().is_some());
    assert_eq!(funko.as_object().unwrap().len(), 5, "{funko}");

    let table = faaso.ok(&["status", &name]);
    assert!(
        table.starts_with(&format!("{name}  scale 2, 2 running\n")),
        "{table}"
    );
    assert!(
        table.contains("INSTANCE") && table.contains("current"),
        "{table}"
    );

    let logs = faaso.ok(&["logs", &name]);
    let prefixes: std::collections::HashSet<&str> = logs
        .lines()
        .filter(|l| l.ends_with("testfunko: listening on 0.0.0.0:3000"))
        .filter_map(|l| l.split(" | ").next())
        .collect();
    assert_eq!(prefixes.len(), 2, "lines from both instances:\n{logs}");
}

#[tokio::test]
async fn bad_input_changes_nothing() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let dir = tempfile::tempdir().unwrap();
    let faaso = Faaso::in_dir(dir.path());
    let name = funko(&docker, &cleanup, "badin").await;
    faaso.ok(&["up", &name]);
    assert_eq!(running(&docker, &cleanup, &name).await, 1);

    let expect = |args: &[&str], code: i32, text: &str| {
        let out = faaso.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "faaso {args:?}: {stderr}");
        assert!(
            stderr.contains(text),
            "faaso {args:?}: {text:?} not in {stderr}"
        );
    };
    let unknown = unique_name("nosuch");
    expect(
        &["scale", &unknown, "2"],
        1,
        &format!("funko {unknown} has no image faaso-{unknown}:latest"),
    );
    expect(
        &["scale", &unknown],
        1,
        &format!("funko {unknown} does not exist"),
    );
    expect(
        &["deploy", &unknown],
        1,
        &format!("funko {unknown} has no image"),
    );
    expect(&["scale", &name, "-1"], 2, "unexpected argument '-1'");
    expect(&["scale", &name, "many"], 2, "invalid value 'many'");
    expect(
        &["secret", "add", &name, "../escape"],
        1,
        "invalid secret name \"../escape\"",
    );
    expect(
        &["secret", "add", &unknown, "token"],
        1,
        &format!("funko {unknown} does not exist (no image, no containers); nothing stored"),
    );
    expect(
        &["secret", "add", &name, "empty"],
        1,
        "the value of secret empty is empty (nothing on stdin?); nothing stored",
    );
    expect(&["purge", &name], 1, "refusing to purge");
    expect(&["status", "Bad-Name"], 1, "invalid funko name");
    assert_eq!(
        running(&docker, &cleanup, &name).await,
        1,
        "nothing changed"
    );
    assert!(!dir.path().join("secrets").join("escape").exists());
    assert!(!dir.path().join("secrets").join(&unknown).exists());
    assert!(
        !dir.path()
            .join("secrets")
            .join(&name)
            .join("empty")
            .exists()
    );
    faaso.ok(&["purge", "--yes", &name]);
    assert_eq!(running(&docker, &cleanup, &name).await, 0);
    assert!(
        docker
            .inspect_image(&format!("faaso-{name}:latest"))
            .await
            .is_err(),
        "image removed"
    );
}

/// An image that says it listens elsewhere (`LABEL faaso.port=8080`) is probed there: `up` and
/// `deploy` wait for `GET /ping` on the labelled port, and the gateway routes to it.
#[tokio::test]
async fn deploy_probes_the_labelled_port() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("").await;
    let faaso = Faaso::in_dir(gateway.dir.path());
    let name = unique_name("port");
    let tag = format!("faaso-{name}:latest");
    testfunko::variant(
        &docker,
        &tag,
        "ENV PORT=8080 TESTFUNKO_VERSION=1\nLABEL faaso.port=8080",
    )
    .await;
    cleanup.image(tag.clone());
    faaso.ok(&["up", &name]);
    running(&docker, &cleanup, &name).await;
    let url = format!("{}/funko/{name}/version", gateway.url);
    assert_eq!(
        wait_for_status(&url, 200, Duration::from_secs(10)).await,
        "1"
    );
    testfunko::variant(
        &docker,
        &tag,
        "ENV PORT=8080 TESTFUNKO_VERSION=2\nLABEL faaso.port=8080",
    )
    .await;
    let deployed = faaso.ok(&["deploy", &name, "--timeout", "20"]);
    assert!(deployed.contains("1 instance replaced"), "{deployed}");
    running(&docker, &cleanup, &name).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while client()
        .get(&url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        != "2"
    {
        assert!(Instant::now() < deadline, "the new release is not routed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A new instance gets no traffic until it passes its first `/ping` while a proven one serves:
/// one that listens but fails `/ping` is never routed to.
#[tokio::test]
async fn a_new_instance_waits_for_its_first_passed_check() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("unproven");
    let old = faaso_tests::docker::start_instance(&docker, &cleanup, &funko, &[]).await;
    let gateway = GatewayProcess::start("").await;
    let url = format!("{}/funko/{funko}/whoami", gateway.url);
    let old_host = wait_for_status(&url, 200, Duration::from_secs(10)).await;
    let new = faaso_tests::docker::start_instance(
        &docker,
        &cleanup,
        &funko,
        &["TESTFUNKO_PING_STATUS=503"],
    )
    .await;
    let client = client();
    let mut answers = std::collections::HashMap::<String, usize>::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let host = client.get(&url).send().await.unwrap().text().await.unwrap();
        *answers.entry(host).or_default() += 1;
    }
    println!("{old} and {new} (failing /ping): {answers:?}");
    assert_eq!(
        answers.len(),
        1,
        "the unproven instance got traffic: {answers:?}"
    );
    assert!(answers.contains_key(&old_host));
}

/// A funko's image removed (as `purge` does) is noticed from Docker's image events: the gateway
/// answers 404 at once, not after its next resync (an hour away here).
#[tokio::test]
async fn a_removed_image_is_noticed_at_once() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("resync_interval: 1h\n").await;
    let name = funko(&docker, &cleanup, "imgevent").await;
    let url = format!("{}/funko/{name}/version", gateway.url);
    // Known by its image, with no instance; the event of the tag made it known.
    wait_for_status(&url, 503, Duration::from_secs(5)).await;
    faaso::engine::docker::remove_image(&docker, &format!("faaso-{name}:latest"))
        .await
        .unwrap();
    let removed = Instant::now();
    wait_for_status(&url, 404, Duration::from_secs(3)).await;
    println!("404 after the image's removal: {:?}", removed.elapsed());
}

/// A user of the machine that may use Docker but is not root (the usual setup): created once.
fn docker_user() -> Option<String> {
    const USER: &str = "faaso-tester";
    let exists = |name: &str| {
        std::process::Command::new("id")
            .arg(name)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !exists(USER) {
        if !faaso::store::files::is_root() {
            return None;
        }
        let made = std::process::Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .args(["--groups", "docker", USER])
            .status()
            .expect("useradd can be run");
        assert!(
            made.success() || exists(USER),
            "useradd {USER} failed: {made}"
        );
    }
    Some(USER.to_string())
}

/// Secrets reach a funko that runs as another user when the CLI runs as a normal user in the
/// `docker` group: added before the image existed, before `up`, and while it runs (new and
/// replaced values at once). Files stay 0600, readable by the funko's user only.
#[tokio::test]
async fn secrets_reach_the_funkos_user_when_the_cli_is_not_root() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let docker = require_docker!();
    let Some(user) = docker_user() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "under CI the tests run as root and can make a Docker user"
        );
        faaso_tests::skip::skip(
            module_path!(),
            "not root: cannot make a non-root Docker user",
        );
        return;
    };
    let cleanup = Cleanup::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let chown = std::process::Command::new("chown")
        .args([&format!("{user}:{user}"), &dir.path().display().to_string()])
        .status()
        .unwrap();
    assert!(chown.success());
    let mut faaso = Faaso::in_dir(dir.path());
    faaso.user = Some(user.clone());
    let name = unique_name("nonroot");
    let add = |secret: &str, value: &str, extra: &[&str]| {
        let mut command = faaso.command();
        command
            .args(["secret", "add"])
            .args(extra)
            .args([name.as_str(), secret])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = command.spawn().unwrap();
        std::io::Write::write_all(child.stdin.as_mut().unwrap(), value.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "secret add {secret}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    // Before the funko has an image: stored as a file of the CLI's user, handed over at `up`.
    add("early", "one", &["--force"]);
    let tag = format!("faaso-{name}:latest");
    testfunko::variant(&docker, &tag, "USER 65534:65534").await;
    cleanup.image(tag);
    add("token", "two", &[]);
    faaso.ok(&["up", &name]);
    running(&docker, &cleanup, &name).await;
    let container = faaso::engine::docker::list_instances(&docker, &name)
        .await
        .unwrap()[0]
        .id
        .clone()
        .unwrap();
    let ip =
        faaso_tests::docker::ip_on_network(&docker, &container, faaso::conventions::NETWORK).await;
    let read = |secret: &str| format!("http://{ip}:3000/file?path=/secrets/{secret}");
    assert_eq!(
        wait_for_status(&read("early"), 200, Duration::from_secs(10)).await,
        "one"
    );
    assert_eq!(
        wait_for_status(&read("token"), 200, Duration::from_secs(5)).await,
        "two"
    );
    // While it runs: a new secret and a replaced value are there at once.
    add("late", "three", &[]);
    add("token", "four", &[]);
    assert_eq!(
        wait_for_status(&read("late"), 200, Duration::from_secs(5)).await,
        "three"
    );
    assert_eq!(
        wait_for_status(&read("token"), 200, Duration::from_secs(5)).await,
        "four"
    );

    let folder = dir.path().join("secrets").join(&name);
    let meta = std::fs::metadata(&folder).unwrap();
    assert_eq!(
        meta.mode() & 0o777,
        0o711,
        "the funko may pass through, not list"
    );
    for secret in ["early", "token", "late"] {
        let meta = std::fs::metadata(folder.join(secret)).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600, "{secret}");
        assert_eq!(meta.uid(), 65534, "{secret} belongs to the funko's user");
    }
    let names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 3, "no file left half-way: {names:?}");
    assert_eq!(
        faaso.ok(&["secret", "list", &name]),
        format!("{name}\tearly\n{name}\tlate\n{name}\ttoken\n")
    );
    faaso.ok(&["secret", "rm", &name, "late"]);
    wait_for_status(&read("late"), 404, Duration::from_secs(5)).await;
    faaso.ok(&["down", &name]);
}

/// Old releases are pruned, on demand and after every build, keeping the newest, `:latest` and
/// what runs; two builds never share a release tag.
#[tokio::test]
async fn old_releases_are_pruned_and_never_share_a_tag() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let dir = tempfile::tempdir().unwrap();
    let faaso = Faaso::in_dir(dir.path());
    let name = unique_name("prune");
    let repo = format!("faaso-{name}");
    for n in 1..=7 {
        let tag = format!("{repo}:170000000{n}");
        testfunko::variant(&docker, &tag, &format!("ENV TESTFUNKO_VERSION={n}")).await;
        cleanup.image(tag);
    }
    cleanup.image(format!("{repo}:latest"));
    // Release 2 runs; latest is release 7.
    faaso::engine::docker::tag_image(&docker, &format!("{repo}:1700000002"), &repo, "latest")
        .await
        .unwrap();
    faaso.ok(&["up", &name]);
    running(&docker, &cleanup, &name).await;
    faaso::engine::docker::tag_image(&docker, &format!("{repo}:1700000007"), &repo, "latest")
        .await
        .unwrap();
    let tags = || async {
        let mut tags: Vec<String> = faaso::engine::docker::list_images(&docker, &name)
            .await
            .unwrap()
            .into_iter()
            .flat_map(|i| i.repo_tags)
            .filter_map(|t| t.strip_prefix(&format!("{repo}:")).map(str::to_string))
            .filter(|t| t != "latest")
            .collect();
        tags.sort();
        tags
    };
    assert_eq!(
        faaso.ok(&["prune", &name, "--keep", "3"]).trim(),
        format!("{name}: 3 old releases removed")
    );
    assert_eq!(
        tags().await,
        ["1700000002", "1700000005", "1700000006", "1700000007"]
    );

    // A build prunes too (here down to 2), and takes a tag no other image has: the next
    // seconds' tags are taken by another image already.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for second in now..now + 20 {
        faaso::engine::docker::tag_image(
            &docker,
            &format!("{repo}:1700000005"),
            &repo,
            &second.to_string(),
        )
        .await
        .unwrap();
        cleanup.image(format!("{repo}:{second}"));
    }
    let out = faaso.ok(&[
        "new",
        "-r",
        "binary",
        dir.path().join(&name).to_str().unwrap(),
    ]);
    drop(out);
    std::fs::copy(
        testfunko::build_executable(),
        dir.path().join(&name).join("funko"),
    )
    .unwrap();
    let mut build = faaso.command();
    build
        .env("FAASO_KEEP_RELEASES", "2")
        .args(["build", dir.path().join(&name).to_str().unwrap()]);
    let out = build.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let built = String::from_utf8_lossy(&out.stdout);
    let stamp: u64 = built
        .trim()
        .rsplit(':')
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{built}"));
    cleanup.image(format!("{repo}:{stamp}"));
    assert!(
        stamp >= now + 20,
        "tag {stamp} is one another image had (from {now})"
    );
    let left = tags().await;
    // The newest two (the build and the last of the taken seconds, one image with release 5),
    // and release 2, which runs.
    assert_eq!(
        left,
        [
            "1700000002".to_string(),
            (now + 19).to_string(),
            stamp.to_string(),
        ],
        "{left:?}"
    );
}

/// The gateway keeps funkos at their saved scale: an instance removed by hand is replaced; a
/// funko that cannot come up is retried with a backoff, and `status` says why it is short.
#[tokio::test]
async fn the_gateway_brings_funkos_back_to_their_scale() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("").await;
    let faaso = Faaso::in_dir(gateway.dir.path());
    let name = funko(&docker, &cleanup, "reconcile").await;
    faaso.ok(&["scale", &name, "2"]);
    assert_eq!(running(&docker, &cleanup, &name).await, 2);
    let victim = faaso::engine::docker::list_instances(&docker, &name)
        .await
        .unwrap()[0]
        .id
        .clone()
        .unwrap();
    faaso::engine::docker::remove_container(&docker, &victim)
        .await
        .unwrap();
    let removed = Instant::now();
    wait_until("a replacement", Duration::from_secs(30), || async {
        running(&docker, &cleanup, &name).await == 2
    })
    .await;
    println!("replaced after {:?}", removed.elapsed());

    // A release that crashes at start: the instance that goes is not replaced, and says why.
    testfunko::variant(
        &docker,
        &format!("faaso-{name}:latest"),
        "ENV TESTFUNKO_EXIT_CODE=3",
    )
    .await;
    for container in faaso::engine::docker::list_instances(&docker, &name)
        .await
        .unwrap()
    {
        faaso::engine::docker::remove_container(&docker, container.id.as_deref().unwrap())
            .await
            .unwrap();
    }
    let status = || {
        serde_json::from_str::<serde_json::Value>(&faaso.ok(&["status", "--json", &name])).unwrap()
    };
    wait_until(
        "the problem to be shown",
        Duration::from_secs(30),
        || async { status()[0]["problem"].is_string() },
    )
    .await;
    let problem = status()[0]["problem"].as_str().unwrap().to_string();
    assert!(
        problem.starts_with("0 of 2 running; starting more failed"),
        "{problem}"
    );
    assert!(problem.contains("exited with code 3"), "{problem}");
    assert!(
        faaso
            .ok(&["status", &name])
            .contains("warning: not at its scale: 0 of 2 running")
    );
    assert_eq!(
        running(&docker, &cleanup, &name).await,
        0,
        "no broken instance left"
    );
    // Fixed by hand: the problem goes.
    testfunko::variant(
        &docker,
        &format!("faaso-{name}:latest"),
        "ENV TESTFUNKO_VERSION=2",
    )
    .await;
    faaso.ok(&["scale", &name, "1"]);
    assert!(status()[0]["problem"].is_null());
    faaso.ok(&["down", &name]);
}

/// Finishes a scale to zero that holds the funko's `lock` while `waiting` waits for it:
/// checks that it waits, removes every instance, saves the scale 0, then lets the lock go.
async fn finish_a_scale_down<T>(
    docker: &Docker,
    lifecycle: &faaso::engine::Lifecycle,
    name: &str,
    lock: faaso::store::state::FunkoLock,
    waiting: &tokio::task::JoinHandle<T>,
) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!waiting.is_finished(), "it did not wait for the lock");
    for container in faaso::engine::docker::list_instances(docker, name)
        .await
        .unwrap()
    {
        faaso::engine::docker::remove_container(docker, container.id.as_deref().unwrap())
            .await
            .unwrap();
    }
    lifecycle
        .state
        .save(name, faaso::store::state::FunkoState { scale: 0 })
        .unwrap();
    drop(lock);
}

/// The gateway's top-up (`grow: false`) or its autoscaler's step up to two instances
/// (`grow: true`); whether it started any.
async fn step_up(
    lifecycle: &faaso::engine::Lifecycle,
    name: &str,
    grow: bool,
) -> Result<bool, faaso::engine::LifecycleError> {
    let mut quiet = |_: String| {};
    match grow {
        true => Ok(lifecycle.grow(name, 2, &mut quiet).await?.is_some()),
        false => Ok(lifecycle.top_up(name, &mut quiet).await?.is_some()),
    }
}

/// The gateway's top-up and its autoscaler's step up decide under the funko's lock: a
/// `scale 0` that holds the lock while they wait for it is not undone by a saved scale read
/// before it finished.
#[tokio::test]
async fn a_scale_up_waiting_for_the_lock_does_not_undo_a_scale_down() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let dir = tempfile::tempdir().unwrap();
    let name = funko(&docker, &cleanup, "topup").await;
    let mut lifecycle = faaso::engine::Lifecycle::new(
        docker.clone(),
        faaso::store::state::StateDir::new(dir.path().join("state")),
        faaso::store::secrets::SecretsDir::new(dir.path().join("secrets")),
    );
    lifecycle.lock_timeout = Duration::from_secs(30);
    let lifecycle = Arc::new(lifecycle);
    let save = |scale| {
        let state = faaso::store::state::FunkoState { scale };
        lifecycle.state.save(&name, state).unwrap()
    };
    for grow in [false, true] {
        // One instance where two are saved: what the gateway's checks would step up.
        lifecycle.scale(&name, 1, &mut |_| {}).await.unwrap();
        save(2);
        // A scale to zero holds the lock while the step up waits for it.
        let held = lifecycle
            .state
            .lock(&name, Duration::from_secs(5))
            .await
            .unwrap();
        let waiting = {
            let (lifecycle, name) = (Arc::clone(&lifecycle), name.clone());
            tokio::spawn(async move { step_up(&lifecycle, &name, grow).await })
        };
        finish_a_scale_down(&docker, &lifecycle, &name, held, &waiting).await;
        let started = waiting.await.unwrap().unwrap();
        assert!(!started, "the step up (grow: {grow}) started instances");
        assert_eq!(running(&docker, &cleanup, &name).await, 0);
        assert_eq!(lifecycle.state.load(&name).unwrap().unwrap().scale, 0);
        // Without the scale down, the same step up starts what is missing.
        save(1);
        assert!(step_up(&lifecycle, &name, grow).await.unwrap());
        let expected = if grow { 2 } else { 1 };
        assert_eq!(running(&docker, &cleanup, &name).await, expected);
    }
}
