//! Access rules of funkos: private funkos and their keys (`faaso key`, local and remote, and
//! the admin API), and per-client rate limits.

use std::time::{Duration, Instant};

use faaso_tests::cli::Faaso;
use faaso_tests::docker::Cleanup;
use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::{client, echoed_headers};
use faaso_tests::raw::{RawConnection, RawResponse};
use faaso_tests::{require_docker, unique_name};

const PASSWORD: &str = "open sesame";

/// A private funko refuses no key, a wrong key and a removed key (401, JSON, a Bearer
/// challenge), and serves its keys in either header without the funko seeing them; keys made
/// locally and remotely both work, a removal takes effect within a second, and async calls
/// need a key too.
#[tokio::test]
async fn a_private_funko_serves_only_its_keys() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start(&format!("password: {PASSWORD}\n")).await;
    let private = unique_name("private");
    let public = unique_name("public");
    gateway
        .serve_variant_answering(
            &docker,
            &cleanup,
            &private,
            "LABEL faaso.access=\"private\" faaso.cron.tick.schedule=\"* * * * * *\" \
             faaso.cron.tick.path=\"/ping\"",
            401,
        )
        .await;
    gateway
        .serve_variant(&docker, &cleanup, &public, "ENV TESTFUNKO_VERSION=1")
        .await;
    let local = Faaso::in_dir(gateway.dir.path());
    let key = local.ok(&["key", "add", &private]).trim().to_string();
    assert!(key.starts_with("fk_") && key.len() == 46, "{key:?}");
    let remote_dir = tempfile::tempdir().unwrap();
    let mut remote = Faaso::in_dir(remote_dir.path());
    remote.env = vec![
        ("FAASO_SERVER".into(), gateway.url.clone()),
        ("FAASO_PASSWORD".into(), PASSWORD.into()),
    ];
    let ci_key = remote
        .ok(&["key", "add", &private, "--name", "ci"])
        .trim()
        .to_string();
    let listed = remote.ok(&["key", "list", &private]);
    let names: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.split('\t').next())
        .collect();
    assert_eq!(names, ["key-1", "ci"], "{listed}");
    assert!(!listed.contains(&key) && !listed.contains(&ci_key));
    // Errors name the thing at fault and change nothing.
    let taken = remote.run(&["key", "add", &private, "--name", "ci"]);
    assert!(!taken.status.success());
    assert!(
        String::from_utf8_lossy(&taken.stderr).contains("already has a key named ci"),
        "{taken:?}"
    );
    let unknown = local.run(&["key", "add", "no_such_funko_here"]);
    assert!(!unknown.status.success());

    let http = client();
    let url = format!("{}/funko/{private}/echo", gateway.url);
    let get = |header: Option<(&'static str, String)>| {
        let mut request = http.get(&url);
        if let Some((name, value)) = header {
            request = request.header(name, value);
        }
        async move { request.send().await.unwrap() }
    };
    for (header, why) in [
        (None, "no key"),
        (Some(("X-Api-Key", "fk_wrong".to_string())), "a wrong key"),
        (
            Some(("Authorization", "Basic YTpi".to_string())),
            "not a bearer key",
        ),
        (
            Some(("X-Api-Key", format!("{key}x"))),
            "a key with one more character",
        ),
    ] {
        let refused = get(header).await;
        assert_eq!(refused.status().as_u16(), 401, "{why}");
        assert_eq!(
            refused.headers()["www-authenticate"],
            r#"Bearer realm="faaso""#
        );
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["funko"], private.as_str(), "{why}");
        assert!(body["error"].as_str().unwrap().contains("key"), "{body}");
    }
    for header in [
        ("Authorization", format!("Bearer {key}")),
        ("X-Api-Key", ci_key.clone()),
    ] {
        let served = get(Some(header.clone())).await;
        assert_eq!(served.status().as_u16(), 200, "{header:?}");
        let echo: serde_json::Value = served.json().await.unwrap();
        let seen = echoed_headers(&echo);
        assert!(
            !seen.contains_key(&header.0.to_ascii_lowercase()),
            "{seen:?}"
        );
        assert!(
            !echo.to_string().contains(&header.1[3..]),
            "the funko saw the key"
        );
    }
    // With a key in X-Api-Key, the client's own Authorization goes on to the funko.
    let both = http
        .get(&url)
        .header("X-Api-Key", &key)
        .header("Authorization", "Basic dXNlcjpwdw==")
        .send()
        .await
        .unwrap();
    let echo: serde_json::Value = both.json().await.unwrap();
    assert_eq!(echoed_headers(&echo)["authorization"], "Basic dXNlcjpwdw==");
    // A public funko ignores keys and passes Authorization on.
    let public_url = format!("{}/funko/{public}/echo", gateway.url);
    let open = http.get(&public_url).send().await.unwrap();
    assert_eq!(open.status().as_u16(), 200);

    // Async calls of a private funko need a key as well.
    let call_url = format!("{}/async/funko/{private}/echo", gateway.url);
    let refused = http.post(&call_url).body("x").send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let accepted = http
        .post(&call_url)
        .header("X-Api-Key", &key)
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status().as_u16(), 202);

    // A removed key (here through the local folder) is refused within a second.
    local.ok(&["key", "rm", &private, "key-1"]);
    let removed = Instant::now();
    loop {
        let status = get(Some(("X-Api-Key", key.clone())))
            .await
            .status()
            .as_u16();
        if status == 401 {
            break;
        }
        assert_eq!(status, 200);
        assert!(
            removed.elapsed() < Duration::from_secs(1),
            "the removed key still worked after {:?}",
            removed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        get(Some(("X-Api-Key", ci_key.clone())))
            .await
            .status()
            .as_u16(),
        200
    );
    let gone = remote.run(&["key", "rm", &private, "key-1"]);
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("has no key named key-1"),
        "{gone:?}"
    );
    // Cron ticks are the gateway's own calls: they need no key.
    let calls_url = format!("{}/admin/api/funkos/{private}/calls", gateway.url);
    let started = Instant::now();
    loop {
        let calls: serde_json::Value = http
            .get(&calls_url)
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let ticked = calls.as_array().into_iter().flatten().any(|call| {
            call["source"] == "cron:tick" && call["state"] == "done" && call["last_status"] == 200
        });
        if ticked {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no cron tick reached the private funko: {calls}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The key file holds hashes only, privately.
    let file = gateway
        .dir
        .path()
        .join(format!("state/keys/{private}.json"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(!text.contains(&ci_key[3..]));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}

/// A rate limit of 50/s (burst 5) lets through 50 requests a second from one client, within
/// 10 % over 5 s of a client sending as fast as it can; the rest get 429 with Retry-After and
/// are counted in faaso_rate_limited_total.
#[tokio::test]
async fn a_rate_limit_holds_within_ten_percent() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("").await;
    let limited = unique_name("rated");
    gateway
        .serve_variant(
            &docker,
            &cleanup,
            &limited,
            "LABEL faaso.limits.rate=\"50/s\" faaso.limits.burst=\"5\"",
        )
        .await;
    // Let the readiness probe's requests (counted like any) drain from the allowance.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let url = format!("{}/funko/{limited}/ping", gateway.url);
    let run = Duration::from_secs(5);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let http = client();
            let (mut ok, mut limited, mut retry_after_ok) = (0u32, 0u32, true);
            while started.elapsed() < run {
                let response = http.get(&url).send().await.unwrap();
                match response.status().as_u16() {
                    200 => ok += 1,
                    429 => {
                        limited += 1;
                        retry_after_ok &= response
                            .headers()
                            .get("retry-after")
                            .and_then(|v| v.to_str().ok())
                            == Some("1");
                    }
                    other => panic!("unexpected status {other}"),
                }
            }
            (ok, limited, retry_after_ok)
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for task in tasks {
        let (o, l, retry) = task.await.unwrap();
        ok += o;
        refused += l;
        assert!(retry, "every 429 says Retry-After: 1");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let expected = 5.0 + 50.0 * elapsed;
    let off = (f64::from(ok) - expected).abs() / expected;
    assert!(
        off <= 0.10,
        "{ok} requests passed in {elapsed:.2} s, {expected:.0} expected ({refused} refused)"
    );
    assert!(
        refused > ok,
        "the client sent far more than the limit: {refused} refused"
    );
    let metrics = gateway.metrics().await;
    let line = format!("faaso_rate_limited_total{{funko=\"{limited}\"}} {refused}");
    assert!(metrics.contains(&line), "{line} not in the metrics");
}

/// Raw requests a hostile client might send to a private funko on its own domain: a key
/// header given twice (whatever the copies hold), a key on one request of a keep-alive
/// connection and none on the next, an over-long key, bytes no key has, two `Host` headers,
/// and a target whose authority is not `Host`'s. None gets through without a
/// good key, none reaches the funko with a key header, and the connection's next request is
/// judged on its own.
#[tokio::test]
async fn a_private_funko_holds_against_hostile_requests() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("").await;
    let private = unique_name("hostile");
    let public = unique_name("open");
    let private_domain = format!("{}.example.test", private.replace('_', "-"));
    let public_domain = format!("{}.example.test", public.replace('_', "-"));
    gateway
        .serve_variant_answering(
            &docker,
            &cleanup,
            &private,
            &format!("LABEL faaso.access=\"private\" faaso.domains=\"{private_domain}\""),
            401,
        )
        .await;
    gateway
        .serve_variant(
            &docker,
            &cleanup,
            &public,
            &format!("LABEL faaso.domains=\"{public_domain}\""),
        )
        .await;
    let key = Faaso::in_dir(gateway.dir.path())
        .ok(&["key", "add", &private])
        .trim()
        .to_string();
    let addr = gateway.url.trim_start_matches("http://").to_string();
    let path = format!("/funko/{private}/echo");
    // One request on a new connection: its answer.
    let ask = |head: String| {
        let addr = addr.clone();
        async move {
            let mut connection = RawConnection::open(&addr).await;
            connection.write(head.as_bytes()).await.unwrap();
            connection.response(false).await.unwrap()
        }
    };
    let get = |lines: &[String]| {
        let mut head = format!("GET {path} HTTP/1.1\r\nHost: gw\r\n");
        for line in lines {
            head.push_str(line);
            head.push_str("\r\n");
        }
        head + "\r\n"
    };
    let refused_as = |answer: &RawResponse, why: &str, words: &str| {
        assert_eq!(answer.status, 401, "{why}: {answer:?}");
        let body = String::from_utf8_lossy(&answer.body);
        assert!(body.contains(words), "{why}: {body}");
    };

    // The gateway reads a key added in its folder within a second.
    let added = Instant::now();
    while ask(get(&[format!("X-Api-Key: {key}")])).await.status != 200 {
        assert!(
            added.elapsed() < Duration::from_secs(2),
            "the key never worked"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A key header twice: refused whichever copy is good, in either header and any case.
    for (lines, why) in [
        (
            vec![format!("X-Api-Key: {key}"), format!("X-Api-Key: {key}")],
            "the good key twice",
        ),
        (
            vec![format!("X-Api-Key: {key}"), "x-api-key: fk_other".into()],
            "a good key, then another",
        ),
        (
            vec!["X-API-KEY: fk_other".into(), format!("x-api-key: {key}")],
            "another key, then the good one",
        ),
        (
            vec![
                format!("Authorization: Bearer {key}"),
                "Authorization: Basic YTpi".into(),
            ],
            "a bearer key, then other credentials",
        ),
    ] {
        refused_as(&ask(get(&lines)).await, why, "came twice");
    }
    // An over-long key is a wrong key; one beyond the head limit gets 431; bytes outside
    // ASCII are a wrong key too.
    let long = format!("Authorization: Bearer {}", "a".repeat(60_000));
    refused_as(&ask(get(&[long])).await, "a 60 KB key", "not one of");
    let too_long = format!("X-Api-Key: {}", "a".repeat(70_000));
    assert_eq!(ask(get(&[too_long])).await.status, 431);
    let mut odd = get(&[]).into_bytes();
    let at = odd.len() - 2;
    odd.splice(at..at, b"X-Api-Key: fk_\xff\xfe\r\n".iter().copied());
    let mut connection = RawConnection::open(&addr).await;
    connection.write(&odd).await.unwrap();
    let answer = connection.response(false).await.unwrap();
    assert!(
        matches!(answer.status, 400 | 401),
        "a key with bytes no key has: {answer:?}"
    );

    // One connection: a good key, then no key, then a good key after three spaces. Each
    // request is judged alone, and the funko never sees a key header.
    let mut connection = RawConnection::open(&addr).await;
    connection
        .write(get(&[format!("X-Api-Key: {key}")]).as_bytes())
        .await
        .unwrap();
    let served = connection.response(false).await.unwrap();
    assert_eq!(served.status, 200, "{served:?}");
    let echo: serde_json::Value = serde_json::from_slice(&served.body).unwrap();
    assert!(!echoed_headers(&echo).contains_key("x-api-key"), "{echo}");
    connection.write(get(&[]).as_bytes()).await.unwrap();
    refused_as(
        &connection.response(false).await.unwrap(),
        "no key after a good one on the same connection",
        "private",
    );
    connection
        .write(get(&[format!("Authorization: bearer   {key}\t")]).as_bytes())
        .await
        .unwrap();
    let served = connection.response(false).await.unwrap();
    assert_eq!(served.status, 200, "{served:?}");
    let echo: serde_json::Value = serde_json::from_slice(&served.body).unwrap();
    assert!(
        !echoed_headers(&echo).contains_key("authorization"),
        "{echo}"
    );

    // Two Host headers: 400, whichever funko either names.
    for hosts in [
        [private_domain.as_str(), public_domain.as_str()],
        [public_domain.as_str(), private_domain.as_str()],
    ] {
        let head = format!(
            "GET /echo HTTP/1.1\r\nHost: {}\r\nHost: {}\r\n\r\n",
            hosts[0], hosts[1]
        );
        let answer = ask(head).await;
        assert_eq!(answer.status, 400, "two Host headers {hosts:?}: {answer:?}");
    }
    // An absolute-form target must name the host that Host names (400 otherwise), and
    // routes by it.
    for (target, host, status) in [
        (&private_domain, &public_domain, 400),
        (&public_domain, &private_domain, 400),
        (&private_domain, &private_domain, 401),
        (&public_domain, &public_domain, 200),
    ] {
        let answer = ask(format!(
            "GET http://{target}/echo HTTP/1.1\r\nHost: {host}\r\n\r\n"
        ))
        .await;
        assert_eq!(
            answer.status, status,
            "{target} with Host {host}: {answer:?}"
        );
    }
    // On the public funko's domain, the private funko's path is the public funko's own.
    let answer = ask(format!(
        "GET /funko/{private}/echo HTTP/1.1\r\nHost: {public_domain}\r\n\r\n"
    ))
    .await;
    assert_eq!(answer.status, 404, "{answer:?}");
}
