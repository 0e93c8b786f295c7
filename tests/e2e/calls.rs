//! Async calls and cron triggers with a real engine: a call's answer posted to a callback,
//! retries of a funko that fails and recovers, `async.max_inflight` under a queue, calls that
//! outlive a SIGKILL of the gateway, and a cron trigger that ticks until its funko is purged.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use faaso_tests::cli::Faaso;
use faaso_tests::docker::Cleanup;
use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::client;
use faaso_tests::receiver::Receiver;
use faaso_tests::{require_docker, testfunko, unique_name};
use serde_json::Value;

const PASSWORD: &str = "async calls";

/// The admin password, and callbacks allowed to the test's receivers on loopback.
fn admin_config() -> String {
    format!("password: {PASSWORD}\ncallback_allow: [127.0.0.1/32]\n")
}

/// Sends an async call of `funko` at `path`; gives the call id after checking the 202.
async fn call(gateway: &GatewayProcess, funko: &str, path: &str, callback: Option<&str>) -> String {
    let mut request = client()
        .post(format!("{}/async/funko/{funko}/{path}", gateway.url))
        .body("hello");
    if let Some(url) = callback {
        request = request.header("X-Callback-Url", url);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let header = response.headers()["x-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["call_id"], header.as_str());
    header
}

/// The call ids whose callbacks arrived.
fn called_back(received: &[faaso_tests::receiver::Received]) -> HashSet<String> {
    received
        .iter()
        .map(|r| r.headers["x-call-id"].clone())
        .collect()
}

/// A call's record from the admin API.
async fn record(gateway: &GatewayProcess, id: &str) -> Value {
    client()
        .get(format!("{}/admin/api/calls/{id}", gateway.url))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until call `id` is final (and its callback settled), and gives its record.
async fn settled(gateway: &GatewayProcess, id: &str, limit: Duration) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let record = record(gateway, id).await;
        let final_state = matches!(record["state"].as_str(), Some("done" | "failed"));
        let callback_settled = record["callback"].as_str() != Some("pending");
        if (final_state && callback_settled) || Instant::now() >= deadline {
            return record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_answer_reaches_its_callback_and_its_record() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start(&admin_config()).await;
    let funko = unique_name("later");
    gateway
        .serve_variant(&docker, &cleanup, &funko, "ENV TESTFUNKO_VERSION=1")
        .await;
    let receiver = Receiver::start(0).await;
    let callback = format!("{}/done?x=1", receiver.url);
    let id = call(&gateway, &funko, "echo?q=1", Some(&callback)).await;
    let received = receiver.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(received.len(), 1, "one callback");
    let delivered = &received[0];
    assert_eq!(delivered.method, "POST");
    assert_eq!(delivered.path, "/done?x=1");
    assert_eq!(delivered.headers["x-call-id"], id);
    assert_eq!(delivered.headers["x-function-status"], "200");
    assert_eq!(delivered.headers["x-function-name"], funko);
    assert_eq!(delivered.headers["content-type"], "application/json");
    // The funko's answer, as is: it saw the call like a proxied request, with its id.
    let echo: Value = serde_json::from_slice(&delivered.body).unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/echo");
    assert_eq!(echo["body"], "hello");
    let headers = faaso_tests::http::echoed_headers(&echo);
    assert_eq!(headers["x-call-id"], id);
    assert_eq!(headers["x-forwarded-prefix"], format!("/funko/{funko}"));
    assert!(!headers.contains_key("x-callback-url"), "{headers:?}");

    let done = settled(&gateway, &id, Duration::from_secs(10)).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["last_status"], 200);
    assert_eq!(done["callback"], "delivered");
    assert_eq!(done["source"], "http");

    // The OpenFaaS spelling, without a callback.
    let response = client()
        .post(format!("{}/async-function/{funko}/status/204", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let plain = response.headers()["x-call-id"]
        .to_str()
        .unwrap()
        .to_string();
    let plain = settled(&gateway, &plain, Duration::from_secs(10)).await;
    assert_eq!(plain["last_status"], 204, "{plain}");
    assert_eq!(plain["callback"], Value::Null);

    // Bad input gets a 4xx that names what is wrong, and nothing is stored.
    let refused = client()
        .post(format!("{}/async/funko/{funko}/echo", gateway.url))
        .header("X-Callback-Url", "ftp://example.com/x")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    let message: Value = refused.json().await.unwrap();
    assert!(
        message["error"]
            .as_str()
            .unwrap()
            .contains("X-Callback-Url"),
        "{message}"
    );
    let unknown = client()
        .post(format!("{}/async/funko/nosuchfunko/x", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 404);
    let missing = client()
        .get(format!(
            "{}/admin/api/calls/{}",
            gateway.url,
            "0".repeat(32)
        ))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);

    // `faaso calls` lists both, newest first.
    let faaso = Faaso::in_dir(gateway.dir.path());
    let listed = faaso
        .command()
        .env("FAASO_PASSWORD", PASSWORD)
        .args(["calls", &funko, "--server", &gateway.url, "--json"])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed: Vec<Value> = serde_json::from_slice(&listed.stdout).unwrap();
    let ids: Vec<&str> = listed
        .iter()
        .map(|c| c["call_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [plain["call_id"].as_str().unwrap(), id.as_str()]);

    let metrics = gateway.metrics().await;
    let count = |outcome: &str| {
        faaso_tests::prom::value(
            &metrics,
            "faaso_async_calls_total",
            &[("funko", &funko), ("outcome", outcome)],
        )
    };
    assert_eq!(count("accepted"), Some(2.0), "{metrics}");
    assert_eq!(count("done"), Some(2.0), "{metrics}");
    assert_eq!(
        faaso_tests::prom::value(
            &metrics,
            "faaso_callbacks_total",
            &[("outcome", "delivered")]
        ),
        Some(1.0)
    );
}

/// A funko that fails twice then answers: the call is retried with backoff and done; one that
/// always fails is failed after its retries, and its callback still gets the last answer; a
/// callback receiver that fails twice gets the answer on the third delivery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_with_backoff() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start(&admin_config()).await;
    let funko = unique_name("flaky");
    gateway
        .serve_variant(
            &docker,
            &cleanup,
            &funko,
            "LABEL faaso.async.retries=\"3\" faaso.async.backoff=\"200ms\"",
        )
        .await;
    let receiver = Receiver::start(2).await;
    let started = Instant::now();
    let recovers = call(&gateway, &funko, "flaky/k1/2", Some(&receiver.url)).await;
    let record = settled(&gateway, &recovers, Duration::from_secs(20)).await;
    let took = started.elapsed();
    assert_eq!(record["state"], "done", "{record}");
    assert_eq!(record["attempts"], 3);
    assert_eq!(record["last_status"], 200);
    // Backoff 200 ms, then 400 ms.
    assert!(took >= Duration::from_millis(600), "{took:?}");
    assert_eq!(record["callback"], "delivered", "{record}");
    assert_eq!(record["callback_attempts"], 3);
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.body == b"ok after 2 failures"));

    let fails = call(&gateway, &funko, "status/500", Some(&receiver.url)).await;
    let record = settled(&gateway, &fails, Duration::from_secs(20)).await;
    assert_eq!(record["state"], "failed", "{record}");
    assert_eq!(record["attempts"], 4, "one attempt and 3 retries");
    assert_eq!(record["last_status"], 500);
    let last = receiver.received().pop().unwrap();
    assert_eq!(last.headers["x-call-id"], fails);
    assert_eq!(last.headers["x-function-status"], "500");

    let metrics = gateway.metrics().await;
    assert_eq!(
        faaso_tests::prom::value(&metrics, "faaso_async_attempts_total", &[("funko", &funko)]),
        Some(7.0),
        "{metrics}"
    );
}

/// 50 calls queued for a funko with `async.max_inflight: 2`: all are done, and the instance
/// never had more than two at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_inflight_holds_under_a_queue_of_fifty() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start(&admin_config()).await;
    let funko = unique_name("held");
    gateway
        .serve_variant(
            &docker,
            &cleanup,
            &funko,
            "LABEL faaso.async.max_inflight=\"2\"",
        )
        .await;
    let receiver = Receiver::start(0).await;
    let mut ids = HashSet::new();
    for _ in 0..50 {
        ids.insert(call(&gateway, &funko, "sleep/100", Some(&receiver.url)).await);
    }
    let received = receiver.wait_for_calls(&ids, Duration::from_secs(60)).await;
    assert_eq!(called_back(&received), ids);
    let peak = testfunko::peak(&format!("{}/funko/{funko}", gateway.url)).await;
    assert_eq!(peak, 2, "the instance had {peak} calls at once");
    let metrics = gateway.metrics().await;
    assert_eq!(
        faaso_tests::prom::value(&metrics, "faaso_async_queue_depth", &[("funko", &funko)]),
        None,
        "an empty queue leaves no series"
    );
}

/// 20 calls accepted, then the gateway is killed (SIGKILL) before they all ran: the next
/// gateway on the same state_dir runs the rest; every call is done, and every callback came.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_calls_survive_a_sigkill() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut first = GatewayProcess::start_in(Arc::clone(&dir), &admin_config()).await;
    let funko = unique_name("durable");
    first
        .serve_variant(
            &docker,
            &cleanup,
            &funko,
            "LABEL faaso.async.max_inflight=\"1\"",
        )
        .await;
    let receiver = Receiver::start(0).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(call(&first, &funko, "sleep/300", Some(&receiver.url)).await);
    }
    first.signal("KILL");
    assert!(first.wait_exit(Duration::from_secs(5)).is_some());
    let before = receiver.received().len();
    assert!(
        before < 20,
        "all 20 ran before the kill; the test proves nothing"
    );
    drop(first);

    let second = GatewayProcess::start_in(Arc::clone(&dir), &admin_config()).await;
    let received = receiver.wait_for_calls(&ids, Duration::from_secs(60)).await;
    let mut callbacks: HashMap<String, usize> = HashMap::new();
    for r in &received {
        *callbacks.entry(r.headers["x-call-id"].clone()).or_default() += 1;
    }
    for id in &ids {
        assert!(
            callbacks.get(id).is_some_and(|n| *n >= 1),
            "no callback for {id}"
        );
        let record = settled(&second, id, Duration::from_secs(10)).await;
        assert_eq!(record["state"], "done", "{record}");
        assert_eq!(record["callback"], "delivered", "{record}");
    }
    let listed: Vec<Value> = client()
        .get(format!(
            "{}/admin/api/funkos/{funko}/calls?limit=100",
            second.url
        ))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 20, "each call is recorded once");
    println!(
        "{before} callbacks before the kill, {} after the restart",
        received.len() - before
    );
}

