//! The test funko's image, built locally: the `faaso-testfunko` package compiled as a static
//! executable (`-C target-feature=+crt-static`) and copied into an image `FROM scratch`.
//!
//! Building is done once per change of the executable: the image is tagged with a hash of the
//! executable, and a file lock keeps parallel test processes from building it twice.

use std::fs::File;
use std::hash::{DefaultHasher, Hasher};
use std::path::PathBuf;
use std::process::Command;

use bollard::Docker;
use bollard::query_parameters::{BuildImageOptions, TagImageOptions};
use futures_util::StreamExt;

use crate::bins::target_dir;
use crate::workspace_root;

/// The image repository of the test funko.
pub const REPO: &str = "testfunko";

/// Builds the static test funko executable (a no-op when it is up to date) and returns its path.
pub fn build_executable() -> PathBuf {
    let triple = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let target_dir = target_dir().join("testfunko");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let status = Command::new(cargo)
        .args(["build", "--release", "--quiet", "-p", "faaso-testfunko"])
        .arg("--target")
        .arg(&triple)
        .arg("--target-dir")
        .arg(&target_dir)
        .current_dir(workspace_root())
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .status()
        .expect("cargo can be run to build the test funko");
    assert!(status.success(), "building the test funko failed: {status}");
    target_dir.join(triple).join("release/testfunko")
}

/// Makes sure the test funko image exists and returns its tag (`testfunko:<hash>`; not a
/// `faaso-` name, so no gateway takes it for a funko).
pub async fn image(docker: &Docker) -> String {
    let lock_path = target_dir().join("testfunko.lock");
    std::fs::create_dir_all(target_dir()).expect("target dir can be created");
    let lock = File::create(&lock_path).expect("lock file can be created");
    // Held until the end of this function: one builder at a time across test processes.
    lock.lock().expect("lock file can be locked");

    let executable = build_executable();
    let bytes = std::fs::read(&executable).expect("test funko executable can be read");
    let mut hasher = DefaultHasher::new();
    hasher.write(&bytes);
    let tag = format!("{REPO}:{:016x}", hasher.finish());
    if docker.inspect_image(&tag).await.is_err() {
        build_image(docker, &bytes, &tag).await;
    }
    drop(lock);
    tag
}

/// Tags the test funko image as `faaso-<funko>:latest`, the image a funko's instances run.
pub async fn tag_as_funko(docker: &Docker, funko: &str) -> String {
    let source = image(docker).await;
    let repo = faaso::conventions::image_repo(funko);
    let options = TagImageOptions {
        repo: Some(repo.clone()),
        tag: Some("latest".to_string()),
    };
    docker
        .tag_image(&source, Some(options))
        .await
        .unwrap_or_else(|err| panic!("tag {source} as {repo}: {err}"));
    faaso::conventions::image_latest(funko)
}

async fn build_image(docker: &Docker, executable: &[u8], tag: &str) {
    let dockerfile =
        "FROM scratch\nCOPY testfunko /testfunko\nEXPOSE 3000\nENTRYPOINT [\"/testfunko\"]\n";
    let mut context = tar::Builder::new(Vec::new());
    append(&mut context, "Dockerfile", dockerfile.as_bytes(), 0o644);
    append(&mut context, "testfunko", executable, 0o755);
    build(docker, context, tag, false).await;
}

/// Builds the image `tag` from a tar build context (a fresh build with `nocache`), and panics
/// with the engine's message when the build fails.
pub async fn build(docker: &Docker, context: tar::Builder<Vec<u8>>, tag: &str, nocache: bool) {
    let context = context.into_inner().expect("tar can be finished");
    let options = BuildImageOptions {
        t: Some(tag.to_string()),
        rm: true,
        forcerm: true,
        nocache,
        ..Default::default()
    };
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) if info.error_detail.is_some() => {
                panic!("building {tag} failed: {:?}", info.error_detail)
            }
            Ok(_) => {}
            Err(err) => panic!("building {tag} failed: {err}"),
        }
    }
}

/// Adds a file to a tar build context.
pub fn append(builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8], mode: u32) {
    let mut header = tar::Header::new_gnu();
    header.set_size(data.len() as u64);
    header.set_mode(mode);
    header.set_cksum();
    builder
        .append_data(&mut header, path, data)
        .expect("tar entry can be written");
}

/// Builds a variant of the test funko image (for example with `ENV TESTFUNKO_VERSION=2`) as
/// `tag`: a new image id (never one from the build cache), as a new release of a funko would have. `FROM` a local image needs no
/// registry.
pub async fn variant(docker: &Docker, tag: &str, instructions: &str) {
    let base = image(docker).await;
    let dockerfile = format!("FROM {base}\n{instructions}\n");
    let mut context = tar::Builder::new(Vec::new());
    append(&mut context, "Dockerfile", dockerfile.as_bytes(), 0o644);
    // Without the build cache: two tests asking for the same instructions would otherwise get
    // the same image, and one test's cleanup would remove it while the other builds on it.
    build(docker, context, tag, true).await;
}

/// The most `/sleep/` requests the test funko's instance behind `funko_url` (a gateway's
/// `.../funko/<name>`) has had at once: a concurrency limit, seen from behind it.
pub async fn peak(funko_url: &str) -> usize {
    let text = crate::http::client()
        .get(format!("{funko_url}/peak"))
        .send()
        .await
        .expect("the peak can be asked for")
        .text()
        .await
        .expect("a peak");
    text.parse()
        .unwrap_or_else(|_| panic!("not a peak: {text:?}"))
}
