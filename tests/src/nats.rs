//! A real NATS server with JetStream (`nats-server -js`, Debian's package) on a free loopback
//! port, its storage in a folder of its own; killed on drop.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct NatsServer {
    child: Child,
    /// `nats://127.0.0.1:<port>`
    pub url: String,
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// Starts `binary` and waits until it accepts connections.
    pub async fn start(binary: &Path) -> NatsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = crate::gateway::free_port();
        let child = Command::new(binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server can be started");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "nats-server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        NatsServer {
            child,
            url: format!("nats://127.0.0.1:{port}"),
            _dir: dir,
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
