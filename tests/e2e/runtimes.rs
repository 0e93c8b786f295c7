//! Every runtime built from its template and served: `faaso new -r <runtime>` → `faaso build`
//! → `faaso up` → a request through the gateway answers the template's JSON; a secret added
//! then belongs to the template's (named) user.
//!
//! The runtimes' usual base images come from a registry. Where they are not present (always in
//! CI: no registry is reachable), the build uses local base images made from Debian's packages
//! by `.ci/base-images.sh`, through `FAASO_BASE_IMAGE_<RUNTIME>`: the path an air-gapped user
//! takes. Under `CI=true` a runtime with neither set of images fails; elsewhere it is skipped
//! with the reason.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use faaso_tests::cli::Faaso;
use faaso_tests::docker::{Cleanup, is_ci};
use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::{get_json, wait_for_status};
use faaso_tests::{require_docker, unique_name};

/// A runtime's base images: the registry's (its template's defaults), and the local ones
/// `.ci/base-images.sh` makes, with the variable that selects each.
struct Bases {
    official: &'static [&'static str],
    local: &'static [(&'static str, &'static str)],
    /// The uid of the template's `USER` (a name in the Dockerfile), which a secret file
    /// must belong to.
    user_id: u32,
}

/// The base-image variables for the build: none when the official images are present, the
/// local images' when those are; `None` (after failing under CI or recording the skip) when
/// neither set is complete.
async fn choose_bases(
    docker: &bollard::Docker,
    runtime: &str,
    bases: &Bases,
) -> Option<Vec<(String, String)>> {
    let absent = |images: Vec<&'static str>| async move {
        let mut absent = Vec::new();
        for image in images {
            if docker.inspect_image(image).await.is_err() {
                absent.push(image);
            }
        }
        absent
    };
    let missing_official = absent(bases.official.to_vec()).await;
    if missing_official.is_empty() {
        return Some(Vec::new());
    }
    let missing_local = absent(bases.local.iter().map(|(_, image)| *image).collect()).await;
    if missing_local.is_empty() {
        return Some(
            bases
                .local
                .iter()
                .map(|(var, image)| (var.to_string(), image.to_string()))
                .collect(),
        );
    }
    let missing = [missing_official, missing_local].concat();
    let reason = format!(
        "no base images for the {runtime} runtime: {} are not present (no registry here; \
         `bash .ci/base-images.sh` makes local ones from Debian's packages)",
        missing.join(", ")
    );
    assert!(!is_ci(), "{reason}");
    faaso_tests::skip::skip(&format!("runtimes::{runtime}"), &reason);
    None
}

fn run_in(faaso: &Faaso, dir: &Path, args: &[&str]) -> Output {
    faaso
        .command()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("faaso can be run")
}

