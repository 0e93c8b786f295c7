//! The ground floor: the test funko image builds without a registry, runs on `faaso-net`, and
//! answers at its address on that network.

use std::time::Duration;

use faaso::conventions::{NETWORK, instance_name, random_suffix};
use faaso_tests::docker::{Cleanup, ip_on_network, run_container};
use faaso_tests::http::{client, wait_for_status};
use faaso_tests::{require_docker, testfunko, unique_name};

#[tokio::test]
async fn test_funko_answers_on_faaso_net() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let image = testfunko::image(&docker).await;
    let name = instance_name(&unique_name("smoke"), &random_suffix());
    let id = run_container(&docker, &cleanup, &name, &image, NETWORK, &[], &[]).await;
    let ip = ip_on_network(&docker, &name, NETWORK).await;

    let base = format!("http://{ip}:3000");
    let ping = wait_for_status(&format!("{base}/ping"), 200, Duration::from_secs(10)).await;
    assert_eq!(ping, "OK");

    let client = client();
    let whoami = client.get(format!("{base}/whoami")).send().await.unwrap();
    let whoami = whoami.text().await.unwrap();
    assert!(
        id.starts_with(&whoami),
        "whoami {whoami:?} is not the id {id}"
    );

    let echo: serde_json::Value = client
        .post(format!("{base}/echo/x?y=1"))
        .header("X-Test", "yes")
        .body("hello")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["method"], "POST");
    assert_eq!(echo["path"], "/echo/x");
    assert_eq!(echo["query"], "y=1");
    assert_eq!(echo["body"], "hello");
    let headers = echo["headers"].as_array().unwrap();
    assert!(
        headers.iter().any(|h| h[0] == "x-test" && h[1] == "yes"),
        "{echo}"
    );

    let teapot = client
        .get(format!("{base}/status/418"))
        .send()
        .await
        .unwrap();
    assert_eq!(teapot.status().as_u16(), 418);
    let bytes = client
        .get(format!("{base}/bytes/100000"))
        .send()
        .await
        .unwrap();
    assert_eq!(bytes.bytes().await.unwrap().len(), 100_000);
}

#[tokio::test]
async fn stopping_the_test_funko_is_quick() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let image = testfunko::image(&docker).await;
    let name = instance_name(&unique_name("stop"), &random_suffix());
    run_container(&docker, &cleanup, &name, &image, NETWORK, &[], &[]).await;
    let ip = ip_on_network(&docker, &name, NETWORK).await;
    wait_for_status(
        &format!("http://{ip}:3000/ping"),
        200,
        Duration::from_secs(10),
    )
    .await;

    // As PID 1 the funko must handle SIGTERM itself, or `docker stop` waits its full timeout.
    let start = std::time::Instant::now();
    let options = bollard::query_parameters::StopContainerOptions {
        t: Some(10),
        ..Default::default()
    };
    docker.stop_container(&name, Some(options)).await.unwrap();
    let took = start.elapsed();
    assert!(took < Duration::from_secs(5), "docker stop took {took:?}");
    let info = docker.inspect_container(&name, None).await.unwrap();
    assert_eq!(info.state.and_then(|s| s.exit_code), Some(0));
}
