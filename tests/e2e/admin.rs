//! The admin API and the CLI's remote mode, against a gateway started by the test: auth, login,
//! the whole remote workflow, and hostile uploads.

use std::io::Write;
use std::time::Duration;

use faaso_tests::cli::Faaso;
use faaso_tests::docker::Cleanup;
use faaso_tests::gateway::GatewayProcess;
use faaso_tests::http::{client, wait_for_status, wait_until};
use faaso_tests::{require_docker, testfunko, unique_name};

const PASSWORD: &str = "correct horse";

async fn get(url: &str, password: Option<&str>) -> reqwest::Response {
    let request = client().get(url);
    let request = match password {
        Some(password) => request.basic_auth("admin", Some(password)),
        None => request,
    };
    request.send().await.unwrap()
}

#[tokio::test]
async fn auth_none_wrong_right_unset_and_brute_force() {
    let _docker = require_docker!();
    let gateway = GatewayProcess::start(&format!("password: {PASSWORD}\n")).await;
    let url = format!("{}/admin/api/version", gateway.url);
    let none = get(&url, None).await;
    assert_eq!(none.status().as_u16(), 401);
    // No challenge: a browser would keep the password for any request to the admin.
    assert!(none.headers().get("www-authenticate").is_none());
    assert!(none.json::<serde_json::Value>().await.unwrap()["error"].is_string());
    assert_eq!(get(&url, Some("wrong")).await.status().as_u16(), 401);
    let right = get(&url, Some(PASSWORD)).await;
    assert_eq!(right.status().as_u16(), 200);
    assert_eq!(
        right.json::<serde_json::Value>().await.unwrap()["version"],
        faaso::VERSION
    );

    // Ten failures a minute, then 429 even with the right password.
    for _ in 0..10 {
        assert_eq!(get(&url, Some("guess")).await.status().as_u16(), 401);
    }
    let limited = get(&url, Some(PASSWORD)).await;
    assert_eq!(limited.status().as_u16(), 429);
    assert!(limited.headers().contains_key("retry-after"));

    let unset = GatewayProcess::start("").await;
    let response = get(&format!("{}/admin/api/version", unset.url), Some(PASSWORD)).await;
    assert_eq!(response.status().as_u16(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("set FAASO_PASSWORD"),
        "{body}"
    );

    // An argon2 hash works like the password.
    let hash = faaso_tests::gateway::password_hash_line(PASSWORD);
    let hashed = GatewayProcess::start(&format!("{hash}\n")).await;
    let url = format!("{}/admin/api/version", hashed.url);
    assert_eq!(get(&url, Some(PASSWORD)).await.status().as_u16(), 200);
    assert_eq!(get(&url, Some("wrong")).await.status().as_u16(), 401);
}

/// A stream of wrong passwords against an argon2 hash, from many clients behind a trusted
/// proxy, does not stall funko traffic on the same (single) worker thread; a client that only
/// claims other addresses stays limited; every admin request is in the audit log.
#[tokio::test]
async fn admin_auth_under_attack() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("attacked");
    faaso_tests::docker::start_instance(&docker, &cleanup, &funko, &[]).await;
    let hash = faaso_tests::gateway::password_hash_line(PASSWORD);
    let gateway = GatewayProcess::start(&format!(
        "{hash}\nthreads: 1\ntrusted_proxies: [127.0.0.1]\n"
    ))
    .await;
    let ping = format!("{}/funko/{funko}/ping", gateway.url);
    wait_for_status(&ping, 200, Duration::from_secs(10)).await;
    let url = format!("{}/admin/api/version", gateway.url);

    // Dozens of guesses at once, each from another client (the trusted proxy says so). One
    // argon2 check takes 0.4–1.5 s in a debug build on a busy 2-core machine: on the worker
    // thread, a funko request would wait behind dozens of them. Off it, they queue (2 at a
    // time), so the guesses get as long as the queue needs: the bound here is on funko
    // traffic, not on how fast the machine hashes.
    const GUESSES: u8 = 24;
    let patient = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap();
    let attack = tokio::spawn({
        let url = url.clone();
        async move {
            futures_util::future::join_all((0..GUESSES).map(|n| {
                let (url, patient) = (url.clone(), patient.clone());
                async move {
                    patient
                        .get(&url)
                        .basic_auth("admin", Some("guess"))
                        .header("X-Forwarded-For", format!("203.0.113.{n}"))
                        .send()
                        .await
                        .map(|r| r.status().as_u16())
                        .map_err(|err| format!("{err:#}"))
                }
            }))
            .await
        }
    });
    let mut latencies = Vec::new();
    while !attack.is_finished() {
        let started = std::time::Instant::now();
        let response = client().get(&ping).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200);
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let statuses = attack.await.unwrap();
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    println!(
        "{} guesses answered {statuses:?}; {} funko requests meanwhile, median {median:?}, \
         slowest {:?}",
        statuses.len(),
        latencies.len(),
        latencies.last()
    );
    assert_eq!(statuses.len(), usize::from(GUESSES));
    assert!(statuses.iter().all(|s| *s == Ok(401)), "{statuses:?}");
    assert!(
        latencies.len() >= 5,
        "only {} funko requests",
        latencies.len()
    );
    // With the checks on the worker thread it is busy hashing nearly all the time, and a funko
    // request waits half a check (~0.2 s) or more; off it, milliseconds. The median is robust
    // to a scheduling hiccup on a loaded 2-core machine.
    assert!(
        median < Duration::from_millis(100),
        "funko requests waited behind password checks: median {median:?}"
    );

    // Without a trusted proxy, claiming other addresses does not escape the limit.
    let plain = GatewayProcess::start(&format!("password: {PASSWORD}\n")).await;
    let url = format!("{}/admin/api/version", plain.url);
    for n in 0..10u8 {
        let response = client()
            .get(&url)
            .basic_auth("admin", Some("guess"))
            .header("X-Forwarded-For", format!("198.51.100.{n}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401);
    }
    assert_eq!(get(&url, Some(PASSWORD)).await.status().as_u16(), 429);

    // The audit trail: refusals at warn, with route, client, verdict and status.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let log = plain.log();
        let refused = log
            .lines()
            .filter(|l| l.contains("WARN") && l.contains("faaso::admin"))
            .count();
        if refused >= 11 {
            let line = log
                .lines()
                .find(|l| l.contains("faaso::admin") && l.contains("status=429"))
                .expect("a 429 in the audit log");
            for part in [
                "method=GET",
                "route=/admin/api/version",
                "client=127.0.0.1",
                "auth=limited",
            ] {
                assert!(line.contains(part), "{part} missing in {line}");
            }
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{refused} refusals in the audit log:\n{log}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The CLI talks to the gateway's own HTTPS listener, whose certificate a private CA signed:
/// refused without the CA, accepted with `--cacert` (saved by `login`) or `FAASO_CA_CERT`.
#[tokio::test]
async fn the_cli_speaks_https_with_a_private_ca() {
    let _docker = require_docker!();
    let ca = faaso_tests::tls::TestCa::new("FaaSO test CA");
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = faaso_tests::tls::write_pair(
        certs.path(),
        "localhost",
        &ca.issue(&["localhost", "127.0.0.1"]),
    );
    let tls_port = faaso_tests::gateway::free_port();
    let _gateway = GatewayProcess::start(&format!(
        "password: {PASSWORD}\ntls_listen: 127.0.0.1:{tls_port}\ntls_certs:\n  - cert: {}\n    key: {}\n",
        cert.display(),
        key.display()
    ))
    .await;
    let server = format!("https://localhost:{tls_port}");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write_pem(dir.path());
    let faaso = Faaso::in_dir(dir.path());
    let login = |extra: &[&str]| {
        let mut child = faaso
            .command()
            .args(["login", "--server", &server])
            .args(extra)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
        child.wait_with_output().unwrap()
    };
    let untrusted = login(&[]);
    let stderr = String::from_utf8_lossy(&untrusted.stderr);
    assert_eq!(untrusted.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    let trusted = login(&["--cacert", ca_file.to_str().unwrap()]);
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    // The saved login keeps the CA: a later command needs no flag.
    let version = faaso.ok(&["version"]);
    assert!(version.contains(&format!("server {server}")), "{version}");
    // The variable works too, without a saved login.
    let other = tempfile::tempdir().unwrap();
    let mut plain = Faaso::in_dir(other.path());
    plain.env = vec![
        ("FAASO_SERVER".into(), server.clone()),
        ("FAASO_PASSWORD".into(), PASSWORD.into()),
        ("FAASO_CA_CERT".into(), ca_file.display().to_string()),
    ];
    let version = plain.ok(&["version"]);
    assert!(version.contains(&format!("server {server}")), "{version}");
    // A CA file that is not one is a clear error.
    let bogus = dir.path().join("bogus.pem");
    std::fs::write(&bogus, "not a certificate").unwrap();
    plain.env[2].1 = bogus.display().to_string();
    let out = plain.run(&["version"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("bogus.pem"), "{stderr}");
}

/// With `max_concurrent_builds: 1`, three builds sent at once run one at a time: the others
/// say they wait for a slot, and all three succeed.
#[tokio::test]
async fn builds_wait_for_a_slot() {
    let _docker = require_docker!();
    let gateway =
        GatewayProcess::start(&format!("password: {PASSWORD}\nmax_concurrent_builds: 1\n")).await;
    let name = unique_name("slots");
    // 128 MiB of zeros: a small upload, a large context for the engine to take in.
    let zeros = vec![0u8; 128 << 20];
    let archive = tar_gz(&[
        (
            "Dockerfile",
            tar::EntryType::Regular,
            b"FROM scratch\nCOPY zeros /zeros\n",
            None,
        ),
        ("zeros", tar::EntryType::Regular, &zeros, None),
    ]);
    drop(zeros);
    let url = format!("{}/admin/api/funkos/{name}/build", gateway.url);
    let builds = futures_util::future::join_all((0..3).map(|_| {
        let (url, body) = (url.clone(), archive.clone());
        async move {
            client()
                .post(url)
                .basic_auth("admin", Some(PASSWORD))
                .body(body)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        }
    }))
    .await;
    let waited = builds
        .iter()
        .filter(|b| b.contains("waiting: 1 builds"))
        .count();
    for build in &builds {
        assert!(
            build.trim_end().ends_with(r#"{"ok":true}"#),
            "a build failed: {build}"
        );
    }
    assert!(waited >= 1, "no build waited for a slot: {builds:?}");
    let purged = client()
        .delete(format!("{}/admin/api/funkos/{name}", gateway.url))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(purged.contains(r#"{"ok":true}"#), "{purged}");
}

#[tokio::test]
async fn login_checks_and_saves_privately() {
    let _docker = require_docker!();
    let gateway = GatewayProcess::start(&format!("password: {PASSWORD}\n")).await;
    let dir = tempfile::tempdir().unwrap();
    let faaso = Faaso::in_dir(dir.path());
    let login = |password: &str| {
        let mut child = faaso
            .command()
            .args(["login", "--server", &gateway.url])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let bad = login("nope");
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("wrong password"));
    let saved = dir.path().join("config/faaso/config.yml");
    assert!(!saved.exists(), "nothing saved after a wrong password");
    let good = login(PASSWORD);
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&saved).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Later commands use the saved login without --server.
    let version = faaso.ok(&["version"]);
    assert!(
        version.contains(&format!("server {}", gateway.url)),
        "{version}"
    );
}

#[tokio::test]
async fn the_whole_workflow_works_remotely() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start(&format!("password: {PASSWORD}\n")).await;
    // The client has its own (empty) folders: everything happens on the gateway's side.
    let client_dir = tempfile::tempdir().unwrap();
    let mut faaso = Faaso::in_dir(client_dir.path());
    faaso.env = vec![
        ("FAASO_SERVER".into(), gateway.url.clone()),
        ("FAASO_PASSWORD".into(), PASSWORD.into()),
    ];
    let name = unique_name("remote");
    cleanup.image(format!("faaso-{name}:latest"));
    faaso.ok(&[
        "new",
        "-r",
        "binary",
        client_dir.path().join(&name).to_str().unwrap(),
    ]);
    std::fs::copy(
        testfunko::build_executable(),
        client_dir.path().join(&name).join("funko"),
    )
    .unwrap();

    let built = faaso.ok(&["build", client_dir.path().join(&name).to_str().unwrap()]);
    assert!(
        built.starts_with(&format!("built faaso-{name}:latest, faaso-{name}:")),
        "{built}"
    );
    for tag in built.trim().trim_start_matches("built ").split(", ") {
        cleanup.image(tag.to_string());
        docker.inspect_image(tag).await.unwrap();
    }
    faaso.ok(&["up", &name, "--scale", "2"]);
    for c in faaso::engine::docker::list_instances(&docker, &name)
        .await
        .unwrap()
    {
        cleanup.container(c.id.unwrap());
    }
    let url = format!("{}/funko/{name}/ping", gateway.url);
    assert_eq!(
        wait_for_status(&url, 200, Duration::from_secs(10)).await,
        "OK"
    );

    let status: serde_json::Value =
        serde_json::from_str(&faaso.ok(&["status", "--json", &name])).unwrap();
    assert_eq!(status[0]["running"], 2);
    assert_eq!(status[0]["scale"], 2);
    assert!(faaso.ok(&["scale", &name]).contains("scale 2, 2 running"));
    let logs = faaso.ok(&["logs", &name]);
    assert_eq!(
        logs.lines().filter(|l| l.contains("listening on")).count(),
        2,
        "{logs}"
    );

    let mut add = faaso.command();
    let mut child = add
        .args(["secret", "add", &name, "api_key"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"very-secret-value")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("very-secret-value"));
    let listed = faaso.ok(&["secret", "list", &name]);
    assert_eq!(listed, format!("{name}\tapi_key\n"));
    let secrets = get(
        &format!("{}/admin/api/secrets", gateway.url),
        Some(PASSWORD),
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(!secrets.contains("very-secret-value"), "{secrets}");
    let read = format!("{}/funko/{name}/file?path=/secrets/api_key", gateway.url);
    assert_eq!(
        wait_for_status(&read, 200, Duration::from_secs(5)).await,
        "very-secret-value"
    );
    faaso.ok(&["secret", "rm", &name, "api_key"]);
    assert!(faaso.ok(&["secret", "list", &name]).is_empty());

    // A new build with other content (a new image: bytes after the executable's end do not
    // change how it runs), rolled out remotely: both instances are replaced.
    std::fs::OpenOptions::new()
        .append(true)
        .open(client_dir.path().join(&name).join("funko"))
        .and_then(|mut f| f.write_all(b"second release"))
        .unwrap();
    faaso.ok(&["build", client_dir.path().join(&name).to_str().unwrap()]);
    let deployed = faaso.ok(&["deploy", &name]);
    assert!(deployed.contains("2 instances replaced"), "{deployed}");
    faaso.ok(&["purge", "--yes", &name]);
    assert!(
        faaso::engine::docker::list_instances(&docker, &name)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        docker
            .inspect_image(&format!("faaso-{name}:latest"))
            .await
            .is_err()
    );
    // A server-side failure exits 1 with the server's message.
    let out = faaso.run(&["scale", &name, "1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("funko {name} has no image")));
}

fn tar_gz(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut tar = Vec::new();
    for (path, kind, data, link) in entries {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        header.set_entry_type(*kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        if let Some(link) = link {
            header.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        header.set_cksum();
        tar.extend_from_slice(header.as_bytes());
        tar.extend_from_slice(data);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.resize(tar.len() + 1024, 0);
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(&tar).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn hostile_uploads_are_refused() {
    let _docker = require_docker!();
    let gateway =
        GatewayProcess::start(&format!("password: {PASSWORD}\nmax_upload_bytes: 64KiB\n")).await;
    let sentinel = format!("faaso-escape-{}", faaso::conventions::random_suffix());
    let escape_path = format!("../../../../../../tmp/{sentinel}");
    let absolute_path = format!("/tmp/{sentinel}");
    let chained_dir = format!("esc/tmp/{sentinel}/");
    let dockerfile: &[u8] = b"FROM scratch\n";
    // Incompressible bytes (xorshift), so the upload itself is over the limit.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let random: Vec<u8> = (0..200_000)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "a ../ entry",
            tar_gz(&[
                ("Dockerfile", tar::EntryType::Regular, dockerfile, None),
                (&escape_path, tar::EntryType::Regular, b"x", None),
            ]),
            400,
        ),
        (
            "an absolute path",
            tar_gz(&[(&absolute_path, tar::EntryType::Regular, b"x", None)]),
            400,
        ),
        (
            "a symlink out",
            tar_gz(&[
                ("Dockerfile", tar::EntryType::Regular, dockerfile, None),
                ("etc", tar::EntryType::Symlink, b"", Some("../../../../etc")),
            ]),
            400,
        ),
        (
            "a device",
            tar_gz(&[("dev", tar::EntryType::Char, b"", None)]),
            400,
        ),
        (
            // `up -> .` and `up/up/up/esc -> ../../..` both look inside by their text; written
            // through, `esc/tmp/<sentinel>/` would be /tmp/<sentinel> on the host.
            "chained symbolic links",
            tar_gz(&[
                ("Dockerfile", tar::EntryType::Regular, dockerfile, None),
                ("up", tar::EntryType::Symlink, b"", Some(".")),
                (
                    "up/up/up/esc",
                    tar::EntryType::Symlink,
                    b"",
                    Some("../../.."),
                ),
                (&chained_dir, tar::EntryType::Directory, b"", None),
            ]),
            400,
        ),
        (
            "an oversize body",
            tar_gz(&[("big", tar::EntryType::Regular, &random, None)]),
            413,
        ),
        (
            "a broken gzip",
            b"\x1f\x8b\x08\x00garbage that is not deflate".to_vec(),
            400,
        ),
        (
            "a gzip bomb",
            tar_gz(&[("zeros", tar::EntryType::Regular, &vec![0u8; 2 << 20], None)]),
            413,
        ),
    ];
    for (what, body, expected) in cases {
        let response = client()
            .post(format!("{}/admin/api/funkos/hostile/build", gateway.url))
            .basic_auth("admin", Some(PASSWORD))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert_eq!(status, expected, "{what}: {body}");
        assert!(body["error"].is_string(), "{what}: {body}");
        println!("{what}: {status} {}", body["error"]);
        // An escape lands in /tmp, or (through `esc`, three levels above the upload folder)
        // in the gateway's own temporary folder.
        for outside in [
            std::path::PathBuf::from(&absolute_path),
            gateway.temp_dir().join(&sentinel),
        ] {
            assert!(!outside.exists(), "{what} wrote {}", outside.display());
        }
    }
    assert_eq!(upload_folders(&gateway), 0, "upload folders left behind");
}

/// The gateway's upload folders still in its temporary folder.
fn upload_folders(gateway: &GatewayProcess) -> usize {
    std::fs::read_dir(gateway.temp_dir())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("faaso-upload-"))
        .count()
}

/// A `.tar.gz` made of one header block and `zeros` zero bytes after it, compressed by the
/// system's `gzip` (quick even for hundreds of MiB).
fn header_then_zeros(header: &tar::Header, zeros: usize) -> Vec<u8> {
    let mut gzip = std::process::Command::new("gzip")
        .args(["-1", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip can be run");
    let mut stdin = gzip.stdin.take().unwrap();
    let head = header.as_bytes().to_vec();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&head).unwrap();
        let block = vec![0u8; 1 << 20];
        for _ in 0..zeros / block.len() {
            stdin.write_all(&block).unwrap();
        }
    });
    let output = gzip.wait_with_output().unwrap();
    writer.join().unwrap();
    output.stdout
}

/// Archives whose GNU long-name, long-link or PAX header declares 1 GiB and carries 256 MiB
/// (about 250 KB compressed each) are refused without the gateway's memory growing with them.
#[tokio::test]
async fn header_bombs_do_not_grow_memory() {
    let _docker = require_docker!();
    let gateway = GatewayProcess::start(&format!("password: {PASSWORD}\n")).await;
    // Warm up: the first admin request allocates what every one needs.
    get(
        &format!("{}/admin/api/version", gateway.url),
        Some(PASSWORD),
    )
    .await;
    let before = gateway.peak_rss();
    for kind in [b'L', b'K', b'x'] {
        let mut header = tar::Header::new_gnu();
        header.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        header.set_entry_type(tar::EntryType::new(kind));
        header.set_size(1 << 30);
        header.set_cksum();
        let body = header_then_zeros(&header, 256 << 20);
        let response = client()
            .post(format!("{}/admin/api/funkos/bomb/build", gateway.url))
            .basic_auth("admin", Some(PASSWORD))
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        println!("header {}: {status} {text}", kind as char);
        assert_eq!(status, 400, "{text}");
        assert!(text.contains("extension header"), "{text}");
    }
    let grown = gateway.peak_rss().saturating_sub(before);
    println!("peak RSS grew by {} KiB", grown / 1024);
    assert!(grown < 64 << 20, "peak RSS grew by {} MiB", grown >> 20);
    assert_eq!(upload_folders(&gateway), 0, "upload folders left behind");
}

/// A client that goes away in the middle of an upload leaves nothing behind: the unpacker
/// stops, and its folder is removed after its last write (never recreated by a late write).
#[tokio::test]
async fn an_interrupted_upload_leaves_nothing() {
    let _docker = require_docker!();
    let gateway = GatewayProcess::start(&format!("password: {PASSWORD}\n")).await;
    // Many small files: the unpacker is still busy when the client disappears.
    let files: Vec<(String, Vec<u8>)> = (0..3000)
        .map(|n| {
            (
                format!("src/file{n}.txt"),
                vec![b'a' + (n % 26) as u8; 2000],
            )
        })
        .collect();
    let entries: Vec<(&str, tar::EntryType, &[u8], Option<&str>)> = files
        .iter()
        .map(|(path, data)| (path.as_str(), tar::EntryType::Regular, &data[..], None))
        .collect();
    let archive = tar_gz(&entries);
    let addr = gateway.url.trim_start_matches("http://").to_string();
    for _ in 0..3 {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /admin/api/funkos/cut/build HTTP/1.1\r\nHost: {addr}\r\n\
             Authorization: Basic {}\r\nContent-Length: {}\r\n\r\n",
            base64_auth(),
            archive.len()
        );
        use tokio::io::AsyncWriteExt;
        stream.write_all(head.as_bytes()).await.unwrap();
        stream
            .write_all(&archive[..archive.len() * 2 / 3])
            .await
            .unwrap();
        // Gone, with two thirds sent.
        drop(stream);
    }
    // The audit line of a request is written when its handler is done (after the unpacker
    // stopped and removed its folder).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while gateway
        .log()
        .lines()
        .filter(|l| l.contains("faaso::admin") && l.contains("/cut/build"))
        .count()
        < 3
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the three uploads were not all handled:\n{}",
            gateway.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(upload_folders(&gateway), 0, "upload folders left behind");
    // Nothing comes back after the folders were removed.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(upload_folders(&gateway), 0, "an upload folder reappeared");
}

fn base64_auth() -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("admin:{PASSWORD}"))
}

/// The lines of a streamed admin result.
async fn stream_lines(url: &str) -> Vec<serde_json::Value> {
    let text = client()
        .get(url)
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `logs` shows the last 100 lines per instance unless asked (`tail=all`), and a `logs -f`
/// whose client went away while the log was quiet is noticed: it no longer holds the gateway's
/// drain on SIGTERM.
#[tokio::test]
async fn log_streams_default_to_100_lines_and_notice_a_client_that_left() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("quiet");
    faaso_tests::docker::start_instance(&docker, &cleanup, &funko, &[]).await;
    let mut gateway =
        GatewayProcess::start(&format!("password: {PASSWORD}\ngrace_period: 10s\n")).await;
    let printed = format!("{}/funko/{funko}/print/250", gateway.url);
    wait_for_status(&printed, 200, Duration::from_secs(10)).await;
    let logs = format!("{}/admin/api/funkos/{funko}/logs", gateway.url);
    let counted = |lines: &[serde_json::Value]| {
        lines
            .iter()
            .filter(|l| {
                l["log"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("testfunko line"))
            })
            .count()
    };
    let default = stream_lines(&logs).await;
    assert_eq!(counted(&default), 100, "{default:?}");
    let last = default.iter().rev().find_map(|l| l["log"].as_str());
    assert_eq!(last, Some("testfunko line 250 of 250"), "the last lines");
    assert_eq!(
        counted(&stream_lines(&format!("{logs}?tail=all")).await),
        250
    );
    assert_eq!(counted(&stream_lines(&format!("{logs}?tail=7")).await), 7);

    // Follow a quiet log, then leave.
    let addr = gateway.url.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET /admin/api/funkos/{funko}/logs?follow=1&tail=1 HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Basic {}\r\n\r\n",
        base64_auth()
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = [0u8; 512];
    let n = stream.read(&mut head).await.unwrap();
    assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
    drop(stream);
    // A request's audit line is written when its handler is done: the three earlier `logs`
    // calls have theirs, the follow gets its own once the gateway noticed the client left.
    let audited = |log: &str| {
        log.lines()
            .filter(|l| l.contains("faaso::admin") && l.contains(&format!("{funko}/logs")))
            .count()
    };
    wait_until(
        "the abandoned stream to end",
        Duration::from_secs(5),
        || async { audited(&gateway.log()) >= 4 },
    )
    .await;
    let stopping = std::time::Instant::now();
    gateway.signal("TERM");
    let exit = tokio::task::spawn_blocking(move || {
        let exit = gateway.wait_exit(Duration::from_secs(12));
        (exit, gateway)
    })
    .await
    .unwrap()
    .0;
    assert!(exit.is_some(), "the gateway did not exit");
    println!("the gateway exited {:?} after SIGTERM", stopping.elapsed());
    assert!(
        stopping.elapsed() < Duration::from_secs(4),
        "the gateway waited {:?}: the abandoned log stream still counted as in flight",
        stopping.elapsed()
    );
}

/// A scale whose client disconnects after the first line runs to its end: all instances
/// start and the scale is saved.
#[tokio::test]
async fn a_scale_runs_to_its_end_when_the_client_leaves() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let funko = unique_name("leftscale");
    let image = testfunko::tag_as_funko(&docker, &funko).await;
    cleanup.image(image);
    let gateway = GatewayProcess::start(&format!("password: {PASSWORD}\n")).await;
    let addr = gateway.url.trim_start_matches("http://").to_string();
    let body = r#"{"scale": 3}"#;
    let request = format!(
        "PUT /admin/api/funkos/{funko}/scale HTTP/1.1\r\nHost: {addr}\r\n\
         Authorization: Basic {}\r\nContent-Length: {}\r\n\r\n{body}",
        base64_auth(),
        body.len()
    );
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = Vec::new();
    let mut chunk = [0u8; 512];
    // Up to the first streamed line, then gone.
    while !String::from_utf8_lossy(&seen).contains("{\"log\"") {
        let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut chunk))
            .await
            .expect("a first line within 20 s")
            .unwrap();
        assert!(n > 0, "{}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&chunk[..n]);
    }
    drop(stream);
    let status_url = format!("{}/admin/api/funkos/{funko}", gateway.url);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status: serde_json::Value = client()
            .get(&status_url)
            .basic_auth("admin", Some(PASSWORD))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let running = status["instances"]
            .as_array()
            .map_or(0, |instances| instances.len());
        if running == 3 && status["scale"] == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the scale stopped half-way: {status}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let purged = client()
        .delete(format!("{}/admin/api/funkos/{funko}", gateway.url))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(purged.contains(r#"{"ok":true}"#), "{purged}");
}

/// Local and remote mode say the same thing: the same result lines on stdout and the same error
/// line, for successes and for failures.
#[tokio::test]
async fn local_and_remote_output_are_the_same() {
    let docker = require_docker!();
    let cleanup = Cleanup::new();
    let gateway = GatewayProcess::start(&format!("password: {PASSWORD}\n")).await;
    let local = Faaso::in_dir(gateway.dir.path());
    let client_dir = tempfile::tempdir().unwrap();
    let mut remote = Faaso::in_dir(client_dir.path());
    remote.env = vec![
        ("FAASO_SERVER".into(), gateway.url.clone()),
        ("FAASO_PASSWORD".into(), PASSWORD.into()),
    ];
    let name = unique_name("same");
    let tag = format!("faaso-{name}:latest");
    testfunko::variant(&docker, &tag, "ENV TESTFUNKO_VERSION=1").await;
    cleanup.image(tag);
    let unknown = unique_name("nosuch");
    let said = |faaso: &Faaso, args: &[&str]| {
        let out = faaso.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let error: Vec<String> = stderr
            .lines()
            .filter(|l| l.starts_with("error"))
            .map(str::to_string)
            .collect();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            error,
        )
    };
    let cases: Vec<Vec<&str>> = vec![
        vec!["scale", &unknown, "0"],
        vec!["deploy", &unknown],
        vec!["rollback", &unknown],
        vec!["up", &name],
        vec!["scale", &name, "1"],
        vec!["scale", &name],
        vec!["deploy", &name],
        vec!["secret", "rm", &name, "nothing"],
        vec!["secret", "add", &unknown, "token"],
        vec!["down", &name],
    ];
    for args in &cases {
        let here = said(&local, args);
        let there = said(&remote, args);
        println!("faaso {args:?}: {here:?}");
        assert_eq!(here, there, "faaso {args:?}: local, then remote");
    }
    for c in faaso::engine::docker::list_instances(&docker, &name)
        .await
        .unwrap()
    {
        cleanup.container(c.id.unwrap());
    }
}