fn succeeded(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Builds the runtime's template funko with `bases`, starts it, and calls it through a
/// gateway: `/` answers `{"hello": "world"}` and `/?name=ci` `{"hello": "ci"}`; then adds a
/// secret, which must reach the template's named user.
async fn build_and_serve(runtime: &str, bases: Bases) {
    let docker = require_docker!();
    let Some(env) = choose_bases(&docker, runtime, &bases).await else {
        return;
    };
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start("").await;
    let mut faaso = Faaso::in_dir(gateway.dir.path());
    faaso.env = env;
    let work = tempfile::tempdir().unwrap();
    let name = unique_name(runtime);
    succeeded(
        &run_in(&faaso, work.path(), &["new", "-r", runtime, &name]),
        "faaso new",
    );
    let built = run_in(&faaso, work.path(), &["build", &name]);
    for image in faaso::engine::docker::list_images(&docker, &name)
        .await
        .unwrap()
    {
        for tag in image.repo_tags {
            cleanup.image(tag);
        }
    }
    succeeded(&built, &format!("faaso build of the {runtime} template"));
    succeeded(&run_in(&faaso, work.path(), &["up", &name]), "faaso up");
    for c in faaso::engine::docker::list_instances(&docker, &name)
        .await
        .unwrap()
    {
        cleanup.container(c.id.unwrap_or_default());
    }

    let url = format!("{}/funko/{name}/", gateway.url);
    let body = wait_for_status(&url, 200, Duration::from_secs(90)).await;
    let answer: serde_json::Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{runtime}: {body:?} is not JSON: {e}"));
    assert_eq!(answer["hello"], "world", "{runtime}: {body}");
    let answer = get_json(&format!("{url}?name=ci")).await;
    assert_eq!(answer["hello"], "ci", "{runtime}");

    // A secret reaches the template's named user: the file belongs to the uid the name has in
    // the image (Docker itself would look the name up on the host), mode 0600.
    let value = work.path().join("value");
    std::fs::write(&value, "s3cret").unwrap();
    let value = value.to_str().unwrap();
    succeeded(
        &run_in(
            &faaso,
            work.path(),
            &["secret", "add", &name, "example", "--from-file", value],
        ),
        "faaso secret add",
    );
    let file = gateway
        .dir
        .path()
        .join("secrets")
        .join(&name)
        .join("example");
    let meta = std::fs::metadata(&file).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(meta.uid(), bases.user_id, "{runtime}: {}", file.display());
    assert_eq!(meta.mode() & 0o777, 0o600, "{runtime}");
    if runtime == "express" {
        // Its template reports whether the funko's user can read the secret.
        let answer = get_json(&url).await;
        assert_eq!(answer["configured"], true, "{answer}");
    }
}

#[tokio::test]
async fn flask_template_is_built_and_served() {
    build_and_serve(
        "flask",
        Bases {
            official: &["python:3.12-slim"],
            local: &[("FAASO_BASE_IMAGE_FLASK", "faaso-ci/python:bookworm")],
            user_id: 10001,
        },
    )
    .await;
}

#[tokio::test]
async fn express_template_is_built_and_served() {
    build_and_serve(
        "express",
        Bases {
            official: &["node:22-slim"],
            local: &[("FAASO_BASE_IMAGE_EXPRESS", "faaso-ci/node:bookworm")],
            user_id: 1000,
        },
    )
    .await;
}

#[tokio::test]
async fn axum_template_is_built_and_served() {
    build_and_serve(
        "axum",
        Bases {
            official: &["rust:1-bookworm", "debian:bookworm-slim"],
            local: &[
                ("FAASO_BASE_IMAGE_AXUM", "faaso-ci/rust:bookworm"),
                ("FAASO_BASE_IMAGE_AXUM_RUN", "faaso-ci/debian:bookworm"),
            ],
            user_id: 10001,
        },
    )
    .await;
}

/// A build whose base image is neither on this host nor pullable fails at its `FROM` with the
/// image named and the way out (`base_image`, `FAASO_BASE_IMAGE_<RUNTIME>`), in one line.
#[tokio::test]
async fn a_missing_base_image_names_the_way_out() {
    let docker = require_docker!();
    let work = tempfile::tempdir().unwrap();
    let mut faaso = Faaso::in_dir(work.path());
    let missing = "faaso-missing/python:none";
    faaso.env = vec![("FAASO_BASE_IMAGE_FLASK".to_string(), missing.to_string())];
    let name = unique_name("nobase");
    succeeded(
        &run_in(&faaso, work.path(), &["new", "-r", "flask", &name]),
        "faaso new",
    );
    let out = run_in(&faaso, work.path(), &["build", &name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let error = stderr
        .lines()
        .find(|l| l.contains("failed at step 1/"))
        .unwrap_or_else(|| panic!("no failed step in {stderr}"));
    for part in [
        &format!("FROM {missing} AS build"),
        &format!("the base image {missing} is not on this host and could not be pulled"),
        "base_image in funko.yml",
        "FAASO_BASE_IMAGE_<RUNTIME>",
    ] {
        assert!(error.contains(part), "{part:?} missing in {error}");
    }
    let images = faaso::engine::docker::list_images(&docker, &name)
        .await
        .unwrap();
    assert!(images.is_empty(), "nothing was built: {images:?}");
}
