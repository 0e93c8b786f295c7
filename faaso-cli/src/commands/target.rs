//! Where a command acts, in one type: [`Target::Local`] runs the `faaso` library's operations
//! on this machine's Docker engine, [`Target::Remote`] asks a gateway's admin API to run the
//! same ones. Commands call [`Target`]'s methods and print the outcome; the two modes differ
//! only here.

use faaso::client::remote::{Remote, StreamLine};
use faaso::engine::Lifecycle;
use faaso::engine::deploy::Rollout;
use faaso::engine::status::FunkoStatus;

use super::Global;
use crate::ui::Ui;

/// Where a command acts: this machine's Docker engine, or a gateway's admin API.
pub enum Target {
    Local(Box<Lifecycle>),
    Remote(Remote),
}

/// Chooses where to act, and says so in one line: `--local` → local; else `--server` /
/// `FAASO_SERVER`, else the server saved by `faaso login` → remote; else local. A remote's
/// version is compared with ours (a mismatch is a warning).
pub async fn target(global: &Global, ui: &Ui) -> anyhow::Result<Target> {
    if let Some(remote) = remote(global, ui).await? {
        return Ok(Target::Remote(remote));
    }
    Ok(Target::Local(Box::new(local_lifecycle(global, ui).await?)))
}

/// Warns in one line when no gateway answers on this machine (`FAASO_LISTEN`'s port, else
/// 8888): the command works on Docker, but nothing routes requests to the funko.
pub async fn warn_without_local_gateway(ui: &Ui) {
    let port = faaso::store::dirs::process_env("FAASO_LISTEN")
        .and_then(|listen| listen.rsplit(':').next()?.parse::<u16>().ok())
        .unwrap_or(8888);
    if !local_gateway_answers(port).await {
        ui.note(format!(
            "warning: no gateway answers on 127.0.0.1:{port}, so nothing routes requests to \
             funkos; start one with `faaso-gateway &`"
        ));
    }
}

/// Whether `GET /healthz` on 127.0.0.1:`port` gets an HTTP answer within half a second.
async fn local_gateway_answers(port: u16) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let ask = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .await?;
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await?;
        std::io::Result::Ok(head.starts_with(b"HTTP/1.1 200"))
    };
    matches!(
        tokio::time::timeout(std::time::Duration::from_millis(500), ask).await,
        Ok(Ok(true))
    )
}

/// The remote to act on, if any (see [`target`]).
pub async fn remote(
    global: &Global,
    ui: &Ui,
) -> anyhow::Result<Option<faaso::client::remote::Remote>> {
    if global.local {
        return Ok(None);
    }
    let env = faaso::store::dirs::process_env;
    let saved = faaso::client::login::load(&faaso::client::login::config_path(env))?;
    let Some(server) = global
        .server
        .clone()
        .or_else(|| saved.as_ref().map(|s| s.server.clone()))
    else {
        return Ok(None);
    };
    let password = env("FAASO_PASSWORD").filter(|p| !p.is_empty()).or_else(|| {
        saved
            .as_ref()
            .filter(|s| {
                faaso::client::remote::normalize_server(&s.server).ok()
                    == faaso::client::remote::normalize_server(&server).ok()
            })
            .map(|s| s.password.clone())
    });
    let same_server = |s: &faaso::client::login::SavedLogin| {
        faaso::client::remote::normalize_server(&s.server).ok()
            == faaso::client::remote::normalize_server(&server).ok()
    };
    let ca_cert = global.cacert.clone().or_else(|| {
        saved
            .as_ref()
            .filter(|s| same_server(s))
            .and_then(|s| s.ca_cert.clone())
    });
    let remote = faaso::client::remote::Remote::new(&server, password, ca_cert.as_deref())?;
    ui.note(format!("using the gateway at {}", remote.server));
    let version = remote.version().await?;
    if version != faaso::VERSION {
        ui.note(format!(
            "warning: the gateway runs version {version}, this client is {}",
            faaso::VERSION
        ));
    }
    Ok(Some(remote))
}

