//! A `faaso-gateway` process for tests: free ports, a private config file and directories, and
//! a kill on drop.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

/// A running gateway; killed when dropped.
pub struct GatewayProcess {
    pub child: Child,
    /// The public listener, for example `http://127.0.0.1:41234`.
    pub url: String,
    /// The metrics listener.
    pub metrics_url: String,
    /// The private folder holding the config, state and secrets (shared with an upgrade).
    pub dir: Arc<tempfile::TempDir>,
}

/// A free TCP port on loopback (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a: SocketAddr| a.port())
        .expect("a free port on loopback")
}

/// `faaso-gateway --hash-password` for `password`: the config line it prints, as the README
/// shows it (`password_hash: '$argon2id$...'`), pasted into configs as it is.
pub fn password_hash_line(password: &str) -> String {
    let mut hasher = std::process::Command::new(crate::bins::path("faaso-gateway"))
        .arg("--hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    writeln!(hasher.stdin.take().unwrap(), "{password}").unwrap();
    let line = String::from_utf8(hasher.wait_with_output().unwrap().stdout).unwrap();
    assert!(line.starts_with("password_hash: '$argon2id$"), "{line}");
    assert!(line.ends_with("'\n"), "{line}");
    line.trim().to_string()
}

/// The argon2 hash alone, as `FAASO_PASSWORD_HASH` takes it.
pub fn hash_password(password: &str) -> String {
    let line = password_hash_line(password);
    line.trim_start_matches("password_hash: '")
        .trim_end_matches('\'')
        .to_string()
}

impl GatewayProcess {
    /// Starts the gateway with `extra_yaml` appended to its generated config, and waits until
    /// `/healthz` answers.
    pub async fn start(extra_yaml: &str) -> GatewayProcess {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        GatewayProcess::start_in(dir, extra_yaml).await
    }

    /// Like [`GatewayProcess::start`], with its config, state and secrets in `dir` (shared with
    /// an earlier gateway, or with `faaso` commands through [`crate::cli::Faaso::in_dir`]).
    pub async fn start_in(dir: Arc<tempfile::TempDir>, extra_yaml: &str) -> GatewayProcess {
        let (config_path, port, metrics_port) = write_config(&dir, extra_yaml);
        let gateway = GatewayProcess {
            child: spawn(&config_path, &[]),
            url: format!("http://127.0.0.1:{port}"),
            metrics_url: format!("http://127.0.0.1:{metrics_port}"),
            dir,
        };
        crate::http::wait_for_status(
            &format!("{}/healthz", gateway.url),
            200,
            Duration::from_secs(20),
        )
        .await;
        gateway
    }

    /// Starts a gateway that is expected to refuse to start, with its config in `dir`; waits
    /// up to `limit` for it to exit. The process is killed if it still runs then.
    pub fn start_refused(
        dir: Arc<tempfile::TempDir>,
        extra_yaml: &str,
        limit: Duration,
    ) -> Refused {
        let (config_path, _, _) = write_config(&dir, extra_yaml);
        let log_path = config_path.with_file_name("gateway.log");
        let before = std::fs::read_to_string(&log_path).unwrap_or_default().len();
        let started = std::time::Instant::now();
        let mut gateway = GatewayProcess {
            child: spawn(&config_path, &[]),
            url: String::new(),
            metrics_url: String::new(),
            dir,
        };
        let code = gateway.wait_exit(limit);
        let took = started.elapsed();
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        Refused {
            code,
            took,
            stderr: log.get(before..).unwrap_or_default().to_string(),
        }
    }

    /// Builds a test-funko variant as `name`'s image (`instructions` added to its
    /// Dockerfile, labels for example), starts one instance of it next to this gateway, and
    /// waits until the gateway routes to it.
    pub async fn serve_variant(
        &self,
        docker: &bollard::Docker,
        cleanup: &crate::docker::Cleanup,
        name: &str,
        instructions: &str,
    ) {
        self.serve_variant_answering(docker, cleanup, name, instructions, 200)
            .await;
    }

    /// [`GatewayProcess::serve_variant`] for a funko whose `/ping` through the gateway answers
    /// `status` once it is routed (401 for a private funko).
    pub async fn serve_variant_answering(
        &self,
        docker: &bollard::Docker,
        cleanup: &crate::docker::Cleanup,
        name: &str,
        instructions: &str,
        status: u16,
    ) {
        let tag = format!("faaso-{name}:latest");
        crate::testfunko::variant(docker, &tag, instructions).await;
        cleanup.image(tag);
        crate::cli::Faaso::in_dir(self.dir.path()).ok(&["up", name]);
        for c in faaso::engine::docker::list_instances(docker, name)
            .await
            .unwrap()
        {
            cleanup.container(c.id.unwrap_or_default());
        }
        crate::http::wait_for_status(
            &format!("{}/funko/{name}/ping", self.url),
            status,
            Duration::from_secs(20),
        )
        .await;
    }

    /// Starts a second gateway with the same config and `-u`, which takes over the listeners
    /// once this one gets SIGQUIT (Pingora's zero-downtime upgrade).
    pub fn upgrade(&self) -> GatewayProcess {
        GatewayProcess {
            child: spawn(&self.config_path(), &["-u"]),
            url: self.url.clone(),
            metrics_url: self.metrics_url.clone(),
            dir: Arc::clone(&self.dir),
        }
    }

    /// The gateway's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let response = crate::http::client()
            .get(format!("{}/metrics", self.metrics_url))
            .send()
            .await
            .expect("the metrics listener answers");
        response.text().await.expect("a metrics body")
    }

    /// Sends a signal (`TERM`, `QUIT`, ...) to the gateway process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill can be run");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits up to `timeout` for the process to exit; returns its exit code if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<Option<i32>> {
        let deadline = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status.code());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// What the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    /// The gateway's own temporary folder (`TMPDIR`).
    pub fn temp_dir(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    /// The gateway's peak resident memory so far (`VmHWM`), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the gateway's /proc status can be read");
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmHWM:"))
            .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .expect("VmHWM in /proc status")
    }

    /// How many times the gateway's threads have been switched in so far (voluntary and
    /// involuntary context switches of every thread, from `/proc`): what an idle process
    /// does when something in it spins.
    pub fn context_switches(&self) -> u64 {
        let pid = self.child.id();
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .expect("the gateway's threads can be listed")
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("status")).ok())
            .flat_map(|status| {
                status
                    .lines()
                    .filter(|line| line.contains("ctxt_switches:"))
                    .filter_map(|line| line.split(':').nth(1)?.trim().parse::<u64>().ok())
                    .collect::<Vec<_>>()
            })
            .sum()
    }

    /// The TCP ports the gateway process listens on, read from `/proc` (its socket
    /// descriptors matched against the kernel's listening sockets). A port the gateway does
    /// not hold may still answer: another test's process can have taken the same free port.
    pub fn listening_ports(&self) -> Vec<u16> {
        let pid = self.child.id();
        let inodes: std::collections::HashSet<String> =
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .expect("the gateway's descriptors can be listed")
                .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    let inode = target.strip_prefix("socket:[")?.strip_suffix(']')?;
                    Some(inode.to_string())
                })
                .collect();
        let mut ports = Vec::new();
        for table in ["tcp", "tcp6"] {
            let text =
                std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
            for line in text.lines().skip(1) {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // local_address is `HEX_IP:HEX_PORT`, state 0A is LISTEN, the inode is field 9.
                let (Some(local), Some(state), Some(inode)) =
                    (fields.get(1), fields.get(3), fields.get(9))
                else {
                    continue;
                };
                if *state != "0A" || !inodes.contains(*inode) {
                    continue;
                }
                if let Some(port) = local
                    .rsplit(':')
                    .next()
                    .and_then(|hex| u16::from_str_radix(hex, 16).ok())
                {
                    ports.push(port);
                }
            }
        }
        ports
    }

    /// The config file the gateway runs with.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("faaso.yml")
    }
}

