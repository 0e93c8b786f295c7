//! The funko network on a real engine: creators that race end with exactly one network of the
//! name, and duplicates left by an earlier race are repaired (the one with instances is kept).
//! Each test uses a network of its own name, so `faaso-net` and the other tests are untouched.

use bollard::Docker;
use bollard::models::NetworkCreateRequest;
use bollard::query_parameters::ListNetworksOptions;
use faaso_tests::docker::{Cleanup, run_container};
use faaso_tests::{require_docker, testfunko};

/// Ids of the networks named exactly `name`.
async fn named(docker: &Docker, name: &str) -> Vec<String> {
    let options = ListNetworksOptions {
        filters: Some([("name".to_string(), vec![name.to_string()])].into()),
    };
    docker
        .list_networks(Some(options))
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.name.as_deref() == Some(name))
        .filter_map(|n| n.id)
        .collect()
}

/// Removes every network named `name` when dropped (after the test's containers are gone).
struct RemoveNetworks(Docker, String);

impl Drop for RemoveNetworks {
    fn drop(&mut self) {
        let (docker, name) = (self.0.clone(), self.1.clone());
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                for id in named(&docker, &name).await {
                    let _ = docker.remove_network(&id).await;
                }
            });
        });
        let _ = cleanup.join();
    }
}

#[tokio::test]
async fn racing_creators_end_with_one_network() {
    let docker = require_docker!();
    let name = format!("faaso-race-{}", faaso::conventions::random_suffix());
    let _remove = RemoveNetworks(docker.clone(), name.clone());
    // Six creators at once, each on its own connection, as six `faaso up` would be.
    let mut creators = Vec::new();
    for _ in 0..6 {
        let docker = faaso::engine::docker::connect().await.unwrap();
        let name = name.clone();
        creators.push(tokio::spawn(async move {
            faaso::engine::docker::ensure_network(&docker, &name).await
        }));
    }
    let mut ids = Vec::new();
    for creator in creators {
        ids.push(creator.await.unwrap().expect("ensure_network succeeds"));
    }
    let left = named(&docker, &name).await;
    println!("six racing creators: {} network(s) left", left.len());
    assert_eq!(left.len(), 1, "networks named {name}: {left:?}");
    assert!(
        ids.iter().all(|id| *id == left[0]),
        "every creator got {}: {ids:?}",
        left[0]
    );
}

#[tokio::test]
async fn duplicates_are_repaired_keeping_the_one_with_instances() {
    let docker = require_docker!();
    let name = format!("faaso-dup-{}", faaso::conventions::random_suffix());
    // Declared first, dropped last: after the container is gone.
    let _remove = RemoveNetworks(docker.clone(), name.clone());
    let cleanup = Cleanup::new();
    // An instance on the first network, then duplicates, as a race on an engine that does not
    // refuse them leaves them.
    let image = testfunko::image(&docker).await;
    let first = faaso::engine::docker::ensure_network(&docker, &name)
        .await
        .unwrap();
    let instance = format!("faaso-dup-{}", faaso::conventions::random_suffix());
    run_container(&docker, &cleanup, &instance, &image, &name, &[], &[]).await;
    for _ in 0..2 {
        let request = NetworkCreateRequest {
            name: name.clone(),
            driver: Some("bridge".to_string()),
            ..Default::default()
        };
        docker.create_network(request).await.unwrap();
    }
    let listed = named(&docker, &name).await;
    if listed.len() == 1 {
        // A newer engine refuses duplicates itself: then there is nothing to repair.
        return;
    }
    assert_eq!(listed.len(), 3);

    let kept = faaso::engine::docker::ensure_network(&docker, &name)
        .await
        .unwrap();
    assert_eq!(kept, first, "the network with an instance is kept");
    assert_eq!(named(&docker, &name).await, vec![first]);
    // The name works again for new instances.
    let next = format!("faaso-dup-{}", faaso::conventions::random_suffix());
    run_container(&docker, &cleanup, &next, &image, &name, &[], &[]).await;
    drop(cleanup);
}