/// The lifecycle on the local Docker engine (said in one line), with the same state and
/// secrets folders as the gateway uses by default (`FAASO_STATE_DIR`, `FAASO_SECRETS_DIR`).
pub async fn local_lifecycle(global: &Global, ui: &Ui) -> anyhow::Result<faaso::engine::Lifecycle> {
    use faaso::engine::Orchestrator;
    let orchestrator = match std::env::var("FAASO_ORCHESTRATOR") {
        _ if global.swarm => Orchestrator::Swarm,
        Ok(text) if !text.is_empty() => text
            .parse()
            .map_err(|err| anyhow::anyhow!("FAASO_ORCHESTRATOR: {err}"))?,
        _ => Orchestrator::Docker,
    };
    ui.note(match orchestrator {
        Orchestrator::Docker => "using the local Docker engine",
        Orchestrator::Swarm => "using the local Docker engine's Swarm",
    });
    let docker = faaso::engine::docker::connect().await?;
    let env = faaso::store::dirs::process_env;
    let mut lifecycle = faaso::engine::Lifecycle::new(
        docker,
        faaso::store::state::StateDir::new(faaso::store::dirs::state_dir(env)),
        faaso::store::secrets::SecretsDir::new(faaso::store::dirs::secrets_dir(env)),
    );
    lifecycle.orchestrator = orchestrator;
    lifecycle.registry = std::env::var("FAASO_REGISTRY")
        .ok()
        .map(|r| r.trim().trim_end_matches('/').to_string())
        .filter(|r| !r.is_empty());
    Ok(lifecycle)
}

/// Prints the lines of a remote operation as local mode prints its progress.
pub fn remote_reporter(ui: Ui) -> impl FnMut(faaso::client::remote::StreamLine) + Send {
    move |faaso::client::remote::StreamLine::Log { instance, line }| match instance {
        Some(instance) => println!("{instance} | {line}"),
        None => ui.note(line),
    }
}

/// Prints progress lines of an operation (hidden with `-q`).
pub fn reporter(ui: Ui) -> impl FnMut(String) + Send {
    move |line| ui.note(line)
}

impl Target {
    /// Fails with the usual message when the funko has neither an image nor a container (a
    /// gateway answers that itself).
    pub async fn require_funko(&self, name: &str) -> anyhow::Result<()> {
        if let Target::Local(lifecycle) = self
            && !lifecycle.funko_exists(name).await?
        {
            return Err(faaso::engine::unknown_funko(&lifecycle.docker, name)
                .await
                .into());
        }
        Ok(())
    }

    /// Sets the number of instances; new ones may take `timeout` seconds to be ready.
    pub async fn scale(
        &mut self,
        name: &str,
        count: u32,
        timeout: u64,
        ui: Ui,
    ) -> anyhow::Result<()> {
        match self {
            Target::Local(lifecycle) => {
                lifecycle.ready_timeout = std::time::Duration::from_secs(timeout);
                lifecycle.scale(name, count, &mut reporter(ui)).await?
            }
            Target::Remote(remote) => {
                remote
                    .scale(name, count, timeout, &mut remote_reporter(ui))
                    .await?
            }
        }
        Ok(())
    }

    /// The saved scale (if any) and the number of running instances.
    pub async fn current_scale(&self, name: &str) -> anyhow::Result<(Option<u32>, usize)> {
        Ok(match self {
            Target::Local(lifecycle) => lifecycle.current_scale(name).await?,
            Target::Remote(remote) => {
                let status = remote.status(&[name.to_string()]).await?;
                status.first().map_or((None, 0), |s| (s.scale, s.running))
            }
        })
    }

    /// Makes sure at least `scale` instances run (default: the saved scale, else 1); returns
    /// the scale now in effect.
    pub async fn up(
        &mut self,
        name: &str,
        scale: Option<u32>,
        timeout: u64,
        ui: Ui,
    ) -> anyhow::Result<u32> {
        if let Target::Local(lifecycle) = self {
            lifecycle.ready_timeout = std::time::Duration::from_secs(timeout);
            return Ok(lifecycle.up(name, scale, &mut reporter(ui)).await?);
        }
        let (saved, running) = self.current_scale(name).await?;
        let wanted = scale
            .unwrap_or_else(|| saved.unwrap_or(1).max(1))
            .max(running as u32);
        self.scale(name, wanted, timeout, ui).await?;
        Ok(wanted)
    }

    /// Runs `rollout` (a deploy, a canary, a promote or a rollback); returns its one-line
    /// summary (a gateway may send none).
    pub async fn roll_out(
        &mut self,
        name: &str,
        rollout: Rollout,
        timeout: u64,
        ui: Ui,
    ) -> anyhow::Result<Option<String>> {
        let remote = match self {
            Target::Local(lifecycle) => {
                lifecycle.ready_timeout = std::time::Duration::from_secs(timeout);
                let summary = lifecycle.roll_out(name, rollout, &mut reporter(ui)).await?;
                return Ok(Some(summary));
            }
            Target::Remote(remote) => remote,
        };
        let rolled_back = format!("{name}: rolled back to ");
        let canary_ended = format!("{name}: canary ended, ");
        let is_summary = |text: &str| match rollout {
            Rollout::Deploy => text.contains(" replaced, "),
            Rollout::Canary { .. } => text.contains(": canary of image "),
            Rollout::Promote => text.contains(": promoted image "),
            Rollout::Rollback => text.starts_with(&rolled_back) || text.starts_with(&canary_ended),
        };
        summarised(ui, is_summary, async |on_line| match rollout {
            Rollout::Deploy => remote.deploy(name, timeout, on_line).await,
            Rollout::Canary { percent, sticky } => {
                remote
                    .deploy_canary(name, percent, sticky, timeout, on_line)
                    .await
            }
            Rollout::Promote => remote.promote(name, timeout, on_line).await,
            Rollout::Rollback => remote.rollback(name, timeout, on_line).await,
        })
        .await
    }