/// A trigger written by `faaso build` from `funko.yml` ticks every 2 s as async calls, and
/// stops once the funko is purged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cron_trigger_ticks_until_its_funko_is_purged() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start(&admin_config()).await;
    let base = testfunko::image(&docker).await;
    let name = unique_name("ticking");
    let folder = gateway.dir.path().join(&name);
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("Dockerfile"), format!("FROM {base}\n")).unwrap();
    std::fs::write(
        folder.join("funko.yml"),
        format!(
            "name: {name}\ntriggers:\n  - cron: '*/2 * * * * *'\n    path: /echo\n    body: '{{\"tick\": true}}'\n"
        ),
    )
    .unwrap();
    let faaso = Faaso::in_dir(gateway.dir.path());
    cleanup.funko(&name);
    faaso.ok(&["build", folder.to_str().unwrap()]);
    faaso.ok(&["up", &name]);
    let list = || async {
        let calls: Vec<Value> = client()
            .get(format!(
                "{}/admin/api/funkos/{name}/calls?limit=100",
                gateway.url
            ))
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        calls
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    let ticks = loop {
        let calls = list().await;
        let done: Vec<&Value> = calls.iter().filter(|c| c["state"] == "done").collect();
        if done.len() >= 3 || Instant::now() >= deadline {
            break calls;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let done: Vec<&Value> = ticks.iter().filter(|c| c["state"] == "done").collect();
    assert!(done.len() >= 3, "{ticks:?}");
    for tick in &done {
        assert_eq!(tick["source"], "cron:t1");
        assert_eq!(tick["method"], "POST");
        assert_eq!(tick["last_status"], 200);
    }
    // Two seconds apart, by their ids' acceptance times.
    let mut times: Vec<u64> = ticks
        .iter()
        .map(|c| c["accepted_at_ms"].as_u64().unwrap())
        .collect();
    times.sort();
    for pair in times.windows(2) {
        assert_eq!(pair[1] - pair[0], 2000, "{times:?}");
    }

    faaso.ok(&["purge", &name, "--yes"]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after_purge = list().await.len();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        list().await.len(),
        after_purge,
        "ticks go on after the purge"
    );
    let metrics = gateway.metrics().await;
    let ticked = faaso_tests::prom::value(&metrics, "faaso_cron_ticks_total", &[("funko", &name)]);
    assert_eq!(ticked, Some(after_purge as f64), "{metrics}");
}

/// Two gateways on one `nats-server -js`: calls sent to either are shared between them, the
/// funko's `async.max_inflight` holds across both, each cron tick runs once, and the calls a
/// gateway had when it was killed (SIGKILL) are run by the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_calls_and_ticks_through_nats() {
    let docker = require_docker!();
    let Some(binary) = faaso_tests::prom::tool_or_skip(
        "two_gateways_share_calls_and_ticks_through_nats",
        "nats-server",
        "nats-server",
    ) else {
        return;
    };
    let nats = faaso_tests::nats::NatsServer::start(&binary).await;
    let cleanup = Cleanup::new();
    // A network of their own: the gateways of other tests running beside this one see every
    // funko on the engine (and would run its ticks in their own queues), but cannot reach an
    // instance on this network, so what the funko counts is these two gateways' work alone.
    let network = unique_name("natsnet");
    cleanup.network(network.clone());
    let config = format!(
        "{}queue: {}\nnetwork: {network}\n",
        admin_config(),
        nats.url
    );
    let mut first = GatewayProcess::start(&config).await;
    let second = GatewayProcess::start(&config).await;
    let funko = unique_name("shared");
    let image = testfunko::image(&docker).await;
    let instance = faaso::conventions::instance_name(&funko, &faaso::conventions::random_suffix());
    faaso_tests::docker::run_container(
        &docker,
        &cleanup,
        &instance,
        &image,
        &network,
        &[],
        &[
            ("faaso.async.max_inflight", "2"),
            ("faaso.async.timeout", "3s"),
            ("faaso.cron.t1.schedule", "*/2 * * * * *"),
            ("faaso.cron.t1.path", "/flaky/tick/0"),
        ],
    )
    .await;
    for gateway in [&first, &second] {
        faaso_tests::http::wait_for_status(
            &format!("{}/funko/{funko}/ping", gateway.url),
            200,
            Duration::from_secs(20),
        )
        .await;
    }

    // 40 calls, half to each gateway: all called back, never more than 2 at once.
    let receiver = Receiver::start(0).await;
    let mut ids = HashSet::new();
    for n in 0..40 {
        let gateway = if n % 2 == 0 { &first } else { &second };
        ids.insert(call(gateway, &funko, "sleep/200", Some(&receiver.url)).await);
    }
    let received = receiver.wait_for_calls(&ids, Duration::from_secs(60)).await;
    assert_eq!(called_back(&received), ids);
    let peak = testfunko::peak(&format!("{}/funko/{funko}", first.url)).await;
    assert_eq!(peak, 2, "{peak} calls ran at once");
    let attempts = |metrics: String| {
        faaso_tests::prom::value(&metrics, "faaso_async_attempts_total", &[("funko", &funko)])
            .unwrap_or(0.0)
    };
    let (on_first, on_second) = (
        attempts(first.metrics().await),
        attempts(second.metrics().await),
    );
    println!("attempts: {on_first} on the first gateway, {on_second} on the second");
    assert!(
        on_first > 0.0 && on_second > 0.0,
        "one gateway did all the work"
    );
    // Records are shared: either gateway shows any call.
    let some = ids.iter().next().unwrap();
    assert_eq!(
        settled(&second, some, Duration::from_secs(5)).await["state"],
        "done"
    );
    assert_eq!(
        settled(&first, some, Duration::from_secs(5)).await["state"],
        "done"
    );

    // Ticks every 2 s, each run once although both gateways schedule it.
    let ticks = |gateway: &GatewayProcess| {
        let request = client()
            .get(format!(
                "{}/admin/api/funkos/{funko}/calls?limit=1000",
                gateway.url
            ))
            .basic_auth("admin", Some(PASSWORD));
        async move {
            let calls: Vec<Value> = request.send().await.unwrap().json().await.unwrap();
            calls
                .into_iter()
                .filter(|c| c["source"] == "cron:t1")
                .collect::<Vec<Value>>()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while ticks(&second)
        .await
        .iter()
        .filter(|t| t["state"] == "done")
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "fewer than 3 ticks ran");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // How often the funko ran a tick: /flaky/tick/0 counts each; asking once more with a
    // count it cannot reach answers "failure <count + 1>".
    let counted = client()
        .get(format!("{}/funko/{funko}/flaky/tick/1000000", first.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let ran: usize = counted
        .strip_prefix("failure ")
        .and_then(|n| n.parse::<usize>().ok())
        .map(|n| n - 1)
        .unwrap_or_else(|| panic!("{counted}"));
    // Every tick that ran was recorded before it ran.
    let recorded = ticks(&first).await;
    let done = recorded.iter().filter(|t| t["state"] == "done").count();
    println!("{ran} ticks ran, {} recorded ({done} done)", recorded.len());
    assert!(
        ran >= 3 && ran <= recorded.len(),
        "{ran} runs for {} ticks: {recorded:#?}",
        recorded.len()
    );
    for tick in recorded.iter().filter(|t| t["state"] == "done") {
        assert_eq!(tick["attempts"], 1, "{tick}");
    }

    // The first gateway dies with calls in hand: the second runs them.
    let receiver = Receiver::start(0).await;
    let mut ids = HashSet::new();
    for _ in 0..10 {
        ids.insert(call(&first, &funko, "sleep/1000", Some(&receiver.url)).await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.signal("KILL");
    assert!(first.wait_exit(Duration::from_secs(5)).is_some());
    let received = receiver.wait_for_calls(&ids, Duration::from_secs(60)).await;
    assert_eq!(
        called_back(&received),
        ids,
        "calls were lost with the first gateway"
    );
    for id in &ids {
        let record = settled(&second, id, Duration::from_secs(10)).await;
        assert_eq!(record["state"], "done", "{record}");
    }
}

/// Hostile clients on the acceptance path, on raw sockets: a body that stalls or drips past
/// `async_body_timeout` gets 408, a body over the limit 413 (announced or chunked), an upgrade
/// 400; none of them is stored, and the connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_async_requests_are_refused_and_nothing_is_stored() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    // Callbacks keep to the default: never to loopback or link-local addresses.
    let gateway = GatewayProcess::start(&format!(
        "password: {PASSWORD}\nasync_body_timeout: 1s\nmax_body_bytes: 1024\n"
    ))
    .await;
    let funko = unique_name("guarded");
    gateway
        .serve_variant(&docker, &cleanup, &funko, "LABEL faaso.async.retries=\"0\"")
        .await;
    let addr = gateway.url.trim_start_matches("http://").to_string();
    let target = format!("/async/funko/{funko}/echo");
    let refused = |response: Result<faaso_tests::raw::RawResponse, String>, status: u16| {
        let response = response.unwrap();
        assert_eq!(response.status, status, "{response:?}");
        assert_eq!(response.header("connection"), Some("close"), "{response:?}");
    };

    // Stalls after 10 of 100 bytes.
    let mut stalled = faaso_tests::raw::RawConnection::open(&addr).await;
    stalled
        .send("POST", &target, &["Content-Length: 100"])
        .await;
    stalled.write(b"0123456789").await.unwrap();
    let started = Instant::now();
    refused(stalled.response(false).await, 408);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "{waited:?}"
    );

    // Drips a byte every 300 ms: never done within the second.
    let mut dripping = faaso_tests::raw::RawConnection::open(&addr).await;
    dripping
        .send("POST", &target, &["Content-Length: 50"])
        .await;
    let drip = async {
        for _ in 0..10 {
            if dripping.write(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        dripping
    };
    let mut dripping = drip.await;
    let answer = dripping
        .closed_within(Duration::from_secs(3))
        .await
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // Over max_body_bytes, announced: refused before the body is read.
    let mut announced = faaso_tests::raw::RawConnection::open(&addr).await;
    announced
        .send("POST", &target, &["Content-Length: 5000"])
        .await;
    refused(announced.response(false).await, 413);

    // Over it, chunked: refused once the count passes the limit.
    let mut chunked = faaso_tests::raw::RawConnection::open(&addr).await;
    chunked
        .send("POST", &target, &["Transfer-Encoding: chunked"])
        .await;
    let chunk = format!("400\r\n{}\r\n", "y".repeat(1024));
    chunked.write(chunk.as_bytes()).await.unwrap();
    chunked.write(chunk.as_bytes()).await.unwrap();
    refused(chunked.response(false).await, 413);

    // An upgrade cannot be queued.
    let mut upgrade = faaso_tests::raw::RawConnection::open(&addr).await;
    upgrade
        .send(
            "GET",
            &target,
            &["Connection: Upgrade", "Upgrade: websocket"],
        )
        .await;
    refused(upgrade.response(false).await, 400);

    // Callbacks into the gateway's own host or a metadata service: refused at once.
    for url in [
        "http://127.0.0.1:9091/metrics",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8888/admin/api/secrets",
    ] {
        let response = client()
            .post(format!("{}{target}", gateway.url))
            .header("X-Callback-Url", url)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{url}");
        let message: Value = response.json().await.unwrap();
        assert!(
            message["error"]
                .as_str()
                .unwrap()
                .contains("callback_allow"),
            "{message}"
        );
    }
    let listed: Vec<Value> = client()
        .get(format!("{}/admin/api/funkos/{funko}/calls", gateway.url))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(listed.is_empty(), "refused calls were stored: {listed:?}");
    // A name that resolves to loopback is accepted, but its callback never reaches it.
    let receiver = Receiver::start(0).await;
    let port = receiver.url.rsplit(':').next().unwrap();
    let named = format!("http://localhost:{port}/done");
    let id = call(&gateway, &funko, "echo", Some(&named)).await;
    let record = settled(&gateway, &id, Duration::from_secs(10)).await;
    assert_eq!(record["state"], "done", "{record}");
    assert_eq!(record["callback"], "failed", "{record}");
    assert!(
        receiver.received().is_empty(),
        "the callback reached loopback"
    );
    // The gateway still takes a good one.
    let id = call(&gateway, &funko, "echo", None).await;
    assert_eq!(
        settled(&gateway, &id, Duration::from_secs(10)).await["state"],
        "done"
    );
}
