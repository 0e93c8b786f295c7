//! Reloads the `tls_certs` files on `SIGHUP`, and when one of them changes on disk (checked
//! every few seconds).
//!
//! A reload is all or nothing: if any file cannot be read or does not fit its key, the error is
//! logged with the file named and every certificate in use stays. Open connections keep the
//! certificate they were made with; new handshakes get the new ones.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;

use super::certs::{CertFiles, CertStore, load_files};

/// How often the files' modification times are compared.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);

/// The background service that reloads the certificate files.
pub struct Reload {
    pub files: Vec<CertFiles>,
    pub store: Arc<CertStore>,
}

/// Loads every file; the first failure names its file.
pub fn load_all(files: &[CertFiles]) -> Result<Vec<super::certs::Loaded>, super::certs::CertError> {
    files.iter().map(load_files).collect()
}

impl Reload {
    fn stamps(&self) -> Vec<Option<SystemTime>> {
        let modified = |path: &PathBuf| std::fs::metadata(path).and_then(|m| m.modified()).ok();
        self.files
            .iter()
            .flat_map(|files| [modified(&files.cert), modified(&files.key)])
            .collect()
    }

    fn reload(&self, why: &str) {
        match load_all(&self.files) {
            Ok(loaded) => {
                let serials: Vec<String> = loaded.iter().map(|c| c.serial.clone()).collect();
                self.store.set_files(loaded);
                tracing::info!(why, ?serials, "TLS certificates reloaded");
            }
            Err(err) => {
                tracing::error!(
                    why,
                    "TLS certificates not reloaded, the ones in use stay: {err}"
                )
            }
        }
    }
}

#[async_trait]
impl BackgroundService for Reload {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = match signal(SignalKind::hangup()) {
            Ok(hangup) => Some(hangup),
            Err(err) => {
                tracing::error!(
                    "SIGHUP cannot be handled, certificates reload on change only: {err}"
                );
                None
            }
        };
        let mut stamps = self.stamps();
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let signalled = async {
                match hangup.as_mut() {
                    Some(hangup) => hangup.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = signalled => {
                    stamps = self.stamps();
                    self.reload("SIGHUP");
                }
                _ = tick.tick() => {
                    let now = self.stamps();
                    if now != stamps {
                        stamps = now;
                        self.reload("a certificate file changed");
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}