/// How a gateway that was expected to refuse to start ended.
#[derive(Debug)]
pub struct Refused {
    /// Its exit code; `None` if it was still running after the limit (or died by a signal).
    pub code: Option<Option<i32>>,
    /// How long it ran.
    pub took: Duration,
    /// What it wrote to stderr.
    pub stderr: String,
}

/// Writes `dir/faaso.yml`: free ports and private folders, then `extra_yaml` (a key there
/// replaces the base's line for it). Returns the path and the public and metrics ports.
fn write_config(dir: &tempfile::TempDir, extra_yaml: &str) -> (PathBuf, u16, u16) {
    // A `listen:` in `extra_yaml` names the port (a test that must know it beforehand).
    let port_of = |key: &str| {
        extra_yaml
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .and_then(|addr| addr.trim().rsplit(':').next()?.parse().ok())
    };
    let port = port_of("listen:").unwrap_or_else(free_port);
    let metrics_port = port_of("metrics_listen:").unwrap_or_else(free_port);
    let base = format!(
        "listen: 127.0.0.1:{port}\nmetrics_listen: 127.0.0.1:{metrics_port}\n\
         state_dir: {state}\nsecrets_dir: {secrets}\npid_file: {pid}\nupgrade_sock: {sock}\n\
         threads: 2\n",
        state = dir.path().join("state").display(),
        secrets = dir.path().join("secrets").display(),
        pid = dir.path().join("gateway.pid").display(),
        sock = dir.path().join("upgrade.sock").display(),
    );
    // A key in `extra_yaml` replaces the base's line for it.
    let overridden = |line: &str| {
        line.split_once(':').is_some_and(|(key, _)| {
            extra_yaml
                .lines()
                .any(|extra| extra.starts_with(&format!("{key}:")))
        })
    };
    let mut config: String = base
        .lines()
        .filter(|line| !overridden(line))
        .map(|line| format!("{line}\n"))
        .collect();
    config.push_str(extra_yaml);
    let config_path = dir.path().join("faaso.yml");
    std::fs::File::create(&config_path)
        .and_then(|mut f| f.write_all(config.as_bytes()))
        .expect("config can be written");
    (config_path, port, metrics_port)
}

/// Starts the gateway with its log appended to `gateway.log` next to the config.
fn spawn(config_path: &std::path::Path, extra_args: &[&str]) -> Child {
    let log_path = config_path.with_file_name("gateway.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("gateway log can be opened");
    // A temporary folder of its own: tests look for what the gateway leaves there.
    let tmp = config_path.with_file_name("tmp");
    std::fs::create_dir_all(&tmp).expect("the gateway's temporary folder can be made");
    let mut command = Command::new(crate::bins::path("faaso-gateway"));
    command
        .arg("--config")
        .arg(config_path)
        .args(extra_args)
        .env("TMPDIR", &tmp)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stderr(log);
    // Nothing from the machine's environment configures a test's gateway.
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("FAASO_") {
            command.env_remove(key);
        }
    }
    command.spawn().expect("faaso-gateway can be started")
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- gateway log ---\n{}--- end of gateway log ---",
                self.log()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
