//! Swarm mode end to end: a single-node swarm, the gateway deployed with `conf/faaso-stack.yml`
//! as a service on the overlay network (its image built from this build's binary), and a funko
//! as a service: replicas routed, scaled, deployed under load, a secret, a killed replica.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use faaso_tests::cli::Faaso;
use faaso_tests::docker::Cleanup;
use faaso_tests::gateway::free_port;
use faaso_tests::http::{client, wait_for_status};
use faaso_tests::swarm::{Swarm, docker, docker_with_env};
use faaso_tests::{require_docker, testfunko, unique_name};

const PASSWORD: &str = "swarm-test-password";

/// Removes the stack, the funko's service, its secrets and the network when dropped.
struct StackGuard {
    stack: String,
    funko: String,
    network: String,
}

impl Drop for StackGuard {
    fn drop(&mut self) {
        let run = |args: &[&str]| {
            let _ = std::process::Command::new("docker").args(args).output();
        };
        run(&["stack", "rm", &self.stack]);
        run(&["service", "rm", &format!("faaso-{}", self.funko)]);
        run(&["service", "rm", &format!("faaso-{}-canary", self.funko)]);
        let secrets = std::process::Command::new("docker")
            .args([
                "secret",
                "ls",
                "-q",
                "--filter",
                &format!("label=faaso.funko={}", self.funko),
            ])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        for id in secrets.split_whitespace() {
            run(&["secret", "rm", id]);
        }
        // The network goes once the services' tasks have left it.
        for _ in 0..40 {
            let out = std::process::Command::new("docker")
                .args(["network", "rm", &self.network])
                .output();
            if out.is_ok_and(|o| o.status.success()) {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

/// The `/whoami` answers (task hostnames) of `n` requests.
async fn hosts(url: &str, n: usize) -> BTreeSet<String> {
    let http = client();
    let mut hosts = BTreeSet::new();
    for _ in 0..n {
        let response = http.get(url).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        hosts.insert(response.text().await.unwrap());
    }
    hosts
}

/// The hosts answering 30 requests, asked again until there are `count` of them or 10 s pass.
async fn hosts_until(url: &str, count: usize) -> BTreeSet<String> {
    let started = Instant::now();
    loop {
        let seen = hosts(url, 30).await;
        if seen.len() >= count || started.elapsed() > Duration::from_secs(10) {
            return seen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Keeps `clients` loops of requests to `url` going until `stop`; returns each client's count
/// of requests and the failures (status or error) it saw.
fn load(
    url: &str,
    clients: usize,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(usize, Vec<String>)>> {
    (0..clients)
        .map(|_| {
            let (stop, url, http) = (Arc::clone(stop), url.to_string(), client());
            tokio::spawn(async move {
                let (mut sent, mut failures) = (0, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    sent += 1;
                    match http.get(&url).send().await {
                        Ok(r) if r.status().is_success() => {}
                        Ok(r) => {
                            let status = r.status();
                            failures
                                .push(format!("{status}: {}", r.text().await.unwrap_or_default()))
                        }
                        Err(err) => failures.push(err.to_string()),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (sent, failures)
            })
        })
        .collect()
}

/// Waits for the load to stop and returns (requests, failures).
async fn finish(
    clients: Vec<tokio::task::JoinHandle<(usize, Vec<String>)>>,
) -> (usize, Vec<String>) {
    let (mut sent, mut failures) = (0, Vec::new());
    for client in clients {
        let (n, f) = client.await.unwrap();
        sent += n;
        failures.extend(f);
    }
    (sent, failures)
}

/// The running tasks of a service, as `docker service ps` counts them.
fn running_tasks(service: &str) -> usize {
    docker(&[
        "service",
        "ps",
        service,
        "--filter",
        "desired-state=running",
        "--format",
        "{{.CurrentState}}",
    ])
    .lines()
    .filter(|l| l.starts_with("Running"))
    .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_mode_routes_scales_deploys_and_heals_services() {
    let engine = require_docker!();
    let _swarm = Swarm::join();
    let cleanup = Cleanup::new();
    let name = unique_name("swarmy");
    let service = format!("faaso-{name}");
    let suffix = faaso::conventions::random_suffix();
    let network = format!("faaso-swarm-{suffix}");
    let stack = format!("faasotest{suffix}");
    let _guard = StackGuard {
        stack: stack.clone(),
        funko: name.clone(),
        network: network.clone(),
    };
    faaso::engine::swarm::ensure_overlay(&engine, &network)
        .await
        .unwrap();
    let tag = format!("faaso-{name}:latest");
    testfunko::variant(&engine, &tag, "ENV TESTFUNKO_VERSION=1").await;
    cleanup.image(tag.clone());

    // The gateway, deployed as the README says, on its own port.
    let image = faaso_tests::swarm::gateway_image(&engine).await;
    let hash = faaso_tests::gateway::hash_password(PASSWORD);
    let port = free_port().to_string();
    let admin_port = free_port().to_string();
    let stack_file = faaso_tests::bins::workspace_dir().join("conf/faaso-stack.yml");
    docker_with_env(
        &[
            "stack",
            "deploy",
            "-c",
            stack_file.to_str().unwrap(),
            &stack,
        ],
        &[
            ("FAASO_GATEWAY_IMAGE", &image),
            ("FAASO_PORT", &port),
            ("FAASO_ADMIN_PORT", &admin_port),
            ("FAASO_NETWORK", &network),
            ("FAASO_PASSWORD_HASH", &hash),
        ],
    );
    let url = format!("http://127.0.0.1:{port}");
    // The admin on its own port, as the stack file publishes it.
    let admin = format!("http://127.0.0.1:{admin_port}");
    wait_for_status(&format!("{url}/readyz"), 200, Duration::from_secs(60)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut faaso = Faaso::in_dir(dir.path());
    faaso.env = vec![
        ("FAASO_SERVER".into(), admin.clone()),
        ("FAASO_PASSWORD".into(), PASSWORD.into()),
    ];

    // Two replicas, both reached.
    faaso.ok(&["scale", &name, "2"]);
    assert_eq!(running_tasks(&service), 2);
    let whoami = format!("{url}/funko/{name}/whoami");
    wait_for_status(&whoami, 200, Duration::from_secs(10)).await;
    // Discovery sees a new task within a second of Swarm reporting it running.
    let seen = hosts_until(&whoami, 2).await;
    assert_eq!(seen.len(), 2, "both replicas answer: {seen:?}");

    // Three.
    faaso.ok(&["scale", &name, "3"]);
    let seen = hosts_until(&whoami, 3).await;
    assert_eq!(seen.len(), 3, "three replicas answer: {seen:?}");
    let status = faaso.ok(&["status", &name]);
    assert!(status.contains("3 running"), "{status}");
    // Tasks per node: this engine's hostname, as `docker node ls` names it.
    let hostname = docker(&["info", "--format", "{{.Name}}"]);
    assert!(status.contains("NODE"), "{status}");
    let on_this_node = status
        .lines()
        .filter(|l| l.split_whitespace().last() == Some(hostname.trim()))
        .count();
    assert_eq!(on_this_node, 3, "{status}");

    // The service's logs, from all its tasks.
    let printed = client()
        .get(format!("{url}/funko/{name}/print/2"))
        .send()
        .await
        .unwrap();
    assert_eq!(printed.status().as_u16(), 200);
    let logs = faaso.ok(&["logs", &name]);
    assert!(logs.contains("testfunko line 2 of 2"), "{logs}");

    // A secret: readable by the funko at /secrets/<name>, never returned by the API.
    let mut child = faaso
        .command()
        .args(["secret", "add", &name, "api_key"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"swarm-secret-value")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = client()
        .get(format!("{admin}/admin/api/secrets"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(listed.contains("api_key"), "{listed}");
    assert!(!listed.contains("swarm-secret-value"), "{listed}");
    let read = format!("{url}/funko/{name}/file?path=/secrets/api_key");
    assert_eq!(
        wait_for_status(&read, 200, Duration::from_secs(10)).await,
        "swarm-secret-value"
    );

    // A rolling deploy under load: no request fails.
    testfunko::variant(&engine, &tag, "ENV TESTFUNKO_VERSION=2").await;
    let stop = Arc::new(AtomicBool::new(false));
    let version = format!("{url}/funko/{name}/version");
    let clients = load(&version, 4, &stop);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let deployed = Instant::now();
    let out = faaso.ok(&["deploy", &name]);
    println!("deploy took {:?}: {out}", deployed.elapsed());
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (sent, failures) = finish(clients).await;
    println!(
        "deploy under load: {sent} requests, {} failed",
        failures.len()
    );
    assert!(sent >= 200, "{sent} requests");
    assert_eq!(failures, Vec::<String>::new(), "of {sent} requests");
    let versions: BTreeSet<String> = {
        let http = client();
        let mut versions = BTreeSet::new();
        for _ in 0..20 {
            versions.insert(
                http.get(&version)
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap(),
            );
        }
        versions
    };
    assert_eq!(versions, BTreeSet::from(["2".to_string()]));

    // A release that cannot start: Swarm rolls the update back, `deploy` fails saying so,
    // and the old tasks serve throughout.
    testfunko::variant(&engine, &tag, "ENTRYPOINT [\"/no-such-program\"]").await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&version, 4, &stop);
    let broken = faaso.run(&["deploy", &name, "--timeout", "20"]);
    stop.store(true, Ordering::Relaxed);
    let (sent, failures) = finish(clients).await;
    let stderr = format!(
        "{}{}",
        String::from_utf8_lossy(&broken.stdout),
        String::from_utf8_lossy(&broken.stderr)
    );
    println!(
        "broken deploy under load: {sent} requests, {} failed: {stderr}",
        failures.len()
    );
    assert!(!broken.status.success(), "{stderr}");
    assert!(stderr.contains("rolled the update back"), "{stderr}");
    assert!(
        stderr.contains("no-such-program"),
        "the task's error: {stderr}"
    );
    assert_eq!(failures, Vec::<String>::new(), "of {sent} requests");
    assert!(stderr.contains("is back on image"), "{stderr}");
    assert_eq!(running_tasks(&service), 3);
    assert_eq!(
        client()
            .get(&version)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "2"
    );
    let again = faaso.ok(&["deploy", &name]);
    assert!(
        again.contains("0 instances replaced, 3 already current"),
        "{again}"
    );

    // A canary as a second service, routed the same way: 30 % to version 3, then promoted
    // under load without a failed request.
    testfunko::variant(&engine, &tag, "ENV TESTFUNKO_VERSION=3").await;
    let out = faaso.ok(&["deploy", &name, "--canary", "30"]);
    assert!(out.contains("gets 30 % of requests"), "{out}");
    let canary_service = format!("{service}-canary");
    assert_eq!(running_tasks(&canary_service), 1);
    assert_eq!(
        running_tasks(&service),
        3,
        "the serving replicas are untouched"
    );
    let http = client();
    // Once the gateway routes to the canary's task, 300 requests.
    let started = Instant::now();
    while http
        .get(&version)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
        != "3"
    {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the canary never answered"
        );
    }
    let mut share = 0;
    for _ in 0..300 {
        let answer = http.get(&version).send().await.unwrap();
        assert_eq!(answer.status().as_u16(), 200);
        share += usize::from(answer.text().await.unwrap() == "3");
    }
    println!("swarm canary at 30 %: {share} of 300 requests");
    assert!((45..=135).contains(&share), "{share} of 300 to the canary");
    let status = faaso.ok(&["status", &name]);
    assert!(status.contains("canary: 30 % to image"), "{status}");
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&version, 4, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let out = faaso.ok(&["promote", &name]);
    assert!(out.contains("promoted image"), "{out}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (sent, failures) = finish(clients).await;
    println!(
        "swarm promote under load: {sent} requests, {} failed",
        failures.len()
    );
    assert_eq!(failures, Vec::<String>::new(), "of {sent} requests");
    let left = docker(&[
        "service",
        "ls",
        "-q",
        "--filter",
        &format!("name={canary_service}"),
    ]);
    assert!(left.trim().is_empty(), "the canary service is gone: {left}");
    for _ in 0..20 {
        let answer = http
            .get(&version)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(answer, "3");
    }

    // A replica killed: Swarm replaces it, and the requests meanwhile are served elsewhere.
    let containers = docker(&[
        "ps",
        "-q",
        "--filter",
        &format!("label=com.docker.swarm.service.name={service}"),
    ]);
    let victim = containers
        .split_whitespace()
        .next()
        .expect("a task container");
    let stop = Arc::new(AtomicBool::new(false));
    let clients = load(&whoami, 4, &stop);
    tokio::time::sleep(Duration::from_millis(300)).await;
    docker(&["kill", victim]);
    let killed = Instant::now();
    while running_tasks(&service) < 3 || killed.elapsed() < Duration::from_secs(2) {
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "the killed replica is replaced"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("replica replaced after {:?}", killed.elapsed());
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    let (sent, failures) = finish(clients).await;
    println!(
        "kill under load: {sent} requests, {} failed",
        failures.len()
    );
    assert_eq!(failures, Vec::<String>::new(), "of {sent} requests");
    let seen = hosts_until(&whoami, 3).await;
    assert_eq!(seen.len(), 3, "three replicas again: {seen:?}");

    // Removing the secret: the tasks are rolled over without it, and it is gone from Swarm.
    faaso.ok(&["secret", "rm", &name, "api_key"]);
    assert!(faaso.ok(&["secret", "list", &name]).is_empty());
    let secrets = docker(&[
        "secret",
        "ls",
        "-q",
        "--filter",
        &format!("label=faaso.funko={name}"),
    ]);
    assert!(secrets.trim().is_empty(), "{secrets}");
    let gone = client().get(&read).send().await.unwrap();
    assert_ne!(gone.status().as_u16(), 200, "the secret file is gone");
    faaso.ok(&[
        "secret",
        "add",
        &name,
        "api_key",
        "--force",
        "--from-file",
        "/etc/hostname",
    ]);

    // Purge removes the service and its secrets.
    faaso.ok(&["purge", &name, "--yes"]);
    let left = docker(&[
        "service",
        "ls",
        "-q",
        "--filter",
        &format!("name={service}"),
    ]);
    assert!(left.trim().is_empty(), "{left}");
    let secrets = docker(&[
        "secret",
        "ls",
        "-q",
        "--filter",
        &format!("label=faaso.funko={name}"),
    ]);
    assert!(secrets.trim().is_empty(), "{secrets}");
}
