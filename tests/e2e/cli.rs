//! The `faaso` command against a real Docker engine: `new` → `build` → a container of the image
//! answers `/ping`; failed builds name their step (the other runtimes: `runtimes`).

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use faaso::conventions::{NETWORK, instance_name, random_suffix};
use faaso_tests::docker::{Cleanup, ip_on_network, run_container};
use faaso_tests::http::wait_for_status;
use faaso_tests::{bins, require_docker, testfunko, unique_name};

fn faaso(dir: &Path, args: &[&str]) -> Output {
    Command::new(bins::path("faaso"))
        .current_dir(dir)
        .env_remove("FAASO_SERVER")
        .args(args)
        .output()
        .expect("faaso can be run")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn new_build_run_with_the_binary_runtime() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("built");
    let out = faaso(dir.path(), &["new", "-r", "binary", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    std::fs::copy(
        testfunko::build_executable(),
        dir.path().join(&name).join("funko"),
    )
    .unwrap();

    cleanup.image(format!("faaso-{name}:latest"));
    let out = faaso(dir.path(), &["build", &name]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}{stdout}", text(&out.stderr));
    let tags: Vec<&str> = stdout
        .trim()
        .strip_prefix("built ")
        .unwrap_or_else(|| panic!("unexpected output {stdout:?}"))
        .split(", ")
        .collect();
    assert_eq!(tags.len(), 2, "{stdout}");
    assert_eq!(tags[0], format!("faaso-{name}:latest"));
    let stamp = tags[1].strip_prefix(&format!("faaso-{name}:")).unwrap();
    assert!(stamp.parse::<u64>().unwrap() > 1_700_000_000, "{stamp}");
    for tag in &tags {
        cleanup.image(tag.to_string());
        docker
            .inspect_image(tag)
            .await
            .unwrap_or_else(|e| panic!("{tag}: {e}"));
    }

    let container = instance_name(&name, &random_suffix());
    run_container(&docker, &cleanup, &container, tags[0], NETWORK, &[], &[]).await;
    let ip = ip_on_network(&docker, &container, NETWORK).await;
    let ping = wait_for_status(
        &format!("http://{ip}:3000/ping"),
        200,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(ping, "OK");
    let info = docker.inspect_container(&container, None).await.unwrap();
    let user = info.config.and_then(|c| c.user).unwrap_or_default();
    assert_eq!(user, "65534:65534", "runs as nobody");

    // --name builds the same folder under another name; --no-cache is accepted.
    let other = unique_name("renamed");
    cleanup.image(format!("faaso-{other}:latest"));
    let out = faaso(
        dir.path(),
        &["build", "--no-cache", "--name", &other, &name],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    for tag in text(&out.stdout)
        .trim()
        .trim_start_matches("built ")
        .split(", ")
    {
        cleanup.image(tag.to_string());
        assert!(tag.starts_with(&format!("faaso-{other}:")), "{tag}");
    }
}

#[tokio::test]
async fn a_failed_build_names_its_step() {
    let _docker = require_docker!();
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("broken");
    let folder = dir.path().join(&name);
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("funko.yml"), format!("name: {name}\n")).unwrap();
    // A Dockerfile of its own whose COPY names a file that is not there.
    std::fs::write(
        folder.join("Dockerfile"),
        "FROM scratch\nCOPY nothere /nothere\n",
    )
    .unwrap();
    let out = faaso(dir.path(), &["build", &name]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let error = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(
        error.contains(&format!("building {name} failed at step 2/2")),
        "{error}"
    );
    assert!(error.contains("COPY nothere /nothere"), "{error}");
}

/// The `binary` runtime refuses, before anything is built, an executable that could not start
/// in its `FROM scratch` image: missing, not executable, a script, or dynamically linked.
#[tokio::test]
async fn the_binary_runtime_refuses_what_cannot_start_from_scratch() {
    let docker = require_docker!();
    let dir = tempfile::tempdir().unwrap();
    let name = unique_name("nostatic");
    let out = faaso(dir.path(), &["new", "-r", "binary", &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let executable = dir.path().join(&name).join("funko");
    let refused = |expected: &str| {
        let out = faaso(dir.path(), &["build", &name]);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error")).collect();
        assert_eq!(errors.len(), 1, "{stderr}");
        assert!(
            errors[0].contains(&format!("{name}/funko (option `executable`) {expected}")),
            "{expected:?} not in {stderr}"
        );
    };
    refused("does not exist");
    std::fs::write(&executable, "#!/bin/sh\necho hello\n").unwrap();
    refused("is not executable (mode 644; chmod +x it)");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&executable, std::fs::Permissions::from_mode(0o755)).unwrap();
    refused("is not an ELF executable");
    // Debian's own executables are dynamically linked.
    std::fs::copy("/bin/true", &executable).unwrap();
    refused("is dynamically linked (it needs /lib");
    let images = faaso::engine::docker::list_images(&docker, &name)
        .await
        .unwrap();
    assert!(images.is_empty(), "nothing was built: {images:?}");
}

/// The messages a new user meets first: `logs` of a funko that wrote nothing says so; a
/// mistyped funko name gets the nearest one suggested; `status` warns in one line when no
/// gateway answers on this machine.
#[tokio::test]
async fn first_hour_messages() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let dir = tempfile::tempdir().unwrap();
    let funko = unique_name("firsthour");
    // Created, never started: an instance that has written nothing.
    let image = testfunko::image(&docker).await;
    let container = instance_name(&funko, &random_suffix());
    let created = docker
        .create_container(
            Some(bollard::query_parameters::CreateContainerOptions {
                name: Some(container.clone()),
                ..Default::default()
            }),
            bollard::models::ContainerCreateBody {
                image: Some(image),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    cleanup.container(created.id);
    let mut faaso = faaso_tests::cli::Faaso::in_dir(dir.path());
    let gateway_port = faaso_tests::gateway::free_port();
    faaso.env = vec![(
        "FAASO_LISTEN".to_string(),
        format!("127.0.0.1:{gateway_port}"),
    )];

    let out = faaso.run(&["logs", &funko]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(text(&out.stdout), "");
    assert!(
        stderr.contains(&format!("no log lines from {funko} yet")),
        "{stderr}"
    );

    let typo = &funko[..funko.len() - 1];
    for args in [["logs", typo], ["status", typo]] {
        let out = faaso.run(&args);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&format!("funko {typo} does not exist"))
                && stderr.contains(&format!("did you mean {funko}?")),
            "{args:?}: {stderr}"
        );
    }

    let out = faaso.run(&["status", &funko]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("no gateway answers"))
        .collect();
    assert_eq!(
        warnings,
        [format!(
            "warning: no gateway answers on 127.0.0.1:{gateway_port}, so nothing routes \
             requests to funkos; start one with `faaso-gateway &`"
        )],
        "{stderr}"
    );
}