    /// Removes the funko's containers and images.
    pub async fn purge(&self, name: &str, ui: Ui) -> anyhow::Result<()> {
        match self {
            Target::Local(lifecycle) => lifecycle.purge(name, &mut reporter(ui)).await?,
            Target::Remote(remote) => remote.purge(name, &mut remote_reporter(ui)).await?,
        }
        Ok(())
    }

    /// The status of the named funkos (every funko when `names` is empty).
    pub async fn status(&self, names: &[String]) -> anyhow::Result<Vec<FunkoStatus>> {
        Ok(match self {
            Target::Local(lifecycle) => lifecycle.status(names).await?,
            Target::Remote(remote) => remote.status(names).await?,
        })
    }

    /// Prints the funko's log lines as `<instance> | <line>`.
    pub async fn logs(
        &self,
        name: &str,
        follow: bool,
        tail: Option<u32>,
        ui: Ui,
    ) -> anyhow::Result<()> {
        // Lines seen so far: with none, a note says so (after the old lines, or after a second
        // of following), rather than leaving an empty screen to guess at.
        let seen = std::sync::atomic::AtomicUsize::new(0);
        let count = || seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let reading = async {
            match self {
                Target::Local(lifecycle) => {
                    let mut print = |line: faaso::engine::LogLine| {
                        count();
                        println!("{} | {}", line.instance, line.line)
                    };
                    lifecycle.logs(name, follow, tail, &mut print).await?
                }
                Target::Remote(remote) => {
                    let mut report = remote_reporter(ui);
                    let mut print = |line: faaso::client::remote::StreamLine| {
                        if matches!(
                            line,
                            faaso::client::remote::StreamLine::Log {
                                instance: Some(_),
                                ..
                            }
                        ) {
                            count();
                        }
                        report(line)
                    };
                    remote.logs(name, follow, tail, &mut print).await?
                }
            }
            anyhow::Ok(())
        };
        tokio::pin!(reading);
        let none_yet = || seen.load(std::sync::atomic::Ordering::Relaxed) == 0;
        let mut noted = false;
        if follow {
            tokio::select! {
                result = &mut reading => return result,
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
            if none_yet() {
                ui.note(format!(
                    "no log lines from {name} yet; following, new lines appear here (Ctrl-C stops)"
                ));
                noted = true;
            }
        }
        reading.await?;
        if none_yet() && !noted {
            ui.note(format!(
                "no log lines from {name} yet (its instances have written none)"
            ));
        }
        Ok(())
    }

    /// Removes all but the newest `keep` releases; returns how many were removed.
    pub async fn prune(&self, name: &str, keep: u32, ui: Ui) -> anyhow::Result<usize> {
        match self {
            Target::Local(lifecycle) => {
                self.require_funko(name).await?;
                let removed =
                    faaso::engine::releases::prune(&lifecycle.docker, name, keep as usize).await?;
                for tag in &removed {
                    ui.note(format!("removed {tag}"));
                }
                Ok(removed.len())
            }
            Target::Remote(remote) => {
                let mut count = 0;
                let mut report = remote_reporter(ui);
                remote
                    .prune(name, keep, &mut |line| {
                        count += 1;
                        report(line)
                    })
                    .await?;
                Ok(count)
            }
        }
    }
}

/// Runs a remote operation whose last line is its summary (`is_summary`): the other lines are
/// printed as progress, the summary is returned.
async fn summarised(
    ui: Ui,
    is_summary: impl Fn(&str) -> bool + Send + Sync,
    operation: impl AsyncFnOnce(
        &mut (dyn FnMut(StreamLine) + Send),
    ) -> Result<(), faaso::client::remote::RemoteError>,
) -> anyhow::Result<Option<String>> {
    let mut summary = None;
    let mut report = remote_reporter(ui);
    let mut on_line = |line: StreamLine| {
        let StreamLine::Log { line: text, .. } = &line;
        if is_summary(text) {
            summary = Some(text.clone());
        } else {
            report(line);
        }
    };
    operation(&mut on_line).await?;
    Ok(summary)
}
