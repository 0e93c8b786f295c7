//! A real ACME server for tests: Debian's `pebble`, with `pebble-challtestsrv` as its DNS
//! server so that any test host name resolves to loopback. Pebble validates HTTP-01 challenges
//! by fetching `http://<name>:<http_port>/.well-known/acme-challenge/<token>`: the port is the
//! gateway's plain listener. Both processes are killed on drop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::gateway::free_port;
use crate::tls::TestCa;

/// A running pebble and its DNS server.
pub struct Pebble {
    children: Vec<Child>,
    /// The ACME directory URL.
    pub directory: String,
    /// The CA file that signs pebble's own HTTPS certificate (`acme.ca_cert`).
    pub ca_file: PathBuf,
    ca_pem: String,
    management: SocketAddr,
    dir: tempfile::TempDir,
}

/// Whether pebble is installed (it is in CI: `.ci/run` installs it).
pub fn available() -> bool {
    ["pebble", "pebble-challtestsrv"].iter().all(|tool| {
        Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

impl Pebble {
    /// Starts pebble validating on `http_port`, issuing certificates valid for
    /// `validity_secs`, and waits until its directory answers.
    pub async fn start(http_port: u16, validity_secs: u64) -> Pebble {
        let dir = tempfile::tempdir().expect("a temp dir");
        let ca = TestCa::new("pebble listener CA");
        let issued = ca.issue(&["localhost", "127.0.0.1"]);
        let (cert, key) = crate::tls::write_pair(dir.path(), "pebble", &issued);
        let ca_file = ca.write_pem(dir.path());
        let dns = free_port();
        let listen = free_port();
        let management = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": management.to_string(),
                "certificate": cert,
                "privateKey": key,
                "httpPort": http_port,
                "tlsPort": free_port(),
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": validity_secs,
            }
        });
        let config_path = dir.path().join("pebble.json");
        std::fs::write(&config_path, config.to_string()).expect("pebble's config");
        let log = |name: &str| {
            std::fs::File::create(dir.path().join(name)).expect("a log file for pebble")
        };
        let dns_server = Command::new("pebble-challtestsrv")
            .args(["-dns01", &format!("127.0.0.1:{dns}")])
            .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
            .args(["-management", &format!("127.0.0.1:{}", free_port())])
            .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
            .stdout(log("challtestsrv.log"))
            .stderr(log("challtestsrv.err"))
            .spawn()
            .expect("pebble-challtestsrv starts");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_path)
            .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
            // No artificial delays, no refused nonces: the test is about the gateway.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(log("pebble.log"))
            .stderr(log("pebble.err"))
            .spawn()
            .expect("pebble starts");
        let pebble = Pebble {
            children: vec![dns_server, pebble],
            directory: format!("https://127.0.0.1:{listen}/dir"),
            ca_file,
            ca_pem: ca.cert_pem(),
            management,
            dir,
        };
        let client = pebble.client();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(response) = client.get(&pebble.directory).send().await
                && response.status().is_success()
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "pebble's directory did not answer; its log:\n{}",
                pebble.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        pebble
    }

    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).expect("a PEM CA"),
            )
            .timeout(Duration::from_secs(10))
            .build()
            .expect("a client for pebble")
    }

    /// The root certificate pebble issues under (PEM): it changes with every pebble start.
    pub async fn issuing_root(&self) -> String {
        let url = format!("https://{}/roots/0", self.management);
        let client = self.client();
        let response = client.get(url).send().await.expect("pebble's root");
        assert!(response.status().is_success(), "{}", response.status());
        response.text().await.expect("the root as PEM")
    }

    /// What pebble logged so far.
    pub fn log(&self) -> String {
        ["pebble.log", "pebble.err", "challtestsrv.err"]
            .iter()
            .map(|name| std::fs::read_to_string(self.dir.path().join(name)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
