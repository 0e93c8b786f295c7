//! The gateway running as the container `faaso-proxy` on `faaso-net` with the Docker socket
//! mounted, as the README describes. No registry is reachable, so the image is the built
//! `faaso-gateway` binary and the shared libraries it links (from `ldd`) copied `FROM scratch`;
//! the README's Dockerfile builds the same binary on Debian's images.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{BuildImageOptions, CreateContainerOptions};
use faaso::conventions::{NETWORK, PROXY_CONTAINER};
use faaso_tests::docker::{Cleanup, start_instance};
use faaso_tests::gateway::free_port;
use faaso_tests::http::{client, wait_for_status};
use faaso_tests::{bins, require_docker, unique_name};
use futures_util::StreamExt;

/// Builds `tag` from the gateway binary and its shared libraries.
async fn build_gateway_image(docker: &bollard::Docker, tag: &str) {
    let binary = bins::path("faaso-gateway");
    let ldd = std::process::Command::new("ldd")
        .arg(&binary)
        .output()
        .expect("ldd can be run");
    let libraries: Vec<String> = String::from_utf8_lossy(&ldd.stdout)
        .lines()
        .filter_map(|line| {
            line.split_whitespace()
                .find(|w| w.starts_with('/'))
                .map(str::to_string)
        })
        .collect();
    assert!(
        !libraries.is_empty(),
        "ldd found no libraries: {}",
        String::from_utf8_lossy(&ldd.stderr)
    );
    let mut context = tar::Builder::new(Vec::new());
    let mut add = |path: &str, source: &Path, mode: u32| {
        let data = std::fs::read(source).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        context
            .append_data(&mut header, path, data.as_slice())
            .unwrap();
    };
    add("faaso-gateway", &binary, 0o755);
    for library in &libraries {
        // Resolve links (libc.so.6 → libc-2.36.so) and store the file under the linked name.
        add(
            library.trim_start_matches('/'),
            &std::fs::canonicalize(library).unwrap(),
            0o755,
        );
    }
    let dockerfile = "FROM scratch\nCOPY . /\nENTRYPOINT [\"/faaso-gateway\"]\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(dockerfile.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    context
        .append_data(&mut header, "Dockerfile", dockerfile.as_bytes())
        .unwrap();
    let mut tmp = tar::Header::new_gnu();
    tmp.set_entry_type(tar::EntryType::Directory);
    tmp.set_mode(0o1777);
    tmp.set_size(0);
    tmp.set_cksum();
    context
        .append_data(&mut tmp, "tmp/", std::io::empty())
        .unwrap();
    let context = context.into_inner().unwrap();
    let options = BuildImageOptions {
        t: Some(tag.to_string()),
        rm: true,
        ..Default::default()
    };
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = stream.next().await {
        let info = item.unwrap_or_else(|e| panic!("building {tag}: {e}"));
        assert!(
            info.error_detail.is_none(),
            "building {tag}: {:?}",
            info.error_detail
        );
    }
}

#[tokio::test]
async fn the_gateway_runs_as_the_faaso_proxy_container() {
    let docker = require_docker!();
    if let Ok(existing) = docker.inspect_container(PROXY_CONTAINER, None).await
        && existing
            .config
            .and_then(|c| c.labels)
            .is_none_or(|l| !l.contains_key("faaso.test"))
    {
        // Never touch a real faaso-proxy on a developer's machine (CI has none).
        assert!(
            !faaso_tests::docker::is_ci(),
            "a container named {PROXY_CONTAINER} already exists"
        );
        faaso_tests::skip::skip(
            module_path!(),
            &format!("a container named {PROXY_CONTAINER} already runs here"),
        );
        return;
    }
    let cleanup = Cleanup::new();
    let tag = format!("faaso-gateway-test:{}", faaso::conventions::random_suffix());
    build_gateway_image(&docker, &tag).await;
    cleanup.image(tag.clone());
    let _ = faaso::engine::docker::remove_container(&docker, PROXY_CONTAINER).await;
    faaso::engine::docker::ensure_network(&docker, NETWORK)
        .await
        .unwrap();

    let port = free_port();
    let body = ContainerCreateBody {
        image: Some(tag.clone()),
        env: Some(vec![
            "FAASO_LISTEN=0.0.0.0:8888".to_string(),
            "FAASO_STATE_DIR=/tmp/state".to_string(),
            "FAASO_SECRETS_DIR=/tmp/secrets".to_string(),
        ]),
        labels: Some(HashMap::from([(
            "faaso.test".to_string(),
            "true".to_string(),
        )])),
        host_config: Some(HostConfig {
            network_mode: Some(NETWORK.to_string()),
            binds: Some(vec![
                "/var/run/docker.sock:/var/run/docker.sock".to_string(),
            ]),
            port_bindings: Some(HashMap::from([(
                "8888/tcp".to_string(),
                Some(vec![PortBinding {
                    host_ip: Some("127.0.0.1".to_string()),
                    host_port: Some(port.to_string()),
                }]),
            )])),
            ..Default::default()
        }),
        exposed_ports: Some(vec!["8888/tcp".to_string()]),
        ..Default::default()
    };
    let options = CreateContainerOptions {
        name: Some(PROXY_CONTAINER.to_string()),
        ..Default::default()
    };
    cleanup.container(PROXY_CONTAINER);
    docker.create_container(Some(options), body).await.unwrap();
    docker.start_container(PROXY_CONTAINER, None).await.unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_for_status(&format!("{url}/readyz"), 200, Duration::from_secs(20)).await;

    let funko = unique_name("incontainer");
    start_instance(&docker, &cleanup, &funko, &[]).await;
    let ping = wait_for_status(
        &format!("{url}/funko/{funko}/ping"),
        200,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(ping, "OK");
    // The gateway's own container is never a funko.
    let proxy = client()
        .get(format!("{url}/funko/proxy/ping"))
        .send()
        .await
        .unwrap();
    assert_eq!(proxy.status().as_u16(), 404);
}
