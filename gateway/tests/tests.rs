//! Integration tests of the `faaso-gateway` binary: configuration handling and the routes it
//! answers itself. Docker-backed routing is tested end to end under `tests/e2e`.

use std::process::Command;

use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::client;

fn gateway() -> Command {
    Command::new(env!("CARGO_BIN_EXE_faaso-gateway"))
}

#[test]
fn bad_config_is_refused_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yml");
    std::fs::write(&path, "listen: 127.0.0.1:1\nconect_timeout: 2s\n").unwrap();
    let out = gateway().arg("--config").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown key `conect_timeout`"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let out = gateway().args(["--listen", "nowhere"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("command line: key `listen`"), "{stderr}");

    let out = gateway()
        .env("FAASO_THREADS", "zero")
        .arg("-t")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("FAASO_THREADS"), "{stderr}");
}

#[test]
fn sample_config_passes_the_config_test_flag() {
    let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../conf/faaso.yml");
    let out = gateway().args(["--config", sample, "-t"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn gateway_stays_up_and_answers_health_and_json_errors() {
    let gateway = GatewayProcess::start("").await;
    let client = client();
    let health = client
        .get(format!("{}/healthz", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);

    let missing = client
        .get(format!("{}/funko/nope/x", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["funko"], "nope");
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn readyz_waits_for_docker_while_healthz_answers() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("no-docker.sock");
    let gateway =
        GatewayProcess::start(&format!("docker_host: unix://{}\n", nowhere.display())).await;
    let client = client();
    let ready = client
        .get(format!("{}/readyz", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let health = client
        .get(format!("{}/healthz", gateway.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}
